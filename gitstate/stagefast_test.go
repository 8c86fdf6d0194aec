package gitstate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// stageBase is the commit every staging case starts from.
var stageBase = map[string]string{
	"a.txt": "a\n", "b/c.txt": "c\n", "b/d/e.txt": "e\n", "only/one.txt": "1\n", "x-y": "x-y\n", "x/z": "z\n",
	"run.sh": "#!/bin/sh\n", "logs/kept.log": "tracked though ignored\n",
	".gitignore":     "*.log\n!keep.log\nbuild/\n/top.tmp\ndeep/*.o\n",
	"sub/.gitignore": "local.txt\n/anch\n", "sub/file": "f\n",
}

// gitOnWorktree runs git over w's files with index as its index, the way
// Worktree.git does but outside codemachine, as the tests' reference.
func gitOnWorktree(t *testing.T, w *Worktree, index string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append(append([]string{}, trusted...), args...)...)
	cmd.Dir = w.path
	cmd.Env = append(os.Environ(), "GIT_DIR="+w.repo.commonDir, "GIT_WORK_TREE="+w.path, "GIT_INDEX_FILE="+index)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimRight(string(out), "\n")
}

// copyFile copies an index file for git to compare with.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// The copy of an index keeps its time: git takes an entry as racily
	// clean, and compares its content, by the index file's mtime. A later
	// one would have git take a file rewritten within the same clock tick
	// as the index, at the same size, as unchanged.
	if err := os.Chtimes(to, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// TestStageInProcessLikeGit: on every shape of change, the in-process
// stage starts no git process and gives the tree git add -A and git
// write-tree give on a copy of the same index, the same index entries,
// and objects git fsck --strict finds sound; git then sees the worktree
// as clean through the index written, and a second stage changes nothing.
func TestStageInProcessLikeGit(t *testing.T) {
	for _, tt := range stageChanges() {
		t.Run(tt.name, func(t *testing.T) { checkStageLikeGit(t, tt.change, 0) })
	}
}

// TestStageWithGitLikeGitAdd: where git stages (an index too large for
// the in-process stage, here every index), the stage gives the tree and
// the index entries git add -A gives, on every shape of change, with at
// most three git processes (status, update-index, write-tree) whatever
// the change.
func TestStageWithGitLikeGitAdd(t *testing.T) {
	defer func(n int) { stageInProcessMaxEntries = n }(stageInProcessMaxEntries)
	stageInProcessMaxEntries = 0
	for _, tt := range stageChanges() {
		t.Run(tt.name, func(t *testing.T) { checkStageLikeGit(t, tt.change, 3) })
	}
}

// stageChange is one shape of change a step leaves in its worktree.
type stageChange struct {
	name   string
	change func(t *testing.T, dir string, r *Repo)
}

// stageChanges are the shapes of change the stage tests cover.
func stageChanges() []stageChange {
	home := os.Getenv("HOME")
	return []stageChange{
		{"nothing", func(*testing.T, string, *Repo) {}},
		{"change a file", func(t *testing.T, d string, _ *Repo) { write(t, d, "a.txt", "changed\n") }},
		{"same size, same second", func(t *testing.T, d string, _ *Repo) { write(t, d, "a.txt", "A\n") }},
		{"add files in new directories", func(t *testing.T, d string, _ *Repo) {
			write(t, d, "n/m/o.txt", "o\n")
			write(t, d, "n/p", "")
		}},
		{"delete files", func(t *testing.T, d string, _ *Repo) {
			os.Remove(filepath.Join(d, "b/c.txt"))
			os.RemoveAll(filepath.Join(d, "only"))
		}},
		{"executable bit on and off", func(t *testing.T, d string, _ *Repo) {
			os.Chmod(filepath.Join(d, "a.txt"), 0o755)
			write(t, d, "tool", "#!/bin/sh\n")
			os.Chmod(filepath.Join(d, "tool"), 0o700)
		}},
		{"symbolic links", func(t *testing.T, d string, _ *Repo) {
			os.Remove(filepath.Join(d, "x-y"))
			os.Symlink("a.txt", filepath.Join(d, "x-y"))
			os.Symlink("b", filepath.Join(d, "to-dir"))
			os.Symlink("nowhere/at/all", filepath.Join(d, "dangling"))
		}},
		{"a directory where a file was", func(t *testing.T, d string, _ *Repo) {
			os.Remove(filepath.Join(d, "a.txt"))
			write(t, d, "a.txt/inner", "in\n")
		}},
		{"a file where a directory was", func(t *testing.T, d string, _ *Repo) {
			os.RemoveAll(filepath.Join(d, "b"))
			write(t, d, "b", "now a file\n")
		}},
		{"names that sort around a slash", func(t *testing.T, d string, _ *Repo) {
			write(t, d, "x.", "1\n")
			write(t, d, "x0", "2\n")
			write(t, d, "x/zz", "3\n")
			write(t, d, "x y/ü ñ", "4\n")
		}},
		{"empty directories", func(t *testing.T, d string, _ *Repo) { os.MkdirAll(filepath.Join(d, "e/f/g"), 0o755) }},
		{"ignored and re-included", func(t *testing.T, d string, _ *Repo) {
			write(t, d, "x.log", "ignored\n")
			write(t, d, "keep.log", "re-included\n")
			write(t, d, "q/keep.log", "re-included deeper\n")
			write(t, d, "build/out", "ignored directory\n")
			write(t, d, "q/build", "a file named build: not a directory\n")
		}},
		{"anchored patterns", func(t *testing.T, d string, _ *Repo) {
			write(t, d, "top.tmp", "ignored at the top\n")
			write(t, d, "q/top.tmp", "not ignored below\n")
			write(t, d, "deep/a.o", "ignored\n")
			write(t, d, "deep/more/a.o", "not ignored\n")
			write(t, d, "sub/anch", "ignored\n")
			write(t, d, "sub/s/anch", "not ignored\n")
			write(t, d, "anch", "not ignored\n")
		}},
		{"a .gitignore below the top", func(t *testing.T, d string, _ *Repo) {
			write(t, d, "sub/local.txt", "ignored\n")
			write(t, d, "sub/s/local.txt", "ignored deeper\n")
			write(t, d, "local.txt", "not ignored here\n")
			write(t, d, "new/.gitignore", "*\n!.gitignore\n")
			write(t, d, "new/x", "ignored\n")
		}},
		{"a deeper .gitignore re-includes", func(t *testing.T, d string, _ *Repo) {
			write(t, d, "w/.gitignore", "!*.log\n")
			write(t, d, "w/y.log", "re-included\n")
		}},
		{"tracked files that are ignored are still staged", func(t *testing.T, d string, _ *Repo) {
			write(t, d, "logs/kept.log", "changed\n")
			write(t, d, "logs/new.log", "ignored\n")
		}},
		{"a changed .gitignore", func(t *testing.T, d string, _ *Repo) {
			write(t, d, ".gitignore", "*.txt\n")
			write(t, d, "n.txt", "ignored now\n")
			write(t, d, "x.log", "not ignored now\n")
		}},
		{"info/exclude", func(t *testing.T, d string, r *Repo) {
			write(t, r.commonDir, "info/exclude", "*.bak\n")
			write(t, d, "f.bak", "ignored\n")
			write(t, d, "f.bak2", "not ignored\n")
		}},
		{"core.excludesFile, overridden by .gitignore", func(t *testing.T, d string, r *Repo) {
			write(t, home, "ignore-"+filepath.Base(r.root), "*.swp\n*.keep\n")
			git(t, r.root, "config", "core.excludesFile", "~/ignore-"+filepath.Base(r.root))
			write(t, d, ".gitignore", "!*.keep\n")
			write(t, d, "f.swp", "ignored\n")
			write(t, d, "f.keep", "re-included by .gitignore\n")
		}},
		{"info/exclude over core.excludesFile", func(t *testing.T, d string, r *Repo) {
			write(t, home, "ignore2-"+filepath.Base(r.root), "*.swp\n")
			git(t, r.root, "config", "core.excludesFile", filepath.Join(home, "ignore2-"+filepath.Base(r.root)))
			write(t, r.commonDir, "info/exclude", "!f.swp\n")
			write(t, d, "f.swp", "re-included by info/exclude\n")
			write(t, d, "g.swp", "ignored\n")
		}},
		{".gitattributes that change nothing git add stores", func(t *testing.T, d string, _ *Repo) {
			write(t, d, ".gitattributes", "# attributes\n*.png binary\n*.go diff=golang linguist-language=Go\n*.txt -text !eol\n\n")
			write(t, d, "q/.gitattributes", "*.c whitespace=trailing-space export-ignore\n")
			write(t, d, "a.txt", "crlf\r\nkept\r\n")
			write(t, d, "q/x.c", "int x;\r\n")
		}},
		{"many changes at once", func(t *testing.T, d string, _ *Repo) {
			for _, n := range []string{"m/1", "m/2/3", "m/2/4", "b/d/new", "only/two.txt"} {
				write(t, d, n, n+"\n")
			}
			os.Remove(filepath.Join(d, "b/d/e.txt"))
			write(t, d, "run.sh", "#!/bin/sh\necho\n")
		}},
	}
}

// checkStageLikeGit stages change's worktree and compares with git add -A
// and git write-tree on a copy of the index: the tree, the index entries,
// objects git fsck --strict finds sound; git then sees the worktree as
// clean through the index written, and a second stage changes nothing.
// The stage may start at most maxGit git processes.
func checkStageLikeGit(t *testing.T, change func(t *testing.T, dir string, r *Repo), maxGit int64) {
	dir, r := newRepo(t, stageBase)
	head := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 0, head)
	change(t, w.Path(), r)
	ref := filepath.Join(t.TempDir(), "index")
	copyFile(t, w.index, ref)
	if _, err := r.fastConfigFor(t.Context()); err != nil {
		t.Fatal(err) // read once per configuration: not the stage's
	}
	if _, err := r.refSettingsFor(t.Context()); err != nil {
		t.Fatal(err) // the slot ref's settings, likewise
	}
	before := r.Processes()
	got, err := w.Stage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Processes() - before; n > maxGit {
		t.Fatalf("the stage started %d git processes, want at most %d", n, maxGit)
	}
	git(t, dir, "fsck", "--strict", "--no-dangling")
	gitOnWorktree(t, w, ref, "add", "-A")
	want := gitOnWorktree(t, w, ref, "write-tree")
	if got != want {
		t.Fatalf("tree %s, git add -A && git write-tree: %s\n%s", got, want, gitOnWorktree(t, w, ref, "ls-files", "-s"))
	}
	if g, wnt := gitOnWorktree(t, w, w.index, "ls-files", "-s"), gitOnWorktree(t, w, ref, "ls-files", "-s"); g != wnt {
		t.Fatalf("index entries:\n%s\ngit's:\n%s", g, wnt)
	}
	if s := gitOnWorktree(t, w, w.index, "diff-files", "--name-status"); s != "" {
		t.Fatalf("git diff-files through the index written: %q", s)
	}
	if s := gitOnWorktree(t, w, w.index, "ls-files", "--others", "--exclude-standard"); s != "" {
		t.Fatalf("untracked files git would add: %q", s)
	}
	if tree := gitOnWorktree(t, w, w.index, "write-tree"); tree != got {
		t.Fatalf("git write-tree from the index written (its cache tree): %s, want %s", tree, got)
	}
	again, err := w.Stage(t.Context())
	if err != nil || again != got {
		t.Fatalf("second stage: %s, %v; want %s", again, err, got)
	}
}

// TestStageInProcessThenGit: git works on the index the in-process stage
// wrote (read-tree -m -u to another commit, then add), and a change made
// within the same second as the stage, of the same size, is still seen.
func TestStageInProcessThenGit(t *testing.T) {
	dir, r := newRepo(t, stageBase)
	ctx := t.Context()
	head := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 0, head)
	write(t, w.Path(), "a.txt", "1\n")
	tree, err := w.Stage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w.Path(), "a.txt", "2\n") // same size, likely the same second
	if s := gitOnWorktree(t, w, w.index, "status", "--porcelain"); s != "M  a.txt" && s != "MM a.txt" {
		t.Fatalf("status after a same-size change: %q", s)
	}
	tree2, err := w.Stage(ctx)
	if err != nil || tree2 == tree {
		t.Fatalf("the same-size change was not staged: %s, %v", tree2, err)
	}
	if got := gitOnWorktree(t, w, w.index, "cat-file", "-p", tree2+":a.txt"); got != "2" {
		t.Fatalf("a.txt staged as %q", got)
	}
	c := stepCommit(t, r, head, map[string]string{"b/c.txt": "other\n"}, "other")
	other := git(t, dir, "rev-parse", c+"^{tree}")
	gitOnWorktree(t, w, w.index, "read-tree", "-m", "-u", tree2, other)
	if got := read(t, w.Path(), "b/c.txt"); got != "other\n" {
		t.Fatalf("read-tree over the index written: b/c.txt is %q", got)
	}
}

// TestStageLeavesToGit: where git would do more than compare, hash and
// store, the in-process stage declines and git stages (Stage still gives
// git's tree).
func TestStageLeavesToGit(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, dir string, r *Repo, w *Worktree)
	}{
		{".gitattributes", func(t *testing.T, d string, _ *Repo, _ *Worktree) {
			write(t, d, ".gitattributes", "*.txt text eol=crlf\n")
		}},
		{".gitattributes below the top", func(t *testing.T, d string, _ *Repo, _ *Worktree) {
			write(t, d, "b/.gitattributes", "*.txt diff\n* text=auto\n")
		}},
		{"a .gitattributes filter", func(t *testing.T, d string, _ *Repo, _ *Worktree) {
			write(t, d, ".gitattributes", "*.bin filter=lfs diff=lfs\n")
		}},
		{"a .gitattributes macro", func(t *testing.T, d string, _ *Repo, _ *Worktree) {
			write(t, d, ".gitattributes", "[attr]mine text\n*.x mine\n")
		}},
		{"info/attributes", func(t *testing.T, d string, r *Repo, _ *Worktree) { write(t, r.commonDir, "info/attributes", "") }},
		{"the system's gitattributes", func(t *testing.T, d string, r *Repo, _ *Worktree) {
			sys := filepath.Join(t.TempDir(), "gitattributes")
			write(t, filepath.Dir(sys), "gitattributes", "*.txt text eol=crlf\n")
			old := systemAttributes
			t.Cleanup(func() { systemAttributes = old })
			systemAttributes = sys
		}},
		{"the gitattributes of the git on PATH", func(t *testing.T, d string, r *Repo, _ *Worktree) {
			// A git installed under PREFIX (prefix /usr/local, a
			// Homebrew git) reads PREFIX/etc/gitattributes.
			real, err := exec.LookPath("git")
			if err != nil {
				t.Fatal(err)
			}
			prefix := t.TempDir()
			write(t, prefix, "bin/git", "#!/bin/sh\nexec "+real+" \"$@\"\n")
			if err := os.Chmod(filepath.Join(prefix, "bin", "git"), 0o755); err != nil {
				t.Fatal(err)
			}
			write(t, prefix, "etc/gitattributes", "*.txt text eol=crlf\n")
			t.Setenv("PATH", filepath.Join(prefix, "bin")+string(filepath.ListSeparator)+os.Getenv("PATH"))
		}},
		{"core.autocrlf", func(t *testing.T, d string, r *Repo, _ *Worktree) { git(t, r.root, "config", "core.autocrlf", "true") }},
		{"core.filemode", func(t *testing.T, d string, r *Repo, _ *Worktree) { git(t, r.root, "config", "core.filemode", "false") }},
		{"core.symlinks", func(t *testing.T, d string, r *Repo, _ *Worktree) { git(t, r.root, "config", "core.symlinks", "false") }},
		{"core.ignorecase", func(t *testing.T, d string, r *Repo, _ *Worktree) {
			git(t, r.root, "config", "core.ignorecase", "true")
		}},
		{"** in a pattern", func(t *testing.T, d string, _ *Repo, _ *Worktree) { write(t, d, ".gitignore", "**/x\n") }},
		{"? in a pattern", func(t *testing.T, d string, _ *Repo, _ *Worktree) { write(t, d, ".gitignore", "a?\n") }},
		{"a bracket in a pattern", func(t *testing.T, d string, _ *Repo, _ *Worktree) { write(t, d, "sub/.gitignore", "[ab]\n") }},
		{"a backslash in a pattern", func(t *testing.T, d string, r *Repo, _ *Worktree) { write(t, r.commonDir, "info/exclude", "\\#x\n") }},
		{"a nested repository", func(t *testing.T, d string, _ *Repo, _ *Worktree) {
			git(t, d, "init", "-q", "nested")
			write(t, d, "nested/f", "f\n")
			commitAll(t, filepath.Join(d, "nested"), "nested")
		}},
		{".gitmodules", func(t *testing.T, d string, _ *Repo, _ *Worktree) { write(t, d, ".gitmodules", "") }},
		{"a fifo", func(t *testing.T, d string, _ *Repo, _ *Worktree) {
			if err := syscall.Mkfifo(filepath.Join(d, "fifo"), 0o644); err != nil {
				t.Skip(err)
			}
		}},
		{"a big file", func(t *testing.T, d string, _ *Repo, _ *Worktree) {
			f, err := os.Create(filepath.Join(d, "big"))
			if err != nil {
				t.Fatal(err)
			}
			f.Truncate(stageMaxFile + 1)
			f.Close()
		}},
		{"the index lock held", func(t *testing.T, d string, _ *Repo, w *Worktree) {
			write(t, filepath.Dir(w.index), filepath.Base(w.index)+".lock", "")
		}},
		{"a skip-worktree entry", func(t *testing.T, d string, _ *Repo, w *Worktree) {
			gitOnWorktree(t, w, w.index, "update-index", "--skip-worktree", "a.txt")
		}},
		{"an assume-unchanged entry", func(t *testing.T, d string, _ *Repo, w *Worktree) {
			gitOnWorktree(t, w, w.index, "update-index", "--assume-unchanged", "a.txt")
		}},
		{"index version 4", func(t *testing.T, d string, _ *Repo, w *Worktree) {
			gitOnWorktree(t, w, w.index, "update-index", "--index-version", "4")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, r := newRepo(t, stageBase)
			head := git(t, dir, "rev-parse", "HEAD")
			w := mustWorktree(t, r, 0, head)
			write(t, w.Path(), "a.txt", "changed\n")
			tt.change(t, w.Path(), r, w)
			ref := filepath.Join(t.TempDir(), "index")
			copyFile(t, w.index, ref)
			if _, err := w.stageInProcess(t.Context()); !errors.Is(err, errStageByGit) {
				t.Fatalf("in-process stage: %v, want errStageByGit", err)
			}
			os.Remove(w.index + ".lock") // the held lock's case: released
			got, err := w.Stage(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			add := []string{"add", "-A"}
			if tt.name == "a nested repository" {
				// Left out, so that git never looks into it.
				if n := w.Nested(); !slices.Equal(n, []string{"nested"}) {
					t.Errorf("Nested() = %q, want [nested]", n)
				}
				add = append(add, "--", ".", ":(exclude)nested")
			}
			gitOnWorktree(t, w, ref, add...)
			if want := gitOnWorktree(t, w, ref, "write-tree"); got != want {
				t.Fatalf("tree %s, want git's %s", got, want)
			}
		})
	}
}

// TestStepGitProcesses: a step handed its pooled worktree, staged,
// committed, landed and finished starts no git process (the user's
// checkout is checked and switched in-process, the ref moves in-process),
// and one landed on a branch that moved (different files) starts none
// either: the pooled worktree is moved to the new tip in-process, the
// rebase is merged and committed in-process, and the worktree's Finish
// moves it onto the rebased tree in-process.
func TestStepGitProcesses(t *testing.T) {
	dir, r := newRepo(t, stageBase)
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	t.Setenv("GIT_COMMITTER_DATE", "1778049489 +0000")
	t.Setenv("GIT_AUTHOR_DATE", "1778049489 +0000")
	if _, err := r.fastConfigFor(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.refSettingsFor(ctx); err != nil {
		t.Fatal(err) // read once per configuration, like fastConfigFor
	}
	step := func(base, file string) (int64, LandResult) {
		before := r.Processes()
		w := mustWorktree(t, r, 0, base)
		write(t, w.Path(), file, "step\n")
		tree, err := w.Stage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c, err := r.CommitTree(ctx, CommitSpec{Tree: tree, Parents: []string{base}, Message: "step " + file})
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Land(ctx, "main", base, c, LandOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Finish(ctx, res.Commit); err != nil {
			t.Fatal(err)
		}
		return r.Processes() - before, res
	}
	// The first hand-out makes the worktree: the one full checkout.
	_, res := step(base, "zero.txt")
	n, res := step(res.Commit, "one.txt")
	if n != 0 || res.Rebased {
		t.Fatalf("a step in a row: %d git processes (rebased %v), want 0", n, res.Rebased)
	}
	tip := res.Commit
	write(t, dir, "user.txt", "the user's commit\n")
	commitAll(t, dir, "user")
	n, res = step(tip, "two.txt")
	if n != 0 || !res.Rebased {
		t.Fatalf("a step onto a moved tip: %d git processes (rebased %v), want 0", n, res.Rebased)
	}
	git(t, dir, "fsck", "--strict", "--no-dangling")
	if got := git(t, dir, "show", "HEAD:two.txt"); got != "step" || !exists(dir, "user.txt") {
		t.Fatalf("landed: two.txt %q", got)
	}
	// The pooled worktree was moved in-process onto the rebased commit: it
	// is handed out clean there, its index and files exactly the tip's.
	w := mustWorktree(t, r, 0, res.Commit)
	if !exists(w.Path(), "user.txt") || read(t, w.Path(), "two.txt") != "step\n" {
		t.Error("the pooled worktree's files are not the tip's")
	}
	tree, err := w.Stage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := git(t, dir, "rev-parse", res.Commit+"^{tree}"); tree != want {
		t.Errorf("the pooled worktree stages %s, want the tip's tree %s", tree, want)
	}
	w.Discard()
}

// TestStageWithGitLeavesOut: where git stages, files LimitFiles refuses
// are left out unread (an untracked one is not added, a tracked one keeps
// its entry) and nested repositories are left out, each listed, while the
// rest of the change is staged.
func TestStageWithGitLeavesOut(t *testing.T) {
	defer func(n int) { stageInProcessMaxEntries = n }(stageInProcessMaxEntries)
	stageInProcessMaxEntries = 0
	dir, r := newRepo(t, stageBase)
	w := mustWorktree(t, r, 0, git(t, dir, "rev-parse", "HEAD"))
	w.LimitFiles(func(_ string, size int64) bool { return size > 100 })
	big := strings.Repeat("x", 101)
	write(t, w.Path(), "new/big", big)
	write(t, w.Path(), "b/c.txt", big)
	write(t, w.Path(), "new/small", "small\n")
	git(t, w.Path(), "init", "-q", "inner")
	write(t, w.Path(), "inner/f", "f\n")
	tree, err := w.Stage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []OversizeFile{{Path: "b/c.txt", Size: 101}, {Path: "new/big", Size: 101}}
	got := w.LeftOut()
	slices.SortFunc(got, func(a, b OversizeFile) int { return strings.Compare(a.Path, b.Path) })
	if !slices.Equal(got, want) {
		t.Errorf("LeftOut() = %v, want %v", got, want)
	}
	if n := w.Nested(); !slices.Equal(n, []string{"inner"}) {
		t.Errorf("Nested() = %q, want [inner]", n)
	}
	files := git(t, dir, "ls-tree", "-r", "--name-only", tree)
	for _, p := range []string{"new/big", "inner"} {
		if slices.Contains(strings.Split(files, "\n"), p) {
			t.Errorf("%s staged:\n%s", p, files)
		}
	}
	if !slices.Contains(strings.Split(files, "\n"), "new/small") {
		t.Errorf("new/small not staged:\n%s", files)
	}
	if c := git(t, dir, "show", tree+":b/c.txt"); c != "c" {
		t.Errorf("b/c.txt staged as %q, want the base's", c)
	}
}

// TestStageWithGitStopsAtAFIFO: where git stages, a .gitignore or
// .gitattributes that is a FIFO fails the stage with a *SpecialFileError
// before git status, which would wait on it forever, runs; it leaves no
// lock behind, and the next stage works.
func TestStageWithGitStopsAtAFIFO(t *testing.T) {
	defer func(n int) { stageInProcessMaxEntries = n }(stageInProcessMaxEntries)
	stageInProcessMaxEntries = 0
	for _, name := range []string{"sub/.gitignore", "n/.gitattributes"} {
		t.Run(name, func(t *testing.T) {
			dir, r := newRepo(t, stageBase)
			w := mustWorktree(t, r, 0, git(t, dir, "rev-parse", "HEAD"))
			write(t, w.Path(), "n/a.txt", "a\n")
			os.Remove(filepath.Join(w.Path(), name))
			if err := syscall.Mkfifo(filepath.Join(w.Path(), name), 0o644); err != nil {
				t.Skip(err)
			}
			_, err := w.Stage(t.Context())
			var se *SpecialFileError
			if !errors.As(err, &se) || se.Path != name {
				t.Fatalf("stage: %v, want a *SpecialFileError for %s", err, name)
			}
			if _, err := os.Stat(w.index + ".lock"); err == nil {
				t.Fatal("the index lock is left behind")
			}
			os.Remove(filepath.Join(w.Path(), name))
			tree, err := w.Stage(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got := git(t, dir, "show", tree+":n/a.txt"); got != "a" {
				t.Errorf("n/a.txt staged as %q", got)
			}
		})
	}
}

// TestStageLeavesOutGitAliases: a name git takes for .git on another
// system (git~1, .git., .g<zero-width>it) is left out of the stage and
// told by GitAlias, whoever stages (in the process or git): git add
// refuses it, and git fsck --strict fails on any tree that holds one,
// reachable or not.
func TestStageLeavesOutGitAliases(t *testing.T) {
	for _, byGit := range []bool{false, true} {
		t.Run(fmt.Sprintf("byGit=%v", byGit), func(t *testing.T) {
			if byGit {
				defer func(n int) { stageInProcessMaxEntries = n }(stageInProcessMaxEntries)
				stageInProcessMaxEntries = 0
			}
			dir, r := newRepo(t, stageBase)
			w := mustWorktree(t, r, 0, git(t, dir, "rev-parse", "HEAD"))
			zw := "h/.g\u200cit/config"
			for _, p := range []string{"git~1", "o/.git. /config", zw, "new/ok"} {
				write(t, w.Path(), p, "x\n")
			}
			tree, err := w.Stage(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if a, want := w.GitAlias(), []string{"git~1", zw, "o/.git. /config"}; a == nil || !slices.Contains(want, a.Path) {
				t.Errorf("GitAlias() = %v, want one of %q", a, want)
			}
			files := strings.Split(git(t, dir, "ls-tree", "-r", "--name-only", "-z", tree), "\x00")
			if !slices.Contains(files, "new/ok") || slices.ContainsFunc(files, hasGitAlias) {
				t.Errorf("staged %q, want new/ok and no alias", files)
			}
			if out, err := exec.Command("git", "-C", dir, "fsck", "--strict").CombinedOutput(); err != nil {
				t.Errorf("git fsck --strict: %v\n%s", err, out)
			}
		})
	}
}

// TestSystemConfigDirs: the machine's gitconfig and gitattributes of a git
// installed under a prefix other than /usr are PREFIX/etc/..., for the
// prefix PATH names and the one its link leads to; the in-process stage
// and the configuration cache look there too.
func TestSystemConfigDirs(t *testing.T) {
	tmp := t.TempDir()
	cellar := filepath.Join(tmp, "Cellar", "git", "2.39", "bin")
	write(t, cellar, "git", "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(cellar, "git"), 0o755); err != nil {
		t.Fatal(err)
	}
	brew := filepath.Join(tmp, "brew", "bin")
	if err := os.MkdirAll(brew, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(cellar, "git"), filepath.Join(brew, "git")); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(tmp, "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	path := strings.Join([]string{"relative/bin", empty, brew, "/usr/bin"}, string(filepath.ListSeparator))
	want := []string{filepath.Join(tmp, "brew", "etc"), filepath.Join(tmp, "Cellar", "git", "2.39", "etc")}
	if got := systemConfigDirs(path); !slices.Equal(got, want) {
		t.Fatalf("systemConfigDirs = %q, want %q", got, want)
	}
	if got := systemConfigDirs("/usr/bin"); len(got) != 0 {
		t.Fatalf("systemConfigDirs(/usr/bin) = %q, want none (/etc)", got)
	}
	_, r := newRepo(t, stageBase)
	t.Setenv("PATH", path)
	t.Setenv("GIT_CONFIG_SYSTEM", "")
	if files := r.configFiles(); !slices.Contains(files, filepath.Join(want[0], "gitconfig")) {
		t.Fatalf("configFiles = %q, want %s among them", files, filepath.Join(want[0], "gitconfig"))
	}
}

// TestSystemConfigDirsLookedUpOncePerRun: which git PATH finds (hence
// where the machine's gitconfig and gitattributes are) is looked up once,
// not at each of a step's configuration reads, and again after
// ForgetLookups (a run's start) or when PATH changes.
func TestSystemConfigDirsLookedUpOncePerRun(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "prefix", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	_, r := newRepo(t, stageBase)
	t.Setenv("PATH", bin+string(filepath.ListSeparator)+"/usr/bin")
	t.Setenv("GIT_CONFIG_SYSTEM", "")
	cfg := filepath.Join(tmp, "prefix", "etc", "gitconfig")
	if files := r.configFiles(); slices.Contains(files, cfg) {
		t.Fatalf("configFiles = %q before git is in %s", files, bin)
	}
	write(t, bin, "git", "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(bin, "git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if files := r.configFiles(); slices.Contains(files, cfg) {
		t.Fatalf("configFiles = %q: PATH was walked again for the same run", files)
	}
	r.ForgetLookups()
	if files := r.configFiles(); !slices.Contains(files, cfg) {
		t.Fatalf("configFiles = %q after ForgetLookups, want %s among them", files, cfg)
	}
	t.Setenv("PATH", "/usr/bin")
	if files := r.configFiles(); slices.Contains(files, cfg) {
		t.Fatalf("configFiles = %q after PATH changed, want the git of the new PATH's", files)
	}
}

// A directory of PATH inside the working tree (direnv's PATH_add bin)
// holds what steps land: the git found there, or an ssh, gpg or git-lfs
// the real git starts, would run outside the sandbox. codemachine's git
// is neither found there nor given it on PATH, nor a relative entry,
// which git resolves in the (step's) directory it runs in.
func TestGitIsNotRunFromTheWorkingTree(t *testing.T) {
	dir, r := newRepo(t, stageBase)
	head := git(t, dir, "rev-parse", "HEAD")
	marker := filepath.Join(t.TempDir(), "ran")
	write(t, dir, "bin/git", "#!/bin/sh\necho ran >> "+marker+"\nexit 1\n")
	if err := os.Chmod(filepath.Join(dir, "bin", "git"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "linked-bin")
	if err := os.Symlink(filepath.Join(dir, "bin"), link); err != nil {
		t.Fatal(err)
	}
	sep := string(filepath.ListSeparator)
	outside := os.Getenv("PATH")
	t.Setenv("PATH", strings.Join([]string{filepath.Join(dir, "bin"), link, "bin", "", outside}, sep))
	if got := r.outsidePath(os.Getenv("PATH")); got != outside {
		t.Errorf("outsidePath = %q, want %q", got, outside)
	}
	if out, err := r.read(t.Context(), "rev-parse", "HEAD"); err != nil || strings.TrimSpace(out) != head {
		t.Fatalf("rev-parse HEAD = %q, %v", out, err)
	}
	// What git starts gets that PATH too.
	out, err := r.read(t.Context(), "-c", "alias.path=!echo \"$PATH\"", "path")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range filepath.SplitList(strings.TrimSpace(out)) {
		if d == "bin" || d == "" || strings.HasPrefix(d, dir) || d == link {
			t.Errorf("git's programs run with %q on PATH (%s)", d, out)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the git in the working tree's bin ran")
	}
}

// The programs codemachine starts besides its own git commands (doctor's
// git --version, reject's git var GIT_EDITOR and the editor's shell) are
// found as its git is: not in a directory of PATH in the working tree, nor
// in a repository found by git from a directory below its root (where
// what git looked up for the directory it started in was kept), and git
// never ran from there to find it.
func TestProgramsAreNotRunFromTheWorkingTree(t *testing.T) {
	dir, _ := newRepo(t, stageBase)
	marker := filepath.Join(t.TempDir(), "ran")
	planted := "#!/bin/sh\necho \"$0\" >> " + marker + "\nexit 1\n"
	for _, name := range []string{"bin/git", "bin/sh"} {
		write(t, dir, name, planted)
		if err := os.Chmod(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, dir, "sub/x", "x\n")
	t.Setenv("PATH", filepath.Join(dir, "bin")+string(filepath.ListSeparator)+os.Getenv("PATH"))
	tests := []struct {
		name, start string
		// ceiling has Open ask git to find the repository.
		ceiling bool
	}{
		{"root", ".", false},
		{"subdirectory found by git", "sub", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ceiling {
				t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(dir))
			}
			start := filepath.Join(dir, tt.start)
			r, err := Open(start)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := Version(t.Context(), r); err != nil || !strings.HasPrefix(v, "git version ") {
				t.Errorf("Version = %q, %v", v, err)
			}
			if out, err := r.Command(t.Context(), start, "sh", "-c", "git var GIT_EDITOR").Output(); err != nil {
				t.Errorf("sh -c 'git var GIT_EDITOR' = %q, %v", out, err)
			}
			if ran, err := os.ReadFile(marker); err == nil {
				t.Errorf("a program in the working tree's bin ran: %s", ran)
			}
		})
	}
	// Without a repository, Version is PATH's git (here the planted one).
	if _, err := Version(t.Context(), nil); err == nil {
		t.Error("Version(nil) succeeded with the failing git first on PATH")
	}
}

// While git finds the repository, the working trees it may find are the
// nearest parent holding a .git and GIT_WORK_TREE's: not a farther one
// (a home directory that is a repository of dotfiles), whose PATH
// directories (~/bin) would be taken off the PATH that git runs with.
func TestCandidateRoots(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{"home/.git", "home/src/proj/.git", "home/src/proj/sub/deeper", "home/other"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		start, workTree string
		want            []string
	}{
		{"home/src/proj/sub/deeper", "", []string{"home/src/proj"}},
		{"home/src/proj", "", []string{"home/src/proj"}},
		{"home/other", "", []string{"home"}},
		{"home/other", "/wt", []string{"/wt", "home"}},
	}
	for _, tt := range tests {
		t.Setenv("GIT_WORK_TREE", tt.workTree)
		var want []string
		for _, w := range tt.want {
			if !filepath.IsAbs(w) {
				w = filepath.Join(base, w)
			}
			want = append(want, w)
		}
		if got := candidateRoots(filepath.Join(base, tt.start)); !slices.Equal(got, want) {
			t.Errorf("candidateRoots(%s) = %q, want %q", tt.start, got, want)
		}
	}
}
