package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/internal/testenv"
)

// TestRecoverKilledReject plays what a reject killed by kill -9 leaves:
// its journal, and the feedback commit landed or not while the review
// branch is still there. The next command finishes the rejection (the
// review branch goes: the step is due again, with its feedback) or rolls
// it back (nothing landed: the review stays pending); never a review both
// rejected and pending, which an approve would land.
func TestRecoverKilledReject(t *testing.T) {
	for _, landed := range []bool{true, false} {
		t.Run(fmt.Sprintf("feedback landed %v", landed), func(t *testing.T) {
			dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: a\n    run: write\n    outputs: [out/*.txt]\n    review: true\n"})
			eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
				return agents.Result{}, writeOut(req, "a.txt")
			}}
			o := newTestOrchestrator(t, dir, eng, func(Event) {})
			var rp *ReviewPendingError
			if _, err := o.Run(t.Context(), RunOptions{}); !errors.As(err, &rp) {
				t.Fatalf("run: %v; want a review pending", err)
			}
			ref := "refs/heads/" + reviewPrefix + "a"
			reviewed := testenv.Git(t, dir, "rev-parse", ref)
			tip := testenv.Git(t, dir, "rev-parse", "HEAD")
			if _, err := o.Reject(t.Context(), "a", "not like this"); err != nil {
				t.Fatal(err)
			}
			feedback := testenv.Git(t, dir, "rev-parse", "HEAD")
			// The kill came after the landing (or before it) and before
			// the review branch was deleted.
			testenv.Git(t, dir, "update-ref", ref, reviewed)
			if !landed {
				testenv.Git(t, dir, "reset", "-q", "--hard", tip)
			}
			journal := fmt.Sprintf("pid: 4194305\nkey: a\nbranch: main\ntip: %s\nreviewed: %s\ncommit: %s\n", tip, reviewed, feedback)
			if err := os.WriteFile(filepath.Join(dir, ".git", "codemachine", rejectFile), []byte(journal), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := o.RecoverIdle(t.Context(), "codemachine status"); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, ".git", "codemachine", rejectFile)); err == nil {
				t.Error("the journal is left")
			}
			report, err := o.Status(Overrides{})
			if err != nil {
				t.Fatal(err)
			}
			want := StateReview
			if landed {
				want = StateDue
			}
			if got := report.Steps[0].State; got != want {
				t.Errorf("a is %s after the recovery, want %s", got, want)
			}
		})
	}
}
