package workflow

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func fingerprintFixture() (*Step, *Agent, []InputFile) {
	s := &Step{
		ID: "implement", Agent: "coder", Prompt: "Keep it small.", Engine: "codex", Model: "gpt-5", Effort: "high",
		Env:     map[string]string{"B": "2", "A": "1"},
		Inputs:  []string{".codemachine/architecture.md", "src/**/*.go"},
		Outputs: []string{"src/**"},
		Needs:   []string{"plan"},
		Foreach: ".codemachine/plan.md", Check: "go test ./...",
		Hooks: Hooks{Before: "make generate"},
		Pos:   Pos{File: "w.yaml", Line: 10, Col: 5},
	}
	a := &Agent{Name: "coder", File: ".codemachine/agents/coder.md", Raw: []byte("---\nname: coder\n---\nImplement {{ .Task.ID }}\n")}
	in := []InputFile{
		{Path: ".codemachine/architecture.md", Hash: "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"},
		{Path: "src/main.go", Hash: "ce013625030ba8dba906f756967f9e9ca394464a"},
	}
	return s, a, in
}

// TestFingerprintGolden pins the encoding: a change to it re-runs every
// step in every repository, so it must be deliberate (and bump
// fingerprintVersion).
func TestFingerprintGolden(t *testing.T) {
	s, a, in := fingerprintFixture()
	run := &Step{ID: "fmt", Run: "gofmt -w .", Needs: []string{"implement"}}
	got := fmt.Sprintf("agent step: %s\nrun step:   %s\nno inputs:  %s\n",
		Fingerprint(s, a, "codex", "gpt-5", in),
		Fingerprint(run, nil, "shell", "", nil),
		Fingerprint(s, a, "codex", "gpt-5", nil))
	golden(t, "fingerprint.golden", []byte(got))
}

func TestFingerprintSensitivity(t *testing.T) {
	base, agent, inputs := fingerprintFixture()
	want := Fingerprint(base, agent, "codex", "gpt-5", inputs)
	if len(want) != 64 || strings.Trim(want, "0123456789abcdef") != "" {
		t.Fatalf("not hex sha256: %q", want)
	}
	clone := func() *Step {
		c := *base
		c.Env = map[string]string{"A": "1", "B": "2"}
		c.Inputs = append([]string(nil), base.Inputs...)
		c.Outputs = append([]string(nil), base.Outputs...)
		c.Needs = append([]string(nil), base.Needs...)
		return &c
	}
	same := []struct {
		name string
		edit func(*Step)
	}{
		{"position", func(s *Step) { s.Pos = Pos{File: "x", Line: 99} }},
		{"input order", func(s *Step) { s.Inputs[0], s.Inputs[1] = s.Inputs[1], s.Inputs[0] }},
		{"duplicate need", func(s *Step) { s.Needs = append(s.Needs, "plan") }},
		{"timeout", func(s *Step) { s.Timeout = time.Hour }},
		{"parallel", func(s *Step) { s.Parallel = 4 }},
		{"attempts", func(s *Step) { s.Attempts = 5 }},
		{"review", func(s *Step) { s.Review = true }},
	}
	for _, tt := range same {
		s := clone()
		tt.edit(s)
		if got := Fingerprint(s, agent, "codex", "gpt-5", inputs); got != want {
			t.Errorf("%s changed the fingerprint", tt.name)
		}
	}
	reversed := []InputFile{inputs[1], inputs[0]}
	if Fingerprint(base, agent, "codex", "gpt-5", reversed) != want {
		t.Error("input order changed the fingerprint")
	}

	differ := []struct {
		name string
		edit func(*Step)
	}{
		{"id", func(s *Step) { s.ID = "other" }},
		{"agent", func(s *Step) { s.Agent = "coder2" }},
		{"prompt", func(s *Step) { s.Prompt += " " }},
		{"engine", func(s *Step) { s.Engine = "claude" }},
		{"model", func(s *Step) { s.Model = "o3" }},
		{"effort", func(s *Step) { s.Effort = "low" }},
		{"env value", func(s *Step) { s.Env["A"] = "9" }},
		{"env key", func(s *Step) { s.Env["C"] = "" }},
		{"inputs", func(s *Step) { s.Inputs = s.Inputs[:1] }},
		{"outputs", func(s *Step) { s.Outputs = []string{"lib/**"} }},
		{"needs", func(s *Step) { s.Needs = nil }},
		{"foreach", func(s *Step) { s.Foreach = "other.md" }},
		{"check", func(s *Step) { s.Check = "make test" }},
		{"mcp", func(s *Step) { s.MCP = true }},
		{"hook", func(s *Step) { s.Hooks.After = "echo" }},
		{"run", func(s *Step) { s.Run = "x" }},
	}
	seen := map[string]string{want: "base"}
	for _, tt := range differ {
		s := clone()
		tt.edit(s)
		got := Fingerprint(s, agent, "codex", "gpt-5", inputs)
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: same fingerprint as %s", tt.name, prev)
		}
		seen[got] = tt.name
	}
	others := map[string]string{
		"agent file":     Fingerprint(base, &Agent{Raw: []byte("other")}, "codex", "gpt-5", inputs),
		"no agent":       Fingerprint(base, nil, "codex", "gpt-5", inputs),
		"empty agent":    Fingerprint(base, &Agent{}, "codex", "gpt-5", inputs),
		"engine":         Fingerprint(base, agent, "claude", "gpt-5", inputs),
		"model":          Fingerprint(base, agent, "codex", "gpt-5-mini", inputs),
		"engine/model":   Fingerprint(base, agent, "codexgpt-5", "", inputs),
		"input hash":     Fingerprint(base, agent, "codex", "gpt-5", []InputFile{inputs[0], {Path: inputs[1].Path, Hash: "0000"}}),
		"input removed":  Fingerprint(base, agent, "codex", "gpt-5", inputs[:1]),
		"input renamed":  Fingerprint(base, agent, "codex", "gpt-5", []InputFile{inputs[0], {Path: "src/main2.go", Hash: inputs[1].Hash}}),
		"input boundary": Fingerprint(base, agent, "codex", "gpt-5", []InputFile{{Path: inputs[0].Path + inputs[0].Hash, Hash: ""}, inputs[1]}),
	}
	for name, got := range others {
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: same fingerprint as %s", name, prev)
		}
		seen[got] = name
	}
}
