package gitstate

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestCheckUnmerged: a merge that left conflicts is found in the index as
// git writes it, version 2, 3 (an intent-to-add entry has extended flags)
// and 4 (read by git); a checkout without conflicts, or on another
// branch, has none.
func TestCheckUnmerged(t *testing.T) {
	for _, version := range []string{"2", "3", "4"} {
		t.Run("index version "+version, func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{"a.txt": "base\n", "sub/b.txt": "base\n", "c.txt": "c\n"})
			ctx := t.Context()
			git(t, dir, "checkout", "-q", "-b", "other")
			write(t, dir, "a.txt", "theirs\n")
			write(t, dir, "sub/b.txt", "theirs\n")
			commitAll(t, dir, "other")
			git(t, dir, "checkout", "-q", "main")
			write(t, dir, "a.txt", "mine\n")
			write(t, dir, "sub/b.txt", "mine\n")
			commitAll(t, dir, "mine")
			if err := r.CheckUnmerged(ctx, "main"); err != nil {
				t.Fatalf("before the merge: %v", err)
			}
			if out, err := exec.Command("git", "-C", dir, "merge", "other").CombinedOutput(); err == nil {
				t.Fatalf("the merge did not conflict:\n%s", out)
			}
			write(t, dir, "new-file-with-a-long-name-to-pad-the-entry.txt", "x\n")
			git(t, dir, "add", "-N", "new-file-with-a-long-name-to-pad-the-entry.txt")
			git(t, dir, "update-index", "--index-version", version)
			err := r.CheckUnmerged(ctx, "main")
			var ue *UnmergedError
			if !errors.As(err, &ue) {
				t.Fatalf("got %v, want an *UnmergedError", err)
			}
			if want := []string{"a.txt", "sub/b.txt"}; !slices.Equal(ue.Paths, want) || ue.Dir != dir || ue.Branch != "main" {
				t.Errorf("got %+v, want the paths %q in %s on main", ue, want, dir)
			}
			// Versions 2 and 3 are read in process, with no git.
			data, rerr := os.ReadFile(filepath.Join(dir, ".git", "index"))
			if rerr != nil {
				t.Fatal(rerr)
			}
			if paths, ok := unmergedEntries(data); ok != (version != "4") || ok && !slices.Equal(paths, ue.Paths) {
				t.Errorf("read in process: %q, %v", paths, ok)
			}
			if err := r.CheckUnmerged(ctx, "other"); err != nil {
				t.Errorf("a branch not checked out: %v", err)
			}
		})
	}
}
