package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/agents"
)

// TestRunningFileFollowsTheRun: once a step's agent started, the running
// file names the step, the run's process and the agent's process group
// (what a run taking over after a kill stops), whether or not the
// scheduler has written its round yet; when the run ends the file is gone
// (an idle holder leaves no file, rather than a new empty one per step).
func TestRunningFileFollowsTheRun(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": `version: 1
steps:
  - id: one
    run: 'true'
    inputs: [in.txt]
    outputs: [out/one.txt]
  - id: two
    run: 'true'
    inputs: [out/one.txt]
    outputs: [out/two.txt]
`,
		"in.txt": "1\n",
	})
	var o *Orchestrator
	seen := map[string]string{}
	const group = 1 << 30 // no such process: only recorded
	eng := fakeEngine{run: func(_ context.Context, req agents.Request) (agents.Result, error) {
		if req.OnStart == nil {
			return agents.Result{}, errors.New("no OnStart in the request")
		}
		req.OnStart(group)
		var r Running
		if err := o.readLocal(runningFile, &r); err != nil {
			return agents.Result{}, err
		}
		if r.PID != os.Getpid() || r.Groups[req.Step] != group {
			return agents.Result{}, fmt.Errorf("the running file names pid %d, groups %v", r.PID, r.Groups)
		}
		keys := make([]string, 0, len(r.Units))
		for k := range r.Units {
			keys = append(keys, k)
		}
		seen[req.Step] = strings.Join(keys, ",")
		return agents.Result{}, writeOut(req, req.Step+".txt")
	}}
	o = newTestOrchestrator(t, dir, eng, nil)
	s, err := o.Run(t.Context(), RunOptions{})
	if err != nil || len(s.Landed) != 2 {
		t.Fatalf("run: %+v, %v", s, err)
	}
	if seen["one"] != "one" || seen["two"] != "two" {
		t.Errorf("the running file named %v while the steps ran, want each its own step", seen)
	}
	_, err = os.Stat(filepath.Join(o.Repo().LocalDir(), runningFile))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after the run the running file is still there (%v)", err)
	}
}
