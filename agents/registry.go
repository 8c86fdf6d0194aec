package agents

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// engines maps an engine name to its constructor. Each engine's file adds
// itself with register from an init function.
var engines = map[string]func() Engine{}

func init() {
	register("shell", func() Engine { return shellEngine{} })
	register("replay", func() Engine { return replayEngine{} })
}

// register adds an engine constructor. A name registered twice is a
// programming error, caught by any test of the package.
func register(name string, newEngine func() Engine) {
	if _, dup := engines[name]; dup {
		panic("agents: engine " + name + " registered twice")
	}
	engines[name] = newEngine
}

// Names returns the names of the known engines, sorted.
func Names() []string {
	names := make([]string, 0, len(engines))
	for n := range engines {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New returns the engine called name ("shell", "replay", "claude", ...).
// "auto" is not an engine: resolve it with Auto first.
func New(name string) (Engine, error) {
	if newEngine, ok := engines[name]; ok {
		return newEngine(), nil
	}
	hint := ""
	if name == "auto" {
		hint = " (auto is resolved to an installed CLI before an engine is made)"
	}
	return nil, fmt.Errorf("unknown engine %q%s; known engines: %s", name, hint, strings.Join(Names(), ", "))
}

// agentCLIs are the coding CLIs engine "auto" chooses from, in order of
// preference, with the npm package that installs each.
var agentCLIs = []struct{ name, pkg string }{
	{"claude", "@anthropic-ai/claude-code"},
	{"codex", "@openai/codex"},
	{"gemini", "@google/gemini-cli"},
	{"opencode", "opencode-ai"},
}

// ErrNoAgentCLI is wrapped by Auto's error when none of the coding CLIs is
// installed, and matched by the RunError of an engine whose CLI is missing.
var ErrNoAgentCLI = errors.New("no coding agent CLI found")

// Auto resolves engine "auto": the first of claude, codex, gemini and
// opencode that lookPath (exec.LookPath, or a fake in tests) finds.
func Auto(lookPath func(string) (string, error)) (string, error) {
	var names, installs []string
	for _, c := range agentCLIs {
		if _, err := lookPath(c.name); err == nil {
			return c.name, nil
		}
		names = append(names, c.name)
		installs = append(installs, "npm install -g "+c.pkg)
	}
	return "", fmt.Errorf("%w on PATH (looked for %s); install one (%s) or set engine: in workflow.yaml",
		ErrNoAgentCLI, strings.Join(names, ", "), strings.Join(installs, ", "))
}
