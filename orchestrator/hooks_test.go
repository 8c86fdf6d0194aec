package orchestrator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/codemachine/codemachine/agents"
)

// hookCall is one request a hook test's engine factory served.
type hookCall struct {
	engine string // the name the orchestrator asked the factory for
	req    agents.Request
}

// hookRecorder is an engine factory whose engines record every request and
// fail the commands named in fail.
type hookRecorder struct {
	fail  map[string]bool
	mu    sync.Mutex
	calls []hookCall
}

func (h *hookRecorder) newEngine(name string) (agents.Engine, error) {
	return fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		h.mu.Lock()
		h.calls = append(h.calls, hookCall{engine: name, req: req})
		h.mu.Unlock()
		if h.fail[req.Command] {
			return agents.Result{ExitCode: 3}, &agents.RunError{Class: agents.Fatal, Engine: "shell",
				Msg: req.Command + " exited with status 3", ExitCode: 3}
		}
		if req.Command == "work" {
			return agents.Result{}, os.WriteFile(filepath.Join(req.Dir, "out.txt"), []byte("work\n"), 0o644)
		}
		return agents.Result{}, nil
	}}, nil
}

// commands lists the commands run, in order.
func (h *hookRecorder) commands() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var cmds []string
	for _, c := range h.calls {
		cmds = append(cmds, c.req.Command)
	}
	return cmds
}

// call is the request that ran command.
func (h *hookRecorder) call(t *testing.T, command string) hookCall {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.calls {
		if c.req.Command == command {
			return c
		}
	}
	t.Fatalf("%s never ran", command)
	return hookCall{}
}

// envOf is the value of key in a request's environment ("" when unset).
func envOf(req agents.Request, key string) string {
	for _, kv := range slices.Backward(req.Env) {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

const hooksWorkflow = `version: 1
steps:
  - id: build
    run: work
    outputs: [out.txt]
    hooks:
      before: pre
      after: post
      on_failure: cleanup
`

// TestLifecycleHooks runs a step's hooks through an injected engine
// factory: each hook is a shell-engine request in the right directory with
// the unit's environment, the worktree and the commit it concerns; a
// failing before hook fails the unit without running it and triggers
// on_failure on its failed ref; a failing after hook is only a note.
func TestLifecycleHooks(t *testing.T) {
	t.Run("landed", func(t *testing.T) {
		dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": hooksWorkflow})
		rec := &hookRecorder{}
		o, err := New(Config{Dir: dir, Environ: os.Environ(), NewEngine: rec.newEngine})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := o.Run(t.Context(), RunOptions{})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if got, want := rec.commands(), []string{"pre", "work", "post"}; !slices.Equal(got, want) {
			t.Fatalf("ran %v, want %v", got, want)
		}
		head, err := o.Repo().Head()
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Landed) != 1 || sum.Landed[0].Commit != head.Commit {
			t.Fatalf("landed %+v, want build at %s", sum.Landed, head.Commit)
		}
		pre, work, post := rec.call(t, "pre"), rec.call(t, "work"), rec.call(t, "post")
		for _, c := range []hookCall{pre, post} {
			if c.engine != "shell" || c.req.Timeout != hookTimeout {
				t.Errorf("%s: engine %q, timeout %s; want the shell engine with %s", c.req.Command, c.engine, c.req.Timeout, hookTimeout)
			}
			if envOf(c.req, "CODEMACHINE_STEP") != "build" || envOf(c.req, "CODEMACHINE_RUN") != sum.Run {
				t.Errorf("%s: not the unit's environment: %v", c.req.Command, c.req.Env)
			}
			if envOf(c.req, "CODEMACHINE_WORKTREE") != work.req.Dir {
				t.Errorf("%s: CODEMACHINE_WORKTREE=%q, want the unit's worktree %s", c.req.Command, envOf(c.req, "CODEMACHINE_WORKTREE"), work.req.Dir)
			}
		}
		if pre.req.Dir != work.req.Dir {
			t.Errorf("before ran in %s, want the worktree %s", pre.req.Dir, work.req.Dir)
		}
		if post.req.Dir != o.Repo().Root() || envOf(post.req, "CODEMACHINE_REPO") != o.Repo().Root() {
			t.Errorf("after ran in %s (CODEMACHINE_REPO=%s), want the repository %s", post.req.Dir, envOf(post.req, "CODEMACHINE_REPO"), o.Repo().Root())
		}
		if got := envOf(post.req, "CODEMACHINE_COMMIT"); got != head.Commit {
			t.Errorf("after: CODEMACHINE_COMMIT=%q, want the landed commit %s", got, head.Commit)
		}
	})

	t.Run("before fails", func(t *testing.T) {
		dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": hooksWorkflow})
		rec := &hookRecorder{fail: map[string]bool{"pre": true}}
		var events eventLog
		o, err := New(Config{Dir: dir, Environ: os.Environ(), NewEngine: rec.newEngine, OnEvent: events.add})
		if err != nil {
			t.Fatal(err)
		}
		_, err = o.Run(t.Context(), RunOptions{})
		var sf *StepFailedError
		if !errors.As(err, &sf) || !slices.Equal(sf.Failed, []string{"build"}) {
			t.Fatalf("run: %v, want build failed", err)
		}
		if got, want := rec.commands(), []string{"pre", "cleanup"}; !slices.Equal(got, want) {
			t.Fatalf("ran %v, want %v", got, want)
		}
		failed := events.of(StepFailed)
		if len(failed) != 1 || !strings.HasPrefix(failed[0].Message, "before hook failed: shell: pre exited with status 3") {
			t.Fatalf("failures %+v, want build failed by its before hook", failed)
		}
		ref, err := o.Repo().ResolveRev("refs/codemachine/failed/build")
		if err != nil {
			t.Fatal(err)
		}
		cleanup := rec.call(t, "cleanup")
		if got := envOf(cleanup.req, "CODEMACHINE_COMMIT"); got != ref || failed[0].Commit != ref {
			t.Errorf("on_failure: CODEMACHINE_COMMIT=%q, event commit %q; want the failed ref's %s", got, failed[0].Commit, ref)
		}
		if pre := rec.call(t, "pre"); cleanup.req.Dir != pre.req.Dir || cleanup.engine != "shell" {
			t.Errorf("on_failure ran in %s with engine %q, want the worktree %s with the shell engine", cleanup.req.Dir, cleanup.engine, pre.req.Dir)
		}
	})

	t.Run("after fails", func(t *testing.T) {
		dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": hooksWorkflow})
		rec := &hookRecorder{fail: map[string]bool{"post": true}}
		var events eventLog
		o, err := New(Config{Dir: dir, Environ: os.Environ(), NewEngine: rec.newEngine, OnEvent: events.add})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := o.Run(t.Context(), RunOptions{})
		if err != nil {
			t.Fatalf("run: %v (a failing after hook must not fail the step)", err)
		}
		if len(sum.Landed) != 1 {
			t.Fatalf("landed %+v, want build", sum.Landed)
		}
		notes := events.of(Note)
		if len(notes) != 1 || notes[0].Step != "build" || !strings.HasPrefix(notes[0].Message, "after hook failed: shell: post exited with status 3") {
			t.Errorf("notes %+v, want one saying the after hook failed", notes)
		}
		if slices.Contains(rec.commands(), "cleanup") {
			t.Errorf("on_failure ran for a step that landed: %v", rec.commands())
		}
	})
}

// TestRunHookWithoutCommand asks the factory for nothing when the step
// has no such hook.
func TestRunHookWithoutCommand(t *testing.T) {
	o := &Orchestrator{cfg: Config{NewEngine: func(name string) (agents.Engine, error) {
		t.Errorf("engine %q constructed for an empty hook", name)
		return nil, errors.New("unexpected")
	}}}
	if err := o.runHook(t.Context(), "before", "", t.TempDir(), nil, nil); err != nil {
		t.Fatal(err)
	}
}

// of lists the events of kind k, in order.
func (l *eventLog) of(k EventKind) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, e := range l.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}
