package gitstate

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// writeMode says how writeFileAtomic may write a file.
type writeMode int

const (
	// freshInode writes a new file, not synced: after a power loss the
	// file holds the old content, the new, or nothing, never an older one.
	freshInode writeMode = iota
	// synced writes the file (a reused one, see writeFileAtomic) and syncs
	// it before the rename: the old content or the new, whatever happens.
	synced
	// volatile reuses a file and does not sync: for what only says what is
	// happening now, or caches checked against what they were made from,
	// where content older than the last write is harmless after a power
	// loss.
	volatile
)

// writeFileAtomic writes data to p through another file renamed into
// place: readers see the old content or the new, never a torn file. A
// kill -9 needs no sync: the kernel keeps what was written; mode says what
// a power loss may leave.
//
// With synced and volatile, the file written is, where it can be, the
// inode p held two writes ago, kept under the name .<base>.spare: creating
// a file costs a new inode, and on a busy ext4 the allocator's search
// among recently deleted inodes makes that 0.3-1 ms of kernel time,
// several times a link and two renames. The spare is claimed by renaming
// it to a name of this write's own (one writer wins it; the others create
// a file), written from the start, cut to length, and renamed over p; p's
// old inode, linked under another name of this write's own just before,
// becomes the next spare. A spare that is not a plain file with a single
// link is never written: it is dropped, and a new file created. An unsynced
// overwrite of a reused inode can be lost in a power loss while the rename
// is not, which would bring back content older than the old: freshInode
// never reuses one.
func writeFileAtomic(p string, data []byte, mode writeMode) error {
	dir, base := filepath.Split(p)
	spare := filepath.Join(dir, "."+base+".spare")
	tmp := filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
	reuse := mode != freshInode
	var f *os.File
	err := errors.New("no spare")
	if reuse {
		f, err = claimSpare(spare, tmp)
	}
	if err != nil {
		f, err = os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	err = writeWhole(f, data, mode == synced)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	kept := tmp + ".old"
	keep := reuse && err == nil && os.Link(p, kept) == nil
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
		if keep {
			_ = os.Remove(kept)
		}
		return fmt.Errorf("write %s: %w", p, err)
	}
	if keep && os.Rename(kept, spare) != nil {
		_ = os.Remove(kept)
	}
	return nil
}

// claimSpare renames spare to tmp and opens it for writing, when it is a
// plain file with no other link; an error otherwise (tmp then does not
// exist).
func claimSpare(spare, tmp string) (*os.File, error) {
	if err := os.Rename(spare, tmp); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		_ = os.Remove(tmp)
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !plainSingleLink(st) {
		err = errors.New("spare is not a plain file of one link")
	}
	if err != nil {
		f.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	return f, nil
}

// plainSingleLink reports whether st is a regular file with one link: a
// file whose content no other name shares.
func plainSingleLink(st os.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return st.Mode().IsRegular() && ok && sys.Nlink == 1
}

// writeWhole makes f's content data: written from the start, then cut to
// its length (never to zero first: on ext4 truncating a file to zero
// forces its pending blocks out to disk).
func writeWhole(f *os.File, data []byte, durable bool) error {
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != int64(len(data)) {
		if err := f.Truncate(int64(len(data))); err != nil {
			return err
		}
	}
	if durable {
		return f.Sync()
	}
	return nil
}
