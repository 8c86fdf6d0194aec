package gitstate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLandFastPath(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "old.txt": "o\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n", "new/n.txt": "n\n", "old.txt": "\x00delete"}, "codemachine(x): fast")
	res, err := r.Land(t.Context(), "main", base, c, LandOptions{ConflictBranch: "codemachine/conflict/x"})
	if err != nil || res != (LandResult{Commit: c}) {
		t.Fatalf("Land = %+v, %v", res, err)
	}
	if git(t, dir, "rev-parse", "main") != c {
		t.Error("main did not move")
	}
	if read(t, dir, "a.txt") != "step\n" || read(t, dir, "new/n.txt") != "n\n" || exists(dir, "old.txt") {
		t.Error("the working tree was not brought forward")
	}
	if s := statusShort(t, dir); s != "" {
		t.Errorf("status after landing: %q", s)
	}
	if got := git(t, dir, "reflog", "-1", "--format=%gs", "main"); got != "codemachine: codemachine(x): fast" {
		t.Errorf("reflog message %q", got)
	}
	if exists(dir, ".git/index.lock") {
		t.Error("index.lock left behind")
	}
	// Landing the same commit again is a no-op.
	if res, err := r.Land(t.Context(), "main", base, c, LandOptions{}); err != nil || res.Commit != c {
		t.Errorf("second Land = %+v, %v", res, err)
	}
}

func TestLandKeepsUncommittedChanges(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "staged.txt": "s\n", "unstaged.txt": "u\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "staged.txt", "staged edit\n")
	git(t, dir, "add", "staged.txt")
	write(t, dir, "staged.txt", "staged edit\nand more unstaged\n")
	write(t, dir, "unstaged.txt", "unstaged edit\n")
	write(t, dir, "untracked.txt", "mine\n")
	before := statusShort(t, dir)
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	if _, err := r.Land(t.Context(), "main", base, c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
	if after := statusShort(t, dir); after != before {
		t.Errorf("status changed:\n%s\nwas\n%s", after, before)
	}
	if read(t, dir, "staged.txt") != "staged edit\nand more unstaged\n" || read(t, dir, "unstaged.txt") != "unstaged edit\n" || read(t, dir, "untracked.txt") != "mine\n" {
		t.Error("uncommitted changes were lost")
	}
	if git(t, dir, "show", ":staged.txt") != "staged edit" {
		t.Error("the staged version was lost")
	}
	if read(t, dir, "a.txt") != "step\n" {
		t.Error("the step's change is not in the working tree")
	}
}

func TestLandRefusesToOverwriteLocalChanges(t *testing.T) {
	tests := []struct {
		name  string
		dirty func(t *testing.T, dir string)
		paths []string
	}{
		{"unstaged edit", func(t *testing.T, dir string) { write(t, dir, "a.txt", "mine\n") }, []string{"a.txt"}},
		{"staged edit", func(t *testing.T, dir string) { write(t, dir, "a.txt", "mine\n"); git(t, dir, "add", "a.txt") }, []string{"a.txt"}},
		{"untracked file in the way", func(t *testing.T, dir string) { write(t, dir, "new.txt", "mine\n") }, []string{"new.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
			base := git(t, dir, "rev-parse", "HEAD")
			c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n", "new.txt": "step\n"}, "step")
			tt.dirty(t, dir)
			before := statusShort(t, dir)
			_, err := r.Land(t.Context(), "main", base, c, LandOptions{ConflictBranch: "codemachine/conflict/implement/T3"})
			var ce *ConflictError
			if !errors.As(err, &ce) || ce.Reason != "uncommitted changes" || ce.Branch != "codemachine/conflict/implement/T3" || !slices.Equal(ce.Paths, tt.paths) {
				t.Fatalf("err = %v, want a ConflictError about %v", err, tt.paths)
			}
			if git(t, dir, "rev-parse", "main") != base {
				t.Error("main moved")
			}
			if git(t, dir, "rev-parse", "codemachine/conflict/implement/T3") != c {
				t.Error("the commit is not kept on the conflict branch")
			}
			if statusShort(t, dir) != before || read(t, dir, strings.Fields(before)[1]) != "mine\n" {
				t.Error("the user's change was touched")
			}
			if exists(dir, ".git/index.lock") {
				t.Error("index.lock left behind")
			}
		})
	}
}

// TestLandKeepsIgnoredFilesInTheWay: read-tree -m -u writes over an
// ignored file and removes an ignored directory where the new commit puts a
// file; a step that unignores such a path in its .gitignore would destroy
// the user's local file (a config, a database) with its landing. It is a
// conflict like an untracked file in the way, and the user's files stay.
func TestLandKeepsIgnoredFilesInTheWay(t *testing.T) {
	tests := []struct {
		name  string
		step  map[string]string
		mine  map[string]string
		paths []string
	}{
		{"ignored file", map[string]string{"local.yaml": "step\n"}, map[string]string{"local.yaml": "mine\n"}, []string{"local.yaml"}},
		{"ignored directory", map[string]string{"cache": "step\n"}, map[string]string{"cache/sub/data": "mine\n"}, []string{"cache/sub/data"}},
		{"ignored file where a directory goes", map[string]string{"db/x": "step\n"}, map[string]string{"db": "mine\n"}, []string{"db"}},
		{"empty directory", map[string]string{"out": "step\n"}, map[string]string{"out/empty/": ""}, []string{"out"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{"a.txt": "a\n", ".gitignore": "local.yaml\ncache/\ndb\n"})
			base := git(t, dir, "rev-parse", "HEAD")
			files := map[string]string{".gitignore": "\x00delete"}
			for p, c := range tt.step {
				files[p] = c
			}
			c := stepCommit(t, r, base, files, "step")
			for p, c := range tt.mine {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if strings.HasSuffix(p, "/") {
					if err := os.Mkdir(filepath.Join(dir, p), 0o755); err != nil {
						t.Fatal(err)
					}
					continue
				}
				write(t, dir, p, c)
			}
			_, err := r.Land(t.Context(), "main", base, c, LandOptions{ConflictBranch: "codemachine/conflict/x"})
			var ce *ConflictError
			if !errors.As(err, &ce) || ce.Reason != "uncommitted changes" || !slices.Equal(ce.Paths, tt.paths) {
				t.Fatalf("err = %v, want a ConflictError about %v", err, tt.paths)
			}
			if git(t, dir, "rev-parse", "main") != base {
				t.Error("main moved")
			}
			for p, c := range tt.mine {
				if strings.HasSuffix(p, "/") {
					if st, err := os.Stat(filepath.Join(dir, p)); err != nil || !st.IsDir() {
						t.Errorf("the user's directory %s: %v", p, err)
					}
					continue
				}
				if got, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(got) != c {
					t.Errorf("the user's ignored %s: %q, %v", p, got, err)
				}
			}
			if exists(dir, ".git/index.lock") {
				t.Error("index.lock left behind")
			}
		})
	}
}

func TestLandBranchNotCheckedOut(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "switch", "-q", "-c", "feature")
	write(t, dir, "a.txt", "feature work\n")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	if _, err := r.Land(t.Context(), "main", base, c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
	if git(t, dir, "rev-parse", "main") != c || read(t, dir, "a.txt") != "feature work\n" {
		t.Error("wrong branch or working tree touched")
	}
}

func TestLandRebasesOntoAMovedBranch(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "1\n2\n3\n", "b.txt": "b\n", "state.yaml": "seq: 1\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "1\n2\nstep\n", "state.yaml": "seq: 2\n"}, "codemachine(s): step\n\nBody.\n\nCodemachine-Step: s\n")
	write(t, dir, "a.txt", "user\n2\n3\n")
	write(t, dir, "b.txt", "user b\n")
	tip := commitAll(t, dir, "user moved on")
	write(t, dir, "wip.txt", "uncommitted\n")
	write(t, dir, "staged.txt", "staged\n")
	git(t, dir, "add", "staged.txt")
	write(t, dir, "b.txt", "user b\nunstaged\n")

	var overlayTip string
	overlay := func(tip, tree string) (string, error) {
		overlayTip = tip
		h, err := r.HashObject(t.Context(), []byte("seq: 3 (on "+tip[:7]+")\n"))
		if err != nil {
			return "", err
		}
		return r.OverlayTree(t.Context(), tree, map[string]Blob{"state.yaml": {Hash: h}})
	}
	res, err := r.Land(t.Context(), "main", base, c, LandOptions{Overlay: overlay})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Rebased || res.Commit == c || overlayTip != tip {
		t.Fatalf("Land = %+v (overlay saw %s)", res, overlayTip)
	}
	if git(t, dir, "rev-parse", "main") != res.Commit || git(t, dir, "rev-parse", "main^") != tip {
		t.Error("the rebased commit is not on top of the user's")
	}
	if read(t, dir, "a.txt") != "user\n2\nstep\n" || read(t, dir, "b.txt") != "user b\nunstaged\n" || read(t, dir, "state.yaml") != "seq: 3 (on "+tip[:7]+")\n" {
		t.Error("working tree does not hold the merged result")
	}
	orig, _ := r.CommitInfo(c)
	got, _ := r.CommitInfo(res.Commit)
	if got.Message != orig.Message || got.Author != orig.Author {
		t.Errorf("rebased commit lost message or author: %+v", got)
	}
	if s := statusShort(t, dir); s != " M b.txt\nA  staged.txt\n?? wip.txt" {
		t.Errorf("status = %q", s)
	}
}

func TestLandRebaseConflict(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "1\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "codemachine(impl/T2): t\n\nCodemachine-Step: impl\nCodemachine-Task: T2\n")
	write(t, dir, "a.txt", "user\n")
	tip := commitAll(t, dir, "user")
	_, err := r.Land(t.Context(), "main", base, c, LandOptions{})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Reason != "the branch moved" || !slices.Equal(ce.Paths, []string{"a.txt"}) {
		t.Fatalf("err = %v", err)
	}
	if ce.Branch != "codemachine/conflict/impl/T2" || git(t, dir, "rev-parse", ce.Branch) != c {
		t.Errorf("conflict branch %s does not hold the original commit", ce.Branch)
	}
	if git(t, dir, "rev-parse", "main") != tip || read(t, dir, "a.txt") != "user\n" || statusShort(t, dir) != "" {
		t.Error("the user's branch or tree was touched")
	}
	if !strings.Contains(err.Error(), "codemachine/conflict/impl/T2") {
		t.Errorf("error does not name the branch: %v", err)
	}
}

func TestLandOnABranchThatWasReset(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "1\n"})
	first := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "a.txt", "2\n")
	base := commitAll(t, dir, "second")
	c := stepCommit(t, r, base, map[string]string{"b.txt": "b\n"}, "step")
	git(t, dir, "reset", "-q", "--hard", first)
	_, err := r.Land(t.Context(), "main", base, c, LandOptions{ConflictBranch: "codemachine/conflict/s"})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Reason != "the branch moved" || git(t, dir, "rev-parse", "main") != first {
		t.Fatalf("err = %v", err)
	}
}

func TestLandChecksTheParent(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "1\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "2\n"}, "one")
	c2 := stepCommit(t, r, c, map[string]string{"a.txt": "3\n"}, "two")
	if _, err := r.Land(t.Context(), "main", base, c2, LandOptions{}); err == nil || !strings.Contains(err.Error(), "parent is not the base") {
		t.Errorf("err = %v", err)
	}
}

// TestLandHoldsTheIndexLock: a git commit of the user's cannot slip in
// between the working-tree update and the ref update.
func TestLandHoldsTheIndexLock(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "u.txt": "u\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	write(t, dir, "u.txt", "user change\n")
	git(t, dir, "add", "u.txt")
	var commitErr string
	r.testHook = func(stage string) {
		if stage == "before-ref-update" {
			commitErr = gitFails(t, dir, "commit", "-q", "-m", "user commit")
		}
	}
	if _, err := r.Land(t.Context(), "main", base, c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(commitErr, "index.lock") {
		t.Errorf("the user's commit during landing failed for another reason: %s", commitErr)
	}
	r.testHook = nil
	user := commitAll(t, dir, "user commit")
	if git(t, dir, "rev-parse", user+"^") != c {
		t.Error("the user's commit is not on top of the step")
	}
	if git(t, dir, "show", user+":a.txt") != "step" || git(t, dir, "show", user+":u.txt") != "user change" {
		t.Error("a change was lost")
	}
}

// TestLandAfterAConcurrentUserCommit: the user commits after Land read the
// tip but before it locked the index. The compare-and-swap fails, the
// working tree is put back, and the step is rebased onto the user's commit.
func TestLandAfterAConcurrentUserCommit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "u.txt": "u\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	write(t, dir, "u.txt", "user change\n")
	var user string
	r.testHook = func(stage string) {
		if stage == "before-lock" && user == "" {
			user = commitAll(t, dir, "user commit")
		}
	}
	res, err := r.Land(t.Context(), "main", base, c, LandOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Rebased || git(t, dir, "rev-parse", "main^") != user {
		t.Fatalf("Land = %+v; main^ = %s, want the user's commit %s", res, git(t, dir, "rev-parse", "main^"), user)
	}
	if read(t, dir, "a.txt") != "step\n" || read(t, dir, "u.txt") != "user change\n" || statusShort(t, dir) != "" {
		t.Errorf("working tree wrong: %q", statusShort(t, dir))
	}
}

func TestLandWaitsForTheUsersIndexLock(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	lock := filepath.Join(dir, ".git", "index.lock")
	os.WriteFile(lock, nil, 0o644)
	go func() {
		time.Sleep(150 * time.Millisecond)
		os.Remove(lock)
	}()
	if _, err := r.Land(t.Context(), "main", base, c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
	if read(t, dir, "a.txt") != "step\n" {
		t.Error("not landed")
	}
	// Held for good: a clear error, the lock left alone, nothing moved.
	c2 := stepCommit(t, r, c, map[string]string{"a.txt": "again\n"}, "again")
	os.WriteFile(lock, nil, 0o644)
	r.LockWait = 100 * time.Millisecond
	_, err := r.Land(t.Context(), "main", c, c2, LandOptions{})
	var le *LockHeldError
	if !errors.As(err, &le) || !exists(dir, ".git/index.lock") || git(t, dir, "rev-parse", "main") != c {
		t.Errorf("err = %v", err)
	}
}

func TestResetBranch(t *testing.T) {
	setup := func(t *testing.T) (string, *Repo, []string) {
		dir, r := newRepo(t, map[string]string{"a.txt": "0\n", "b.txt": "b\n"})
		c := []string{git(t, dir, "rev-parse", "HEAD")}
		write(t, dir, "a.txt", "1\n")
		write(t, dir, "added.txt", "added\n")
		c = append(c, commitAll(t, dir, "one"))
		write(t, dir, "a.txt", "2\n")
		c = append(c, commitAll(t, dir, "two"))
		write(t, dir, "untracked.txt", "keep me\n")
		return dir, r, c
	}
	t.Run("clean", func(t *testing.T) {
		dir, r, c := setup(t)
		backup, saved, err := r.ResetBranch(t.Context(), "main", c[0], c[2], false)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(backup, "refs/codemachine/backup/") || saved != "" || git(t, dir, "rev-parse", backup) != c[2] {
			t.Errorf("backup %q saved %q", backup, saved)
		}
		if git(t, dir, "rev-parse", "main") != c[0] || read(t, dir, "a.txt") != "0\n" || exists(dir, "added.txt") {
			t.Error("not reset")
		}
		if s := statusShort(t, dir); s != "?? untracked.txt" {
			t.Errorf("status = %q", s)
		}
		// A second rollback in the same second gets its own backup.
		b2, _, err := r.ResetBranch(t.Context(), "main", c[0], "", false)
		if err != nil || b2 == backup {
			t.Errorf("second backup %q (first %q): %v", b2, backup, err)
		}
	})
	t.Run("dirty", func(t *testing.T) {
		dir, r, c := setup(t)
		write(t, dir, "b.txt", "edited\n")
		_, _, err := r.ResetBranch(t.Context(), "main", c[0], c[2], false)
		var de *DirtyError
		if !errors.As(err, &de) || !slices.Equal(de.Paths, []string{"b.txt"}) || de.Untracked {
			t.Fatalf("err = %v", err)
		}
		if git(t, dir, "rev-parse", "main") != c[2] || read(t, dir, "b.txt") != "edited\n" {
			t.Error("something changed")
		}
		if refs, _ := r.RefsWithPrefix("refs/codemachine/backup/"); len(refs) != 0 {
			t.Errorf("backup refs written for a refused reset: %v", refs)
		}
	})
	t.Run("force saves the changes", func(t *testing.T) {
		dir, r, c := setup(t)
		write(t, dir, "b.txt", "edited\n")
		write(t, dir, "a.txt", "staged\n")
		git(t, dir, "add", "a.txt")
		backup, saved, err := r.ResetBranch(t.Context(), "main", c[0], c[2], true)
		if err != nil {
			t.Fatal(err)
		}
		if saved != backup+"-worktree" {
			t.Errorf("saved = %q", saved)
		}
		if git(t, dir, "show", saved+":b.txt") != "edited" || git(t, dir, "show", saved+"^2:a.txt") != "staged" {
			t.Error("the saved state lacks the uncommitted changes")
		}
		if git(t, dir, "rev-parse", "main") != c[0] || read(t, dir, "b.txt") != "b\n" || read(t, dir, "a.txt") != "0\n" {
			t.Error("not reset")
		}
		if s := statusShort(t, dir); s != "?? untracked.txt" {
			t.Errorf("status = %q", s)
		}
	})
	t.Run("untracked file in the way", func(t *testing.T) {
		dir, r, c := setup(t)
		git(t, dir, "rm", "-q", "b.txt")
		git(t, dir, "commit", "-q", "-m", "drop b")
		tip := git(t, dir, "rev-parse", "HEAD")
		write(t, dir, "b.txt", "new untracked b\n")
		for _, force := range []bool{false, true} {
			_, _, err := r.ResetBranch(t.Context(), "main", c[0], tip, force)
			var de *DirtyError
			if !errors.As(err, &de) || !de.Untracked || !slices.Equal(de.Paths, []string{"b.txt"}) {
				t.Fatalf("force=%v: err = %v", force, err)
			}
		}
		if read(t, dir, "b.txt") != "new untracked b\n" {
			t.Error("the untracked file was overwritten")
		}
	})
	t.Run("not checked out", func(t *testing.T) {
		dir, r, c := setup(t)
		git(t, dir, "switch", "-q", "-c", "other")
		write(t, dir, "b.txt", "dirty on another branch\n")
		if _, _, err := r.ResetBranch(t.Context(), "main", c[1], c[2], false); err != nil {
			t.Fatal(err)
		}
		if git(t, dir, "rev-parse", "main") != c[1] || read(t, dir, "a.txt") != "2\n" {
			t.Error("wrong reset")
		}
	})
	t.Run("branch moved", func(t *testing.T) {
		_, r, c := setup(t)
		if _, _, err := r.ResetBranch(t.Context(), "main", c[0], c[1], false); !errors.Is(err, ErrRefMoved) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestLandOnAnUnbornBranch(t *testing.T) {
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "mine.txt", "untracked\n")
	blob, _ := r.HashObject(t.Context(), []byte("first\n"))
	empty, _ := r.emptyTree(t.Context())
	tree, err := r.OverlayTree(t.Context(), empty, map[string]Blob{"first.txt": {Hash: blob}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.CommitTree(t.Context(), CommitSpec{Tree: tree, Message: "root step"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Land(t.Context(), "main", "", c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
	if h, _ := r.Head(); h.Commit != c || read(t, dir, "first.txt") != "first\n" || statusShort(t, dir) != "?? mine.txt" {
		t.Errorf("head %+v, status %q", h, statusShort(t, dir))
	}
}

// TestParallelLandings lands steps of parallel slots at once: each either
// lands directly or is rebased, and none is lost.
func TestParallelLandings(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"seed.txt": "s\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	const n = 4
	commits := make([]string, n)
	for i := range n {
		commits[i] = stepCommit(t, r, base, map[string]string{fmt.Sprintf("task%d.txt", i): "done\n"}, fmt.Sprintf("task %d", i))
	}
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := r.Land(t.Context(), "main", base, commits[i], LandOptions{Attempts: n + 1})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := git(t, dir, "rev-list", "--count", "HEAD"); got != fmt.Sprint(n+1) {
		t.Errorf("%s commits, want %d", got, n+1)
	}
	for i := range n {
		if read(t, dir, fmt.Sprintf("task%d.txt", i)) != "done\n" {
			t.Errorf("task %d lost", i)
		}
	}
	if s := statusShort(t, dir); s != "" {
		t.Errorf("status = %q", s)
	}
}

func TestConflictBranchCheckedOutIsNotMoved(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "1\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c1 := stepCommit(t, r, base, map[string]string{"a.txt": "first try\n"}, "try 1")
	c2 := stepCommit(t, r, base, map[string]string{"a.txt": "second try\n"}, "try 2")
	write(t, dir, "a.txt", "user\n")
	commitAll(t, dir, "user")
	opts := LandOptions{ConflictBranch: "codemachine/conflict/s"}
	if _, err := r.Land(t.Context(), "main", base, c1, opts); err == nil {
		t.Fatal("no conflict")
	}
	git(t, dir, "switch", "-q", "codemachine/conflict/s")
	_, err := r.Land(t.Context(), "main", base, c2, opts)
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Branch != "codemachine/conflict/s-2" {
		t.Fatalf("err = %v", err)
	}
	if git(t, dir, "rev-parse", "codemachine/conflict/s") != c1 || git(t, dir, "rev-parse", "codemachine/conflict/s-2") != c2 {
		t.Error("conflict branches wrong")
	}
}

func TestLandBringsALinkedWorktreeForward(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	linked := filepath.Join(t.TempDir(), "feature")
	git(t, dir, "worktree", "add", "-q", "-b", "feature", linked)
	write(t, linked, "wip.txt", "untracked in the linked worktree\n")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step on feature")
	if _, err := r.Land(t.Context(), "feature", base, c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
	if read(t, linked, "a.txt") != "step\n" || statusShort(t, linked) != "?? wip.txt" {
		t.Errorf("linked worktree not brought forward: %q", statusShort(t, linked))
	}
	if read(t, dir, "a.txt") != "a\n" || statusShort(t, dir) != "" {
		t.Error("the main worktree (on main) was touched")
	}
}

// TestLandIgnoresStatOnlyChanges: a file rewritten with the same content
// (an editor's save, a touch) is not a local change.
func TestLandIgnoresStatOnlyChanges(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "b.txt": "b\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	p := filepath.Join(dir, "a.txt")
	os.Remove(p)
	write(t, dir, "a.txt", "a\n")
	later := time.Now().Add(time.Hour)
	os.Chtimes(p, later, later)
	if _, err := r.Land(t.Context(), "main", base, c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
	if read(t, dir, "a.txt") != "step\n" || statusShort(t, dir) != "" {
		t.Errorf("status %q", statusShort(t, dir))
	}
}

func TestLandOverAStagedDeletion(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "b.txt": "b\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	git(t, dir, "rm", "-q", "--cached", "a.txt")
	_, err := r.Land(t.Context(), "main", base, c, LandOptions{ConflictBranch: "codemachine/conflict/x"})
	var ce *ConflictError
	if !errors.As(err, &ce) || !slices.Equal(ce.Paths, []string{"a.txt"}) || ce.Reason != "uncommitted changes" {
		t.Fatalf("err = %v", err)
	}
	if statusShort(t, dir) != "D  a.txt\n?? a.txt" || git(t, dir, "rev-parse", "main") != base {
		t.Errorf("the user's state changed: %q", statusShort(t, dir))
	}
}

// TestLandOvertakenTakesTheLockFirst: a person committing again and again
// (here: before every attempt takes the lock) overtakes the staged
// attempts, which prepare without the lock; the next attempt takes the
// index lock before it reads the tip, so git commit cannot move the branch
// under it any more, and the step lands on top of every user commit.
func TestLandOvertakenTakesTheLockFirst(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "u.txt": "0\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	var users []string
	var lockedErr string
	r.testHook = func(stage string) {
		switch stage {
		case "before-lock":
			write(t, dir, "u.txt", fmt.Sprintf("%d\n", len(users)+1))
			users = append(users, commitAll(t, dir, fmt.Sprintf("user commit %d", len(users)+1)))
		case "locked":
			lockedErr = gitFails(t, dir, "commit", "-q", "--allow-empty", "-m", "while locked")
		}
	}
	res, err := r.Land(t.Context(), "main", base, c, LandOptions{})
	r.testHook = nil
	if err != nil {
		t.Fatalf("Land: %v (after %d user commits)", err, len(users))
	}
	if len(users) < stagedLandings+1 {
		t.Errorf("%d user commits, want at least one per attempt (%d)", len(users), stagedLandings+1)
	}
	if !strings.Contains(lockedErr, "index.lock") {
		t.Errorf("a commit while the landing held the lock: %q, want refused for index.lock", lockedErr)
	}
	if !res.Rebased || git(t, dir, "rev-parse", "main^") != users[len(users)-1] {
		t.Errorf("Land = %+v, main^ = %s; want the step on the last user commit", res, git(t, dir, "rev-parse", "main^"))
	}
	if read(t, dir, "a.txt") != "step\n" || statusShort(t, dir) != "" {
		t.Errorf("working tree: a.txt %q, status %q", read(t, dir, "a.txt"), statusShort(t, dir))
	}
}

// TestRepairAfterUnchecked: a checkout that reached a branch just moved
// with the old commit's files (git's race: git checkout reads the branch,
// then the landing moves it, then git switches) is brought forward, its
// untracked and unrelated files kept; a checkout whose files the user
// changed since is left alone (issue 10, D7).
func TestRepairAfterUnchecked(t *testing.T) {
	for _, edited := range []bool{false, true} {
		t.Run(fmt.Sprintf("edited=%v", edited), func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "keep.txt": "k\n"})
			ctx := t.Context()
			old := git(t, dir, "rev-parse", "HEAD")
			landed := stepCommit(t, r, old, map[string]string{"a.txt": "landed\n", "new.txt": "new\n"}, "step")
			// The stale end state: HEAD on main at the landed commit,
			// index and files the old commit's.
			git(t, dir, "update-ref", "refs/heads/main", landed, old)
			write(t, dir, "untracked.txt", "mine\n")
			if edited {
				git(t, dir, "rm", "-q", "--cached", "a.txt")
			}
			co, ok := r.mainCheckout()
			if !ok {
				t.Fatal("no main checkout")
			}
			r.repairAfterUnchecked(ctx, co, "refs/heads/main", old, landed)
			if edited {
				if read(t, dir, "a.txt") != "a\n" || exists(dir, "new.txt") {
					t.Fatal("a checkout with the user's own change was rewritten")
				}
				return
			}
			if got := statusShort(t, dir); got != "?? untracked.txt" {
				t.Fatalf("git status after the repair:\n%s", got)
			}
			if read(t, dir, "a.txt") != "landed\n" || read(t, dir, "new.txt") != "new\n" || read(t, dir, "keep.txt") != "k\n" {
				t.Fatal("the files are not the landed commit's")
			}
			if exists(dir, ".git/index.lock") || exists(dir, ".git/codemachine/switch.yaml") {
				t.Fatal("lock or journal left")
			}
		})
	}
}

// TestLandWhileCheckedOutElsewhere: a landing on a branch no checkout is
// on moves the ref without touching the user's checkout of another branch
// and leaves no lock behind.
func TestLandWhileCheckedOutElsewhere(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "checkout", "-q", "-b", "other")
	write(t, dir, "a.txt", "user edit on other\n")
	c := stepCommit(t, r, base, map[string]string{"b.txt": "b\n"}, "step")
	res, err := r.Land(ctx, "main", base, c, LandOptions{})
	if err != nil || res.Commit != c {
		t.Fatalf("Land = %+v, %v", res, err)
	}
	if got := git(t, dir, "rev-parse", "main"); got != c {
		t.Fatalf("main at %s, want %s", got, c)
	}
	if exists(dir, "b.txt") || read(t, dir, "a.txt") != "user edit on other\n" {
		t.Fatal("the checkout of other was touched")
	}
	if exists(dir, ".git/index.lock") || exists(dir, ".git/codemachine/switch.yaml") {
		t.Fatal("lock or journal left")
	}
}
