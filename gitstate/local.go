package gitstate

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/codemachine/codemachine/internal/fastread"
	"github.com/codemachine/codemachine/internal/lazyre"
	"github.com/codemachine/codemachine/internal/yamlnode"
)

// localFile maps a name under LocalDir ("holds.yaml", "runs/x.yaml") to a
// path, creating its parent directory, refusing names that would leave it.
func (r *Repo) localFile(name string) (string, error) {
	if err := checkLocalName(name); err != nil {
		return "", err
	}
	return r.localPath(filepath.FromSlash(name))
}

// localFileToRead is localFile for a read or a removal, which creates
// nothing: a command that only reads leaves no .git/codemachine behind in
// a repository codemachine never worked in.
func (r *Repo) localFileToRead(name string) (string, error) {
	if err := checkLocalName(name); err != nil {
		return "", err
	}
	return filepath.Join(r.commonDir, "codemachine", filepath.FromSlash(name)), nil
}

func checkLocalName(name string) error {
	if name == "" || path.IsAbs(name) || strings.Contains(name, "\\") || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("local file %q: not a plain relative name", name)
	}
	return nil
}

// errNotRegular is what is under LocalDir where a file of codemachine's is
// read, but is neither a file nor a directory: opening a named pipe would
// wait for a writer for ever.
var errNotRegular = fastread.ErrNotRegular

// readLocalFile reads the file at p as os.ReadFile does, refusing with
// errNotRegular a named pipe, socket or device.
func readLocalFile(p string) ([]byte, error) { return fastread.ReadFile(p) }

// ReadLocal decodes the YAML file name under LocalDir into v. A missing file
// gives an error wrapping fs.ErrNotExist, which callers treat as empty; one
// that does not decode, a *DamagedFileError.
func (r *Repo) ReadLocal(name string, v any) error {
	p, err := r.localFileToRead(name)
	if err != nil {
		return err
	}
	data, err := readLocalFile(p)
	if kind := notAFile(err); kind != "" {
		// Not what codemachine writes there: for the user to remove, as
		// a file that does not decode is (exit 2).
		return &DamagedFileError{Path: r.RelPath(p), Problem: kind + ", not a file"}
	}
	// A file WriteLocalExchanged writes starts with its checksum: one that
	// does not match was read as a write went into its inode (the reader
	// opened it two writes before), and is read again.
	for i := 0; err == nil && !sumMatches(data) && i < sumRereads; i++ {
		time.Sleep(time.Millisecond)
		data, err = readLocalFile(p)
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // it names the absolute path, which this names shorter
		}
		return fmt.Errorf("read %s: %w", r.RelPath(p), err)
	}
	if !sumMatches(data) {
		return &DamagedFileError{Path: r.RelPath(p), Problem: "its first line's checksum does not match the rest"}
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		return damaged(r.RelPath(p), data, err)
	}
	return nil
}

// notAFile names what err says is where a file was read ("a directory",
// "a named pipe, socket or device"), or "".
func notAFile(err error) string {
	switch {
	case errors.Is(err, errNotRegular):
		return "a named pipe, socket or device"
	case errors.Is(err, syscall.EISDIR):
		return "a directory"
	}
	return ""
}

// DamagedFileError is a file of codemachine's own under LocalDir that does
// not decode: not what codemachine wrote (it writes them whole, by
// rename), so a hand edit, a disk error or another program. Every command
// that reads it stops on it until it is fixed or removed, so it says
// where and what, on one line, without the Go types it was decoded into.
type DamagedFileError struct {
	Path      string // relative to the repository when under it
	Line, Col int    // 0 when unknown
	Problem   string
}

// Error names the damaged file, where it is damaged and how to repair it.
func (e *DamagedFileError) Error() string {
	place := e.Path
	if e.Line > 0 {
		place = fmt.Sprintf("%s:%d:%d", e.Path, e.Line, max(e.Col, 1))
	}
	return fmt.Sprintf("%s: %s: this file is codemachine's own and it cannot read it; fix it, or remove it (what it kept is then forgotten)", place, e.Problem)
}

// typeErrorLine is the line yaml.v3 gives a value of the wrong type.
var typeErrorLine = lazyre.New(`^line (\d+): `)

// damaged describes the decoding error err of a local file's data.
func damaged(path string, data []byte, err error) *DamagedFileError {
	e := &DamagedFileError{Path: path, Problem: "a value of the wrong type or form"}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, msg := range te.Errors {
			if m := typeErrorLine().FindStringSubmatch(msg); m != nil {
				e.Line, _ = strconv.Atoi(m[1])
				break
			}
		}
		return e
	}
	if syn := yamlnode.Syntax(err); strings.HasPrefix(err.Error(), "yaml: ") && !strings.Contains(syn.Msg, "\n") {
		place := yamlnode.Locate(data, err)
		e.Line, e.Col = place.Line, place.Col
		e.Problem = "invalid YAML: " + syn.Msg
	}
	return e
}

// WriteLocal encodes v as YAML into the file name under LocalDir,
// atomically: readers see the old content or the new, never a torn file;
// synced to disk before it replaces the old one (journals, holds) where
// git would sync a ref (syncLocal). A file that already holds that content
// is left as it is.
func (r *Repo) WriteLocal(name string, v any) error {
	return r.writeLocalYAML(name, v, r.syncLocal())
}

// WriteLocalVolatile is WriteLocal for a file that only says what is
// happening now (what the lock holder is running): atomic, not synced.
func (r *Repo) WriteLocalVolatile(name string, v any) error {
	return r.writeLocalYAML(name, v, false)
}

func (r *Repo) writeLocalYAML(name string, v any, durable bool) error {
	p, err := r.localFile(name)
	if err != nil {
		return err
	}
	data, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if old, err := readLocalFile(p); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return writeFileAtomic(p, data, durable)
}

// WriteLocalExchanged is WriteLocalVolatile for a file written a few
// times a step (the running file, at each unit's start and end) by one
// process at a time (the repository lock's holder), without making a new
// file: the content is written into a spare beside it (the inode the file
// held a write before) and the two are exchanged in one rename
// (renameat2's RENAME_EXCHANGE). A reader sees the old content or the new,
// but one that opened the file two writes before and reads it only now
// would read a write in progress: the content starts with a comment line
// with the checksum of the rest, and ReadLocal reads a file whose checksum
// does not match again. A new file every write was an inode's creation, 0.3-1 ms of
// kernel time on a busy ext4. Not synced: a power loss may bring back an
// older content, which only says what ran before it. Where the file
// system cannot exchange, the spare is renamed over the file.
func (r *Repo) WriteLocalExchanged(name string, v any) error {
	p, err := r.localFile(name)
	if err != nil {
		return err
	}
	data, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	data = prependSum(data)
	exchangeMu.Lock()
	defer exchangeMu.Unlock()
	if old, err := readLocalFile(p); err == nil && bytes.Equal(old, data) {
		return nil
	}
	spare := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".spare")
	if err := writeInPlace(spare, data); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	err = unix.Renameat2(unix.AT_FDCWD, spare, unix.AT_FDCWD, p, unix.RENAME_EXCHANGE)
	if err != nil {
		// No file to exchange with yet, or a file system that cannot.
		err = os.Rename(spare, p)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// exchangeMu serializes this process's WriteLocalExchanged: two writes
// into one spare at once would mix.
var exchangeMu sync.Mutex

// sumRereads is how many times ReadLocal reads again a file whose checksum
// does not match before it takes it for damaged: a write in progress is a
// few microseconds.
const sumRereads = 20

// sumPrefix starts the first line of a file WriteLocalExchanged writes, a
// YAML comment (a reader of an earlier version decodes the file as
// before) with the checksum of the rest. First, since a write into the
// file goes from its start: a reader that meets one sees a first line
// that does not sum what follows, whether the write has reached the
// rest or not.
const sumPrefix = "# crc32 "

// prependSum puts data's checksum line before it.
func prependSum(data []byte) []byte {
	out := fmt.Appendf(make([]byte, 0, len(sumPrefix)+9+len(data)), "%s%08x\n", sumPrefix, crc32.ChecksumIEEE(data))
	return append(out, data...)
}

// sumMatches reports whether data, when it starts with a checksum line,
// is what that line sums; data without one (every other local file)
// matches.
func sumMatches(data []byte) bool {
	if !bytes.HasPrefix(data, []byte(sumPrefix)) {
		return true
	}
	line, body, ok := bytes.Cut(data, []byte("\n"))
	if !ok || len(line) != len(sumPrefix)+8 {
		return false
	}
	want, err := strconv.ParseUint(string(line[len(sumPrefix):]), 16, 32)
	return err == nil && crc32.ChecksumIEEE(body) == uint32(want)
}

// writeInPlace writes data into the file at p, made when missing, without
// making a new one: written from its start, then cut to data's length.
// Anything but a regular file of one name there is removed and made
// again, never written through.
func writeInPlace(p string, data []byte) error {
	flags := os.O_WRONLY | os.O_CREATE | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	f, err := os.OpenFile(p, flags, 0o644)
	if err == nil {
		if st, serr := f.Stat(); serr != nil || !st.Mode().IsRegular() || st.Sys().(*syscall.Stat_t).Nlink != 1 {
			_ = f.Close()
			f = nil
		}
	}
	if f == nil {
		if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return rerr
		}
		if f, err = os.OpenFile(p, flags|os.O_EXCL, 0o644); err != nil {
			return err
		}
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// RemoveLocal removes the file name under LocalDir; a missing file is not
// an error. Removing creates no inode where writing an empty value would
// (writeFileAtomic), which on a busy ext4 is most of what a small write
// costs.
func (r *Repo) RemoveLocal(name string) error {
	p, err := r.localFileToRead(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// ReadLocalRaw is the content of the file name under LocalDir; a missing
// file gives an error wrapping fs.ErrNotExist.
func (r *Repo) ReadLocalRaw(name string) ([]byte, error) {
	p, err := r.localFileToRead(name)
	if err != nil {
		return nil, err
	}
	data, err := readLocalFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return data, nil
}

// WriteLocalRaw writes data into the file name under LocalDir, atomically
// but not synced: for caches, which are rebuilt when lost.
func (r *Repo) WriteLocalRaw(name string, data []byte) error {
	p, err := r.localFile(name)
	if err != nil {
		return err
	}
	return writeFileAtomic(p, data, false)
}

// LogDir is the directory for the event logs of one run,
// LocalDir/logs/<run>. It is not created.
func (r *Repo) LogDir(run string) string {
	return filepath.Join(r.commonDir, "codemachine", "logs", run)
}

// writeFileAtomic writes data to p through a new file renamed into place:
// readers see the old content or the new, never a torn file. durable
// syncs the new file first, so that a power loss leaves the old content or
// the new (a kill -9 needs no sync: the kernel keeps what was written).
//
// The file is always a new one. Writing a spare inode instead (the one p
// held two writes before) would spare the inode's creation, 0.3-1 ms of
// kernel time on a busy ext4, but a reader that opened p just before it
// was replaced could then read a mix of two writes, and an unsynced
// overwrite lost in a power loss while its rename is not would bring back
// content older than the old. WriteLocalExchanged does so for the one file
// where neither matters (the running file: checksummed, and only ever
// saying what runs now).
func writeFileAtomic(p string, data []byte, durable bool) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}
