package gitstate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// slowLockingGit puts a git first on PATH that, for the commands whose
// subcommand is sub, holds the repository's index.lock until the test
// creates the file it returns (go), telling the test it holds it by
// creating the other (held), then runs the real git. Stopped by a signal
// meanwhile it leaves the lock, as git itself sometimes does (a signal
// between its creating a lock and its noting it for removal): the lock
// must then never have been left to a signal.
func slowLockingGit(t *testing.T, sub string) (held, goOn string) {
	t.Helper()
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	held, goOn = filepath.Join(bin, "held"), filepath.Join(bin, "go")
	script := fmt.Sprintf(`#!/bin/sh
for a in "$@"; do
	if [ "$a" = %q ]; then
		: >"$(%q rev-parse --git-dir)/index.lock"
		: >%q
		while [ ! -e %q ]; do sleep 0.01; done
		rm -f "$(%q rev-parse --git-dir)/index.lock"
		break
	fi
done
exec %q "$@"
`, sub, real, held, goOn, real, real)
	if err := os.WriteFile(filepath.Join(bin, "git"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return held, goOn
}

// cancelWhenHeld cancels once held exists, then lets the git go on.
func cancelWhenHeld(t *testing.T, cancel context.CancelFunc, held, goOn string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(held); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Error("git never took the lock")
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	// Long enough for a signal to reach the git and end it.
	time.Sleep(100 * time.Millisecond)
	if err := os.WriteFile(goOn, nil, 0o644); err != nil {
		t.Error(err)
	}
}

// TestResetBranchCancelledWhileSaving: a forced rollback stopped (Ctrl-C,
// SIGTERM) while it saves the uncommitted changes leaves no index.lock,
// the branch and the changes as they were.
func TestResetBranchCancelledWhileSaving(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "0\n"})
	first := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "a.txt", "1\n")
	tip := commitAll(t, dir, "one")
	write(t, dir, "a.txt", "the user's edit\n")
	held, goOn := slowLockingGit(t, "stash")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := r.ResetBranch(ctx, "main", first, tip, true)
		done <- err
	}()
	cancelWhenHeld(t, cancel, held, goOn)
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("ResetBranch = %v, want it cancelled", err)
	}
	if exists(dir, ".git/index.lock") {
		t.Fatal(".git/index.lock left behind")
	}
	if git(t, dir, "rev-parse", "main") != tip || read(t, dir, "a.txt") != "the user's edit\n" {
		t.Error("the branch or the user's change moved")
	}
}

// TestCommitPathsCancelled: a steering commit (watch, the plan tools)
// stopped while git holds the user's index leaves no index.lock: the
// commit is made, and the user's other change stays out of it.
func TestCommitPathsCancelled(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"spec.md": "spec\n", "other.txt": "o\n"})
	write(t, dir, "spec.md", "steered\n")
	write(t, dir, "other.txt", "the user's edit\n")
	held, goOn := slowLockingGit(t, "commit")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.CommitPaths(ctx, []string{"spec.md"}, "steer: spec.md") }()
	cancelWhenHeld(t, cancel, held, goOn)
	if err := <-done; err != nil {
		t.Errorf("CommitPaths = %v", err)
	}
	if exists(dir, ".git/index.lock") {
		t.Fatal(".git/index.lock left behind")
	}
	if got := git(t, dir, "show", "HEAD:spec.md"); got != "steered" {
		t.Errorf("committed spec.md = %q", got)
	}
	if got := statusShort(t, dir); got != " M other.txt" {
		t.Errorf("status = %q", got)
	}
}
