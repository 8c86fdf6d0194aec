package gitstate

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// modeCommit is base's tree with files replaced, each given as mode and
// content ("" mode deletes), committed on base.
func modeCommit(t *testing.T, r *Repo, base string, files map[string][2]string) string {
	t.Helper()
	ctx := t.Context()
	blobs := map[string]Blob{}
	for name, mc := range files {
		if mc[0] == "" {
			blobs[name] = Blob{}
			continue
		}
		h, err := r.HashObject(ctx, []byte(mc[1]))
		if err != nil {
			t.Fatal(err)
		}
		blobs[name] = Blob{Hash: h, Mode: mc[0]}
	}
	tree, err := r.OverlayTree(ctx, base, blobs)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.CommitTree(ctx, CommitSpec{Tree: tree, Parents: []string{base}, Message: "step",
		Author: Signature{Name: "codemachine", Email: "codemachine@localhost", When: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSwitchInProcess: a landing whose changes the in-process check can
// vouch for starts no git process, and leaves the user's index, files and
// their own changes exactly as git's two-tree read-tree would: the index
// is the new commit plus the user's staged change (its cache tree included:
// write-tree agrees), the stat data says the files are clean, and the
// user's unstaged and untracked files are untouched.
func TestSwitchInProcess(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "sub/b.txt": "b\n", "sub/deep/c.txt": "c\n",
		"gone/only.txt": "g\n", "staged.txt": "s\n", "edited.txt": "e\n", "other/x.txt": "x\n"})
	warmUp(t, r)
	base := git(t, dir, "rev-parse", "HEAD")
	c := modeCommit(t, r, base, map[string][2]string{
		"a.txt":          {"100644", "step\n"},
		"sub/deep/c.txt": {"100644", "step c\n"},
		"new/dir/n.txt":  {"100644", "n\n"},
		"run.sh":         {"100755", "#!/bin/sh\necho hi\n"},
		"link":           {"120000", "a.txt"},
		"gone/only.txt":  {"", ""},
	})
	write(t, dir, "staged.txt", "the user's staged change\n")
	git(t, dir, "add", "staged.txt")
	write(t, dir, "edited.txt", "the user's unstaged change\n")
	write(t, dir, "untracked.txt", "u\n")
	before := r.ncmd.Load()
	if _, err := r.Land(t.Context(), "main", base, c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := r.ncmd.Load() - before; n != 0 {
		t.Errorf("the landing started %d git processes, want none", n)
	}
	if got, want := statusShort(t, dir), " M edited.txt\nM  staged.txt\n?? untracked.txt"; got != want {
		t.Errorf("status:\n%s\nwant:\n%s", got, want)
	}
	if got := git(t, dir, "diff-files", "--name-only"); got != "edited.txt" {
		t.Errorf("files that differ from the index by stat data or content: %q", got)
	}
	if read(t, dir, "run.sh") != "#!/bin/sh\necho hi\n" || read(t, dir, "sub/deep/c.txt") != "step c\n" || read(t, dir, "new/dir/n.txt") != "n\n" {
		t.Error("content wrong")
	}
	if st, err := os.Stat(filepath.Join(dir, "run.sh")); err != nil || st.Mode()&0o100 == 0 {
		t.Errorf("run.sh is not executable: %v %v", st, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "link")); err != nil || target != "a.txt" {
		t.Errorf("link: %q %v", target, err)
	}
	if exists(dir, "gone") {
		t.Error("the emptied directory is still there")
	}
	// The cache tree: write-tree takes untouched directories from it.
	tmp := filepath.Join(t.TempDir(), "index")
	env := "GIT_INDEX_FILE=" + tmp
	gitEnv(t, dir, env, "read-tree", c)
	gitEnv(t, dir, env, "update-index", "--add", "--cacheinfo", "100644,"+git(t, dir, "rev-parse", ":staged.txt")+",staged.txt")
	if got, want := git(t, dir, "write-tree"), gitEnv(t, dir, env, "write-tree"); got != want {
		t.Errorf("write-tree of the landed index = %s, want %s", got, want)
	}
	git(t, dir, "fsck", "--no-progress", "--strict")
	if left, _ := filepath.Glob(filepath.Join(r.LocalDir(), "switch-*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestSwitchInProcessDefersToGit: whatever the in-process check cannot
// vouch for goes to git, which decides as before: the user's change in the
// way is never overwritten, and an unusual configuration still lands.
func TestSwitchInProcessDefersToGit(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T, dir string)
		conflict  bool
		wantGit   bool
		userFiles map[string]string // files that must keep the user's content
	}{
		{"unstaged edit of a changed file", func(t *testing.T, dir string) {
			write(t, dir, "a.txt", "the user's edit\n")
		}, true, true, map[string]string{"a.txt": "the user's edit\n"}},
		{"staged edit of a changed file", func(t *testing.T, dir string) {
			write(t, dir, "a.txt", "the user's staged edit\n")
			git(t, dir, "add", "a.txt")
		}, true, true, map[string]string{"a.txt": "the user's staged edit\n"}},
		{"untracked file where one is added", func(t *testing.T, dir string) {
			write(t, dir, "new.txt", "the user's own new file\n")
		}, true, true, map[string]string{"new.txt": "the user's own new file\n"}},
		{"a converting attribute", func(t *testing.T, dir string) {
			write(t, dir, ".gitattributes", "*.txt text eol=crlf\n")
		}, false, true, nil},
		{"a configuration the check does not read", func(t *testing.T, dir string) {
			git(t, dir, "config", "core.bigFileThreshold", "100m")
		}, false, true, nil},
		{"racily clean, same content", func(t *testing.T, dir string) {
			// Rewritten with the same bytes and added at once: the entry is
			// as new as the index, so its content is compared.
			write(t, dir, "a.txt", "a\n")
			git(t, dir, "add", "a.txt")
		}, false, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "keep.txt": "k\n"})
			warmUp(t, r)
			base := git(t, dir, "rev-parse", "HEAD")
			c := modeCommit(t, r, base, map[string][2]string{"a.txt": {"100644", "step\n"}, "new.txt": {"100644", "n\n"}})
			tt.setup(t, dir)
			before := r.ncmd.Load()
			_, err := r.Land(t.Context(), "main", base, c, LandOptions{})
			var ce *ConflictError
			if got := errors.As(err, &ce); got != tt.conflict {
				t.Fatalf("Land: %v, conflict %v, want %v", err, got, tt.conflict)
			}
			if !tt.conflict && err != nil {
				t.Fatal(err)
			}
			if ran := r.ncmd.Load() > before; ran != tt.wantGit {
				t.Errorf("git processes ran: %v, want %v", ran, tt.wantGit)
			}
			for name, content := range tt.userFiles {
				if read(t, dir, name) != content {
					t.Errorf("%s: the user's content is lost", name)
				}
			}
			if !tt.conflict && (read(t, dir, "a.txt") != "step\n" || read(t, dir, "new.txt") != "n\n") {
				t.Error("not landed")
			}
			if st := statusShort(t, dir); !tt.conflict && strings.Contains(st, "a.txt") {
				t.Errorf("status after landing:\n%s", st)
			}
		})
	}
}

// gitEnv is git with one more environment variable.
func gitEnv(t *testing.T, dir, env string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimRight(string(out), "\n")
}

// warmUp lands one step, so that what a Repo reads once (its
// configuration, the committer) is not counted as the landing's.
func warmUp(t *testing.T, r *Repo) {
	t.Helper()
	base, err := r.ResolveRev("HEAD")
	if err != nil {
		t.Fatal(err)
	}
	c := modeCommit(t, r, base, map[string][2]string{"warm-up.txt": {"100644", "w\n"}})
	if _, err := r.Land(t.Context(), "main", base, c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestSyncsLooseObjects: loose objects are synced when git's own
// configuration would sync them, and not by default (as git).
func TestSyncsLooseObjects(t *testing.T) {
	tests := []struct {
		values map[string]string
		want   bool
	}{
		{map[string]string{}, false},
		{map[string]string{"core.fsyncobjectfiles": "true"}, true},
		{map[string]string{"core.fsyncobjectfiles": "false"}, false},
		{map[string]string{"core.fsync": "default"}, false},
		{map[string]string{"core.fsync": "loose-object"}, true},
		{map[string]string{"core.fsync": "committed"}, true},
		{map[string]string{"core.fsync": "all,-loose-object"}, false},
		{map[string]string{"core.fsync": "none"}, false},
		{map[string]string{"core.fsync": "index, objects"}, true},
	}
	for _, tt := range tests {
		if got := (&fastConfig{values: tt.values}).syncsLooseObjects(); got != tt.want {
			t.Errorf("%v: %v, want %v", tt.values, got, tt.want)
		}
	}
}

// TestSyncsReferences: the durable files under LocalDir (journals, holds)
// are synced when git would sync a ref, and not by default (as git).
func TestSyncsReferences(t *testing.T) {
	tests := []struct {
		fsync string
		want  bool
	}{
		{"", false},
		{"default", false},
		{"loose-object,index", false},
		{"reference", true},
		{"committed", true},
		{"added", true},
		{"all", true},
		{"all,-reference", false},
		{"committed,none", false},
		{"Reference", true},
	}
	for _, tt := range tests {
		values := map[string]string{}
		if tt.fsync != "" {
			values["core.fsync"] = tt.fsync
		}
		if got := (&fastConfig{values: values}).syncsReferences(); got != tt.want {
			t.Errorf("core.fsync=%q: %v, want %v", tt.fsync, got, tt.want)
		}
	}
}

// TestSwitchInProcessNeverWritesThroughALink: a directory of an added path
// that is a symbolic link in the user's working tree (to somewhere outside
// it) is never written through by the in-process switch: git decides, and
// nothing appears where the link points.
func TestSwitchInProcessNeverWritesThroughALink(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	warmUp(t, r)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	base := git(t, dir, "rev-parse", "HEAD")
	c := modeCommit(t, r, base, map[string][2]string{"out/file.txt": {"100644", "step\n"}})
	before := r.ncmd.Load()
	_, _ = r.Land(t.Context(), "main", base, c, LandOptions{}) // git decides whether it lands
	if r.ncmd.Load() == before {
		t.Error("the in-process switch went ahead over a linked directory")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written through the link: %v", ents)
	}
}
