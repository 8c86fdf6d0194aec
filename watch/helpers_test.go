package watch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/internal/testenv"
)

// newRepo creates a repository on main whose second commit holds files,
// with git pointed at an empty HOME with a fixed identity (t.Setenv: the
// test cannot be parallel).
func newRepo(t testing.TB, files map[string]string) string {
	t.Helper()
	for _, kv := range testenv.GitEnv(t.TempDir()) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	dir, err := filepath.EvalSymlinks(testenv.GitRepo(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, dir, "add", "-A")
	testenv.Git(t, dir, "commit", "-q", "-m", "workflow")
	return dir
}
