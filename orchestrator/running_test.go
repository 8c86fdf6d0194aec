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
// scheduler has written its round yet; when the run ends the file names
// nothing running (kept, rather than a new file per step).
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
	var r Running
	if err := o.readLocal(runningFile, &r); err != nil || len(r.Units) != 0 || len(r.Groups) != 0 {
		t.Errorf("after the run the running file is %+v (%v), want it to name nothing running", r, err)
	}
}

// TestRunningFileMakesNoNewFile: runs in a row keep the running file and
// its spare, writing them in place, instead of making a file per step (an
// inode's creation, 0.3-1 ms of kernel time on a busy ext4).
func TestRunningFileMakesNoNewFile(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": `version: 1
steps:
  - id: one
    run: 'true'
    inputs: [in.txt]
    outputs: [out/one.txt]
`,
		"in.txt":      "1\n",
		"out/one.txt": "\n",
	})
	runs := 0
	eng := fakeEngine{run: func(_ context.Context, req agents.Request) (agents.Result, error) {
		req.OnStart(1 << 30)
		runs++
		return agents.Result{}, os.WriteFile(filepath.Join(req.Dir, "out", "one.txt"), fmt.Appendf(nil, "run %d\n", runs), 0o644)
	}}
	o := newTestOrchestrator(t, dir, eng, nil)
	path := filepath.Join(o.Repo().LocalDir(), runningFile)
	spare := filepath.Join(o.Repo().LocalDir(), "."+runningFile+".spare")
	var files []os.FileInfo
	for i := range 4 {
		if s, err := o.Run(t.Context(), RunOptions{Steps: []string{"one"}, Force: true}); err != nil || len(s.Landed) != 1 {
			t.Fatalf("run %d: %+v, %v", i, s, err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatalf("after run %d: %v", i, err)
		}
		if i == 1 {
			sp, err := os.Stat(spare)
			if err != nil {
				t.Fatalf("after run %d: %v", i, err)
			}
			files = append(files, st, sp)
		}
		if i > 1 && !os.SameFile(st, files[0]) && !os.SameFile(st, files[1]) {
			t.Errorf("run %d made a new running file", i)
		}
	}
}

// TestRunningFileWrittenOncePerStep: a unit the scheduler starts is not
// written to the running file on its own (a file written anew per write);
// the write that names its agent's process group names it, or, for a unit
// that starts no agent, the scheduler's next wake. A unit that ends leaves
// the file at once.
func TestRunningFileWrittenOncePerStep(t *testing.T) {
	dir := newRepo(t, map[string]string{"in.txt": "1\n"})
	o := newTestOrchestrator(t, dir, fakeEngine{}, nil)
	rs := &runState{id: "r", repo: o.Repo(), failed: map[string]bool{}}
	path := filepath.Join(o.Repo().LocalDir(), runningFile)
	read := func() (Running, bool) {
		t.Helper()
		var r Running
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return r, false
		}
		if err := o.readLocal(runningFile, &r); err != nil {
			t.Fatal(err)
		}
		return r, true
	}
	const group = 1 << 30
	rs.setRunning([]string{"one"}, "2026-01-01T00:00:00Z")
	if r, ok := read(); ok {
		t.Fatalf("the scheduler's start of a unit wrote the running file (%+v); the agent's start writes it", r)
	}
	rs.agentStarted("one", group)
	r, ok := read()
	if !ok || r.Units["one"] != "2026-01-01T00:00:00Z" || r.Groups["one"] != group {
		t.Fatalf("after the agent started the running file is %+v (there: %t), want unit one with its group", r, ok)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// The scheduler's write after the agent's start changes nothing.
	rs.setRunning([]string{"one"}, "2026-01-01T00:00:01Z")
	rs.flushRunning()
	after, err := os.Stat(path)
	if err != nil || !os.SameFile(before, after) {
		t.Errorf("the running file was written again for the same units (%v)", err)
	}
	// A unit that starts no agent is written when the scheduler wakes.
	rs.setRunning([]string{"one", "two"}, "2026-01-01T00:00:02Z")
	if r, _ := read(); r.Units["two"] != "" {
		t.Fatalf("unit two written before the scheduler woke: %+v", r)
	}
	rs.flushRunning()
	if r, _ := read(); r.Units["two"] != "2026-01-01T00:00:02Z" || r.Groups["one"] != group {
		t.Fatalf("after the scheduler woke the running file is %+v, want units one and two, one's group kept", r)
	}
	// One lands: off the file at once.
	rs.setRunning([]string{"two"}, "2026-01-01T00:00:03Z")
	if r, _ := read(); r.Units["one"] != "" || r.Units["two"] == "" || len(r.Groups) != 0 {
		t.Fatalf("after unit one ended the running file is %+v, want unit two alone", r)
	}
	rs.setRunning(nil, "2026-01-01T00:00:04Z")
	if r, ok := read(); !ok || len(r.Units) != 0 || len(r.Groups) != 0 {
		t.Fatalf("with nothing running the running file is %+v (there: %t), want it to name nothing", r, ok)
	}
}
