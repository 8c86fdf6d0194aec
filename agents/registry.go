package agents

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// AutoEngine is the engine name that stands for the first coding CLI
// installed; Auto resolves it before an engine is made.
const AutoEngine = "auto"

// The registry: every engine, in the order messages list them. Its names
// are the one list of engines codemachine has: the workflow's validation
// and the CLI's --engine flag get them from WorkflowEngines and
// AgentEngines.
var (
	// codingCLIs drive a coding CLI each, in the order engine "auto"
	// prefers them.
	codingCLIs = []cliEngine{claudeCLI, codexCLI, geminiCLI, opencodeCLI}
	// cliFree are the engines that drive no coding CLI: shell runs the
	// commands of run: steps, replay applies recordings of agent runs.
	// They hold no state, so New hands out these values.
	cliFree = []Engine{shellEngine{}, replayEngine{}}
)

// registered returns the names of every engine, in the registry's order.
func registered() []string {
	names := CodingCLIs()
	for _, e := range cliFree {
		names = append(names, e.Name())
	}
	return names
}

// Names returns the names of the known engines, sorted.
func Names() []string {
	names := registered()
	slices.Sort(names)
	return names
}

// WorkflowEngines returns the engine names a workflow step or an agent file
// may give, in the order messages list them: auto, the coding CLIs in the
// order auto prefers them, then shell and replay.
func WorkflowEngines() []string {
	return append([]string{AutoEngine}, registered()...)
}

// AgentEngines returns the engine names that can run an agent: those of
// WorkflowEngines but shell, which runs commands. They are what
// `codemachine run --engine` may choose for the agent steps.
func AgentEngines() []string {
	return slices.DeleteFunc(WorkflowEngines(), func(name string) bool { return name == shellEngine{}.Name() })
}

// CodingCLIs returns the names of the engines that drive a coding CLI, in
// the order engine "auto" prefers them: what `codemachine doctor` probes.
func CodingCLIs() []string {
	names := make([]string, 0, len(codingCLIs))
	for _, c := range codingCLIs {
		names = append(names, c.name)
	}
	return names
}

// New returns the engine called name ("shell", "replay", "claude", ...).
// "auto" is not an engine: resolve it with Auto first.
func New(name string) (Engine, error) {
	for _, c := range codingCLIs {
		if c.name == name {
			return &c, nil
		}
	}
	for _, e := range cliFree {
		if e.Name() == name {
			return e, nil
		}
	}
	hint := ""
	if name == AutoEngine {
		hint = " (auto is resolved to an installed CLI before an engine is made)"
	}
	return nil, fmt.Errorf("unknown engine %q%s; known engines: %s", name, hint, strings.Join(Names(), ", "))
}

// ErrNoAgentCLI is wrapped by Auto's error when none of the coding CLIs is
// installed, and matched by the RunError of an engine whose CLI is missing.
var ErrNoAgentCLI = errors.New("no coding agent CLI found")

// Auto resolves engine "auto": the first of claude, codex, gemini and
// opencode that lookPath (exec.LookPath, or a fake in tests) finds.
func Auto(lookPath func(string) (string, error)) (string, error) {
	var names, installs []string
	for _, c := range codingCLIs {
		if _, err := lookPath(c.name); err == nil {
			return c.name, nil
		}
		names = append(names, c.name)
		installs = append(installs, "npm install -g "+c.pkg)
	}
	return "", fmt.Errorf("%w on PATH (looked for %s); install one (%s) or set engine: in workflow.yaml, or replay the recordings with --engine replay",
		ErrNoAgentCLI, strings.Join(names, ", "), strings.Join(installs, ", "))
}
