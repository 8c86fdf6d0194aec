package gitstate

import (
	"sync"
	"time"
)

// git checkout writes the index, releases index.lock, and only then
// points HEAD at the branch it switched to, holding no lock for that. A
// landing that takes the lock in between sees the old HEAD with the new
// branch's index and files: it would bring a branch the user just left
// forward in their checkout, or leave the branch they just switched to
// behind the files they have. The gap is short, but a landing that waited
// for the lock takes it right in it. So a landing that finds the index
// freshly written by someone else waits, holding the lock, until the
// index is indexSettle old before it reads HEAD: long enough for any git
// checkout to have finished.
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

// settleIndex waits, while the caller holds the index lock, until an index
// someone else wrote is indexSettle old (see indexSettle).
func settleIndex(index string) {
	st, err := stampOf(index)
	if err != nil || !st.exists {
		return
	}
	if own, ok := ownIndexes.Load(index); ok && own.(fileStamp) == st {
		return
	}
	if age := time.Since(st.mtime); age >= 0 && age < indexSettle {
		time.Sleep(indexSettle - age)
	}
}
