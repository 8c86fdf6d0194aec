package gitstate

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestWorktreeSlotsCreatedTogether creates four slots at once, as the
// first four parallel tasks of a run do; git's worktree add and prune
// would trip over each other's half-written admin dirs.
func TestWorktreeSlotsCreatedTogether(t *testing.T) {
	for round := range 3 {
		_, r := newRepo(t, map[string]string{"a.txt": "a\n"})
		base, err := r.ResolveRev("main")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for slot := range 4 {
			wg.Go(func() {
				w, err := r.Worktree(t.Context(), slot, base)
				if err == nil {
					if read(t, w.Path(), "a.txt") != "a\n" {
						t.Errorf("round %d: slot %d is not checked out", round, slot)
					}
					w.Discard()
				}
				errs[slot] = err
			})
		}
		wg.Wait()
		for slot, err := range errs {
			if err != nil {
				t.Errorf("round %d: slot %d: %v", round, slot, err)
			}
		}
	}
}

// TestRefsWithPrefixBesideARefUpdate lists refs while git holds a ref's
// lock file: an empty one (git has just created it) is waited out, and a
// lock file is never listed as a ref.
func TestRefsWithPrefixBesideARefUpdate(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	head := git(t, dir, "rev-parse", "HEAD")
	lock := filepath.Join(dir, ".git", "refs", "heads", "main.lock")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(50 * time.Millisecond)
		// What git does next: write the new value into the lock file.
		if err := os.WriteFile(lock, []byte(head+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}()
	refs, err := r.RefsWithPrefix("refs/heads/")
	<-done
	if err != nil {
		t.Fatalf("RefsWithPrefix beside an empty lock file: %v", err)
	}
	if len(refs) != 1 || refs["refs/heads/main"] != head {
		t.Errorf("refs = %v, want only refs/heads/main", refs)
	}
	// A written lock file still is no ref.
	refs, err = r.RefsWithPrefix("refs/heads/")
	if err != nil || len(refs) != 1 {
		t.Errorf("refs beside a written lock file = %v, %v; want only refs/heads/main", refs, err)
	}
}
