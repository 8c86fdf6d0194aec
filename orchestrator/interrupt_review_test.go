package orchestrator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/internal/testenv"
)

// movedCtx is cancelled, as by a SIGINT, the moment the branch ref file
// no longer holds tip: a signal that comes right after a command moved
// the branch.
type movedCtx struct {
	context.Context
	ref, tip string
	once     sync.Once
	done     chan struct{}
}

func newMovedCtx(t *testing.T, dir string) *movedCtx {
	ref := filepath.Join(dir, ".git", "refs", "heads", "main")
	return &movedCtx{Context: t.Context(), ref: ref, tip: testenv.Git(t, dir, "rev-parse", "HEAD"), done: make(chan struct{})}
}

func (c *movedCtx) Done() <-chan struct{} {
	if data, err := os.ReadFile(c.ref); err == nil && strings.TrimSpace(string(data)) != c.tip {
		c.once.Do(func() { close(c.done) })
	}
	return c.done
}

func (c *movedCtx) Err() error {
	select {
	case <-c.Done():
		return context.Canceled
	default:
		return nil
	}
}

// TestSignalAfterReviewDecisionLanded interrupts approve, reject and
// rollback the moment the branch moved: each finishes what it did (the
// review branch goes, the holds are written) and reports success, rather
// than failing with a cancelled git command and leaving a review both
// landed and pending, or rolled-back steps without their holds, until the
// next command recovers.
func TestSignalAfterReviewDecisionLanded(t *testing.T) {
	for _, action := range []string{"approve", "reject", "rollback"} {
		t.Run(action, func(t *testing.T) {
			dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: a\n    run: write\n    outputs: [out/*.txt]\n    review: true\n  - id: b\n    run: write\n    outputs: [out/b*.txt]\n    needs: [a]\n"})
			eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
				return agents.Result{}, writeOut(req, req.Step+".txt")
			}}
			o := newTestOrchestrator(t, dir, eng, func(Event) {})
			var rp *ReviewPendingError
			if _, err := o.Run(t.Context(), RunOptions{}); !errors.As(err, &rp) {
				t.Fatalf("run: %v; want a review pending", err)
			}
			var err error
			switch action {
			case "approve":
				_, err = o.Approve(newMovedCtx(t, dir), "a")
			case "reject":
				_, err = o.Reject(newMovedCtx(t, dir), "a", "not like this")
			case "rollback":
				if _, err := o.Approve(t.Context(), "a"); err != nil {
					t.Fatal(err)
				}
				if _, err := o.Run(t.Context(), RunOptions{}); err != nil {
					t.Fatal(err)
				}
				_, err = o.Rollback(newMovedCtx(t, dir), "a", RollbackOptions{})
			}
			if err != nil {
				t.Fatalf("%s interrupted once the branch moved: %v", action, err)
			}
			for _, f := range []string{approveFile, rejectFile, rollbackFile} {
				if _, err := os.Stat(filepath.Join(dir, ".git", "codemachine", f)); err == nil {
					t.Errorf("%s is left", f)
				}
			}
			if o.ReviewPending("a") {
				t.Error("a is still pending review")
			}
			report, err := o.Status(Overrides{})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"approve": StateDone, "reject": StateDue, "rollback": StateHeld}[action]
			if got := report.Steps[0].State; got != want {
				t.Errorf("a is %s after %s, want %s", got, action, want)
			}
		})
	}
}
