package orchestrator

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/internal/testenv"
)

// TestHookRequestDuringRun: a git hook that fires while a run holds the
// lock starts no run of its own but leaves a request, and the run makes
// one more pass once it released the lock (issue 10, D3); a hook that
// finds nobody running starts its run and leaves no request behind.
func TestHookRequestDuringRun(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: copy\n    run: 'cp in.txt out.txt'\n    inputs: [in.txt]\n    outputs: [out.txt]\n",
		"in.txt":                     "1\n",
	})
	var mu sync.Mutex
	var events []Event
	var o *Orchestrator
	var wanted []string
	eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		data, err := os.ReadFile(filepath.Join(req.Dir, "in.txt"))
		if err != nil {
			return agents.Result{}, err
		}
		if err := os.WriteFile(filepath.Join(req.Dir, "out.txt"), data, 0o644); err != nil {
			return agents.Result{}, err
		}
		mu.Lock()
		defer mu.Unlock()
		if len(wanted) == 0 {
			// The user commits while the step runs; their post-commit
			// hook asks for a run.
			testenv.Git(t, dir, "commit", "-q", "--allow-empty", "-m", "user")
			ok, reason := o.HookRunWanted()
			if ok {
				t.Error("HookRunWanted while a run holds the lock")
			}
			wanted = append(wanted, reason)
		}
		return agents.Result{}, nil
	}}
	o = newTestOrchestrator(t, dir, eng, func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	})
	sum, err := o.Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Landed) != 1 {
		t.Errorf("landed %d", len(sum.Landed))
	}
	if len(wanted) != 1 || !strings.Contains(wanted[0], "one more pass") {
		t.Errorf("HookRunWanted said %q", wanted)
	}
	starts, note := 0, false
	for _, e := range events {
		if e.Kind == RunStarted {
			starts++
		}
		if e.Kind == Note && strings.Contains(e.Message, "a git hook asked for a run") {
			note = true
		}
	}
	if starts != 2 || !note {
		t.Errorf("%d passes, note %v: want the hook's extra pass", starts, note)
	}
	req := filepath.Join(o.Repo().LocalDir(), hookRequestFile)
	if _, err := os.Stat(req); err == nil {
		t.Error("the hook's request is left")
	}
	if ok, reason := o.HookRunWanted(); !ok {
		t.Errorf("HookRunWanted with nobody running: %s", reason)
	}
	if _, err := os.Stat(req); err == nil {
		t.Error("a hook that starts its run left a request")
	}
}

// TestInterruptedBeforeStart: a run interrupted after a unit was picked
// but before its command started makes no failed ref and remembers no
// failure for it (issue 10, item 7): the next run simply runs it.
func TestInterruptedBeforeStart(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: build\n    run: 'echo x > out.txt'\n    hooks: {before: 'pre'}\n",
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ran := 0
	eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		if req.Command == "pre" {
			cancel() // Ctrl-C while the before hook runs; the hook succeeds
			return agents.Result{}, nil
		}
		if ctx.Err() != nil {
			return agents.Result{}, &agents.RunError{Canceled: true, Msg: "canceled"}
		}
		ran++
		return agents.Result{}, os.WriteFile(filepath.Join(req.Dir, "out.txt"), []byte("x\n"), 0o644)
	}}
	var events []Event
	o := newTestOrchestrator(t, dir, eng, func(e Event) { events = append(events, e) })
	if _, err := o.Run(ctx, RunOptions{}); err != ErrInterrupted {
		t.Fatalf("run: %v, want interrupted", err)
	}
	if refs, _ := o.Repo().RefsWithPrefix("refs/codemachine/failed/"); len(refs) > 0 {
		t.Errorf("failed refs %v for a step that never started", refs)
	}
	if f, _ := o.failures(); len(f) > 0 {
		t.Errorf("failures %v for a step that never started", f)
	}
	skipped := false
	for _, e := range events {
		if e.Kind == StepSkipped && e.Message == "interrupted before it started" {
			skipped = true
		}
		if e.Kind == StepFailed {
			t.Errorf("failed event %+v", e)
		}
	}
	if !skipped || ran != 0 {
		t.Errorf("skipped %v, ran %d", skipped, ran)
	}
	if _, err := o.Run(t.Context(), RunOptions{}); err != nil || ran != 1 {
		t.Errorf("the next run: %v, ran %d", err, ran)
	}
}

// TestRollbackKilledBeforeHolds: a rollback killed after its reset but
// before it wrote its holds is finished by the next command: the undone
// step is held and does not simply run again.
func TestRollbackKilledBeforeHolds(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: a\n    run: 'echo a > a.txt'\n",
	})
	ran := 0
	eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		ran++
		return agents.Result{}, os.WriteFile(filepath.Join(req.Dir, "a.txt"), []byte("a\n"), 0o644)
	}}
	var notes []string
	o := newTestOrchestrator(t, dir, eng, func(e Event) {
		if e.Kind == Note {
			notes = append(notes, e.Message)
		}
	})
	if _, err := o.Run(t.Context(), RunOptions{}); err != nil || ran != 1 {
		t.Fatalf("run: %v, ran %d", err, ran)
	}
	from := testenv.Git(t, dir, "rev-parse", "HEAD")
	to := testenv.Git(t, dir, "rev-parse", "HEAD~1")
	// What the killed rollback had done: its intent, and the reset.
	if err := o.beginRollback("main", strings.TrimSpace(from), strings.TrimSpace(to)); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, dir, "reset", "-q", "--hard", "HEAD~1")
	if _, err := o.Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if ran != 1 {
		t.Errorf("the rolled-back step ran again (%d runs)", ran)
	}
	if h, _ := o.holds(); len(h) != 1 {
		t.Errorf("holds %v, want a", h)
	}
	if !strings.Contains(strings.Join(notes, "\n"), "finished the interrupted rollback of main") {
		t.Errorf("notes %q", notes)
	}
	if _, err := os.Stat(filepath.Join(o.Repo().LocalDir(), rollbackFile)); err == nil {
		t.Error("the rollback intent is left")
	}
}
