package gitstate

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestUnmergedPathsAsGit compares the in-process scan with git ls-files
// --unmerged on indexes git wrote: clean, conflicted (both versions 2 and
// 3, with an intent-to-add entry for the extended flags), and version 4,
// which the scan leaves to git.
func TestUnmergedPathsAsGit(t *testing.T) {
	cases := []struct {
		name      string
		version   string
		conflict  bool
		intentAdd bool
		wantOK    bool
	}{
		{"clean v2", "2", false, false, true},
		{"conflicted v2", "2", true, false, true},
		{"conflicted v3 with intent-to-add", "3", true, true, true},
		{"clean v3 with intent-to-add", "3", false, true, true},
		{"conflicted v4", "4", true, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			git := func(args ...string) string {
				t.Helper()
				cmd := exec.Command("git", args...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
				out, _ := cmd.CombinedOutput()
				return string(out)
			}
			write := func(name, content string) {
				t.Helper()
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			git("init", "-q", "-b", "main")
			write("a.txt", "base\n")
			write("dir/b.txt", "base\n")
			write("z.txt", "base\n")
			git("add", "-A")
			git("commit", "-q", "-m", "base")
			if tc.conflict {
				git("checkout", "-q", "-b", "other")
				write("a.txt", "theirs\n")
				write("dir/b.txt", "theirs\n")
				git("commit", "-q", "-am", "theirs")
				git("checkout", "-q", "main")
				write("a.txt", "ours\n")
				write("dir/b.txt", "ours\n")
				git("commit", "-q", "-am", "ours")
				git("merge", "-q", "other")
			}
			if tc.intentAdd {
				write("new.txt", "new\n")
				git("add", "-N", "new.txt")
			}
			git("update-index", "--index-version", tc.version)
			paths, ok, err := unmergedPaths(filepath.Join(dir, ".git", "index"))
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				return
			}
			var want []string
			for _, rec := range strings.Split(git("ls-files", "--unmerged", "-z"), "\x00") {
				if _, p, found := strings.Cut(rec, "\t"); found && !slices.Contains(want, p) {
					want = append(want, p)
				}
			}
			if !slices.Equal(paths, want) {
				t.Fatalf("unmerged paths = %q, git lists %q", paths, want)
			}
			if tc.conflict && len(want) != 2 {
				t.Fatalf("git lists %q unmerged, want a.txt and dir/b.txt", want)
			}
		})
	}
}
