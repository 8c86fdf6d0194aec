package gitstate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommitPaths(t *testing.T) {
	dir, r := newRepo(t, map[string]string{
		"spec.md": "1\n", "gone.md": "x\n", "staged.txt": "1\n", "edited.txt": "1\n", "x[1].md": "1\n",
	})
	write(t, dir, "spec.md", "2\n")
	write(t, dir, "new dir/plan.md", "new\n")
	write(t, dir, "x[1].md", "2\n")
	write(t, dir, "x1.md", "not named\n")
	if err := os.Remove(filepath.Join(dir, "gone.md")); err != nil {
		t.Fatal(err)
	}
	// The user's own work in progress: staged and unstaged.
	write(t, dir, "staged.txt", "2\n")
	git(t, dir, "add", "staged.txt")
	write(t, dir, "edited.txt", "2\n")

	if err := r.CommitPaths(t.Context(), []string{"spec.md", "new dir/plan.md", "gone.md", "x[1].md"}, "steer: spec.md"); err != nil {
		t.Fatal(err)
	}
	if got := git(t, dir, "log", "-1", "--format=%s"); got != "steer: spec.md" {
		t.Errorf("subject %q", got)
	}
	want := "D\tgone.md\nA\tnew dir/plan.md\nM\tspec.md\nM\tx[1].md"
	if got := git(t, dir, "diff-tree", "--no-commit-id", "--name-status", "-r", "HEAD"); got != want {
		t.Errorf("the commit changes\n%s\nwant\n%s", got, want)
	}
	// The user's changes are as they were: staged stays staged, the rest
	// stays in the working tree.
	if got := statusShort(t, dir); got != " M edited.txt\nM  staged.txt\n?? x1.md" {
		t.Errorf("status after the commit:\n%s", got)
	}

	if err := r.CommitPaths(t.Context(), nil, "steer: nothing"); err == nil || !strings.Contains(err.Error(), "no paths") {
		t.Errorf("CommitPaths of no paths = %v", err)
	}
}

// TestCommitPathsLongMessage: a message longer than one argument of a
// command line may be (128 KiB on Linux) is committed whole.
func TestCommitPathsLongMessage(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"plan.md": "1\n"})
	write(t, dir, "plan.md", "2\n")
	msg := "plan: add T1 \"" + strings.Repeat("x", 200_000) + "\""
	if err := r.CommitPaths(t.Context(), []string{"plan.md"}, msg); err != nil {
		t.Fatal(err)
	}
	if got := git(t, dir, "log", "-1", "--format=%s"); got != msg {
		t.Errorf("subject of %d bytes, want %d", len(got), len(msg))
	}
	if got := statusShort(t, dir); got != "" {
		t.Errorf("status after the commit:\n%s", got)
	}
}

// TestCommitPathsRefused: when a hook refuses the commit, the paths are
// not left staged for the user's next commit, their files keep the new
// content, and the user's own staged change stays staged.
func TestCommitPathsRefused(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"plan.md": "1\n", "mine.txt": "1\n"})
	write(t, dir, "mine.txt", "2\n")
	git(t, dir, "add", "mine.txt")
	hooks := filepath.Join(dir, ".git", "hooks")
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hooks, "pre-commit"), []byte("#!/bin/sh\necho no >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "config", "core.hooksPath", hooks)
	head := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "plan.md", "2\n")
	write(t, dir, "new.md", "new\n")
	if err := r.CommitPaths(t.Context(), []string{"plan.md", "new.md"}, "plan: edit"); err == nil {
		t.Fatal("CommitPaths with a refusing pre-commit hook succeeded")
	}
	if got := git(t, dir, "rev-parse", "HEAD"); got != head {
		t.Errorf("HEAD moved to %s", got)
	}
	if got := statusShort(t, dir); got != "M  mine.txt\n M plan.md\n?? new.md" {
		t.Errorf("status after the refused commit:\n%s", got)
	}
}

func TestIgnoredDirs(t *testing.T) {
	dir, r := newRepo(t, map[string]string{
		".gitignore":              "build/\nnode_modules/\n*.tmp\n",
		".codemachine/plan.md":    "# Plan\n",
		"src/main.go":             "package main\n",
		"node_modules/x/index.js": "",
	})
	// An ignored directory that holds a tracked file is not ignored: the
	// tracked file may be an input.
	write(t, dir, "build/keep.txt", "")
	git(t, dir, "add", "-f", "build/keep.txt")
	git(t, dir, "commit", "-q", "-m", "keep")
	in := []string{filepath.Join(dir, "build"), filepath.Join(dir, "node_modules"), filepath.Join(dir, "src"),
		filepath.Join(dir, "cache.tmp"), dir, "/elsewhere"}
	got, err := r.IgnoredDirs(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "node_modules"), filepath.Join(dir, "cache.tmp")}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("IgnoredDirs = %v, want %v", got, want)
	}
	if got, err := r.IgnoredDirs(t.Context(), []string{filepath.Join(dir, "src")}); err != nil || len(got) != 0 {
		t.Errorf("nothing ignored: got %v, %v", got, err)
	}
	if got, err := r.IgnoredDirs(t.Context(), []string{dir, "/elsewhere"}); err != nil || len(got) != 0 {
		t.Errorf("nothing to ask: got %v, %v", got, err)
	}
}
