package testenv

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestHTTPGitServesPushAndOutage(t *testing.T) {
	root := t.TempDir()
	Git(t, root, "init", "-q", "--bare", "-b", "main", "remote.git")
	srv := ServeHTTPGit(t, root)
	url := srv.URL("remote.git")

	repo := GitRepo(t)
	Git(t, repo, "push", "-q", url, "main")
	clone := filepath.Join(t.TempDir(), "clone")
	Git(t, t.TempDir(), "clone", "-q", url, clone)
	if got, want := Git(t, clone, "rev-parse", "HEAD"), Git(t, repo, "rev-parse", "HEAD"); got != want {
		t.Fatalf("clone at %s, pushed %s", got, want)
	}
	if srv.Requests() == 0 {
		t.Error("no requests counted")
	}

	srv.Stop()
	cmd := exec.Command("git", "ls-remote", url)
	cmd.Env = GitEnv(t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("ls-remote while stopped succeeded: %s", out)
	}
	if !strings.Contains(string(out), "Failed to connect") && !strings.Contains(string(out), "Connection refused") {
		t.Errorf("ls-remote while stopped: %s", out)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if got := Git(t, clone, "ls-remote", url, "refs/heads/main"); !strings.HasPrefix(got, Git(t, repo, "rev-parse", "HEAD")) {
		t.Errorf("ls-remote after start: %q", got)
	}
}
