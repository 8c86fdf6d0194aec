package gitstate

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// olderThanReflog dates the index just before HEAD's reflog when the two
// carry the same time (coarse file times), as a git command that wrote the
// index and then moved HEAD leaves them on a file system with finer times.
func olderThanReflog(t *testing.T, dir string) {
	t.Helper()
	index := filepath.Join(dir, ".git", "index")
	ist, err1 := os.Stat(index)
	lst, err2 := os.Stat(filepath.Join(dir, ".git", "logs", "HEAD"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if ist.ModTime().Before(lst.ModTime()) {
		return
	}
	then := lst.ModTime().Add(-time.Millisecond)
	if err := os.Chtimes(index, then, then); err != nil {
		t.Fatal(err)
	}
}

// TestIndexFollowsHead: an index is taken as settled only when it holds
// HEAD's tree and HEAD's reflog was written after it; each way a git
// command can be half-way (index written, HEAD not moved yet) is not.
func TestIndexFollowsHead(t *testing.T) {
	cases := []struct {
		name string
		do   func(t *testing.T, dir string)
		want bool
	}{
		{"after git commit -a", func(t *testing.T, dir string) {
			write(t, dir, "a.txt", "user\n")
			git(t, dir, "commit", "-q", "-am", "user")
			olderThanReflog(t, dir)
		}, true},
		{"after git add and git commit", func(t *testing.T, dir string) {
			write(t, dir, "a.txt", "user\n")
			git(t, dir, "add", "a.txt")
			git(t, dir, "commit", "-q", "-m", "user")
			olderThanReflog(t, dir)
		}, true},
		{"after git checkout", func(t *testing.T, dir string) {
			git(t, dir, "checkout", "-q", "other")
			olderThanReflog(t, dir)
		}, true},
		{"checkout half-way: index written, HEAD not moved", func(t *testing.T, dir string) {
			git(t, dir, "checkout", "-q", "other")
			olderThanReflog(t, dir)
			// What git checkout leaves between releasing index.lock and
			// writing HEAD: the other branch's index under the old HEAD,
			// the reflog as the command before it left it.
			if err := os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("ref: refs/heads/main\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"index written after the reflog", func(t *testing.T, dir string) {
			now := time.Now().Add(time.Second)
			if err := os.Chtimes(filepath.Join(dir, ".git", "index"), now, now); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"same time as the reflog", func(t *testing.T, dir string) {
			lst, err := os.Stat(filepath.Join(dir, ".git", "logs", "HEAD"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(filepath.Join(dir, ".git", "index"), lst.ModTime(), lst.ModTime()); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"a staged change (no valid root in the cache tree)", func(t *testing.T, dir string) {
			write(t, dir, "a.txt", "staged\n")
			git(t, dir, "add", "a.txt")
			lst, _ := os.Stat(filepath.Join(dir, ".git", "logs", "HEAD"))
			later := lst.ModTime().Add(time.Second)
			_ = os.Chtimes(filepath.Join(dir, ".git", "logs", "HEAD"), later, later)
		}, false},
		{"no reflog", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, ".git", "logs", "HEAD")); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"index version 4", func(t *testing.T, dir string) {
			git(t, dir, "update-index", "--index-version", "4")
			git(t, dir, "commit", "-q", "--allow-empty", "-m", "user")
			olderThanReflog(t, dir)
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "d/b.txt": "b\n"})
			git(t, dir, "checkout", "-q", "-b", "other")
			write(t, dir, "o.txt", "other\n")
			commitAll(t, dir, "other")
			git(t, dir, "checkout", "-q", "main")
			tc.do(t, dir)
			co := checkout{root: dir, gitDir: filepath.Join(dir, ".git")}
			if got := r.indexFollowsHead(co, filepath.Join(dir, ".git", "index")); got != tc.want {
				t.Errorf("indexFollowsHead = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestIndexRootTree: the root of the cache tree is found past entries of
// every shape (long names, version 3's extended flags), and refused for
// what is not an index.
func TestIndexRootTree(t *testing.T) {
	dir, _ := newRepo(t, map[string]string{"a.txt": "a\n", "d/e/long-name-0123456789012345678901234567890123456789.txt": "x\n"})
	git(t, dir, "write-tree") // a complete cache tree
	tree := git(t, dir, "rev-parse", "HEAD^{tree}")
	data, err := os.ReadFile(filepath.Join(dir, ".git", "index"))
	if err != nil {
		t.Fatal(err)
	}
	if root, ok := indexRootTree(data); !ok || hex.EncodeToString(root[:]) != tree {
		t.Fatalf("root = %x, %v; want %s", root, ok, tree)
	}
	// A skip-worktree entry has extended flags (index version 3).
	git(t, dir, "update-index", "--skip-worktree", "a.txt")
	git(t, dir, "write-tree")
	data, err = os.ReadFile(filepath.Join(dir, ".git", "index"))
	if err != nil {
		t.Fatal(err)
	}
	if data[7] != 3 {
		t.Fatalf("index version %d, want 3", data[7])
	}
	if root, ok := indexRootTree(data); !ok || hex.EncodeToString(root[:]) != tree {
		t.Errorf("version 3: root = %x, %v; want %s", root, ok, tree)
	}
	// An intent-to-add entry leaves the root invalid.
	write(t, dir, "new.txt", "n\n")
	git(t, dir, "add", "-N", "new.txt")
	data, err = os.ReadFile(filepath.Join(dir, ".git", "index"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := indexRootTree(data); ok {
		t.Error("an index with an intent-to-add entry has a valid root")
	}
	for _, bad := range [][]byte{nil, []byte("DIRC"), append([]byte("DIRC\x00\x00\x00\x02\x00\x00\x00\x05"), make([]byte, 40)...)} {
		if _, ok := indexRootTree(bad); ok {
			t.Errorf("indexRootTree(%q) ok", bad)
		}
	}
}

// TestLandRightAfterAUserCommit: a landing that comes right after the
// user's git commit (a post-commit hook's) lands without waiting for the
// index to settle. (That an index written after HEAD's reflog is waited
// for is TestIndexFollowsHead's and TestStagedSwitchNeverWaitsHoldingTheLock's.)
func TestLandRightAfterAUserCommit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "u.txt": "u\n"})
	write(t, dir, "u.txt", "user change\n")
	git(t, dir, "commit", "-q", "-am", "user")
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	// The commit as it is just after git finished: the index written now,
	// HEAD's reflog after it.
	now := time.Now()
	later := now.Add(time.Millisecond)
	if err := os.Chtimes(filepath.Join(dir, ".git", "index"), now, now); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, ".git", "logs", "HEAD"), later, later); err != nil {
		t.Fatal(err)
	}
	waits := 0
	r.testHook = func(stage string) {
		if stage == "settle-wait" {
			waits++
		}
	}
	if _, err := r.Land(t.Context(), "main", base, c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
	if waits != 0 {
		t.Errorf("waited %d times for an index its git commit had finished with", waits)
	}
	if read(t, dir, "a.txt") != "step\n" || statusShort(t, dir) != "" {
		t.Errorf("not landed cleanly: %q", statusShort(t, dir))
	}
}
