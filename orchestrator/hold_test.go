package orchestrator

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/internal/testenv"
)

// countingEngine does every unit's work (writes <step>[-<task>].txt) and
// counts the runs of each key.
type countingEngine struct {
	mu   sync.Mutex
	runs map[string]int
}

func (e *countingEngine) Name() string { return "claude" }

func (e *countingEngine) Run(_ context.Context, req agents.Request) (agents.Result, error) {
	e.mu.Lock()
	e.runs[unitKey(req.Step, req.Task)]++
	e.mu.Unlock()
	name := req.Step
	if req.Task != "" {
		name += "-" + req.Task
	}
	return agents.Result{}, os.WriteFile(filepath.Join(req.Dir, name+".txt"), []byte(req.Model+"\n"), 0o644)
}

func (e *countingEngine) runsOf(key string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[key]
}

const holdAgentWorkflow = `version: 1
steps:
  - id: write
    agent: coder
    engine: claude
`

func TestHoldUndone(t *testing.T) {
	agentStep := map[string]string{
		".codemachine/workflow.yaml":   holdAgentWorkflow,
		".codemachine/agents/coder.md": "---\nname: coder\n---\nWrite write.txt.\n",
	}
	tasks := map[string]string{
		".codemachine/workflow.yaml": taskWorkflow(1),
		planFile:                     "# Plan\n\n- [ ] T1: One\n- [ ] T2: Two\n",
	}
	reset := func(t *testing.T, dir string) { testenv.Git(t, dir, "reset", "-q", "--hard", "HEAD~1") }
	amend := func(t *testing.T, dir string) { testenv.Git(t, dir, "commit", "-q", "--amend", "-m", "amended") }
	tests := []struct {
		name  string
		files map[string]string
		ov    Overrides
		env   []string
		move  func(t *testing.T, dir string) // the branch's move after the first run
		want  []string
	}{
		{name: "step due is held", files: agentStep, move: reset, want: []string{"write"}},
		{name: "step still done after an amend is not held", files: agentStep, move: amend},
		{name: "unchecked task is held with its task fingerprint", files: tasks, move: reset, want: []string{"build/T2"}},
		{name: "checked task after an amend is not held", files: tasks, move: amend},
		{name: "held with the caller's overrides", files: agentStep, ov: Overrides{Engine: "claude", Model: "model-x"},
			move: reset, want: []string{"write"}},
		{name: "held with the environment's model", files: agentStep, env: []string{"CODEMACHINE_MODEL=model-env"},
			move: reset, want: []string{"write"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newRepo(t, tt.files)
			eng := &countingEngine{runs: map[string]int{}}
			o, err := New(Config{Dir: dir, Environ: append(os.Environ(), tt.env...),
				NewEngine: func(string) (agents.Engine, error) { return eng, nil }})
			if err != nil {
				t.Fatal(err)
			}
			sum, err := o.Run(t.Context(), RunOptions{Overrides: tt.ov})
			if err != nil {
				t.Fatal(err)
			}
			landed := map[string]string{} // key -> its commit
			for _, e := range sum.Landed {
				landed[unitKey(e.Step, e.Task)] = e.Commit
			}
			from := testenv.Git(t, dir, "rev-parse", "HEAD")
			tt.move(t, dir)
			to := testenv.Git(t, dir, "rev-parse", "HEAD")

			held, err := o.holdUndone(t.Context(), from, to, tt.ov)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(held, tt.want) {
				t.Fatalf("held %v, want %v", held, tt.want)
			}
			holds, err := o.holds()
			if err != nil {
				t.Fatal(err)
			}
			if len(holds) != len(tt.want) {
				t.Errorf("holds.yaml holds %v, want %v", holds, tt.want)
			}
			for _, key := range tt.want {
				h := holds[key]
				if h.Commit != landed[key] {
					t.Errorf("%s: the hold records commit %s, want the undone %s", key, h.Commit, landed[key])
				}
				// The inputs are those the undone commit was made with:
				// the hold's fingerprint is the one that commit recorded,
				// with the same overrides.
				c, err := o.Repo().CommitInfo(landed[key])
				if err != nil {
					t.Fatal(err)
				}
				if made := (gitstate.Message{Trailers: c.Trailers}).Get(gitstate.TrailerFingerprint); h.Fingerprint != made {
					t.Errorf("%s: hold fingerprint %s, want the run's %s", key, h.Fingerprint, made)
				}
			}
			if tt.ov != (Overrides{}) || tt.env != nil {
				// Without the overrides the fingerprint would differ: the
				// test would not tell one computation from the other.
				plain, err := New(Config{Dir: dir, Environ: os.Environ()})
				if err != nil {
					t.Fatal(err)
				}
				snap, err := plain.load(to, Overrides{})
				if err != nil {
					t.Fatal(err)
				}
				if snap.settings["write"].fingerprint == holds["write"].Fingerprint {
					t.Error("the overrides do not change the fingerprint")
				}
			}

			// The next run with the same overrides leaves what is held
			// alone: the hold is not lifted at once.
			before := map[string]int{}
			for _, key := range tt.want {
				before[key] = eng.runsOf(key)
			}
			sum, err = o.Run(t.Context(), RunOptions{Overrides: tt.ov})
			if err != nil {
				t.Fatal(err)
			}
			var skipped []string
			for _, e := range sum.Skipped {
				if strings.HasPrefix(e.Message, "held after a rollback") {
					skipped = append(skipped, unitKey(e.Step, e.Task))
				}
			}
			if !slices.Equal(skipped, tt.want) {
				t.Errorf("the next run skipped %v as held, want %v", skipped, tt.want)
			}
			for _, key := range tt.want {
				if n := eng.runsOf(key); n != before[key] {
					t.Errorf("%s ran again", key)
				}
			}
			if len(sum.Landed) != 0 {
				t.Errorf("the next run landed %d units", len(sum.Landed))
			}
		})
	}
}
