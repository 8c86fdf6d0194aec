package gitstate

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain makes every git this package's tests run hermetic: no system or
// user configuration, a fixed identity. It also hosts the helper process
// that the lock tests start as a second codemachine.
func TestMain(m *testing.M) {
	if os.Getenv("GITSTATE_HELPER") == "poller" {
		os.Exit(pollerHelper())
	}
	home, err := os.MkdirTemp("", "gitstate-home-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, k := range []string{"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "XDG_CONFIG_HOME"} {
		os.Unsetenv(k)
	}
	for k, v := range map[string]string{
		"HOME":                home,
		"GIT_CONFIG_NOSYSTEM": "1",
		"GIT_CONFIG_GLOBAL":   filepath.Join(home, ".gitconfig"),
		"GIT_AUTHOR_NAME":     "Test Author",
		"GIT_AUTHOR_EMAIL":    "author@example.com",
		"GIT_COMMITTER_NAME":  "Test Committer",
		"GIT_COMMITTER_EMAIL": "committer@example.com",
		"GIT_AUTHOR_DATE":     "2026-01-02T03:04:05Z",
		"GIT_COMMITTER_DATE":  "2026-01-02T03:04:05Z",
	} {
		os.Setenv(k, v)
	}
	// No background gc or maintenance: a detached git gc writing into a
	// repository while the test removes it fails the cleanup.
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte("[gc]\n\tauto = 0\n[maintenance]\n\tauto = false\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	switch os.Getenv("GITSTATE_HELPER") {
	case "lock":
		os.Exit(lockHelper())
	case "kill-switch":
		os.Exit(killSwitchHelper())
	}
	code := m.Run()
	os.RemoveAll(home)
	os.Exit(code)
}

// lockHelper takes the repository lock of GITSTATE_REPO, says "locked" and
// holds it until its standard input closes (or it is killed).
func lockHelper() int {
	r, err := Open(os.Getenv("GITSTATE_REPO"))
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	l, err := r.Lock("helper run")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	l.Release()
	return 0
}

// git runs the git CLI for test setup and fails the test on error.
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimRight(string(out), "\n")
}

// gitFails runs git expecting failure and returns its output.
func gitFails(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("git %s succeeded, want failure\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

func write(t testing.TB, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t testing.TB, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func exists(dir, name string) bool {
	_, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(name)))
	return err == nil
}

// commitAll stages everything in dir and commits it, returning the commit.
func commitAll(t testing.TB, dir, msg string) string {
	t.Helper()
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "--allow-empty", "-m", msg)
	return git(t, dir, "rev-parse", "HEAD")
}

// newRepo makes a repository on branch main with one commit holding files,
// and opens it.
func newRepo(t testing.TB, files map[string]string) (string, *Repo) {
	t.Helper()
	dir := t.TempDir()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	git(t, dir, "init", "-q", "-b", "main")
	for name, content := range files {
		write(t, dir, name, content)
	}
	commitAll(t, dir, "initial")
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r.LockWait = 2 * time.Second
	return dir, r
}

// stepCommit builds a commit on base in a pooled-worktree-free way: base's
// tree with files replaced, as an agent's step would produce.
func stepCommit(t testing.TB, r *Repo, base string, files map[string]string, msg string) string {
	t.Helper()
	ctx := t.Context()
	blobs := map[string]Blob{}
	for name, content := range files {
		if content == "\x00delete" {
			blobs[name] = Blob{}
			continue
		}
		h, err := r.HashObject(ctx, []byte(content))
		if err != nil {
			t.Fatal(err)
		}
		blobs[name] = Blob{Hash: h}
	}
	tree, err := r.OverlayTree(ctx, base, blobs)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.CommitTree(ctx, CommitSpec{Tree: tree, Parents: []string{base}, Message: msg,
		Author: Signature{Name: "codemachine claude/opus", Email: "codemachine@localhost", When: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// statusShort is git status --short of dir, for comparing working trees.
func statusShort(t testing.TB, dir string) string {
	t.Helper()
	return git(t, dir, "status", "--short", "--untracked-files=all")
}

// sandboxed is the policy of the steps the tests hand worktrees to: a
// sandbox with no further writable path, the common case.
var sandboxed = Policy{Sandboxed: true}

// mustWorktree hands out the pooled worktree of slot at base to a
// sandboxed step, or fails the test.
func mustWorktree(t testing.TB, r *Repo, slot int, base string) *Worktree {
	t.Helper()
	w, err := r.Worktree(t.Context(), slot, base, sandboxed)
	if err != nil {
		t.Fatal(err)
	}
	return w
}
