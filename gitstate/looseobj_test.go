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

// TestMergeDisjointLikeGit: where both sides changed different files, the
// in-process merge gives git merge-tree's tree; anything more is left to
// git (ok false).
func TestMergeDisjointLikeGit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "d/b.txt": "b\n", "d/e/c.txt": "c\n", "state.yaml": "seq: 1\n", "f": "f\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	side := func(name string, files map[string]string, remove ...string) string {
		t.Helper()
		git(t, dir, "checkout", "-q", "--detach", base)
		for p, c := range files {
			write(t, dir, p, c)
		}
		for _, p := range remove {
			git(t, dir, "rm", "-q", "-r", p)
		}
		git(t, dir, "add", "-A")
		git(t, dir, "commit", "-q", "--allow-empty", "-m", name)
		return git(t, dir, "rev-parse", "HEAD")
	}
	tests := []struct {
		name         string
		ours, theirs map[string]string
		oursRm       []string
		replaced     []string
		ok           bool
	}{
		{name: "different files", ours: map[string]string{"a.txt": "A\n"}, theirs: map[string]string{"d/b.txt": "B\n"}, ok: true},
		{name: "new files in new and old directories", ours: map[string]string{"d/new1": "1\n", "x/y/z": "z\n"}, theirs: map[string]string{"d/e/new2": "2\n", "w/v": "v\n"}, ok: true},
		{name: "both change state.yaml, replaced", ours: map[string]string{"state.yaml": "seq: 2\n", "a.txt": "A\n"}, theirs: map[string]string{"state.yaml": "seq: 3\n", "d/new": "n\n"}, replaced: []string{"state.yaml"}, ok: true},
		{name: "nothing on their side", ours: map[string]string{"a.txt": "A\n"}, theirs: map[string]string{}, ok: true},
		{name: "the same file", ours: map[string]string{"a.txt": "A\n"}, theirs: map[string]string{"a.txt": "AA\n"}},
		{name: "both change state.yaml, not replaced", ours: map[string]string{"state.yaml": "seq: 2\n"}, theirs: map[string]string{"state.yaml": "seq: 3\n"}},
		{name: "a file under one the other added", ours: map[string]string{"g": "G\n"}, theirs: map[string]string{"g/under": "u\n"}},
		{name: "a file where the other added a directory", ours: map[string]string{"h/in": "i\n"}, theirs: map[string]string{"h": "H\n"}},
		{name: "ours deletes", ours: map[string]string{}, oursRm: []string{"d/e"}, theirs: map[string]string{"d/e/new": "n\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ours := side("ours", tt.ours, tt.oursRm...)
			theirs := side("theirs", tt.theirs)
			got, ok, err := r.mergeDisjoint(base, ours, theirs, tt.replaced)
			if err != nil || ok != tt.ok {
				t.Fatalf("mergeDisjoint: ok %v, %v; want ok %v", ok, err, tt.ok)
			}
			if !ok {
				return
			}
			want, conflicts, err := r.mergeCommits(context.Background(), ours, theirs)
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.replaced) > 0 {
				// git merges the replaced file (or conflicts on it); the
				// in-process merge keeps ours': compare the rest.
				strip := func(tree string) string {
					id, err := r.OverlayTree(context.Background(), tree, map[string]Blob{"state.yaml": {}})
					if err != nil {
						t.Fatal(err)
					}
					return id
				}
				if data, _ := r.ReadFile(got, "state.yaml"); string(data) != tt.ours["state.yaml"] {
					t.Errorf("state.yaml = %q, want ours", data)
				}
				got, want, conflicts = strip(got), strip(want), without(conflicts, tt.replaced)
			}
			if len(conflicts) > 0 || got != want {
				t.Errorf("in-process %s, git merge-tree %s (conflicts %v)", got, want, conflicts)
			}
		})
	}
	if out := git(t, dir, "fsck", "--strict", "--no-dangling"); out != "" {
		t.Errorf("git fsck: %s", out)
	}
}

// TestWriteObjectAfterPrune: a gc that prunes the object's empty
// objects/xx/ directory between its creation and the temporary file does
// not fail the write: the directory is made again.
func TestWriteObjectAfterPrune(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	pruned, made := 0, 0
	r.testHook = func(stage string) {
		if stage == "object-dir-made" {
			made++
		}
		if stage == "object-dir-made" && pruned < 2 {
			pruned++
			ents, _ := os.ReadDir(filepath.Join(dir, ".git", "objects"))
			for _, e := range ents {
				if len(e.Name()) == 2 {
					_ = os.Remove(filepath.Join(dir, ".git", "objects", e.Name())) // the empty one only
				}
			}
		}
	}
	id, err := r.writeObject("blob", []byte("written while a gc prunes\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pruned != 2 || made != 3 {
		t.Fatalf("pruned %d times, directory made %d times; want 2 and 3", pruned, made)
	}
	if got := git(t, dir, "cat-file", "-p", id); got != "written while a gc prunes" {
		t.Errorf("object content %q", got)
	}
}
