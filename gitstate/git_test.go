package gitstate

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpen(t *testing.T) {
	dir, _ := newRepo(t, map[string]string{"sub/a.txt": "a"})
	wt := filepath.Join(t.TempDir(), "linked")
	git(t, dir, "worktree", "add", "-q", "--detach", wt)
	wt, _ = filepath.EvalSymlinks(wt)
	bare := t.TempDir()
	git(t, bare, "init", "-q", "--bare")
	plain := t.TempDir()

	tests := []struct {
		name                   string
		dir                    string
		root, gitDir, common   string
		wantNotRepo, wantError bool
		wantSays               string // what the not-a-repository error says
	}{
		{name: "root", dir: dir, root: dir, gitDir: dir + "/.git", common: dir + "/.git"},
		{name: "subdirectory", dir: dir + "/sub", root: dir, gitDir: dir + "/.git", common: dir + "/.git"},
		{name: "linked worktree", dir: wt, root: wt, gitDir: dir + "/.git/worktrees/linked", common: dir + "/.git"},
		{name: "not a repository", dir: plain, wantNotRepo: true, wantSays: "not a git repository"},
		{name: "bare repository", dir: bare, wantNotRepo: true, wantSays: "without a working tree (a bare repository"},
		{name: "inside .git", dir: dir + "/.git", wantNotRepo: true, wantSays: "without a working tree"},
		{name: "missing directory", dir: dir + "/nope", wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Open(tt.dir)
			switch {
			case tt.wantNotRepo:
				if !errors.Is(err, ErrNotRepo) || !strings.Contains(err.Error(), tt.dir) || !strings.Contains(err.Error(), tt.wantSays) {
					t.Fatalf("Open = %v, want ErrNotRepo naming the dir and saying %q", err, tt.wantSays)
				}
				return
			case tt.wantError:
				if err == nil {
					t.Fatal("Open succeeded")
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if r.Root() != tt.root || r.GitDir() != tt.gitDir || r.CommonDir() != tt.common {
				t.Errorf("got root=%s gitdir=%s common=%s", r.Root(), r.GitDir(), r.CommonDir())
			}
			if want := tt.common + "/codemachine"; r.LocalDir() != want {
				t.Errorf("LocalDir = %s, want %s", r.LocalDir(), want)
			}
			if st, err := os.Stat(r.LocalDir()); err != nil || !st.IsDir() {
				t.Errorf("LocalDir not created: %v", err)
			}
		})
	}
}

func TestGitErrorIsOneLine(t *testing.T) {
	_, r := newRepo(t, map[string]string{"a": "a"})
	_, err := r.git(t.Context(), "-c", "x.y=z", "checkout", "no-such-branch")
	var ge *GitError
	if !errors.As(err, &ge) || ge.ExitCode == 0 {
		t.Fatalf("err = %#v, want *GitError", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "git checkout: ") || strings.Contains(msg, "error: ") {
		t.Errorf("error %q is not one clean line", msg)
	}
}

func TestFirstLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"fatal: bad revision 'x'\n", "bad revision 'x'"},
		{"warning: something\nerror: the real problem\nhint: do this\n", "the real problem"},
		{"hint: a\nplain message\n", "plain message"},
		{"", "failed"},
		{"remote: error: cannot lock ref 'refs/heads/a/b': 'refs/heads/a' exists        \nTo ../r.git\n ! [remote rejected] a/b -> a/b (failed to update ref)\nerror: failed to push some refs to '../r.git'\n",
			"remote: cannot lock ref 'refs/heads/a/b': 'refs/heads/a' exists"},
	}
	for _, tt := range tests {
		if got := firstLine(tt.in); got != tt.want {
			t.Errorf("firstLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLockPath(t *testing.T) {
	tests := []struct{ stderr, want string }{
		{"fatal: Unable to create '/r/.git/index.lock': File exists.\n\nAnother git process...", "/r/.git/index.lock"},
		{"fatal: update_ref failed for ref 'refs/heads/main': cannot lock ref 'refs/heads/main': Unable to create '/r/.git/refs/heads/main.lock': File exists.", "/r/.git/refs/heads/main.lock"},
		{"error: could not lock config file .git/config: File exists", ".git/config.lock"},
		{"fatal: cannot lock ref 'refs/heads/main': is at 1111 but expected 2222", ""},
	}
	for _, tt := range tests {
		if got := lockPath(tt.stderr); got != tt.want {
			t.Errorf("lockPath(%q) = %q, want %q", tt.stderr, got, tt.want)
		}
	}
}

func TestWriterBacksOffWhileIndexLocked(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "a"})
	lock := filepath.Join(dir, ".git", "index.lock")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(150 * time.Millisecond)
		os.Remove(lock)
	}()
	write(t, dir, "b", "b")
	start := time.Now()
	if _, err := r.git(t.Context(), "add", "b"); err != nil {
		t.Fatalf("add while the lock was briefly held: %v", err)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Errorf("add returned after %v, before the lock was released", time.Since(start))
	}
	if got := git(t, dir, "diff", "--cached", "--name-only"); got != "b" {
		t.Errorf("staged %q, want b", got)
	}
}

func TestWriterGivesUpOnAHeldLock(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "a"})
	r.LockWait = 200 * time.Millisecond
	lock := filepath.Join(dir, ".git", "index.lock")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "b", "b")
	_, err := r.git(t.Context(), "add", "b")
	var le *LockHeldError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v, want *LockHeldError", err)
	}
	if want := "git add: .git/index.lock is held by another process"; !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q, want one line starting %q", err, want)
	}
	if !exists(dir, ".git/index.lock") {
		t.Error("the lock of another process was removed")
	}
	// Reads do not take the lock and keep working.
	if _, err := r.Status(t.Context(), true); err != nil {
		t.Errorf("status while the index is locked: %v", err)
	}
}

func TestReadRunsWithoutOptionalLocks(t *testing.T) {
	_, r := newRepo(t, map[string]string{"a": "a"})
	out, err := r.read(t.Context(), "var", "GIT_COMMITTER_IDENT")
	if err != nil || out == "" {
		t.Fatalf("git var: %q %v", out, err)
	}
	env, err := r.read(t.Context(), "-c", "alias.env=!env", "env")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GIT_OPTIONAL_LOCKS=0", "LC_ALL=C", "GIT_TERMINAL_PROMPT=0"} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("environment lacks %s", want)
		}
	}
}

func TestCancelledCommand(t *testing.T) {
	_, r := newRepo(t, map[string]string{"a": "a"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.git(ctx, "add", "-A"); !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "git add: ") {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// TestSHA256RepositoryRefused: go-git reads SHA-1 repositories only; in a
// SHA-256 one every read says so, instead of finding no object.
func TestSHA256RepositoryRefused(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("git", "init", "-q", "--object-format=sha256", dir).CombinedOutput(); err != nil {
		t.Skipf("git has no SHA-256: %v\n%s", err, out)
	}
	write(t, dir, "f.txt", "f\n")
	commitAll(t, dir, "one")
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadFile("HEAD", "f.txt"); !errors.Is(err, ErrObjectFormat) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("ReadFile in a SHA-256 repository: %v, want ErrObjectFormat naming sha256", err)
	}
	// The setting's name in another case (git reads names so) is seen too:
	// the config's parse is skipped only where the name is absent.
	cfg := filepath.Join(dir, ".git", "config")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mixed := strings.Replace(strings.Replace(string(data), "objectformat", "objectFormat", 1), "[extensions]", "[Extensions]", 1)
	if mixed == string(data) || !strings.Contains(mixed, "[Extensions]") {
		t.Fatalf("the config does not spell [extensions] objectformat as this test expects:\n%s", data)
	}
	if err := os.WriteFile(cfg, []byte(mixed), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadFile("HEAD", "f.txt"); !errors.Is(err, ErrObjectFormat) {
		t.Fatalf("ReadFile with extensions.objectFormat spelled %q: %v, want ErrObjectFormat", "[Extensions] objectFormat", err)
	}
}
