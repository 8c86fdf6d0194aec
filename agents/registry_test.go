package agents

import (
	"errors"
	"os/exec"
	"slices"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct{ name, wantName, wantErr string }{
		{"shell", "shell", ""},
		{"replay", "replay", ""},
		{"claude", "claude", ""},
		{"codex", "codex", ""},
		{"gemini", "gemini", ""},
		{"opencode", "opencode", ""},
		{"clod", "", `unknown engine "clod"; known engines: claude, codex, gemini, opencode, replay, shell`},
		{"auto", "", `unknown engine "auto" (auto is resolved to an installed CLI before an engine is made); known engines: claude, codex, gemini, opencode, replay, shell`},
		{"", "", `unknown engine ""; known engines: claude, codex, gemini, opencode, replay, shell`},
	}
	for _, tt := range tests {
		eng, err := New(tt.name)
		switch {
		case tt.wantErr != "":
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("New(%q) error %v, want %s", tt.name, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("New(%q): %v", tt.name, err)
		case eng.Name() != tt.wantName:
			t.Errorf("New(%q).Name() = %q", tt.name, eng.Name())
		}
	}
}

// TestEngineLists pins the registry's names in the order messages list
// them: workflow validation errors and `run --engine` print these lists.
func TestEngineLists(t *testing.T) {
	if got, want := WorkflowEngines(), []string{"auto", "claude", "codex", "gemini", "opencode", "shell", "replay"}; !slices.Equal(got, want) {
		t.Errorf("WorkflowEngines() = %q, want %q", got, want)
	}
	if got, want := AgentEngines(), []string{"auto", "claude", "codex", "gemini", "opencode", "replay"}; !slices.Equal(got, want) {
		t.Errorf("AgentEngines() = %q, want %q", got, want)
	}
	names := Names()
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("Names() = %q, want sorted names without repeats", names)
	}
	for _, name := range names {
		if e, err := New(name); err != nil || e.Name() != name {
			t.Errorf("New(%q) = %v, %v", name, e, err)
		}
	}
	a, _ := New("claude")
	b, _ := New("claude")
	if a == b {
		t.Error("New returned the same coding CLI engine twice; each run gets its own")
	}
}

func TestAuto(t *testing.T) {
	const none = "no coding agent CLI found on PATH (looked for claude, codex, gemini, opencode); install one " +
		"(npm install -g @anthropic-ai/claude-code, npm install -g @openai/codex, npm install -g @google/gemini-cli, " +
		"npm install -g opencode-ai) or set engine: in workflow.yaml, or replay the recordings with --engine replay"
	tests := []struct {
		name      string
		installed []string
		want      string
		wantErr   string
	}{
		{"all", []string{"opencode", "gemini", "codex", "claude"}, "claude", ""},
		{"codex and gemini", []string{"gemini", "codex"}, "codex", ""},
		{"only opencode", []string{"opencode"}, "opencode", ""},
		{"none", nil, "", none},
		{"only unrelated", []string{"aider", "sh"}, "", none},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []string
			lookPath := func(name string) (string, error) {
				asked = append(asked, name)
				for _, n := range tt.installed {
					if n == name {
						return "/usr/local/bin/" + name, nil
					}
				}
				return "", exec.ErrNotFound
			}
			got, err := Auto(lookPath)
			if got != tt.want {
				t.Errorf("Auto = %q, want %q (asked %q)", got, tt.want, asked)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("error %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrNoAgentCLI) {
				t.Errorf("error\n got %v\nwant %s", err, tt.wantErr)
			}
		})
	}
}
