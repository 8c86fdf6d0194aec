package orchestrator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/internal/testenv"
)

// TestRecoverKilledVerdict plays what a run killed (kill -9) between
// putting a unit's commit on its review branch and applying its reviewer
// agent's verdict leaves: the review branch at the commit, and the verdict
// journal. The next command releases that review (a person would
// otherwise be left a review its reviewer agent never gave, and the run
// would wait for them), and a run then reaches the uninterrupted result:
// the unit runs again, its reviewer approves, it lands once. The journal
// exists while the verdict is applied, and is gone after.
func TestRecoverKilledVerdict(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml":     "version: 1\nsteps:\n  - id: a\n    run: write\n    outputs: [out/*.txt]\n    review: checker\n",
		".codemachine/agents/checker.md": "---\nname: checker\ndescription: Reviews\nengine: claude\n---\nReview it.\n",
	})
	verdict := "no verdict here"
	runs := 0
	eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		if strings.Contains(req.Recording, ".review/") {
			return agents.Result{Text: verdict}, nil
		}
		runs++
		return agents.Result{}, writeOut(req, "a.txt")
	}}
	journal := filepath.Join(dir, ".git", "codemachine", verdictFile)
	journalSeen := false
	o := newTestOrchestrator(t, dir, eng, func(e Event) {
		if e.Kind == StepReview || e.Kind == StepLanded {
			_, err := os.Stat(journal)
			journalSeen = err == nil
		}
	})
	// The reviewer gives no verdict: the review falls to a person, its
	// commit rewritten. The commit before that rewrite is what the review
	// branch held when the kill came.
	var rp *ReviewPendingError
	if _, err := o.Run(t.Context(), RunOptions{}); !errors.As(err, &rp) {
		t.Fatalf("run: %v; want a review pending", err)
	}
	if !journalSeen {
		t.Error("no verdict journal while the review fell to a person")
	}
	if _, err := os.Stat(journal); err == nil {
		t.Fatal("the verdict journal is left after the run")
	}
	ref := "refs/heads/" + reviewPrefix + "a"
	unreviewed := testenv.Git(t, dir, "rev-parse", ref+"@{1}")
	testenv.Git(t, dir, "update-ref", ref, unreviewed)
	if err := os.WriteFile(journal, []byte("pid: 4194305\nkey: a\ncommit: "+unreviewed+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	if err := o.RecoverIdle(t.Context(), "codemachine status"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(journal); err == nil {
		t.Error("the verdict journal is left after the recovery")
	}
	report, err := o.Status(Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if got := report.Steps[0].State; got != StateDue {
		t.Fatalf("a is %s after the recovery, want %s", got, StateDue)
	}
	if kept := testenv.Git(t, dir, "rev-parse", supersededRefPrefix+"a"); kept != unreviewed {
		t.Errorf("the unreviewed commit is kept as %s, want %s", kept, unreviewed)
	}

	verdict = `{"verdict": "approve"}`
	journalSeen = false
	if _, err := o.Run(t.Context(), RunOptions{}); err != nil {
		t.Fatalf("run after the recovery: %v", err)
	}
	if !journalSeen {
		t.Error("no verdict journal while the approval landed")
	}
	if _, err := os.Stat(journal); err == nil {
		t.Error("the verdict journal is left after the approval")
	}
	if runs != 2 {
		t.Errorf("a ran %d times, want 2 (once more after the recovery)", runs)
	}
	steps := strings.Fields(testenv.Git(t, dir, "log", "--format=%(trailers:key=Codemachine-Step,valueonly)"))
	if len(steps) != 1 || steps[0] != "a" {
		t.Errorf("step commits on the branch: %v, want a once", steps)
	}
	if report, err := o.Status(Overrides{}); err != nil || report.Steps[0].State != StateDone {
		t.Errorf("status after the approval: %v, %v", report, err)
	}
}
