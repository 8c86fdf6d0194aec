package orchestrator

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
)

const resumeWorkflow = `version: 1
name: resume
defaults:
  retries: %RETRIES%
steps:
  - id: write
    agent: coder
    engine: claude
    outputs: [final.txt]
`

// resumeRepo is a repository with one agent step that must write
// final.txt.
func resumeRepo(t *testing.T, retries string) string {
	return newRepo(t, map[string]string{
		".codemachine/workflow.yaml":   strings.ReplaceAll(resumeWorkflow, "%RETRIES%", retries),
		".codemachine/agents/coder.md": "---\nname: coder\n---\nWrite partial.txt, then final.txt.\n",
	})
}

// scriptedEngine answers the runs of a test in order.
type scriptedEngine struct {
	mu   sync.Mutex
	reqs []agents.Request
	runs []func(req agents.Request) (agents.Result, error)
}

func (e *scriptedEngine) Name() string { return "claude" }

func (e *scriptedEngine) Run(_ context.Context, req agents.Request) (agents.Result, error) {
	e.mu.Lock()
	n := len(e.reqs)
	e.reqs = append(e.reqs, req)
	e.mu.Unlock()
	if n >= len(e.runs) {
		return agents.Result{}, &agents.RunError{Class: agents.Fatal, Engine: "claude", Msg: "unexpected run"}
	}
	return e.runs[n](req)
}

func (e *scriptedEngine) requests() []agents.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]agents.Request(nil), e.reqs...)
}

func writeIn(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Error(err)
	}
}

// interrupted is a run that wrote partial work and then failed with err
// after its engine reported session s1.
func interrupted(t *testing.T, err *agents.RunError) func(agents.Request) (agents.Result, error) {
	return func(req agents.Request) (agents.Result, error) {
		writeIn(t, req.Dir, "partial.txt", "half done\n")
		res := agents.Result{SessionID: "s1", TokensIn: 10, TokensOut: 2}
		err.Result = res
		return res, err
	}
}

// finishing is a resumed run: it checks that it resumes s1 with the
// partial work back in place, then finishes the task.
func finishing(t *testing.T) func(agents.Request) (agents.Result, error) {
	return func(req agents.Request) (agents.Result, error) {
		if req.Resume != "s1" {
			t.Errorf("resume %q, want s1", req.Resume)
		}
		if !strings.HasPrefix(req.Continue, "You were interrupted before you finished.") ||
			!strings.Contains(req.Continue, "- final.txt") || !strings.Contains(req.Continue, "Repository root: "+req.Dir) {
			t.Errorf("continue prompt %q", req.Continue)
		}
		if !strings.Contains(req.Prompt, "Write partial.txt, then final.txt.") {
			t.Errorf("the whole task is not in Prompt: %q", req.Prompt)
		}
		if data, err := os.ReadFile(filepath.Join(req.Dir, "partial.txt")); err != nil || string(data) != "half done\n" {
			t.Errorf("partial work not restored: %q, %v", data, err)
		}
		writeIn(t, req.Dir, "final.txt", "done\n")
		return agents.Result{SessionID: "s1", Text: "Finished.", TokensIn: 5, TokensOut: 1}, nil
	}
}

func TestResumeAfterInterruption(t *testing.T) {
	tests := []struct {
		name    string
		err     *agents.RunError
		retries string
		retry   bool // resume through `retry` rather than `run`
	}{
		{"timeout, next run", &agents.RunError{Class: agents.Fatal, Engine: "claude", Msg: "timed out after 1s", TimedOut: true}, "2", false},
		{"transient retries used up, retry", &agents.RunError{Class: agents.Transient, Engine: "claude", Msg: "API error 529"}, "0", true},
		{"canceled, retry", &agents.RunError{Class: agents.Fatal, Engine: "claude", Msg: "canceled", Canceled: true}, "2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := resumeRepo(t, tt.retries)
			eng := &scriptedEngine{runs: []func(agents.Request) (agents.Result, error){interrupted(t, tt.err), finishing(t)}}
			o, err := New(Config{Dir: dir, Environ: os.Environ(), RetryBase: time.Millisecond,
				NewEngine: func(string) (agents.Engine, error) { return eng, nil }})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.Run(t.Context(), RunOptions{}); err == nil {
				t.Fatal("the first run succeeded")
			}
			failures, err := o.failures()
			if err != nil {
				t.Fatal(err)
			}
			f := failures["write"]
			if f.Session != "s1" || f.Engine != "claude" || f.Commit == "" {
				t.Fatalf("failure record %+v: want session s1 of claude with its partial work", f)
			}
			if tt.retry {
				_, err = o.Retry(t.Context(), "write", RunOptions{})
			} else {
				_, err = o.Run(t.Context(), RunOptions{})
			}
			if err != nil {
				t.Fatalf("resumed run: %v", err)
			}
			if n := len(eng.requests()); n != 2 {
				t.Fatalf("%d engine runs, want 2", n)
			}
			head, _ := o.Repo().Head()
			c, err := o.Repo().CommitInfo(head.Commit)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"partial.txt", "final.txt"} {
				if _, err := o.Repo().ReadFile(head.Commit, name); err != nil {
					t.Errorf("the step commit lacks %s: %v", name, err)
				}
			}
			msg := gitstate.Message{Trailers: c.Trailers}
			if got := msg.Get(gitstate.TrailerSession); got != "s1" {
				t.Errorf("session trailer %q, want s1", got)
			}
			failures, _ = o.failures()
			if _, ok := failures["write"]; ok {
				t.Errorf("the failure outlived the landing: %+v", failures["write"])
			}
		})
	}
}

// A failure no retry can fix, or a changed input, starts the unit over.
func TestNoResume(t *testing.T) {
	fresh := func(t *testing.T) func(agents.Request) (agents.Result, error) {
		return func(req agents.Request) (agents.Result, error) {
			if req.Resume != "" || req.Continue != "" {
				t.Errorf("resumed %q with %q, want a new session", req.Resume, req.Continue)
			}
			if _, err := os.Stat(filepath.Join(req.Dir, "partial.txt")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("partial work restored for a fresh start")
			}
			writeIn(t, req.Dir, "final.txt", "done\n")
			return agents.Result{SessionID: "s2"}, nil
		}
	}
	t.Run("fatal", func(t *testing.T) {
		dir := resumeRepo(t, "2")
		bad := &agents.RunError{Class: agents.Fatal, Engine: "claude", Msg: "API error 400: bad request"}
		eng := &scriptedEngine{runs: []func(agents.Request) (agents.Result, error){interrupted(t, bad), fresh(t)}}
		o := newTestOrchestrator(t, dir, eng, nil)
		if _, err := o.Run(t.Context(), RunOptions{}); err == nil {
			t.Fatal("the first run succeeded")
		}
		if f, _ := o.failures(); f["write"].Session != "" {
			t.Errorf("a fatal failure is resumable: %+v", f["write"])
		}
		if _, err := o.Retry(t.Context(), "write", RunOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("inputs changed", func(t *testing.T) {
		dir := resumeRepo(t, "0")
		flaky := &agents.RunError{Class: agents.Transient, Engine: "claude", Msg: "API error 503"}
		eng := &scriptedEngine{runs: []func(agents.Request) (agents.Result, error){interrupted(t, flaky), fresh(t)}}
		o := newTestOrchestrator(t, dir, eng, nil)
		if _, err := o.Run(t.Context(), RunOptions{}); err == nil {
			t.Fatal("the first run succeeded")
		}
		writeIn(t, filepath.Join(dir, ".codemachine", "agents"), "coder.md", "---\nname: coder\n---\nWrite final.txt only.\n")
		testenv.Git(t, dir, "commit", "-qam", "reword")
		if _, err := o.Run(t.Context(), RunOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}

// Within one run, the retry of a transient failure resumes the session the
// engine reported, in the worktree the agent left.
func TestTransientRetryResumes(t *testing.T) {
	dir := resumeRepo(t, "1")
	flaky := &agents.RunError{Class: agents.Transient, Engine: "claude", Msg: "API error 529"}
	eng := &scriptedEngine{runs: []func(agents.Request) (agents.Result, error){interrupted(t, flaky), finishing(t)}}
	o, err := New(Config{Dir: dir, Environ: os.Environ(), RetryBase: time.Millisecond,
		NewEngine: func(string) (agents.Engine, error) { return eng, nil }})
	if err != nil {
		t.Fatal(err)
	}
	s, err := o.Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Landed) != 1 || s.TokensIn != 15 {
		t.Errorf("summary %+v: want one landing with both tries' tokens", s)
	}
}

// Partial work whose base is no longer the tip (a sibling task or the user
// committed meanwhile) is brought onto the tip and the session resumed; when
// it conflicts with what landed, the unit starts over and the run says so.
func TestResumeOntoMovedBranch(t *testing.T) {
	tests := []struct {
		name     string
		userFile string // what the user commits meanwhile
		resumes  bool
		wantNote string
	}{
		{"applies cleanly", "other.txt", true, "brought onto"},
		{"conflicts", "partial.txt", false, "conflicts with what landed since (partial.txt)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := resumeRepo(t, "0")
			timeout := &agents.RunError{Class: agents.Fatal, Engine: "claude", Msg: "timed out after 1s", TimedOut: true}
			second := finishing(t)
			if !tt.resumes {
				second = func(req agents.Request) (agents.Result, error) {
					if req.Resume != "" {
						t.Errorf("resumed %q over conflicting work", req.Resume)
					}
					if data, _ := os.ReadFile(filepath.Join(req.Dir, "partial.txt")); string(data) != "the user's\n" {
						t.Errorf("partial.txt is %q, want the tip's", data)
					}
					writeIn(t, req.Dir, "final.txt", "done\n")
					return agents.Result{SessionID: "s2"}, nil
				}
			}
			eng := &scriptedEngine{runs: []func(agents.Request) (agents.Result, error){interrupted(t, timeout), second}}
			var mu sync.Mutex
			var notes []string
			o := newTestOrchestrator(t, dir, eng, func(e Event) {
				if e.Kind == Note {
					mu.Lock()
					notes = append(notes, e.Message)
					mu.Unlock()
				}
			})
			if _, err := o.Run(t.Context(), RunOptions{}); err == nil {
				t.Fatal("the first run succeeded")
			}
			writeIn(t, dir, tt.userFile, "the user's\n")
			testenv.Git(t, dir, "add", tt.userFile)
			testenv.Git(t, dir, "commit", "-qm", "meanwhile")
			if _, err := o.Run(t.Context(), RunOptions{}); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			all := strings.Join(notes, "\n")
			mu.Unlock()
			if !strings.Contains(all, tt.wantNote) {
				t.Errorf("notes %q, want one with %q", all, tt.wantNote)
			}
			head, _ := o.Repo().Head()
			for _, name := range []string{tt.userFile, "final.txt"} {
				if _, err := o.Repo().ReadFile(head.Commit, name); err != nil {
					t.Errorf("the tip lacks %s: %v", name, err)
				}
			}
			if tt.resumes {
				if data, _ := o.Repo().ReadFile(head.Commit, "partial.txt"); string(data) != "half done\n" {
					t.Errorf("partial.txt %q: the partial work did not land", data)
				}
			}
		})
	}
}
