package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// GenRepo creates a repository on branch main with n generated small files
// (100 per directory, under src/) plus the given extra files, all in one
// commit, and returns its path. Benchmarks use it for the 1k- and
// 100k-file repositories of docs/benchmarks.md.
func GenRepo(t testing.TB, n int, extra map[string]string) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	Git(t, dir, "init", "-q", "-b", "main")
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, "src", fmt.Sprintf("d%04d", i/100), fmt.Sprintf("f%06d.txt", i))
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(p, fmt.Appendf(nil, "generated file %d\n", i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range extra {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Git(t, dir, "add", "-A")
	Git(t, dir, "commit", "-q", "-m", "generated repository")
	return dir
}
