package gitstate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// revParse is what Open asks git when discoverFast does not answer.
func revParse(t *testing.T, dir string) (root, gitDir, commonDir string) {
	t.Helper()
	out := git(t, dir, "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-dir", "--git-common-dir")
	l := strings.Split(out, "\n")
	if len(l) != 3 {
		t.Fatalf("rev-parse: %q", out)
	}
	return l[0], l[1], l[2]
}

func TestDiscoverFastMatchesGit(t *testing.T) {
	dir, _ := newRepo(t, map[string]string{"sub/deeper/a": "1\n"})
	wt := filepath.Join(t.TempDir(), "wt")
	git(t, dir, "worktree", "add", "-q", "-b", "side", wt)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Join(dir, "sub"), filepath.Join(dir, "sub", "deeper"), wt, filepath.Join(wt, "sub"), filepath.Join(link, "sub")} {
		root, gitDir, commonDir, ok := discoverFast(d)
		if !ok {
			t.Errorf("%s: not discovered", d)
			continue
		}
		wr, wg, wc := revParse(t, d)
		if root != wr || gitDir != wg || commonDir != wc {
			t.Errorf("%s: got %s %s %s, git says %s %s %s", d, root, gitDir, commonDir, wr, wg, wc)
		}
		r, err := Open(d)
		if err != nil || r.Processes() != 0 {
			t.Errorf("%s: Open: %v, %d git processes", d, err, r.Processes())
		}
	}
}

// Where git could answer otherwise, git answers.
func TestDiscoverFastLeavesUnusualCasesToGit(t *testing.T) {
	dir, _ := newRepo(t, map[string]string{"a": "1\n"})
	bare := filepath.Join(t.TempDir(), "bare.git")
	git(t, dir, "clone", "-q", "--bare", dir, bare)
	for name, d := range map[string]string{
		"inside .git":   filepath.Join(dir, ".git", "refs"),
		"bare":          bare,
		"no repository": t.TempDir(),
	} {
		if _, _, _, ok := discoverFast(d); ok {
			t.Errorf("%s: discovered in-process", name)
		}
		if _, err := Open(d); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	t.Setenv("GIT_DIR", filepath.Join(dir, ".git"))
	if _, _, _, ok := discoverFast(dir); ok {
		t.Error("GIT_DIR set: discovered in-process")
	}
	os.Unsetenv("GIT_DIR")
	other := t.TempDir()
	git(t, dir, "config", "core.worktree", other)
	if _, _, _, ok := discoverFast(dir); ok {
		t.Error("core.worktree set: discovered in-process")
	}
	r, err := Open(dir)
	if err != nil || r.Root() != git(t, dir, "rev-parse", "--show-toplevel") {
		t.Fatalf("core.worktree: Open: %v", err)
	}
}
