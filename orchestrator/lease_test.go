package orchestrator

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/internal/testenv"
)

func TestLease(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: a\n    run: 'echo a > a.txt'\n    outputs: [a.txt]\n",
	})
	o, err := New(Config{Dir: dir, Environ: os.Environ()})
	if err != nil {
		t.Fatal(err)
	}
	lease, err := o.Lease("test session")
	if err != nil {
		t.Fatal(err)
	}
	if head := lease.Head(); head.Branch != "main" || head.Commit != testenv.Git(t, dir, "rev-parse", "HEAD") {
		t.Errorf("Head = %+v", head)
	}
	// The lock is the lease's: another command is refused, naming it.
	_, err = o.Run(t.Context(), RunOptions{})
	var locked *gitstate.LockedError
	if !errors.As(err, &locked) || locked.Command != "test session" {
		t.Fatalf("Run under a lease = %v", err)
	}

	sum, err := lease.Run(t.Context(), RunOptions{DryRun: true})
	if err != nil || len(sum.Landed) != 1 {
		t.Fatalf("the lease's pass: %+v, %v (a dry run does not apply)", sum, err)
	}
	from := sum.Landed[0].Commit
	testenv.Git(t, dir, "reset", "-q", "--hard", "HEAD~1")
	to := testenv.Git(t, dir, "rev-parse", "HEAD")
	if held, err := lease.HoldUndone(t.Context(), from, to, Overrides{}); err != nil || strings.Join(held, ",") != "a" {
		t.Fatalf("HoldUndone = %v, %v", held, err)
	}
	if sum, err := lease.Run(t.Context(), RunOptions{}); err != nil || len(sum.Landed) != 0 || len(sum.Skipped) != 1 {
		t.Fatalf("a pass over the held step: %+v, %v", sum, err)
	}

	// Lift drops the hold and a failure alike, even one whose session
	// could resume: the next pass runs the step.
	if err := o.updateFailures(func(f map[string]Failure) { f["a"] = Failure{Error: "x", Session: "s1"} }); err != nil {
		t.Fatal(err)
	}
	if err := lease.Lift("a"); err != nil {
		t.Fatal(err)
	}
	holds, _ := o.holds()
	failures, _ := o.failures()
	if len(holds) != 0 || len(failures) != 0 {
		t.Errorf("after Lift: holds %v, failures %v", holds, failures)
	}
	if sum, err := lease.Run(t.Context(), RunOptions{SkipFailed: true}); err != nil || len(sum.Landed) != 1 {
		t.Fatalf("the pass after Lift: %+v, %v", sum, err)
	}

	lease.Release()
	if _, _, held := o.Repo().LockHolder(); held {
		t.Error("the lock is still held after Release")
	}
	if _, err := o.Run(t.Context(), RunOptions{}); err != nil {
		t.Errorf("Run after Release: %v", err)
	}
}

func TestLeaseChecksFirst(t *testing.T) {
	dir := newRepo(t, map[string]string{"README.md": "no workflow\n"})
	o, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var cfg *ConfigError
	if _, err := o.Lease("test session"); !errors.As(err, &cfg) {
		t.Errorf("Lease without a workflow = %v", err)
	}
	if _, _, held := o.Repo().LockHolder(); held {
		t.Error("a refused lease took the lock")
	}
}
