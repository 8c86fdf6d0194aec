package orchestrator

import (
	"strings"
	"testing"
	"time"

	"github.com/codemachine/codemachine/agents"
)

// An agent run that leaves the outputs as they were runs again while
// attempts remain, told so in its prompt; tool errors reach the commit.
func TestUnchangedOutputsRetry(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: write\n    agent: coder\n    engine: claude\n" +
			"    outputs: [final.txt]\n    attempts: 3\n",
		".codemachine/agents/coder.md": "---\nname: coder\n---\nWrite final.txt.\n",
		"final.txt":                    "old\n",
	})
	eng := &scriptedEngine{runs: []func(agents.Request) (agents.Result, error){
		func(req agents.Request) (agents.Result, error) {
			if strings.Contains(req.Prompt, "Note from codemachine") {
				t.Errorf("the first attempt got the notice: %q", req.Prompt)
			}
			writeIn(t, req.Dir, "notes.txt", "not an output\n")
			return agents.Result{Text: "Nothing to do.", ToolErrors: []string{"Bash: exit 1"}}, nil
		},
		func(req agents.Request) (agents.Result, error) {
			if !strings.Contains(req.Prompt, "attempt 1 ended without changing any of this step's outputs") {
				t.Errorf("the second attempt was not told: %q", req.Prompt)
			}
			writeIn(t, req.Dir, "final.txt", "new\n")
			return agents.Result{Text: "Rewrote final.txt."}, nil
		},
	}}
	o := newTestOrchestrator(t, dir, eng, nil)
	if _, err := o.Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(eng.requests()); n != 2 {
		t.Fatalf("%d engine runs, want 2", n)
	}
	head, _ := o.Repo().Head()
	c, err := o.Repo().CommitInfo(head.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.Message, "changed none") {
		t.Errorf("the landed run changed final.txt, but the message says otherwise:\n%s", c.Message)
	}
	if !strings.Contains(c.Message, "Tool errors the CLI reported (1):\n- Bash: exit 1\n") {
		t.Errorf("the tool error is not in the message:\n%s", c.Message)
	}
}

// The duration a step commit's trailer records is the one the run reports
// (and state.yaml keeps), so that log and the run table agree.
func TestDurationTrailerMatchesRun(t *testing.T) {
	dir := resumeRepo(t, "0")
	eng := &scriptedEngine{runs: []func(agents.Request) (agents.Result, error){
		func(req agents.Request) (agents.Result, error) {
			writeIn(t, req.Dir, "final.txt", "done\n")
			return agents.Result{Text: "Done."}, nil
		},
	}}
	o := newTestOrchestrator(t, dir, eng, nil)
	sum, err := o.Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := o.Log(1)
	if err != nil || len(entries) != 1 || len(sum.Landed) != 1 {
		t.Fatalf("log %v, %v; landed %v", entries, err, sum.Landed)
	}
	if want := sum.Landed[0].Duration.Round(time.Millisecond).String(); entries[0].Duration != want {
		t.Errorf("log says %s, the run said %s", entries[0].Duration, want)
	}
}
