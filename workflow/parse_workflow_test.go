package workflow

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseWorkflowGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/parse/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w, err := ParseWorkflow("full.yaml", data, testEngines)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "parse/full.golden", dumpJSON(t, w))
}

func TestParseWorkflowDefaults(t *testing.T) {
	w, err := ParseWorkflow("w.yaml", []byte("version: 1\nsteps:\n  - id: a\n    run: echo\n"), testEngines)
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults{Engine: "auto", Timeout: 30 * time.Minute, Retries: 2}
	if w.Defaults != want {
		t.Errorf("Defaults = %+v, want %+v", w.Defaults, want)
	}
	if w.Trigger != "commit" || w.Version != 1 || w.File != "w.yaml" {
		t.Errorf("Trigger %q Version %d File %q", w.Trigger, w.Version, w.File)
	}
	s := w.Steps[0]
	if s.Pos != (Pos{File: "w.yaml", Line: 3, Col: 5}) {
		t.Errorf("step Pos = %v", s.Pos)
	}
	if s.Parallel != 0 || s.Attempts != 0 || s.Timeout != 0 {
		t.Errorf("unset numbers should stay zero: %+v", s)
	}
}

// TestParseWorkflowErrors covers messages the malformed corpus does not,
// and that every problem is reported at once.
func TestParseWorkflowErrors(t *testing.T) {
	const head = "version: 1\nsteps:\n"
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"not a mapping", "- a\n- b\n", []string{`w.yaml:1:1: workflow: want a mapping, got a list`}},
		{"step not a mapping", head + "  - just a string\n", []string{`w.yaml:3:5: step #1: want a mapping, got a string ("just a string")`}},
		{"missing steps", "version: 1\n", []string{`w.yaml:1:1: missing key "steps"`}},
		{"unknown x- key is fine, unknown key is not", "version: 1\nx-common: &c {run: x}\nstepz: []\nsteps:\n  - id: a\n    <<: *c\n", []string{`w.yaml:3:1: unknown key "stepz" (did you mean "steps"?)`}},
		{"version as string", "version: one\nsteps:\n  - id: a\n    run: x\n", []string{`w.yaml:1:10: version: want a whole number, got a string ("one")`}},
		{"negative retries", "version: 1\ndefaults:\n  retries: -1\nsteps:\n  - id: a\n    run: x\n", []string{`w.yaml:3:12: retries: want 0 to 100, got -1`}},
		{"shell as the default engine", "version: 1\ndefaults:\n  engine: shell\nsteps:\n  - id: a\n    run: x\n", []string{`w.yaml:3:11: engine: shell runs commands, which a run: step does anyway; defaults.engine is the engine of the agent steps`}},
		{"unknown default engine is not offered shell", "version: 1\ndefaults:\n  engine: shel\nsteps:\n  - id: a\n    run: x\n", []string{`w.yaml:3:11: unknown engine "shel" (want one of auto, claude, codex, gemini, opencode, replay)`}},
		{"unknown defaults key", "version: 1\ndefaults:\n  engin: claude\nsteps:\n  - id: a\n    run: x\n", []string{`w.yaml:3:3: unknown key "engin" in defaults (did you mean "engine"?)`}},
		{"budget types", "version: 1\nbudget:\n  usd: lots\n  tokens: 1.5\nsteps:\n  - id: a\n    run: x\n", []string{
			`w.yaml:3:8: usd: want a number, got a string ("lots")`,
			`w.yaml:4:11: tokens: want a whole number, 0 or more, got 1.5`,
		}},
		{"budget past a float", "version: 1\nbudget:\n  usd: 1e400\n  tokens: 10\nsteps:\n  - id: a\n    run: x\n", []string{`w.yaml:3:8: usd: number 1e400 is out of range`}},
		{"budget not a number", "version: 1\nbudget:\n  usd: .nan\nsteps:\n  - id: a\n    run: x\n", []string{`w.yaml:3:8: usd: want a number, got .nan, which is none`}},
		{"key repeated in vars", "version: 1\nvars:\n  a: {b: 1, b: 2}\nsteps:\n  - id: a\n    run: x\n", []string{`w.yaml:3:13: vars: a: duplicate key "b" (first at line 3)`}},
		{"negative timeout", head + "  - id: a\n    run: x\n    timeout: -5m\n", []string{`w.yaml:5:14: timeout: must be positive, got -5m`}},
		{"interactive of another type", head + "  - id: a\n    agent: a\n    interactive: 2\n  - id: b\n    agent: a\n    interactive: [yes]\n", []string{
			`w.yaml:5:18: interactive: want true, false or auto, got a number ("2")`,
			`w.yaml:8:18: interactive: want true, false or auto, got a list`,
		}},
		{"zero parallel", head + "  - id: a\n    run: x\n    parallel: 0\n", []string{`w.yaml:5:15: parallel: want 1 to 1000, got 0`}},
		{"attempts float", head + "  - id: a\n    run: x\n    attempts: 2.5\n", []string{`w.yaml:5:15: attempts: want a whole number, 1 to 1000, got 2.5`}},
		{"parallel past any integer", head + "  - id: a\n    run: x\n    parallel: 99999999999999999999\n", []string{`w.yaml:5:15: parallel: want a whole number, 1 to 1000, got 99999999999999999999`}},
		{"retries past an int64", "version: 1\ndefaults:\n  retries: 9223372036854775808\nsteps:\n  - id: a\n    run: x\n", []string{`w.yaml:3:12: retries: want a whole number, 0 to 100, got 9223372036854775808`}},
		{"budget out of range", "version: 1\nbudget:\n  usd: -1\n  tokens: -3\nsteps:\n  - id: a\n    run: x\n", []string{
			`w.yaml:3:8: usd: want 0 or more, got -1`,
			`w.yaml:4:11: tokens: want 0 or more, got -3`,
		}},
		{"timeout past a duration", head + "  - id: a\n    run: x\n    timeout: 10000000h\n", []string{`w.yaml:5:14: timeout: want more than 0s and at most 2562047h, got "10000000h"`}},
		{"empty run", head + "  - id: a\n    run: \"  \"\n", []string{`w.yaml:4:10: run: the command is empty: give the command the step runs`}},
		{"run as list", head + "  - id: a\n    run: [echo, hi]\n", []string{
			`w.yaml:3:5: step "a" has neither agent nor run`,
			`w.yaml:4:10: run: want a string, got a list`,
		}},
		{"needs as number", head + "  - id: a\n    run: x\n    needs: 3\n", []string{`w.yaml:5:12: needs: want a list of step ids, got a number ("3")`}},
		{"inputs item mapping", head + "  - id: a\n    run: x\n    inputs: [{a: b}]\n", []string{`w.yaml:5:14: inputs: want a list of globs, got a mapping in the list`}},
		{"env value null", head + "  - id: a\n    run: x\n    env:\n      A:\n", []string{`w.yaml:6:9: env A: want a value (a string, number or boolean), got null: write "" for an empty one, or name A in CODEMACHINE_PASS_ENV to pass yours`}},
		{"env value list", head + "  - id: a\n    run: x\n    env:\n      A: [1]\n", []string{`w.yaml:6:10: env A: want a string, got a list`}},
		{"NUL in a command", head + "  - id: a\n    run: \"echo \\0\"\n    check: \"true\\x00\"\n    env: {A: \"\\0\"}\n    hooks: {before: \"x\\0\"}\n", []string{
			`w.yaml:4:10: run: holds a NUL byte, which no command, path or environment variable can hold`,
			`w.yaml:5:12: check: holds a NUL byte, which no command, path or environment variable can hold`,
			`w.yaml:6:14: env A: holds a NUL byte, which no command, path or environment variable can hold`,
			`w.yaml:7:21: before: holds a NUL byte, which no command, path or environment variable can hold`,
		}},
		{"agent name with slash", head + "  - id: a\n    agent: ../x\n", []string{`w.yaml:4:12: agent: invalid agent name "../x": want the name of a file in .codemachine/agents/, without ".md"`}},
		{"agent name with .md", head + "  - id: a\n    agent: coder.md\n", []string{`w.yaml:4:12: agent: invalid agent name "coder.md": want the name of a file in .codemachine/agents/, without ".md"`}},
		{"mcp on a run step", head + "  - id: a\n    run: x\n    mcp: true\n", []string{`w.yaml:5:10: mcp: a run step has no agent to give codemachine's MCP server to`}},
		{"mcp and interactive false on a run step", head + "  - id: a\n    run: x\n    mcp: false\n    interactive: false\n", []string{
			`w.yaml:5:10: mcp: a run step has no agent to give codemachine's MCP server to`,
			`w.yaml:6:18: interactive: a run step is a command; only an agent step has a UI to talk in`,
		}},
		{"agent-only keys on a run step, each reported", head + "  - id: a\n    run: x\n    engine: claude\n    prompt: be brief\n    effort: high\n    mcp: true\n", []string{
			`w.yaml:5:13: engine: a run step always uses the shell engine, got "claude"`,
			`w.yaml:6:13: prompt: a run step is a command; only an agent step has a prompt to add to`,
			`w.yaml:7:13: effort: a run step is a command; only an agent step has a reasoning effort`,
			`w.yaml:8:10: mcp: a run step has no agent to give codemachine's MCP server to`,
		}},
		{"parallel without foreach", head + "  - id: a\n    agent: coder\n    parallel: 4\n", []string{`w.yaml:5:15: parallel: only with foreach (how many of the step's tasks run at once)`}},
		{"mcp not a boolean", head + "  - id: a\n    agent: x\n    mcp: yes please\n", []string{`w.yaml:5:10: mcp: want true or false, got a string ("yes please")`}},
		{"shell engine on agent step", head + "  - id: a\n    agent: coder\n    engine: shell\n", []string{`w.yaml:5:13: engine: shell runs commands; an agent step needs an agent engine`}},
		{"foreach escapes", head + "  - id: a\n    run: x\n    foreach: ../plan.md\n", []string{`w.yaml:5:14: foreach: "../plan.md" escapes the repository`}},
		{"glob dotdot after wildcard", head + "  - id: a\n    run: x\n    inputs: [\"src/**/../../x\"]\n", []string{`w.yaml:5:14: inputs: "src/**/../../x" escapes the repository (".." after a wildcard)`}},
		{"glob root", head + "  - id: a\n    run: x\n    outputs: [.]\n", []string{`w.yaml:5:15: outputs: "." names the repository root; use "**" for every file`}},
		{"glob .git upper case", head + "  - id: a\n    run: x\n    outputs: [.GIT/config]\n", []string{`w.yaml:5:15: outputs: ".GIT/config" points into .git/`}},
		{"allow_secrets absolute", "version: 1\nallow_secrets: [/etc/x]\nsteps:\n  - id: a\n    run: x\n", []string{`w.yaml:2:17: allow_secrets: "/etc/x" is absolute; paths are relative to the repository root`}},
		{"merge conflict", head + "<<<<<<< HEAD\r\n  - id: a\n    run: x\n=======\n  - id: b\n    run: y\n>>>>>>> feature\n", []string{`w.yaml:3:1: unresolved merge conflict: keep what the <<<<<<< ... >>>>>>> block should say, remove the markers and commit`}},
		{"UTF-16 without BOM", "v\x00e\x00r\x00s\x00i\x00o\x00n\x00:\x00 \x001\x00\n\x00", []string{`w.yaml:1:1: the file is UTF-16 without a byte-order mark: save it as UTF-8`}},
		{"UTF-16BE without BOM", "\x00v\x00e\x00r\x00s\x00i\x00o\x00n\x00:\x00 \x001\x00\n", []string{`w.yaml:1:1: the file is UTF-16 without a byte-order mark: save it as UTF-8`}},
		{"two documents", head + "  - id: a\n    run: x\n---\nversion: 1\n", []string{`w.yaml:6:1: more than one YAML document (remove the second "---")`}},
		{"merge of a string", head + "  - id: a\n    run: x\n    <<: oops\n", []string{`w.yaml:5:9: step "a": "<<" wants a mapping or a list of mappings, got a string`}},
		{"self-referencing alias", "version: 1\nsteps: &s\n  - *s\n", []string{`w.yaml:2:8: step #1: want a mapping, got a list`}},
		{"many at once", head + "  - id: a\n    agent: x\n    run: y\n    inputs: [/a, ../b]\n  - id: a\n    run: z\n    needs: [c]\n", []string{
			`w.yaml:5:5: step "a" has both agent and run; keep one`,
			`w.yaml:6:14: inputs: "/a" is absolute; paths are relative to the repository root`,
			`w.yaml:6:18: inputs: "../b" escapes the repository`,
			`w.yaml:7:9: duplicate step id "a" (first at line 3)`,
			`w.yaml:9:13: needs unknown step "c"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWorkflow("w.yaml", []byte(tt.yaml), testEngines)
			if err == nil {
				t.Fatal("no error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestParseWorkflowPartial checks that a workflow with errors still holds
// the steps that could be read, so that LoadProject goes on to check them.
func TestParseWorkflowPartial(t *testing.T) {
	w, err := ParseWorkflow("w.yaml", []byte("version: 1\nsteps:\n  - id: a\n    run: x\n    parallel: no\n  - id: Bad\n    run: y\n  - id: c\n    run: z\n"), testEngines)
	if err == nil {
		t.Fatal("no error")
	}
	var ids []string
	for _, s := range w.Steps {
		ids = append(ids, s.ID)
	}
	if strings.Join(ids, ",") != "a,c" {
		t.Errorf("steps = %v, want a,c (the invalid id left out)", ids)
	}
}
