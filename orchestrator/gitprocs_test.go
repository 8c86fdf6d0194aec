package orchestrator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/internal/testenv"
)

// TestStepStartsNoGitProcess: once a run has read what it keeps of the
// repository (its configuration, the worktree pool), a step that lands,
// after a user's commit or right after another step, starts no git
// process: what the guards need of git's configuration (its hooks
// directory, included files, configured commands) comes from the one
// read of the configuration, not a git process per step.
func TestStepStartsNoGitProcess(t *testing.T) {
	for _, userCommits := range []bool{false, true} {
		t.Run(fmt.Sprintf("user-commits=%v", userCommits), func(t *testing.T) {
			dir := newRepo(t, map[string]string{
				".codemachine/workflow.yaml": `version: 1
steps:
  - id: touch
    run: 'true'
    inputs: [in.txt]
    outputs: [out/stamp.txt]
`,
				"in.txt":        "0\n",
				"out/stamp.txt": "\n",
			})
			n := 0
			eng := fakeEngine{run: func(_ context.Context, req agents.Request) (agents.Result, error) {
				n++
				return agents.Result{}, os.WriteFile(filepath.Join(req.Dir, "out", "stamp.txt"), fmt.Appendf(nil, "%d\n", n), 0o644)
			}}
			o := newTestOrchestrator(t, dir, eng, nil)
			step := func(i int) int64 {
				opts := RunOptions{Steps: []string{"touch"}, Force: true}
				if userCommits || i < 0 {
					if err := os.WriteFile(filepath.Join(dir, "in.txt"), fmt.Appendf(nil, "%d\n", i), 0o644); err != nil {
						t.Fatal(err)
					}
					testenv.Git(t, dir, "commit", "-q", "-am", fmt.Sprintf("input %d", i))
					opts = RunOptions{}
				}
				procs := o.Repo().Processes()
				s, err := o.Run(t.Context(), opts)
				if err != nil || len(s.Landed) != 1 {
					t.Fatalf("run %d: %+v, %v", i, s, err)
				}
				return o.Repo().Processes() - procs
			}
			step(-1) // the first run reads the configuration and checks out the pooled worktree
			for i := 0; i < 3; i++ {
				if n := step(i); n != 0 {
					t.Errorf("step %d started %d git processes, want 0", i, n)
				}
			}
		})
	}
}
