package gitstate

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
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
				w, err := r.Worktree(t.Context(), slot, base, sandboxed)
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

// TestLandOverlayConflict: an Overlay that cannot merge the paths it
// rewrites reports a *ConflictError, and the commit goes to its conflict
// branch as any other conflict would, the user's branch untouched.
func TestLandOverlayConflict(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"plan.md": "- [ ] T1\n- [ ] T2\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"plan.md": "- [ ] T1\n- [x] T2\n  note\n"}, "codemachine(impl/T2): t\n\nCodemachine-Step: impl\nCodemachine-Task: T2\n")
	write(t, dir, "plan.md", "- [x] T1\n- [ ] T2\n")
	tip := commitAll(t, dir, "T1 landed")
	overlay := func(string, string) (string, error) {
		return "", &ConflictError{Reason: "the plan edits do not merge", Paths: []string{"plan.md"}}
	}
	_, err := r.Land(t.Context(), "main", base, c, LandOptions{Overlay: overlay, OverlayPaths: []string{"plan.md"}})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Reason != "the plan edits do not merge" || !slices.Equal(ce.Paths, []string{"plan.md"}) {
		t.Fatalf("err = %v", err)
	}
	if ce.Branch != "codemachine/conflict/impl/T2" || git(t, dir, "rev-parse", ce.Branch) != c {
		t.Errorf("conflict branch %s does not hold the original commit", ce.Branch)
	}
	if git(t, dir, "rev-parse", "main") != tip || statusShort(t, dir) != "" {
		t.Error("the user's branch or tree was touched")
	}
}
