package gitstate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// killSwitchHelper moves main of GITSTATE_REPO from GITSTATE_BASE to
// GITSTATE_COMMIT as a landing does (staged or under the lock, by
// GITSTATE_STAGED) and kills itself with SIGKILL at the switch's point
// GITSTATE_KILL_AT. It says so and exits 0 if it never got there.
func killSwitchHelper() int {
	r, err := Open(os.Getenv("GITSTATE_REPO"))
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	at := os.Getenv("GITSTATE_KILL_AT")
	r.testHook = func(stage string) {
		if stage == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	err = r.advance(context.Background(), "refs/heads/main", os.Getenv("GITSTATE_BASE"), os.Getenv("GITSTATE_COMMIT"),
		"codemachine: step", os.Getenv("GITSTATE_STAGED") == "true")
	fmt.Println("not killed:", err)
	return 0
}

// TestSwitchKilledKeepsTheStep kills a landing's switch of the user's
// checkout (kill -9) at each of its points; the user then removes the
// stale index.lock, as git's message advises, and may commit what they
// had staged. Their commit must never undo the step where the branch has
// it, nor lose what they had staged or changed; and Recover then leaves
// branch, index and files consistent, the user's changes kept.
func TestSwitchKilledKeepsTheStep(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, staged := range []bool{false, true} {
		for _, at := range []string{"before-ref-update", "before-index", "ref-updated"} {
			for _, commit := range []bool{false, true} {
				t.Run(fmt.Sprintf("staged %v, killed at %s, user commits %v", staged, at, commit), func(t *testing.T) {
					testSwitchKilled(t, exe, staged, at, commit)
				})
			}
		}
	}
}

func testSwitchKilled(t *testing.T, exe string, staged bool, at string, commit bool) {
	dir, r := newRepo(t, map[string]string{"keep.txt": "k\n", "mod.txt": "a\n", "del.txt": "d\n", "staged.txt": "s\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	next := stepCommit(t, r, base, map[string]string{"mod.txt": "b\n", "new.txt": "n\n", "del.txt": "\x00delete"}, "step")
	write(t, dir, "staged.txt", "the user's staged edit\n")
	git(t, dir, "add", "staged.txt")
	write(t, dir, "keep.txt", "the user's edit\n")
	write(t, dir, "scratch.txt", "the user's untracked file\n")

	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "GITSTATE_HELPER=kill-switch", "GITSTATE_REPO="+dir, "GITSTATE_KILL_AT="+at,
		"GITSTATE_BASE="+base, "GITSTATE_COMMIT="+next, fmt.Sprintf("GITSTATE_STAGED=%v", staged))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the switch was not killed at %s: %v\n%s", at, err, out)
	}
	lock := filepath.Join(dir, ".git", "index.lock")
	if err := os.Remove(lock); err != nil {
		t.Fatalf("the kill left no index.lock to remove: %v", err)
	}
	tip := git(t, dir, "rev-parse", "HEAD")
	if tip != base && tip != next {
		t.Fatalf("the branch is at %s, neither the base nor the step", tip)
	}
	if commit {
		git(t, dir, "commit", "-q", "-m", "the user's commit")
		changed := strings.Fields(git(t, dir, "diff", "--name-only", "HEAD~1", "HEAD"))
		if tip == next && !slices.Equal(changed, []string{"staged.txt"}) {
			t.Fatalf("the branch had the step, and the user's commit changes %v: it undoes the step", changed)
		}
		if got := git(t, dir, "show", "HEAD:staged.txt"); got != "the user's staged edit" {
			t.Fatalf("the user's commit lost their staged edit: %q", got)
		}
	}
	if read(t, dir, "keep.txt") != "the user's edit\n" {
		t.Fatal("the user's unstaged edit is lost")
	}

	if _, err := r.Recover(t.Context()); err != nil {
		t.Fatalf("recover: %v", err)
	}
	for _, p := range []string{lock, filepath.Join(r.LocalDir(), journalFile)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is left", p)
		}
	}
	if read(t, dir, "keep.txt") != "the user's edit\n" || read(t, dir, "scratch.txt") != "the user's untracked file\n" {
		t.Fatal("the recovery lost a change of the user's")
	}
	want := []string{" M keep.txt", "?? scratch.txt"}
	if !commit {
		want = append(want, "M  staged.txt")
	} else if tip == base && at != "before-index" && !(staged && at == "before-ref-update") {
		// Killed with the new index installed, the branch not moved yet:
		// the user's commit holds the step.
		if got := git(t, dir, "show", "HEAD:mod.txt"); got != "b" {
			t.Errorf("mod.txt of the user's commit is %q, want the step's", got)
		}
	}
	got := strings.Split(statusShort(t, dir), "\n")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("git status after the recovery:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if head := git(t, dir, "rev-parse", "HEAD"); !commit && head != base && head != next {
		t.Errorf("the branch is at %s after the recovery", head)
	}
}

// TestSwitchKilledThenCheckoutElsewhere kills a landing's switch (kill -9)
// at each of its points; the user then removes the stale index.lock and
// checks out another branch, which git allows, carrying over what the
// index holds. Killed with the new index installed and the branch not
// moved yet, that was the step's changes, staged on the other branch,
// which Recover left there when it moved the step's branch: the user's
// next commit on the other branch would hold the step. The other checkout
// must end with only the user's own changes, the step on its branch or
// not landed, never in between. So must a checkout that git's own race
// moved to the other branch (at the same commit) after the switch read
// its HEAD under the lock, killed once the branch moved.
func TestSwitchKilledThenCheckoutElsewhere(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, staged := range []bool{false, true} {
		for _, at := range []string{"before-ref-update", "before-index", "ref-updated", "ref-updated+head"} {
			at, headMoved := strings.CutSuffix(at, "+head")
			t.Run(fmt.Sprintf("staged %v, killed at %s, HEAD moved by git %v", staged, at, headMoved), func(t *testing.T) {
				dir, r := newRepo(t, map[string]string{"keep.txt": "k\n", "mod.txt": "a\n", "del.txt": "d\n"})
				base := git(t, dir, "rev-parse", "HEAD")
				git(t, dir, "branch", "other")
				next := stepCommit(t, r, base, map[string]string{"mod.txt": "b\n", "new.txt": "n\n", "del.txt": "\x00delete"}, "step")
				write(t, dir, "keep.txt", "the user's edit\n")
				write(t, dir, "scratch.txt", "the user's untracked file\n")
				cmd := exec.Command(exe, "-test.run=^$")
				cmd.Env = append(os.Environ(), "GITSTATE_HELPER=kill-switch", "GITSTATE_REPO="+dir, "GITSTATE_KILL_AT="+at,
					"GITSTATE_BASE="+base, "GITSTATE_COMMIT="+next, fmt.Sprintf("GITSTATE_STAGED=%v", staged))
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("the switch was not killed at %s: %v\n%s", at, err, out)
				}
				if err := os.Remove(filepath.Join(dir, ".git", "index.lock")); err != nil {
					t.Fatalf("the kill left no index.lock to remove: %v", err)
				}
				if at == "ref-updated" && headMoved {
					// git checkout of other, at the same commit as main
					// when it began, wrote HEAD after the switch read it.
					git(t, dir, "symbolic-ref", "HEAD", "refs/heads/other")
				} else {
					git(t, dir, "checkout", "-q", "other")
				}
				if _, err := r.Recover(t.Context()); err != nil {
					t.Fatalf("recover: %v", err)
				}
				if main := git(t, dir, "rev-parse", "main"); main != base && main != next {
					t.Fatalf("main is at %s, neither the base nor the step", main)
				}
				if head := git(t, dir, "symbolic-ref", "HEAD"); head != "refs/heads/other" {
					t.Fatalf("HEAD is %s after the recovery", head)
				}
				got := strings.Split(statusShort(t, dir), "\n")
				slices.Sort(got)
				if want := []string{" M keep.txt", "?? scratch.txt"}; !slices.Equal(got, want) {
					t.Errorf("git status on other after the recovery:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				if read(t, dir, "keep.txt") != "the user's edit\n" || read(t, dir, "scratch.txt") != "the user's untracked file\n" {
					t.Error("the recovery lost a change of the user's")
				}
			})
		}
	}
}
