package watch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/internal/testenv"
	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/watcher"
)

func TestInputDir(t *testing.T) {
	root := "/repo"
	tests := []struct {
		pattern string
		want    watcher.Dir
	}{
		{".codemachine/spec.md", watcher.Dir{Path: "/repo/.codemachine/spec.md", Recursive: true}},
		{"docs", watcher.Dir{Path: "/repo/docs", Recursive: true}},
		{"docs/*.md", watcher.Dir{Path: "/repo/docs"}},
		{"*.md", watcher.Dir{Path: "/repo"}},
		{"src/**/*.go", watcher.Dir{Path: "/repo/src", Recursive: true}},
		{"src/*/main.go", watcher.Dir{Path: "/repo/src", Recursive: true}},
		{"src/**", watcher.Dir{Path: "/repo/src", Recursive: true}},
		{"**", watcher.Dir{Path: "/repo", Recursive: true}},
		{"a/b/c?.txt", watcher.Dir{Path: "/repo/a/b"}},
		{"a/{x,y}/z", watcher.Dir{Path: "/repo/a", Recursive: true}},
	}
	for _, tt := range tests {
		if got := inputDir(root, tt.pattern); got != tt.want {
			t.Errorf("inputDir(%q) = %+v, want %+v", tt.pattern, got, tt.want)
		}
	}
}

func TestMatchesInput(t *testing.T) {
	s := &session{patterns: []string{".codemachine/spec.md", "docs", "src/**/*.go", ".codemachine/plan.md"}}
	for p, want := range map[string]bool{
		".codemachine/spec.md":  true,
		".codemachine/plan.md":  true,
		".codemachine/state.md": false,
		"docs/a.md":             true,
		"docs/deep/b.md":        true,
		"docsx/a.md":            false,
		"src/main.go":           true,
		"src/a/b/c.go":          true,
		"src/a/b/c.txt":         false,
		"spec.md":               false,
	} {
		if got := s.matchesInput(p); got != want {
			t.Errorf("matchesInput(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestListPaths(t *testing.T) {
	for _, tt := range []struct {
		paths []string
		want  string
	}{
		{[]string{"a"}, "a"},
		{[]string{"a", "b", "c"}, "a, b, c"},
		{[]string{"a", "b", "c", "d", "e"}, "a, b, c and 2 more"},
	} {
		if got := listPaths(tt.paths); got != tt.want {
			t.Errorf("listPaths(%v) = %q, want %q", tt.paths, got, tt.want)
		}
	}
}

func TestRefusedBy(t *testing.T) {
	if pid, ok := RefusedBy(&orchestrator.ConfigError{Err: &gitstate.LockedError{PID: 7, Command: Command}}); !ok || pid != 7 {
		t.Errorf("a watcher's lock: %d, %v", pid, ok)
	}
	if _, ok := RefusedBy(&gitstate.LockedError{PID: 7, Command: "codemachine run"}); ok {
		t.Error("a run's lock counts as a watcher's")
	}
	if _, ok := RefusedBy(errors.New("other")); ok {
		t.Error("any error counts as a watcher's lock")
	}
}

// watchRig runs a session in the background and collects what it reports.
type watchRig struct {
	t        *testing.T
	dir      string
	o        *orchestrator.Orchestrator
	triggers chan Trigger
	passes   chan *orchestrator.Summary
	cancel   context.CancelFunc
	done     chan struct{} // closed when Run returned err
	err      error
}

func startWatchRig(t *testing.T, files map[string]string, opts Options) *watchRig {
	t.Helper()
	dir := newRepo(t, files)
	o, err := orchestrator.New(orchestrator.Config{Dir: dir, Environ: os.Environ(), NewEngine: agents.New})
	if err != nil {
		t.Fatal(err)
	}
	r := &watchRig{t: t, dir: dir, o: o, triggers: make(chan Trigger, 16), passes: make(chan *orchestrator.Summary, 16), done: make(chan struct{})}
	opts.Quiet = 50 * time.Millisecond
	opts.OnTrigger = func(tr Trigger) { r.triggers <- tr }
	opts.OnPass = func(s *orchestrator.Summary, err error) {
		if err != nil {
			var failed *orchestrator.StepFailedError
			if !errors.As(err, &failed) && !errors.Is(err, orchestrator.ErrInterrupted) {
				t.Errorf("pass: %v", err)
			}
		}
		r.passes <- s
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.err = Run(ctx, o, opts); close(r.done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(testenv.Patience()):
			t.Error("the session did not end")
		}
	})
	return r
}

func (r *watchRig) trigger() Trigger {
	r.t.Helper()
	select {
	case tr := <-r.triggers:
		return tr
	case <-r.done:
		r.t.Fatalf("the session ended: %v", r.err)
	case <-time.After(testenv.Patience()):
		r.t.Fatal("no trigger")
	}
	return Trigger{}
}

func (r *watchRig) pass() *orchestrator.Summary {
	r.t.Helper()
	select {
	case s := <-r.passes:
		return s
	case <-time.After(30 * time.Second):
		r.t.Fatal("no pass ended")
	}
	return nil
}

func (r *watchRig) commit(file, content, msg string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, file), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
	testenv.Git(r.t, r.dir, "add", file)
	testenv.Git(r.t, r.dir, "commit", "-q", "-m", msg)
}

func TestWatchPasses(t *testing.T) {
	r := startWatchRig(t, map[string]string{
		".codemachine/workflow.yaml": `version: 1
steps:
  - id: copy
    run: 'cp in.txt out.txt'
    inputs: [in.txt]
    outputs: [out.txt]
`,
		"in.txt": "1\n",
	}, Options{})
	if tr := r.trigger(); tr.Pass != 1 || tr.Kind != "start" {
		t.Fatalf("first trigger %+v", tr)
	}
	if s := r.pass(); len(s.Landed) != 1 {
		t.Fatalf("first pass landed %d", len(s.Landed))
	}

	// Another codemachine finds the watcher: run is refused with the
	// watcher's lock, retry is handed over.
	other, err := orchestrator.New(orchestrator.Config{Dir: r.dir, Environ: os.Environ()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Run(t.Context(), orchestrator.RunOptions{})
	if pid, ok := RefusedBy(err); !ok || pid != os.Getpid() {
		t.Fatalf("run while watching: %v", err)
	}
	if _, err := QueueRetry(other, "copy"); err == nil || !strings.Contains(err.Error(), "neither failed nor held") {
		t.Errorf("QueueRetry of a done step = %v", err)
	}
	if _, err := QueueRetry(other, "nosuch"); err == nil || !strings.Contains(err.Error(), "not a step") {
		t.Errorf("QueueRetry of an unknown step = %v", err)
	}

	// A user commit: one pass, which lands the step again. Its landing
	// triggers nothing: the next trigger is the next user commit, pass 3.
	r.commit("in.txt", "2\n", "input two")
	if tr := r.trigger(); tr.Pass != 2 || tr.Kind != "commit" || !strings.Contains(tr.Message, "new commit") || !strings.HasSuffix(tr.Message, ": input two") {
		t.Fatalf("trigger %+v", tr)
	}
	if s := r.pass(); len(s.Landed) != 1 {
		t.Fatalf("second pass landed %d", len(s.Landed))
	}
	time.Sleep(300 * time.Millisecond)
	r.commit("notes.txt", "n\n", "notes")
	if tr := r.trigger(); tr.Pass != 3 || !strings.HasSuffix(tr.Message, ": notes") {
		t.Fatalf("trigger %+v (the landing of pass 2 must not trigger)", tr)
	}
	if s := r.pass(); len(s.Landed) != 0 {
		t.Errorf("a commit of notes landed %d", len(s.Landed))
	}

	r.cancel()
	select {
	case <-r.done:
		if !errors.Is(r.err, orchestrator.ErrInterrupted) {
			t.Errorf("Run after cancel = %v", r.err)
		}
	case <-time.After(testenv.Patience()):
		t.Fatal("the session did not end")
	}
	if _, _, held := r.o.Repo().LockHolder(); held {
		t.Error("the lock is still held")
	}
	if _, err := QueueRetry(other, "copy"); !errors.Is(err, ErrNoWatcher) {
		t.Errorf("QueueRetry without a watcher = %v", err)
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: a\n    run: 'true'\n"})
	o, err := orchestrator.New(orchestrator.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	err = Run(t.Context(), o, Options{Trigger: "sometimes"})
	var cfg *orchestrator.ConfigError
	if !errors.As(err, &cfg) || !strings.Contains(err.Error(), `unknown trigger "sometimes"`) {
		t.Errorf("Run with a bad trigger = %v", err)
	}
	testenv.Git(t, dir, "checkout", "-q", "--detach")
	if err := Run(t.Context(), o, Options{}); !errors.As(err, &cfg) || !strings.Contains(err.Error(), "detached") {
		t.Errorf("Run on a detached HEAD = %v", err)
	}
}

// overflowBackend is the real backend whose errors the test sends.
type overflowBackend struct {
	watcher.Backend
	errs chan error
}

func (b *overflowBackend) Errors() <-chan error { return b.errs }

func TestWatchOverflowRescans(t *testing.T) {
	errs := make(chan error)
	opts := Options{newBackend: func() (watcher.Backend, error) {
		b, err := watcher.NewNotify()
		return &overflowBackend{Backend: b, errs: errs}, err
	}}
	r := startWatchRig(t, map[string]string{
		".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: a\n    run: 'echo a > a.txt'\n    outputs: [a.txt]\n",
	}, opts)
	r.trigger()
	if s := r.pass(); len(s.Landed) != 1 {
		t.Fatalf("first pass landed %d", len(s.Landed))
	}
	errs <- watcher.ErrOverflow
	if tr := r.trigger(); tr.Pass != 2 || tr.Kind != "rescan" {
		t.Fatalf("trigger after an overflow: %+v", tr)
	}
	if s := r.pass(); len(s.Landed) != 0 {
		t.Errorf("the rescan pass landed %d", len(s.Landed))
	}
}

// TestWatchCommitsDuringPass: commits that arrive while a pass runs make
// one more pass (issue 10, D3), even when the pass lands on top of them;
// an input committed during the pass is run again within it.
func TestWatchCommitsDuringPass(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "gate")
	r := startWatchRig(t, map[string]string{
		// The gate is outside every path a sandbox keeps visible.
		".codemachine/workflow.yaml": `version: 1
sandbox: off
steps:
  - id: copy
    run: 'until [ -e ` + gate + ` ]; do sleep 0.02; done; cp in.txt out.txt'
    inputs: [in.txt]
    outputs: [out.txt]
`,
		"in.txt": "1\n",
	}, Options{})
	if tr := r.trigger(); tr.Pass != 1 {
		t.Fatalf("first trigger %+v", tr)
	}
	running := filepath.Join(r.o.Repo().LocalDir(), "running.yaml")
	for {
		if data, err := os.ReadFile(running); err == nil && strings.Contains(string(data), "copy") {
			break
		}
		select {
		case <-r.done:
			t.Fatalf("the session ended: %v", r.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	r.commit("in.txt", "2\n", "input two")
	r.commit("notes.txt", "n\n", "notes")
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := r.pass()
	if len(s.Landed) != 2 || !s.Landed[0].Stale || s.Landed[1].Stale {
		t.Fatalf("the pass landed %+v: want a stale result, then the current one", s.Landed)
	}
	if got, _ := os.ReadFile(filepath.Join(r.dir, "out.txt")); string(got) != "2\n" {
		t.Fatalf("out.txt = %q", got)
	}
	tr := r.trigger()
	if tr.Pass != 2 || tr.Kind != "commit" || !strings.Contains(tr.Message, "2 commits arrived on main during pass 1") {
		t.Fatalf("trigger after the pass %+v", tr)
	}
	if s := r.pass(); len(s.Landed) != 0 {
		t.Errorf("the follow-up pass landed %d", len(s.Landed))
	}
}

// TestWatchNamesRequestsOfAStoppedWatcher: an approve handed to a watcher
// that was killed before it took it is not done, though approve said it
// was handed over: the next watcher names it in a note, with the command
// to run again, rather than dropping it without a word.
func TestWatchNamesRequestsOfAStoppedWatcher(t *testing.T) {
	var mu sync.Mutex
	var notes []string
	r := startWatchRig(t, map[string]string{
		".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: copy\n    run: 'cp in.txt out.txt'\n    inputs: [in.txt]\n    outputs: [out.txt]\n",
		"in.txt":                     "1\n",
		".git/codemachine/requests/retry-1-4194305.yaml": "action: approve\nkey: copy\npid: 4194305\nat: 2026-01-02T03:04:05Z\n",
	}, Options{OnNote: func(n string) {
		mu.Lock()
		notes = append(notes, n)
		mu.Unlock()
	}})
	if tr := r.trigger(); tr.Kind != "start" {
		t.Fatalf("first trigger %+v", tr)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, n := range notes {
		if strings.Contains(n, "approve of copy (asked by pid 4194305)") && strings.Contains(n, "run codemachine approve copy again") {
			return
		}
	}
	t.Errorf("no note names the approve left for the stopped watcher: %q", notes)
}
