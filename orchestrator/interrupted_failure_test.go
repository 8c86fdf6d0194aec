package orchestrator

import (
	"context"
	"errors"
	"testing"

	"github.com/codemachine/codemachine/agents"
)

// TestInterruptedUnitRunsAgainWithSkipFailed: a unit the run was
// interrupted in (Ctrl-C to a watcher or a worker) did not fail with its
// inputs: the next watcher's or worker's pass (SkipFailed) runs it again,
// as the next plain run does, instead of skipping it as "failed before
// with the same inputs" until someone runs retry.
func TestInterruptedUnitRunsAgainWithSkipFailed(t *testing.T) {
	dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: a\n    run: write\n    outputs: [out/*.txt]\n"})
	started := make(chan struct{}, 1)
	interrupt := true
	eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		if err := writeOut(req, "a.txt"); err != nil {
			return agents.Result{}, err
		}
		if interrupt {
			started <- struct{}{}
			<-ctx.Done()
			return agents.Result{}, ctx.Err()
		}
		return agents.Result{}, nil
	}}
	o := newTestOrchestrator(t, dir, eng, func(Event) {})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		cancel()
	}()
	if _, err := o.Run(ctx, RunOptions{SkipFailed: true}); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("run: %v, want it interrupted", err)
	}
	failures, err := o.failures()
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := failures["a"]; !ok || !f.Interrupted {
		t.Fatalf("the interrupted unit's record: %+v (recorded %v)", f, ok)
	}

	interrupt = false
	var skipped []string
	o = newTestOrchestrator(t, dir, eng, func(e Event) {
		if e.Kind == StepSkipped {
			skipped = append(skipped, e.Message)
		}
	})
	sum, err := o.Run(t.Context(), RunOptions{SkipFailed: true})
	if err != nil {
		t.Fatalf("the next pass: %v (skipped: %v)", err, skipped)
	}
	if len(sum.Landed) != 1 {
		t.Fatalf("the next pass landed %d units, want a (skipped: %v)", len(sum.Landed), skipped)
	}
}
