package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

func TestGitRepo(t *testing.T) {
	repo := GitRepo(t)
	if branch := Git(t, repo, "branch", "--show-current"); branch != "main" {
		t.Errorf("branch %q", branch)
	}
	got := Git(t, repo, "log", "--format=%an <%ae> %aI | %cn <%ce> %cI | %s")
	want := GitName + " <" + GitEmail + "> 2026-01-01T00:00:00Z | " + GitName + " <" + GitEmail + "> 2026-01-01T00:00:00Z | init"
	if strings.ReplaceAll(got, "+00:00", "Z") != want {
		t.Errorf("log %q, want %q", got, want)
	}
	if files := Git(t, repo, "ls-files"); files != "README.md" {
		t.Errorf("files %q", files)
	}
	// Fixed identity and dates make the commit reproducible.
	if other := GitRepo(t); Git(t, other, "rev-parse", "HEAD") != Git(t, repo, "rev-parse", "HEAD") {
		t.Error("two GitRepo commits differ")
	}
}

func TestGitEnvIgnoresUserConfig(t *testing.T) {
	t.Setenv("GIT_AUTHOR_NAME", "Someone Else")
	t.Setenv("GIT_DIR", "/nonexistent")
	repo := GitRepo(t)
	if name := Git(t, repo, "log", "-1", "--format=%an"); name != GitName {
		t.Errorf("author %q", name)
	}
	// No user configuration is visible: git config finds no user.name.
	cmd := exec.Command("git", "config", "user.name")
	cmd.Dir = repo
	cmd.Env = GitEnv(t.TempDir())
	if out, err := cmd.Output(); err == nil {
		t.Errorf("user.name is set: %q", out)
	}
}
