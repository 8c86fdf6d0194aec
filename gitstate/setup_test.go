package gitstate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	v, err := Version(t.Context(), nil)
	if err != nil || !strings.HasPrefix(v, "git version ") || strings.HasSuffix(v, "\n") {
		t.Errorf("Version = %q, %v", v, err)
	}
}

func TestHooksDir(t *testing.T) {
	dir, r := newRepo(t, nil)
	got, err := r.HooksDir(t.Context())
	if err != nil || got != filepath.Join(dir, ".git", "hooks") {
		t.Errorf("HooksDir = %q, %v", got, err)
	}
	// A linked worktree shares the main one's hooks.
	linked := filepath.Join(t.TempDir(), "linked")
	git(t, dir, "worktree", "add", "-q", "--detach", linked)
	lr, err := Open(linked)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := lr.HooksDir(t.Context()); err != nil || got != filepath.Join(dir, ".git", "hooks") {
		t.Errorf("HooksDir of a linked worktree = %q, %v", got, err)
	}
	git(t, dir, "config", "core.hooksPath", "githooks")
	if got, err := r.HooksDir(t.Context()); err != nil || got != filepath.Join(dir, "githooks") {
		t.Errorf("HooksDir with core.hooksPath = %q, %v", got, err)
	}
}

func TestListWorktrees(t *testing.T) {
	dir, r := newRepo(t, nil)
	kept, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kept = filepath.Join(kept, "kept")
	gone := filepath.Join(t.TempDir(), "gone")
	git(t, dir, "worktree", "add", "-q", "--detach", kept)
	git(t, dir, "worktree", "add", "-q", "--detach", gone)
	if err := os.RemoveAll(gone); err != nil {
		t.Fatal(err)
	}
	list, err := r.ListWorktrees(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0] != (WorktreeInfo{Path: dir}) {
		t.Fatalf("ListWorktrees = %+v, want the main worktree first and two linked ones", list)
	}
	for _, w := range list[1:] {
		switch filepath.Base(w.Path) {
		case "kept":
			if w != (WorktreeInfo{Path: kept}) {
				t.Errorf("the kept worktree: %+v", w)
			}
		case "gone":
			if !w.Prunable {
				t.Errorf("the removed worktree is not prunable: %+v", w)
			}
		default:
			t.Errorf("unexpected worktree %+v", w)
		}
	}
}
