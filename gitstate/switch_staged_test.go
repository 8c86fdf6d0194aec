package gitstate

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStagedSwitchShapes: every kind of change a step can make reaches the
// user's working tree and index exactly as git checkout would leave them.
func TestStagedSwitchShapes(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // the step's change; "\x00delete" deletes
		check func(t *testing.T, dir string)
	}{
		{"modified and added in a new directory", map[string]string{"a.txt": "step\n", "new/deep/n.txt": "n\n"}, func(t *testing.T, dir string) {
			if read(t, dir, "a.txt") != "step\n" || read(t, dir, "new/deep/n.txt") != "n\n" {
				t.Error("content wrong")
			}
		}},
		{"deleted, leaving its directory empty", map[string]string{"d/only.txt": "\x00delete"}, func(t *testing.T, dir string) {
			if exists(dir, "d") {
				t.Error("the emptied directory is still there")
			}
		}},
		{"file becomes directory", map[string]string{"f": "\x00delete", "f/inside.txt": "i\n"}, func(t *testing.T, dir string) {
			if read(t, dir, "f/inside.txt") != "i\n" {
				t.Error("content wrong")
			}
		}},
		{"directory becomes file", map[string]string{"d/only.txt": "\x00delete", "d": "now a file\n"}, func(t *testing.T, dir string) {
			if read(t, dir, "d") != "now a file\n" {
				t.Error("content wrong")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "d/only.txt": "o\n", "f": "file\n", "keep.txt": "k\n"})
			base := git(t, dir, "rev-parse", "HEAD")
			write(t, dir, "keep.txt", "the user's edit\n")
			write(t, dir, "untracked.txt", "u\n")
			c := stepCommit(t, r, base, tt.files, "step")
			if _, err := r.Land(t.Context(), "main", base, c, LandOptions{}); err != nil {
				t.Fatal(err)
			}
			tt.check(t, dir)
			if got := statusShort(t, dir); got != " M keep.txt\n?? untracked.txt" {
				t.Errorf("status after landing:\n%s", got)
			}
			if read(t, dir, "keep.txt") != "the user's edit\n" {
				t.Error("the user's edit is lost")
			}
			git(t, dir, "fsck", "--no-progress")
			if left, _ := filepath.Glob(filepath.Join(r.LocalDir(), "switch-*")); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// TestStagedSwitchLeavesTheIndexFree: while a landing is prepared the
// user's git commands run; a staged change of theirs made then is kept:
// under the lock the new index is made again from theirs, without
// preparing the switch again.
func TestStagedSwitchLeavesTheIndexFree(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "u.txt": "u\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	write(t, dir, "u.txt", "user change\n")
	stages := 0
	r.testHook = func(stage string) {
		if stage == "before-lock" {
			stages++
			if stages == 1 {
				git(t, dir, "add", "u.txt") // succeeds: the lock is not held
			}
		}
	}
	if _, err := r.Land(t.Context(), "main", base, c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
	if stages != 1 {
		t.Errorf("took the lock %d times, want 1 (the index made again from the user's under it)", stages)
	}
	if got := statusShort(t, dir); got != "M  u.txt" {
		t.Errorf("status: %q, want the user's staged change alone", got)
	}
	if read(t, dir, "a.txt") != "step\n" {
		t.Error("not landed")
	}
}

// TestStagedSwitchFileEditedMeanwhile: a file the landing changes, edited
// by the user after the check and before the lock, is never overwritten:
// the landing is decided again, and keeps the step on a conflict branch.
func TestStagedSwitchFileEditedMeanwhile(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	r.testHook = func(stage string) {
		if stage == "before-lock" {
			write(t, dir, "a.txt", "the user's edit, same size?\n")
		}
	}
	_, err := r.Land(t.Context(), "main", base, c, LandOptions{})
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Land: %v, want a conflict", err)
	}
	if read(t, dir, "a.txt") != "the user's edit, same size?\n" {
		t.Error("the user's edit was overwritten")
	}
	if git(t, dir, "rev-parse", "main") != base {
		t.Error("the branch moved")
	}
}

// TestStagedSwitchFileEditedDuringTheMove: a write of the user's that
// reaches a file the landing replaces after the check under the lock (it
// opened the file before the file was moved aside, or wrote it just before
// the move) is never lost with the replaced file: the files are put back
// and the landing is decided again, and keeps the step on a conflict
// branch, as for an edit made before the lock.
func TestStagedSwitchFileEditedDuringTheMove(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "b.txt": "b\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n", "b.txt": "step\n"}, "step")
	edited := false
	r.testHook = func(stage string) {
		if stage != "before-ref-update" || edited {
			return
		}
		// The inode that was a.txt is aside now: the user's write lands
		// there.
		_ = filepath.WalkDir(r.LocalDir(), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Name() == "a-p-a.txt" {
				f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = f.WriteString("the user's line\n")
				_ = f.Close()
				edited = true
			}
			return nil
		})
	}
	_, err := r.Land(t.Context(), "main", base, c, LandOptions{})
	if !edited {
		t.Fatal("the landing moved no file aside")
	}
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Land: %v, want a conflict", err)
	}
	if got := read(t, dir, "a.txt"); got != "a\nthe user's line\n" {
		t.Errorf("a.txt is %q: the user's line is lost", got)
	}
	if read(t, dir, "b.txt") != "b\n" {
		t.Error("b.txt was not put back")
	}
	if git(t, dir, "rev-parse", "main") != base {
		t.Error("the branch moved")
	}
	if exists(dir, ".git/index.lock") {
		t.Error("index.lock is left")
	}
}

// TestStagedSwitchRefMovedPutsFilesBack: when the compare-and-swap fails
// after the files were moved, they are put back, inode and all.
func TestStagedSwitchRefMovedPutsFilesBack(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "gone.txt": "g\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n", "gone.txt": "\x00delete", "n/new.txt": "n\n"}, "step")
	other := stepCommit(t, r, base, map[string]string{"x.txt": "x\n"}, "elsewhere")
	co := checkout{root: dir, gitDir: filepath.Join(dir, ".git")}
	r.testHook = func(stage string) {
		if stage == "before-ref-update" {
			// Moved behind the landing's back (a ref update that does not
			// take the index lock).
			if err := os.WriteFile(filepath.Join(dir, ".git", "refs", "heads", "main"), []byte(other+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	err := r.switchStaged(t.Context(), co, newRefUpdate("refs/heads/main", c, base, "test"))
	if err == nil || !strings.Contains(err.Error(), "moved") {
		t.Fatalf("err = %v, want the ref moved", err)
	}
	if read(t, dir, "a.txt") != "a\n" || read(t, dir, "gone.txt") != "g\n" || exists(dir, "n") {
		t.Error("the working tree was not put back")
	}
	if exists(dir, ".git/index.lock") || exists(dir, ".git/refs/heads/main.lock") {
		t.Error("a lock was left")
	}
}

// TestStagedSwitchWindow: the user's index lock is held only for the
// moves and the ref swap, never for a git process.
func TestStagedSwitchWindow(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	var during int64
	r.testHook = func(stage string) {
		switch stage {
		case "before-lock":
			during = r.ncmd.Load()
		case "before-ref-update":
			if !exists(dir, ".git/index.lock") {
				t.Error("the index is not locked while the ref is swapped")
			}
		}
	}
	if _, err := r.Land(t.Context(), "main", base, c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := r.ncmd.Load() - during; n != 0 {
		t.Errorf("%d git processes ran while the user's index was locked", n)
	}
}

// TestStagedSwitchNeverWaitsHoldingTheLock: an index the user wrote just
// before the landing takes the lock makes it prepare again (waiting for
// the index to settle before the lock), instead of holding the lock while
// it waits: a git commit right after the user's add would fail on it.
func TestStagedSwitchNeverWaitsHoldingTheLock(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "u.txt": "u\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	index := filepath.Join(dir, ".git", "index")
	stages := 0
	r.testHook = func(stage string) {
		if stage != "before-lock" {
			return
		}
		stages++
		if stages == 1 {
			// The user's git rewrote the index (same entries): fresh.
			now := time.Now()
			if err := os.Chtimes(index, now, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := r.Land(t.Context(), "main", base, c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
	if stages != 2 {
		t.Errorf("took the lock %d times, want 2 (again after waiting for the fresh index without the lock)", stages)
	}
	if read(t, dir, "a.txt") != "step\n" || statusShort(t, dir) != "" {
		t.Errorf("not landed cleanly: %q", statusShort(t, dir))
	}
}

// TestStagedSwitchUserStagesAChangedPath: a path the landing changes,
// staged by the user while the switch was prepared, is never overwritten
// by the index made again under the lock: git decides, and the step is
// kept on a conflict branch with the user's staged entry untouched.
func TestStagedSwitchUserStagesAChangedPath(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	emptyBlob := git(t, dir, "hash-object", "-w", "--stdin") // no input: the empty blob
	staged := false
	r.testHook = func(stage string) {
		if stage == "before-lock" && !staged {
			git(t, dir, "update-index", "--cacheinfo", "100644,"+emptyBlob+",a.txt")
			staged = true
		}
	}
	_, err := r.Land(t.Context(), "main", base, c, LandOptions{})
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Land: %v, want a conflict", err)
	}
	if got := git(t, dir, "ls-files", "-s", "a.txt"); !strings.Contains(got, emptyBlob) {
		t.Errorf("the user's staged entry is gone: %s", got)
	}
	if git(t, dir, "rev-parse", "main") != base || read(t, dir, "a.txt") != "a\n" {
		t.Error("the landing went ahead")
	}
}

// TestFlatNameIsOneToOne: paths that look alike get different flat names,
// and every name is a single, short enough file name.
func TestFlatNameIsOneToOne(t *testing.T) {
	long := strings.Repeat("d/", 120) + "f"
	paths := []string{"a/b", "a%2Fb", "a%b", "a%25b", "p-a", "h-" + strings.Repeat("0", 64), long, long + "g", strings.Repeat("%", 100)}
	seen := map[string]string{}
	for _, p := range paths {
		n := flatName(p)
		if strings.Contains(n, "/") || len(n) > 255 || n == "" {
			t.Errorf("flatName(%q) = %q: not a file name", p, n)
		}
		if q, ok := seen[n]; ok {
			t.Errorf("flatName(%q) = flatName(%q) = %q", p, q, n)
		}
		seen[n] = p
	}
}

// TestIndexDigest: an index's digest is that of its content whether read
// whole or by its trailer, and tells a changed index from the one before,
// also where git wrote no checksum (index.skipHash).
func TestIndexDigest(t *testing.T) {
	for _, skipHash := range []string{"false", "true"} {
		t.Run("skipHash="+skipHash, func(t *testing.T) {
			dir, _ := newRepo(t, map[string]string{"a.txt": "a\n"})
			git(t, dir, "config", "index.skipHash", skipHash)
			index := filepath.Join(dir, ".git", "index")
			git(t, dir, "update-index", "--force-write-index", "--refresh")
			digest := func() [32]byte {
				t.Helper()
				data, err := os.ReadFile(index)
				if err != nil {
					t.Fatal(err)
				}
				d, err := indexFileDigest(index)
				if err != nil {
					t.Fatal(err)
				}
				if d != indexDigest(data) {
					t.Fatal("the file's digest is not its content's")
				}
				return d
			}
			before := digest()
			write(t, dir, "b.txt", "b\n")
			git(t, dir, "add", "b.txt")
			if digest() == before {
				t.Error("an added entry kept the digest")
			}
		})
	}
}
