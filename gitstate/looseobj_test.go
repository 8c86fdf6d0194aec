package gitstate

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOverlayInProcessLikeGit: the trees written in-process are the ones
// git builds from the same overlay, byte for byte (the same ids), on every
// shape of change, and git fsck finds every object sound.
func TestOverlayInProcessLikeGit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{
		"a.txt": "a\n", "b/c.txt": "c\n", "b/d/e.txt": "e\n", "b/d/f.txt": "f\n", "only/one.txt": "1\n",
		"x-y": "name sorts before x/\n", "x/z": "z\n", "run.sh": "#!/bin/sh\n",
	})
	ctx := context.Background()
	git(t, dir, "update-index", "--chmod=+x", "run.sh")
	git(t, dir, "commit", "-q", "-m", "exec")
	head := git(t, dir, "rev-parse", "HEAD")
	blob := func(s string) string {
		id, err := r.HashObject(ctx, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSpace(gitStdin(t, dir, s, "hash-object", "--stdin")); id != want {
			t.Fatalf("blob %q: %s, git says %s", s, id, want)
		}
		return id
	}
	n1, n2 := blob("new\n"), blob("")
	tests := []struct {
		name  string
		files map[string]Blob
	}{
		{"change a file at the top", map[string]Blob{"a.txt": {Hash: n1}}},
		{"change a deep file", map[string]Blob{"b/d/e.txt": {Hash: n1, Mode: "100644"}}},
		{"add files in new directories", map[string]Blob{"n/m/o.txt": {Hash: n1}, "n/p": {Hash: n2}}},
		{"remove a file", map[string]Blob{"b/c.txt": {}}},
		{"remove the last file of a directory", map[string]Blob{"only/one.txt": {}}},
		{"remove what is not there", map[string]Blob{"nope/nothing": {}, "zz": {}}},
		{"a file where a directory was", map[string]Blob{"b": {Hash: n1}}},
		{"a directory where a file was", map[string]Blob{"a.txt/inner": {Hash: n1}}},
		{"sorting: x-y beside x/", map[string]Blob{"x/zz": {Hash: n1}, "x.": {Hash: n2}, "x0": {Hash: n2}}},
		{"modes", map[string]Blob{"run.sh": {Hash: n1, Mode: "100644"}, "tool": {Hash: n1, Mode: "100755"}, "link": {Hash: n2, Mode: "120000"}}},
		{"everything removed", map[string]Blob{"a.txt": {}, "b/c.txt": {}, "b/d/e.txt": {}, "b/d/f.txt": {}, "only/one.txt": {}, "x-y": {}, "x/z": {}, "run.sh": {}}},
		{"nothing", map[string]Blob{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := r.overlayInProcess(head, tt.files)
			if err != nil || !ok {
				t.Fatalf("in-process: %v, %v", ok, err)
			}
			want, err := r.overlayWithGit(ctx, head, tt.files)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("in-process tree %s, git's %s\n%s", got, want, git(t, dir, "ls-tree", "-r", got))
			}
		})
	}
	// What the in-process writer leaves to git still works, through git.
	for name, files := range map[string]map[string]Blob{
		"set and used as a directory": {"q": {Hash: n1}, "q/r": {Hash: n1}},
		"a gitlink mode":              {"sub": {Hash: head, Mode: "160000"}},
	} {
		_, _, _ = r.overlayInProcess(head, files)
		if _, err := r.OverlayTree(ctx, head, files); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := r.OverlayTree(ctx, head, map[string]Blob{"d/.git/config": {Hash: n1}}); err == nil {
		t.Error("a .git path was accepted")
	}
	if out := git(t, dir, "fsck", "--strict", "--no-dangling"); out != "" {
		t.Errorf("git fsck: %s", out)
	}
	// Loose objects are read-only, as git makes them, and no temporary
	// file is left behind.
	err := filepath.WalkDir(filepath.Join(dir, ".git", "objects"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.Contains(d.Name(), "tmp_obj_") {
			t.Errorf("left behind: %s", p)
		}
		if info, err := d.Info(); err == nil && len(filepath.Base(filepath.Dir(p))) == 2 && info.Mode().Perm()&0o222 != 0 {
			t.Errorf("%s is writable: %v", p, info.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// gitStdin runs git with stdin.
func gitStdin(t testing.TB, dir, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}
