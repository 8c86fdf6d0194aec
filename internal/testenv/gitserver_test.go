package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeGit clones a bare repository served by ServeGit.
func TestServeGit(t *testing.T) {
	root := t.TempDir()
	git := func(dir string, args ...string) string { return Git(t, dir, args...) }
	src := filepath.Join(root, "src")
	git(root, "init", "-q", "-b", "main", src)
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(src, "add", "f")
	git(src, "commit", "-qm", "one")
	want := git(src, "rev-parse", "HEAD")
	git(root, "clone", "-q", "--bare", src, filepath.Join(root, "served", "r.git"))

	s, err := ServeGit(filepath.Join(root, "served"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := git(root, "ls-remote", s.URL+"/r.git", "refs/heads/main")
	if !strings.HasPrefix(got, want) {
		t.Fatalf("ls-remote = %q, want %s", got, want)
	}
}
