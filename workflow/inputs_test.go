package workflow

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// gitRepo makes a repository in a temp dir with a hermetic git
// environment and returns its path and a function running git in it.
func gitRepo(t *testing.T) (string, func(args ...string) string) {
	t.Helper()
	dir, home := t.TempDir(), t.TempDir()
	env := append(os.Environ(),
		"HOME="+home,
		"XDG_CONFIG_HOME="+home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+filepath.Join(home, ".gitconfig"),
		"GIT_AUTHOR_NAME=Test Author",
		"GIT_AUTHOR_EMAIL=author@example.com",
		"GIT_AUTHOR_DATE=2026-01-02T03:04:05Z",
		"GIT_COMMITTER_NAME=Test Committer",
		"GIT_COMMITTER_EMAIL=committer@example.com",
		"GIT_COMMITTER_DATE=2026-01-02T03:04:05Z",
		"LC_ALL=C",
	)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("init", "-q", "-b", "main")
	return dir, run
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// lsFiles returns git's blob id of every tracked file.
func lsFiles(t *testing.T, git func(...string) string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for line := range strings.Lines(git("ls-files", "-s")) {
		// <mode> <hash> <stage>\t<path>
		meta, path, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
		out[path] = strings.Fields(meta)[1]
	}
	return out
}

// TestResolveInputsMatchesGit checks paths and hashes against git itself.
func TestResolveInputsMatchesGit(t *testing.T) {
	dir, git := gitRepo(t)
	writeFiles(t, dir, map[string]string{
		".codemachine/spec.md":       "# Spec\n",
		".codemachine/workflow.yaml": "version: 1\n",
		"src/main.go":                "package main\n",
		"src/pkg/a.go":               "package pkg\n",
		"src/pkg/a_test.go":          "package pkg\n",
		"docs/guide/intro.md":        "intro",
		"docs/index.md":              "",
		"data/blob.bin":              "\x00\x01\x02binary\xff",
		"README.md":                  "readme\r\nwith CRLF\r\n",
	})
	if err := os.Symlink("src", filepath.Join(dir, "srclink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("README.md", filepath.Join(dir, "readme-link")); err != nil {
		t.Fatal(err)
	}
	git("add", "-A")
	git("commit", "-q", "-m", "files")
	tracked := lsFiles(t, git)

	tests := []struct {
		name     string
		patterns []string
		want     []string
	}{
		{"one file", []string{".codemachine/spec.md"}, []string{".codemachine/spec.md"}},
		{"missing file", []string{"nope.md"}, nil},
		{"glob", []string{"src/**/*.go"}, []string{"src/main.go", "src/pkg/a.go", "src/pkg/a_test.go"}},
		{"directory", []string{"docs"}, []string{"docs/guide/intro.md", "docs/index.md"}},
		{"duplicates and order", []string{"src/pkg/a.go", "src/*/a*.go", "./src/pkg/a.go"}, []string{"src/pkg/a.go", "src/pkg/a_test.go"}},
		{"binary and CRLF", []string{"data/*.bin", "README.md"}, []string{"README.md", "data/blob.bin"}},
		{"symlinks are files", []string{"*link"}, []string{"readme-link", "srclink"}},
		{"everything, never .git", []string{"**"}, nil},
	}
	fsys := os.DirFS(dir)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveInputs(fsys, tt.patterns)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if tt.patterns[0] == "**" {
				for p := range tracked {
					want = append(want, p)
				}
			}
			var paths []string
			for _, f := range got {
				paths = append(paths, f.Path)
				if f.Hash != tracked[f.Path] {
					t.Errorf("%s: hash %s, git says %s", f.Path, f.Hash, tracked[f.Path])
				}
			}
			if strings.Join(paths, ",") != strings.Join(slices.Sorted(slices.Values(want)), ",") {
				t.Errorf("paths:\n got %v\nwant %v", paths, slices.Sorted(slices.Values(want)))
			}
		})
	}
}

// hashingFS is a file system that knows blob ids, like a commit tree.
type hashingFS struct {
	fstest.MapFS
	asked []string
}

func (h *hashingFS) BlobHash(name string) (string, error) {
	h.asked = append(h.asked, name)
	if name == "broken" {
		return "", errors.New("corrupt object")
	}
	return "blob-of-" + name, nil
}

func TestResolveInputsBlobHasher(t *testing.T) {
	h := &hashingFS{MapFS: fstest.MapFS{"a.txt": {Data: []byte("a")}, "b/c.txt": {Data: []byte("c")}, "broken": {}}}
	got, err := ResolveInputs(h, []string{"**/*.txt"})
	if err != nil {
		t.Fatal(err)
	}
	want := []InputFile{{"a.txt", "blob-of-a.txt"}, {"b/c.txt", "blob-of-b/c.txt"}}
	if !jsonEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := ResolveInputs(h, []string{"broken"}); err == nil || !strings.Contains(err.Error(), "corrupt object") {
		t.Errorf("BlobHash error not passed on: %v", err)
	}
}

// treeFS is a MapFS that lists files and knows directory tree ids, like a
// commit's tree does.
type treeFS struct{ fstest.MapFS }

func (t treeFS) ListFiles(name string, fn func(path, hash string)) error {
	return fs.WalkDir(t.MapFS, name, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fn(p, "blob-of-"+p)
		}
		return err
	})
}

func (t treeFS) TreeHash(name string) (string, error) {
	st, err := fs.Stat(t.MapFS, name)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", errors.New("not a directory")
	}
	return "tree-of-" + name, nil
}

func TestResolveInputsListerAndTrees(t *testing.T) {
	fsys := treeFS{fstest.MapFS{
		"src/a.go": {Data: []byte("a")}, "src/sub/b.go": {Data: []byte("b")},
		"docs/x.md": {Data: []byte("x")}, "README": {Data: []byte("r")}, ".git/config": {Data: []byte("c")},
	}}
	tests := []struct {
		patterns []string
		want     []InputFile
	}{
		// A whole directory is its tree id, however it is written.
		{[]string{"src/**"}, []InputFile{{"src/", "tree:tree-of-src"}}},
		{[]string{"src"}, []InputFile{{"src/", "tree:tree-of-src"}}},
		// Other globs and files are listed.
		{[]string{"src/**/*.go", "README"}, []InputFile{{"README", "blob-of-README"}, {"src/a.go", "blob-of-src/a.go"}, {"src/sub/b.go", "blob-of-src/sub/b.go"}}},
		{[]string{"**/*.md"}, []InputFile{{"docs/x.md", "blob-of-docs/x.md"}}},
		// Missing inputs contribute nothing; .git is never an input.
		{[]string{"nope/**", "nope.txt", "**/config"}, []InputFile{}},
	}
	for _, tt := range tests {
		got, err := ResolveInputs(fsys, tt.patterns)
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(got, tt.want) {
			t.Errorf("ResolveInputs(%v) = %v, want %v", tt.patterns, got, tt.want)
		}
	}
}

func TestResolveInputsErrors(t *testing.T) {
	fsys := fstest.MapFS{"a": {Data: []byte("a")}}
	for _, pattern := range []string{"[", "../x", "/abs", ".git/config", ""} {
		if _, err := ResolveInputs(fsys, []string{pattern}); err == nil {
			t.Errorf("ResolveInputs(%q): no error", pattern)
		}
	}
}

// countingFS counts ReadDir calls, to check that only the static prefix
// of a pattern is walked.
type countingFS struct {
	fstest.MapFS
	dirs []string
}

func (c *countingFS) ReadDir(name string) ([]fs.DirEntry, error) {
	c.dirs = append(c.dirs, name)
	return c.MapFS.ReadDir(name)
}

func TestResolveInputsWalksOnlyThePrefix(t *testing.T) {
	c := &countingFS{MapFS: fstest.MapFS{
		"big/1/x.go":         {},
		"big/2/y.go":         {},
		"src/pkg/a.go":       {},
		".codemachine/x.md":  {},
		".git/objects/ab/cd": {},
	}}
	got, err := ResolveInputs(c, []string{"src/**/*.go", ".codemachine/x.md"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("got %v", got)
	}
	for _, d := range c.dirs {
		if d == "." || strings.HasPrefix(d, "big") || strings.HasPrefix(d, ".git") {
			t.Errorf("walked %q", d)
		}
	}
	c.dirs = nil
	if _, err := ResolveInputs(c, []string{"**/cd"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range c.dirs {
		if strings.HasPrefix(d, ".git") {
			t.Errorf("walked %q", d)
		}
	}
}

func TestBlobID(t *testing.T) {
	// git hash-object of "hello\n" and of the empty file.
	if got := BlobID([]byte("hello\n")); got != "ce013625030ba8dba906f756967f9e9ca394464a" {
		t.Errorf("BlobID(hello) = %s", got)
	}
	if got := BlobID(nil); got != "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391" {
		t.Errorf("BlobID(empty) = %s", got)
	}
}

func TestCacheFS(t *testing.T) {
	inner := &hashingFS{MapFS: fstest.MapFS{"a.txt": {Data: []byte("a")}, "d/b.txt": {Data: []byte("b")}}}
	cached := CacheFS(inner)
	for range 3 {
		got, err := ResolveInputs(cached, []string{"**/*.txt"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[1].Hash != "blob-of-d/b.txt" {
			t.Fatalf("got %v", got)
		}
	}
	if len(inner.asked) != 2 {
		t.Errorf("inner hasher asked %d times, want once per file: %v", len(inner.asked), inner.asked)
	}
	plain := fstest.MapFS{"a.txt": {Data: []byte("hello\n")}}
	got, err := ResolveInputs(CacheFS(plain), []string{"a.txt"})
	if err != nil || got[0].Hash != BlobID([]byte("hello\n")) {
		t.Errorf("got %v, %v", got, err)
	}
}

func TestMatchesInputs(t *testing.T) {
	patterns := []string{"docs", "src/**/*.go", "VERSION", "./notes/"}
	for _, tt := range []struct {
		path string
		want bool
	}{
		{"docs/a.md", true}, {"docs", true}, {"docsx/a.md", false},
		{"src/a.go", true}, {"src/x/y/b.go", true}, {"src/a.txt", false},
		{"VERSION", true}, {"VERSION.txt", false}, {"notes/n.md", true}, {"other", false},
	} {
		if got := MatchesInputs(patterns, tt.path); got != tt.want {
			t.Errorf("MatchesInputs(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
