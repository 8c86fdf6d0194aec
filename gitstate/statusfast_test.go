package gitstate

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestStatusUnderIsGitStatus: the paths under a directory that differ from
// HEAD, found in the process, are git status's, and no git process runs
// where the in-process stage's conditions hold; elsewhere git answers.
func TestStatusUnderIsGitStatus(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		byGit  bool // the answer must come from git status
	}{
		{"clean", func(t *testing.T, dir string) {}, false},
		{"an edit", func(t *testing.T, dir string) { write(t, dir, ".cm/workflow.yaml", "edited\n") }, false},
		{"a staged edit", func(t *testing.T, dir string) {
			write(t, dir, ".cm/agents/a.md", "staged\n")
			git(t, dir, "add", ".cm/agents/a.md")
		}, false},
		{"a staged edit undone in the worktree", func(t *testing.T, dir string) {
			write(t, dir, ".cm/agents/a.md", "staged\n")
			git(t, dir, "add", ".cm/agents/a.md")
			write(t, dir, ".cm/agents/a.md", "agent\n")
		}, false},
		{"same size, same second (racily clean)", func(t *testing.T, dir string) {
			write(t, dir, ".cm/workflow.yaml", "flaw\n")
			git(t, dir, "add", "-A")
			git(t, dir, "commit", "-qm", "same second")
			write(t, dir, ".cm/workflow.yaml", "FLOW\n")
		}, false},
		{"untracked files, nested", func(t *testing.T, dir string) {
			write(t, dir, ".cm/new.md", "n\n")
			write(t, dir, ".cm/deep/er/x.yaml", "x\n")
		}, false},
		{"ignored files", func(t *testing.T, dir string) {
			write(t, dir, ".gitignore", "*.log\n/.cm/tmp/\n")
			write(t, dir, ".cm/.gitignore", "secret\n!keep.log\n")
			write(t, dir, ".git/info/exclude", "excluded.txt\n")
			for _, f := range []string{".cm/a.log", ".cm/keep.log", ".cm/tmp/x", ".cm/secret", ".cm/sub/secret", ".cm/excluded.txt", ".cm/shown.txt"} {
				write(t, dir, f, "x\n")
			}
		}, false},
		{"an ignored directory with a tracked file changed", func(t *testing.T, dir string) {
			write(t, dir, ".gitignore", ".cm/\n")
			write(t, dir, ".cm/workflow.yaml", "changed\n")
			write(t, dir, ".cm/untracked.txt", "u\n")
		}, false},
		{"deleted, and a file become a directory", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, ".cm", "workflow.yaml"))
			os.Remove(filepath.Join(dir, ".cm", "agents", "a.md"))
			write(t, dir, ".cm/agents/a.md/inside.txt", "i\n")
		}, false},
		{"the whole directory gone", func(t *testing.T, dir string) { os.RemoveAll(filepath.Join(dir, ".cm")) }, false},
		{"executable bit", func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, ".cm", "run.sh"), 0o755) }, false},
		{"a symbolic link, new and retargeted", func(t *testing.T, dir string) {
			os.Symlink("workflow.yaml", filepath.Join(dir, ".cm", "link"))
			os.Remove(filepath.Join(dir, ".cm", "old-link"))
			os.Symlink("run.sh", filepath.Join(dir, ".cm", "old-link"))
		}, false},
		{"a directory replaced by a link to a copy", func(t *testing.T, dir string) {
			os.Rename(filepath.Join(dir, ".cm", "agents"), filepath.Join(dir, "agents-copy"))
			os.Symlink("../agents-copy", filepath.Join(dir, ".cm", "agents"))
		}, false},
		{"the directory itself a link to a copy", func(t *testing.T, dir string) {
			os.Rename(filepath.Join(dir, ".cm"), filepath.Join(dir, "cm-copy"))
			os.Symlink("cm-copy", filepath.Join(dir, ".cm"))
		}, true},
		{"a staged rename", func(t *testing.T, dir string) { git(t, dir, "mv", ".cm/run.sh", ".cm/moved.sh") }, false},
		{"added then deleted", func(t *testing.T, dir string) {
			write(t, dir, ".cm/added.txt", "a\n")
			git(t, dir, "add", ".cm/added.txt")
			os.Remove(filepath.Join(dir, ".cm", "added.txt"))
		}, false},
		{"changes outside the directory", func(t *testing.T, dir string) {
			write(t, dir, "top.txt", "changed\n")
			write(t, dir, "other/new.txt", "n\n")
			write(t, dir, ".cmx/new.txt", "n\n")
		}, false},
		{"line endings converted", func(t *testing.T, dir string) {
			write(t, dir, ".gitattributes", "*.yaml text eol=crlf\n")
			write(t, dir, ".cm/workflow.yaml", "flow\r\n")
		}, true},
		{"a nested repository", func(t *testing.T, dir string) { git(t, dir, "init", "-q", ".cm/nested") }, true},
		{"an ignore pattern with **", func(t *testing.T, dir string) {
			write(t, dir, ".gitignore", "**/secret\n")
			write(t, dir, ".cm/secret", "s\n")
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{".cm/workflow.yaml": "flow\n", ".cm/agents/a.md": "agent\n",
				".cm/run.sh": "#!/bin/sh\n", "top.txt": "top\n"})
			os.Symlink("workflow.yaml", filepath.Join(dir, ".cm", "old-link"))
			commitAll(t, dir, "link")
			// The index as git leaves it after a commit: entries written
			// in the same second as the index are racily clean.
			time.Sleep(10 * time.Millisecond)
			tt.change(t, dir)
			want, err := r.statusPathsByGit(t.Context(), ".cm")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.fastConfigFor(t.Context()); err != nil { // read once per process
				t.Fatal(err)
			}
			before := r.Processes()
			got, err := r.StatusPaths(t.Context(), ".cm")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("in the process %q, git status %q", got, want)
			}
			if n := r.Processes() - before; (n > 0) != tt.byGit {
				t.Errorf("%d git processes, want git's answer: %t", n, tt.byGit)
			}
		})
	}
}
