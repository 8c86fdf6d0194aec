package orchestrator

import (
	"context"
	"errors"
	"testing"

	"github.com/codemachine/codemachine/agents"
)

// TestExitCodeOfACancelledCommand: a command stopped by a signal before
// it changed anything fails with its git command's cancellation, which
// is exit 130 like an interrupted run.
func TestExitCodeOfACancelledCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: a\n    run: write\n    outputs: [out/*.txt]\n    review: true\n"})
	eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		return agents.Result{}, writeOut(req, "a.txt")
	}}
	o := newTestOrchestrator(t, dir, eng, func(Event) {})
	var rp *ReviewPendingError
	if _, err := o.Run(t.Context(), RunOptions{}); !errors.As(err, &rp) {
		t.Fatalf("run: %v; want a review pending", err)
	}
	_, err := o.Approve(ctx, "a")
	if got := ExitCode(err); got != ExitInterrupted {
		t.Errorf("approve with a cancelled context: %v, exit %d, want %d", err, got, ExitInterrupted)
	}
	if !o.ReviewPending("a") {
		t.Error("a no longer waits for review after an approve that was cancelled")
	}
}
