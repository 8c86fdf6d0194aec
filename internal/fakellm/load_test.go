package fakellm

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dumpScript renders a script in a stable, readable form for golden files.
func dumpScript(s Script) string {
	var b strings.Builder
	if s.Dir != "" {
		fmt.Fprintf(&b, "dir: %q\n", s.Dir)
	}
	fmt.Fprintf(&b, "turns: %d\n", len(s.Turns))
	for i, t := range s.Turns {
		fmt.Fprintf(&b, "turn %d:\n", i)
		if t.Text != "" {
			fmt.Fprintf(&b, "  text: %q\n", t.Text)
		}
		for _, c := range t.Calls {
			switch c := c.(type) {
			case WriteFile:
				fmt.Fprintf(&b, "  write path=%q content=%q\n", c.Path, c.Content)
			case EditFile:
				fmt.Fprintf(&b, "  edit path=%q old=%q new=%q\n", c.Path, c.Old, c.New)
			case ReadFile:
				fmt.Fprintf(&b, "  read path=%q\n", c.Path)
			case Shell:
				fmt.Fprintf(&b, "  shell command=%q\n", c.Command)
			case ToolCall:
				fmt.Fprintf(&b, "  tool name=%q args=%s text=%q\n", c.Name, mustJSON(c.Args), c.Text)
			}
		}
		if t.Usage != (Usage{}) {
			fmt.Fprintf(&b, "  usage: input=%d output=%d\n", t.Usage.Input, t.Usage.Output)
		}
		if t.Delay != 0 {
			fmt.Fprintf(&b, "  delay: %v\n", t.Delay)
		}
		if f := t.Fail; f != nil {
			fmt.Fprintf(&b, "  fail: kind=%s status=%d times=%d retry_after=%v message=%q type=%q\n",
				f.kind(), f.status(), f.Times, f.RetryAfter, f.Message, f.Type)
		}
	}
	return b.String()
}

// TestParseScriptGolden parses every testdata/scripts file; the golden file
// holds the decoded script, or the error for the bad-* ones.
func TestParseScriptGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/scripts/*.*")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, file := range files {
		if strings.HasSuffix(file, ".golden") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		t.Run(name, func(t *testing.T) {
			s, err := LoadScript(file)
			bad := strings.HasPrefix(name, "bad-")
			var got string
			switch {
			case err != nil && bad:
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				if !strings.HasPrefix(err.Error(), file+":") {
					t.Errorf("error does not start with the file name: %q", err)
				}
				got = "error: " + err.Error() + "\n"
			case err != nil:
				t.Fatalf("LoadScript: %v", err)
			case bad:
				t.Fatalf("LoadScript accepted a bad script:\n%s", dumpScript(s))
			default:
				if err := s.Validate(); err != nil {
					t.Errorf("a parsed script fails Validate: %v", err)
				}
				got = dumpScript(s)
			}
			golden(t, "scripts/"+name, got)
		})
	}
	if n < 10 {
		t.Fatalf("found only %d scripts in testdata/scripts", n)
	}
}

func TestLoadScriptMissingFile(t *testing.T) {
	_, err := LoadScript(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err = %v, want one naming the file", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		script Script
		want   string // "" = valid
	}{
		{"empty", Script{}, ""},
		{"full", Script{Turns: []Turn{{Text: "x", Calls: []Call{WriteFile{Path: "a"}, Shell{Command: "ls"}}, Fail: &Failure{Status: 503, Times: 2}}}}, ""},
		{"nil call", Script{Turns: []Turn{{Calls: []Call{nil}}}}, "turn 0: call 0: nil call"},
		{"edit without old", Script{Turns: []Turn{{}, {Calls: []Call{EditFile{Path: "a"}}}}}, "turn 1: call 0: edit: needs path and old"},
		{"read without path", Script{Turns: []Turn{{Calls: []Call{ReadFile{}}}}}, "turn 0: call 0: read: no path"},
		{"shell without command", Script{Turns: []Turn{{Calls: []Call{Shell{}}}}}, "turn 0: call 0: shell: no command"},
		{"tool without name", Script{Turns: []Turn{{Calls: []Call{ToolCall{}}}}}, "turn 0: call 0: tool: no name"},
		{"tool args not JSON", Script{Turns: []Turn{{Calls: []Call{ToolCall{Name: "x", Args: map[string]any{"f": func() {}}}}}}}, "turn 0: call 0: tool x: args: json: unsupported type: func()"},
		{"status 302", Script{Turns: []Turn{{Fail: &Failure{Status: 302}}}}, "turn 0: fail: status 302 is not an error status (400-599)"},
		{"bad kind", Script{Turns: []Turn{{Fail: &Failure{Kind: "boom"}}}}, `turn 0: fail: unknown kind "boom" (want status, malformed or hang)`},
		{"negative times", Script{Turns: []Turn{{Fail: &Failure{Times: -1}}}}, "turn 0: fail: negative times"},
		{"negative retry", Script{Turns: []Turn{{Fail: &Failure{RetryAfter: -time.Second}}}}, "turn 0: fail: negative retry_after"},
		{"negative delay", Script{Turns: []Turn{{Delay: -1}}}, "turn 0: negative delay"},
		{"negative usage", Script{Turns: []Turn{{Usage: Usage{Output: -1}}}}, "turn 0: negative usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.script.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestListenRejectsInvalidScript(t *testing.T) {
	_, err := Listen(Script{Turns: []Turn{{Calls: []Call{nil}}}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "invalid script") {
		t.Fatalf("Listen = %v, want an invalid script error", err)
	}
}
