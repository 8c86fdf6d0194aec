package gitstate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/index"
)

// git checkout writes the index, releases index.lock, and only then
// points HEAD at the branch it switched to, holding no lock for that. A
// landing that takes the lock in between sees the old HEAD with the new
// branch's index and files: it would bring a branch the user just left
// forward in their checkout, or leave the branch they just switched to
// behind the files they have. The gap is short, but a landing that waited
// for the lock takes it right in it. So a landing waits, before it takes
// the lock, until an index someone else wrote is indexSettle old: long
// enough for any git checkout to have finished. Under the lock the staged
// switch finds the index fresh again only when someone wrote it in
// between, and then prepares again rather than wait holding the lock (the
// user's next git command, a commit after an add, would fail on it).
const indexSettle = 50 * time.Millisecond

// ownIndexes maps an index path to its stamp as codemachine's own switch
// left it: an index no one else wrote since needs no wait.
var ownIndexes sync.Map // string -> fileStamp

// noteOwnIndex records the index as a switch of codemachine's installed it.
func noteOwnIndex(index string) {
	if st, err := stampOf(index); err == nil {
		ownIndexes.Store(index, st)
	}
}

// settleIndex waits until an index someone else wrote is indexSettle old
// (see indexSettle), unless it is settled already (indexFollowsHead).
func (r *Repo) settleIndex(co checkout, index string) {
	if wait, unsettled := r.indexUnsettled(co, index); unsettled {
		r.hook("settle-wait")
		time.Sleep(wait)
	}
}

// indexUnsettled is indexFresh, except for an index that a git command
// which has finished wrote (indexFollowsHead): the landing right after a
// user's commit (a post-commit hook's, say) need not wait.
func (r *Repo) indexUnsettled(co checkout, index string) (time.Duration, bool) {
	wait, fresh := indexFresh(index)
	if !fresh || r.indexFollowsHead(co, index) {
		return 0, false
	}
	return wait, true
}

// indexFollowsHead reports whether the index was written before HEAD last
// moved, and holds the tree of the commit HEAD names now: then no git
// command that writes the index and moves HEAD after it (checkout, reset,
// commit) is half-way. Such a command appends to HEAD's reflog when it
// moves HEAD, so while it is half-way the reflog is older than the index
// it wrote, or HEAD still names the commit it leaves, whose tree is not
// the one it wrote into the index. The reflog must be strictly newer:
// with coarse file times the one a command appended just before another
// wrote the index can carry the same time. Without a reflog
// (core.logAllRefUpdates off), or a cache tree, the index is not known to
// be settled.
func (r *Repo) indexFollowsHead(co checkout, index string) bool {
	f, err := os.Open(index)
	if err != nil {
		return false
	}
	defer f.Close()
	ist, err := f.Stat()
	if err != nil {
		return false
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return false
	}
	root, ok := indexRootTree(data)
	if !ok {
		return false
	}
	head, err := r.headOf(co.gitDir)
	if err != nil || head.Commit == "" {
		return false
	}
	tree, err := r.TreeOf(head.Commit)
	if err != nil || tree != hex.EncodeToString(root[:]) {
		return false
	}
	lst, err := os.Stat(filepath.Join(co.gitDir, "logs", "HEAD"))
	return err == nil && lst.ModTime().After(ist.ModTime())
}

// indexRootTree returns the root of an index's cache tree (its TREE
// extension), when the index records one as valid. Unlike parseIndex it
// only steps over the entries, and leaves the checksum unchecked: an index
// is put in place by a rename, whole, and a damaged one cannot hold the
// id of the tree it is compared with.
func indexRootTree(data []byte) ([20]byte, bool) {
	var root [20]byte
	if len(data) < 12+20 || string(data[:4]) != "DIRC" {
		return root, false
	}
	if v := binary.BigEndian.Uint32(data[4:8]); v != 2 && v != 3 {
		return root, false // version 4 compresses names: parseIndex's job
	}
	body := data[:len(data)-20]
	off, ok := skipIndexEntries(body, int(binary.BigEndian.Uint32(data[8:12])))
	for ok && off+8 <= len(body) {
		sig := string(body[off : off+4])
		size := int(binary.BigEndian.Uint32(body[off+4 : off+8]))
		off += 8
		if size < 0 || off+size > len(body) {
			return root, false
		}
		if sig == "TREE" {
			trees := map[string][20]byte{}
			if _, err := parseCacheTree(body[off:off+size], "", trees); err != nil {
				return root, false
			}
			root, ok = trees[""]
			return root, ok
		}
		off += size
	}
	return root, false
}

// skipIndexEntries returns the offset after the first n entries of an
// index of version 2 or 3.
func skipIndexEntries(body []byte, n int) (int, bool) {
	off := 12
	for range n {
		fixed := 62
		if off+fixed > len(body) {
			return 0, false
		}
		if binary.BigEndian.Uint16(body[off+60:])&0x4000 != 0 {
			fixed += 2 // extended flags (version 3)
		}
		if off+fixed > len(body) {
			return 0, false
		}
		end := bytes.IndexByte(body[off+fixed:], 0)
		if end < 0 {
			return 0, false
		}
		off += (fixed + end + 8) &^ 7
	}
	return off, off <= len(body)
}

// indexFresh reports whether someone other than codemachine's own switch
// wrote the index less than indexSettle ago, and how long until it is
// settled.
func indexFresh(index string) (time.Duration, bool) {
	st, err := stampOf(index)
	if err != nil || !st.exists {
		return 0, false
	}
	if own, ok := ownIndexes.Load(index); ok && own.(fileStamp) == st {
		return 0, false
	}
	if age := time.Since(st.mtime); age >= 0 && age < indexSettle {
		return indexSettle - age, true
	}
	return 0, false
}

// repairAfterUnchecked mends what git's own race can leave after a landing
// moved a branch no checkout was on (advanceUnchecked): a git checkout of
// the branch that read the branch's commit before the move and switched
// after it, leaving the user on the branch with the old commit's files in
// index and working tree, which their next commit would turn into a revert
// of the landing. It waits for such a checkout to end, then, if the main
// checkout is on the branch and its index holds exactly the old commit's
// entries where old and new differ, brings index and files forward as the
// landing would have (read-tree -m -u old new, keeping local changes).
// Anything else (the user's own edits of those paths) is left alone.
func (r *Repo) repairAfterUnchecked(ctx context.Context, co checkout, ref, old, new string) {
	time.Sleep(indexSettle)
	if !co.on(ref) {
		return
	}
	held, err := r.holdCheckout(ctx, co, ref)
	if err != nil {
		return
	}
	defer held.release()
	if tip, err := r.refHash(ref); err != nil || tip != new {
		return
	}
	changes, err := r.diffTreesInProcess(old, new)
	if err != nil || !indexHolds(held.journal.Index, changes) {
		return
	}
	if inWay, err := untrackedInWay(co.root, changes); err != nil || len(inWay) > 0 {
		return // read-tree would overwrite or remove ignored files of the user's
	}
	tmp, err := r.tempPath("repair-index")
	if err != nil {
		return
	}
	defer os.Remove(tmp)
	if copyIndex(held.journal.Index, tmp) != nil {
		return
	}
	opts := runOpts{Dir: co.root, Env: []string{"GIT_INDEX_FILE=" + tmp, held.journal.env()}}
	if _, err := r.run(context.WithoutCancel(ctx), opts, true, []string{"read-tree", "-m", "-u", old, new}); err != nil {
		return
	}
	if os.Rename(tmp, held.journal.Index) == nil {
		noteOwnIndex(held.journal.Index)
	}
}

// indexHoldsNew reports whether the user's index has the new side of
// every change of j's switch: not reset or restaged by the user since a
// kill left it installed.
func (r *Repo) indexHoldsNew(j *switchJournal) bool {
	changes, err := r.diffTreesInProcess(j.Old, j.New)
	if err != nil {
		return false
	}
	return indexHoldsSide(j.Index, changes, true)
}

// indexHolds reports whether the index at path has the old side of every
// change (its blob, or no entry where the old side has none).
func indexHolds(path string, changes []Change) bool {
	return indexHoldsSide(path, changes, false)
}

// indexHoldsSide is indexHolds of the old side, or of the new one.
func indexHoldsSide(path string, changes []Change, newSide bool) bool {
	entries, err := indexHashes(path)
	if err != nil {
		return false
	}
	for _, c := range changes {
		want := c.OldHash
		if newSide {
			want = c.NewHash
		}
		if entries[c.Path] != want {
			return false
		}
	}
	return len(changes) > 0
}

// indexHashes is the blob id of each entry of the index at path, by path.
func indexHashes(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the index: %w", err)
	}
	defer f.Close()
	var idx index.Index
	if err := index.NewDecoder(bufio.NewReader(f)).Decode(&idx); err != nil {
		return nil, fmt.Errorf("read the index %s: %w", path, err)
	}
	entries := make(map[string]string, len(idx.Entries))
	for _, e := range idx.Entries {
		entries[e.Name] = e.Hash.String()
	}
	return entries, nil
}
