package orchestrator

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/codemachine/codemachine/agents"
)

const mcpWorkflow = `version: 1
defaults:
  engine: claude
steps:
  - id: plan
    agent: planner
    mcp: true
    outputs: [plan.md]
  - id: other
    agent: planner
    outputs: [other.md]
`

// TestMCPServerForAgent: the agent of a step with mcp: true gets
// codemachine's MCP server, started for its worktree and the repository;
// other steps get none; without an MCP command the step fails saying why.
func TestMCPServerForAgent(t *testing.T) {
	dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": mcpWorkflow,
		".codemachine/agents/planner.md": "Plan.\n"})
	got := map[string]*agents.MCPServer{}
	worktrees := map[string]string{}
	eng := fakeEngine{run: func(_ context.Context, req agents.Request) (agents.Result, error) {
		got[req.Step], worktrees[req.Step] = req.MCP, req.Dir
		return agents.Result{}, os.WriteFile(req.Dir+"/"+req.Step+".md", []byte("x\n"), 0o644)
	}}
	o, err := New(Config{Dir: dir, Environ: os.Environ(), MCPCommand: []string{"/bin/cm", "mcp"},
		NewEngine: func(string) (agents.Engine, error) { return eng, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Run(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	m := got["plan"]
	want := []string{"mcp", "-C", o.Repo().Root(), "--worktree", worktrees["plan"]}
	if m == nil || m.Name != "codemachine" || m.Command != "/bin/cm" || !slices.Equal(m.Args, want) {
		t.Errorf("plan's MCP server %+v, want /bin/cm %q", m, want)
	}
	if got["other"] != nil {
		t.Errorf("a step without mcp: true got %+v", got["other"])
	}

	var events eventLog
	o2 := newTestOrchestrator(t, dir, eng, events.add)
	_, err = o2.Run(t.Context(), RunOptions{Steps: []string{"plan"}, Force: true})
	var sf *StepFailedError
	if !errors.As(err, &sf) {
		t.Fatalf("run without an MCP command: %v, want plan to fail", err)
	}
	if f := events.of(StepFailed); len(f) != 1 || f[0].Message != "mcp: true needs codemachine's MCP server, and this codemachine was started without one" {
		t.Errorf("failures %+v", f)
	}
}
