package gitstate

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScratchRefreshedInPlace: a scratch .git left as it was made is
// brought to the next base in place (its directories and files are the
// same inodes), and ends up exactly what a fresh one is: HEAD at the new
// base, the user's refs, the private index with its modification time.
func TestScratchRefreshedInPlace(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	first := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 0, first)
	configIno, refsIno := inode(t, filepath.Join(w.scratch, "config")), inode(t, filepath.Join(w.scratch, "refs"))
	w.Discard()
	write(t, dir, "b.txt", "b\n")
	git(t, dir, "add", "b.txt")
	git(t, dir, "commit", "-q", "-m", "b")
	second := git(t, dir, "rev-parse", "HEAD")
	w = mustWorktree(t, r, 0, second)
	defer w.Discard()
	if inode(t, filepath.Join(w.scratch, "config")) != configIno || inode(t, filepath.Join(w.scratch, "refs")) != refsIno {
		t.Error("the scratch .git was made afresh, not refreshed in place")
	}
	if got := read(t, w.scratch, "HEAD"); got != second+"\n" {
		t.Errorf("HEAD %q, want %s", got, second)
	}
	if got := git(t, w.Path(), "rev-parse", "main"); got != second {
		t.Errorf("main in the scratch repository: %s, want %s", got, second)
	}
	want, err := os.ReadFile(w.index)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(w.scratch, "index"))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("the scratch index is not the private index: %v", err)
	}
	a, _ := os.Stat(w.index)
	b, _ := os.Stat(filepath.Join(w.scratch, "index"))
	if !a.ModTime().Equal(b.ModTime()) {
		t.Errorf("index modification time %v, want %v", b.ModTime(), a.ModTime())
	}
	if s := statusShort(t, w.Path()); s != "" {
		t.Errorf("status in the worktree: %q", s)
	}
}

// TestScratchTamperedIsMadeAfresh: whatever an agent changes in the
// layout of its scratch .git makes the next hand-out make it afresh, and
// nothing is ever written through a link it planted.
func TestScratchTamperedIsMadeAfresh(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, scratch, outside string)
	}{
		{"config a symbolic link", func(t *testing.T, scratch, outside string) {
			os.Remove(filepath.Join(scratch, "config"))
			must(t, os.Symlink(outside, filepath.Join(scratch, "config")))
		}},
		{"HEAD a second name of a file outside", func(t *testing.T, scratch, outside string) {
			os.Remove(filepath.Join(scratch, "HEAD"))
			must(t, os.Link(outside, filepath.Join(scratch, "HEAD")))
		}},
		{"index a symbolic link", func(t *testing.T, scratch, outside string) {
			os.Remove(filepath.Join(scratch, "index"))
			must(t, os.Symlink(outside, filepath.Join(scratch, "index")))
		}},
		{"refs a symbolic link", func(t *testing.T, scratch, outside string) {
			must(t, os.RemoveAll(filepath.Join(scratch, "refs")))
			must(t, os.Symlink(filepath.Dir(outside), filepath.Join(scratch, "refs")))
		}},
		{"a branch of its own", func(t *testing.T, scratch, _ string) {
			write(t, scratch, "refs/heads/agent", "0123456789012345678901234567890123456789\n")
		}},
		{"a hook", func(t *testing.T, scratch, _ string) { write(t, scratch, "hooks/post-checkout", "#!/bin/sh\n") }},
		{"a world-writable directory", func(t *testing.T, scratch, _ string) {
			must(t, os.Chmod(filepath.Join(scratch, "objects"), 0o777))
		}},
		{"packed-refs removed", func(t *testing.T, scratch, _ string) { must(t, os.Remove(filepath.Join(scratch, "packed-refs"))) }},
		{"an object", func(t *testing.T, scratch, _ string) { write(t, scratch, "objects/ab/cdef", "x") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
			base := git(t, dir, "rev-parse", "HEAD")
			outside := filepath.Join(t.TempDir(), "victim")
			must(t, os.WriteFile(outside, []byte("precious\n"), 0o644))
			w := mustWorktree(t, r, 0, base)
			fresh := scratchListing(t, w.scratch)
			tt.tamper(t, w.scratch, outside)
			w.Discard()
			w = mustWorktree(t, r, 0, base)
			defer w.Discard()
			if got := read(t, filepath.Dir(outside), "victim"); got != "precious\n" {
				t.Errorf("written through a planted link: %q", got)
			}
			if got := scratchListing(t, w.scratch); got != fresh {
				t.Errorf("scratch after the hand-out:\n%s\nwant:\n%s", got, fresh)
			}
			if s := statusShort(t, w.Path()); s != "" {
				t.Errorf("status in the worktree: %q", s)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// scratchListing lists a scratch .git: each entry's path, mode and (for
// files but the index) content.
func scratchListing(t *testing.T, scratch string) string {
	t.Helper()
	var b bytes.Buffer
	err := filepath.WalkDir(scratch, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(scratch, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		b.WriteString(rel + " " + info.Mode().String())
		if d.Type().IsRegular() && rel != "index" {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.WriteString(" " + string(data))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestWorktreeMoveInProcessLeavesNothingBehind: moving a pooled worktree
// between two commits (a change, a deletion, an addition in a new
// directory) is done in-process, and leaves nothing beside the repository
// or in the process's working directory.
func TestWorktreeMoveInProcessLeavesNothingBehind(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "1\n", "gone.txt": "g\n"})
	ctx := t.Context()
	c1 := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "a.txt", "2\n")
	write(t, dir, "new/file.txt", "n\n")
	git(t, dir, "rm", "-q", "gone.txt")
	c2 := commitAll(t, dir, "second")
	w := mustWorktree(t, r, 0, c1)
	if _, err := w.Stage(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(ctx, c1); err != nil {
		t.Fatal(err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	before := listNames(t, cwd)
	procs := r.ncmd.Load()
	w = mustWorktree(t, r, 0, c2)
	defer w.Discard()
	if n := r.ncmd.Load() - procs; n != 0 {
		t.Errorf("the move ran %d git processes, want it in-process", n)
	}
	if read(t, w.Path(), "a.txt") != "2\n" || read(t, w.Path(), "new/file.txt") != "n\n" || exists(w.Path(), "gone.txt") {
		t.Error("the worktree is not at the second commit")
	}
	if s := statusShort(t, w.Path()); s != "" {
		t.Errorf("status in the worktree: %q", s)
	}
	if after := listNames(t, cwd); after != before {
		t.Errorf("the move left files in the working directory: %s", after)
	}
	for _, e := range listNamesSlice(t, r.LocalDir()) {
		if strings.HasPrefix(e, "switch-") || strings.HasPrefix(e, "lock-tmp-") {
			t.Errorf("left beside the repository: %s", e)
		}
	}
}

func listNamesSlice(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func listNames(t *testing.T, dir string) string {
	return strings.Join(listNamesSlice(t, dir), " ")
}
