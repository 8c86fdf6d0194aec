package gitstate

import (
	"bufio"
	"context"
	"os"
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
// (see indexSettle).
func settleIndex(index string) {
	if wait, fresh := indexFresh(index); fresh {
		time.Sleep(wait)
	}
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

// indexHolds reports whether the index at path has the old side of every
// change (its blob, or no entry where the old side has none).
func indexHolds(path string, changes []Change) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var idx index.Index
	if err := index.NewDecoder(bufio.NewReader(f)).Decode(&idx); err != nil {
		return false
	}
	entries := make(map[string]string, len(idx.Entries))
	for _, e := range idx.Entries {
		entries[e.Name] = e.Hash.String()
	}
	for _, c := range changes {
		if entries[c.Path] != c.OldHash {
			return false
		}
	}
	return len(changes) > 0
}
