package workflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/rogpeppe/go-internal/txtar"
)

// TestRenderGolden parses each testdata/render case's agent, renders it
// with the case's data.json against the case's files, and compares the
// agent's fields, the prompt and the footer with the golden file.
func TestRenderGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/render/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		t.Run(name, func(t *testing.T) {
			a, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			fsys := archiveFS(a, "data.json")
			var data PromptData
			var agentFile string
			for _, f := range a.Files {
				switch {
				case f.Name == "data.json":
					if err := json.Unmarshal(f.Data, &data); err != nil {
						t.Fatal(err)
					}
				case strings.HasPrefix(f.Name, AgentsDir+"/"):
					agentFile = f.Name
				}
			}
			agent, err := ParseAgent(agentFile, fsys[agentFile].Data, testEngines)
			if err != nil {
				t.Fatal(err)
			}
			prompt, err := agent.Render(fsys, data)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "name: %s\ndescription: %s\nengine: %s\nmodel: %s\neffort: %s\ntools: %q\nbody line: %d\n",
				agent.Name, agent.Description, agent.Engine, agent.Model, agent.Effort, agent.Tools, agent.BodyLine)
			b.WriteString("=== prompt ===\n")
			b.WriteString(prompt)
			b.WriteString(Footer(data.Repo, data.Step.Outputs))
			golden(t, "render/"+name+".golden", []byte(b.String()))
		})
	}
}

func TestParseAgentFrontMatter(t *testing.T) {
	tests := []struct {
		name, file, data string
		want             Agent
	}{
		{"no front matter", "a/x.md", "Hello\n", Agent{Name: "x", Body: "Hello\n", BodyLine: 1}},
		{"empty front matter", "a/x.md", "---\n---\nHello\n", Agent{Name: "x", Body: "Hello\n", BodyLine: 3}},
		{"front matter only", "a/x.md", "---\nname: y\n---", Agent{Name: "y", BodyLine: 4}},
		{"CRLF", "a/x.md", "---\r\nname: y\r\nmodel: opus\r\n---\r\nHello\r\n", Agent{Name: "y", Model: "opus", Body: "Hello\r\n", BodyLine: 5}},
		{"BOM", "a/x.md", "\uFEFF---\nname: y\n---\nHi", Agent{Name: "y", Body: "Hi", BodyLine: 4}},
		{"closing line with spaces", "a/x.md", "---\nname: y\n---  \nHi", Agent{Name: "y", Body: "Hi", BodyLine: 4}},
		{"tools string", "a/x.md", "---\ntools: Read, Grep,  Bash\n---\n", Agent{Name: "x", Tools: []string{"Read", "Grep", "Bash"}, BodyLine: 4}},
		{"tools list", "a/x.md", "---\ntools: [Read, Grep]\n---\n", Agent{Name: "x", Tools: []string{"Read", "Grep"}, BodyLine: 4}},
		{"model inherit", "a/x.md", "---\nmodel: inherit\n---\n", Agent{Name: "x", BodyLine: 4}},
		{"unknown keys ignored", "a/x.md", "---\ncolor: red\npermissionMode: plan\n---\n", Agent{Name: "x", BodyLine: 5}},
		{"all keys", "a/x.md", "---\nname: n\ndescription: d\nengine: gemini\nmodel: m\neffort: low\n---\n",
			Agent{Name: "n", Description: "d", Engine: "gemini", Model: "m", Effort: "low", BodyLine: 8}},
		{"dashes later are body", "a/x.md", "Hi\n---\nname: y\n---\n", Agent{Name: "x", Body: "Hi\n---\nname: y\n---\n", BodyLine: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAgent(tt.file, []byte(tt.data), testEngines)
			if err != nil {
				t.Fatal(err)
			}
			if string(a.Raw) != tt.data || a.File != tt.file {
				t.Errorf("Raw/File not kept: %q %q", a.Raw, a.File)
			}
			got := *a
			got.Raw, got.File, got.tmpl = nil, "", nil
			if !jsonEqual(got, tt.want) || got.BodyLine != tt.want.BodyLine {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseAgentErrors(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string
	}{
		{"unclosed", "---\nname: x\n", []string{`x.md:1:1: front matter: no closing "---" line`}},
		{"only the opening line", "---", []string{`x.md:1:1: front matter: no closing "---" line`}},
		{"front matter is a list", "---\n- a\n---\n", []string{`x.md:2:1: front matter: want a mapping, got a list`}},
		{"yaml error line offset", "---\nname: x\ndescription: \"open\n---\nbody\n", []string{`x.md:3:14: invalid YAML: found unexpected end of stream (is a quote left open?)`}},
		{"tools wrong type", "---\ntools: {a: b}\n---\n", []string{`x.md:2:8: tools: want a list of tool names, got a mapping`}},
		{"unknown engine: shell not offered", "---\nengine: nosuch\n---\n", []string{`x.md:2:9: unknown engine "nosuch" (want one of auto, claude, codex, gemini, opencode, replay)`}},
		{"engine shell", "---\nengine: shell\n---\n", []string{`x.md:2:9: engine: shell runs commands; an agent needs an agent engine`}},
		{"undefined variable", "---\nname: x\n---\nline 4\n{{ $xs := 1 }} {{ $x }}\n", []string{`x.md:5:19: undefined variable "$x"`}},
		{"unknown function, offset by front matter", "---\nname: x\n---\nline 4\n  {{ slurp \"a\" }}\n", []string{`x.md:5:6: function "slurp" not defined`}},
		{"unclosed action", "Hello\n{{ if .Feedback }}\n", []string{`x.md:3:1: unexpected EOF`}},
		{"unknown field", "{{ .Step.Name }}", []string{`x.md:1:4: unknown field ".Step.Name"`}},
		{"field of a string", "x {{ .Feedback.Text }}", []string{`x.md:1:6: .Feedback has no field "Text"`}},
		{"unknown field through $", "{{ range .Step.Inputs }}{{ $.Attemp }}{{ end }}", []string{`x.md:1:28: unknown field "$.Attemp" (did you mean "$.Attempt"?)`}},
		{"unknown field in task", "{{ if .Task }}{{ .Task.Titel }}{{ end }}", []string{`x.md:1:18: unknown field ".Task.Titel" (did you mean ".Task.Title"?)`}},
		{"unknown field in a chain of three, at its start", "x {{ .Step.Nope.Bar }}", []string{`x.md:1:6: unknown field ".Step.Nope"`}},
		{"the second of two equal references", "{{ .Step.Nope.A }} {{ .Step.Nope.A }}", []string{`x.md:1:4: unknown field ".Step.Nope"`, `x.md:1:23: unknown field ".Step.Nope"`}},
		{"fields inside with are not checked", "{{ with .Task }}{{ .Title }}{{ end }}", nil},
		{"a NUL byte, after front matter", "---\nname: x\n---\nline 4\nnö \x00 here\n", []string{`x.md:5:4: a NUL byte in the prompt: an interactive step passes the prompt as a command-line argument, which cannot hold one`}},
		{"else of with keeps dot", "{{ with .Task }}{{ .Title }}{{ else }}{{ .Nope }}{{ end }}", []string{`x.md:1:42: unknown field ".Nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAgent("x.md", []byte(tt.data), testEngines)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	fsys := fstest.MapFS{
		"docs/a.md":      {Data: []byte("a")},
		".git/config":    {Data: []byte("[core]")},
		"dir/sub/x.txt":  {Data: []byte("x")},
		"big/one.txt":    {Data: []byte(strings.Repeat("y", 1<<20))},
		"loop/README.md": {Data: []byte("r")},
	}
	tests := []struct {
		name, body string
		want       string
	}{
		{"missing file", "---\nname: x\n---\nRead this:\n\n  {{ file \"docs/missing.md\" }}\n",
			`.codemachine/agents/x.md:6:6: file "docs/missing.md" does not exist`},
		{"escaping file", "{{ file \"../etc/passwd\" }}", `.codemachine/agents/x.md:1:4: file "../etc/passwd": escapes the repository`},
		{"file in .git", "{{ file \".git/config\" }}", `.codemachine/agents/x.md:1:4: file ".git/config": points into .git/`},
		{"file is a directory", "{{ file \"dir\" }}", `.codemachine/agents/x.md:1:4: file "dir": read dir: invalid argument`},
		{"invalid glob", "{{ glob \"[\" }}", `.codemachine/agents/x.md:1:4: glob "[": is not a valid glob pattern`},
		{"nil task", "Task: {{ .Task.ID }}", `.codemachine/agents/x.md:1:15: .Task is nil: only a foreach step's prompt has a task`},
		{"wrong argument count", "{{ file }}", `.codemachine/agents/x.md:1:4: file: wrong number of args for file: want 1 got 0`},
		{"too large", "{{ range 20 }}{{ glob \"big/*\" }}{{ end }}", `.codemachine/agents/x.md: prompt is larger than 16 MiB`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAgent(".codemachine/agents/x.md", []byte(tt.body), testEngines)
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.Render(fsys, PromptData{})
			if err == nil {
				t.Fatal("no error")
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Errorf("error is %T, want *Error", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got: %s\nwant: %s", err, tt.want)
			}
		})
	}
}

// TestRenderBuiltAgent renders an Agent made in code, without ParseAgent.
func TestRenderBuiltAgent(t *testing.T) {
	a := &Agent{File: "x.md", Body: "step {{ .Step.ID }}"}
	got, err := a.Render(fstest.MapFS{}, PromptData{Step: StepInfo{ID: "s"}})
	if err != nil || got != "step s" {
		t.Fatalf("Render = %q, %v", got, err)
	}
	a = &Agent{File: "x.md", Body: "{{ nope }}", BodyLine: 3}
	if _, err := a.Render(fstest.MapFS{}, PromptData{}); err == nil || err.Error() != `x.md:3:4: function "nope" not defined` {
		t.Fatalf("Render error = %v", err)
	}
}

func TestFooterGolden(t *testing.T) {
	got := Footer("/home/u/todo", []string{".codemachine/architecture.md", "docs/*.md"}) +
		"=== no outputs ===\n" + Footer("/home/u/todo", nil)
	golden(t, "render/footer.golden", []byte(got))
}

// TestRenderConcurrent renders one parsed agent from many goroutines, as
// parallel foreach tasks do; run with -race.
func TestRenderConcurrent(t *testing.T) {
	a, err := ParseAgent("x.md", []byte(`Task {{ .Task.ID }}: {{ file "spec.md" }}`), testEngines)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"spec.md": {Data: []byte("spec")}}
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			id := fmt.Sprintf("T%d", i)
			got, err := a.Render(fsys, PromptData{Task: &TaskInfo{ID: id}})
			if err == nil && got != "Task "+id+": spec" {
				err = fmt.Errorf("got %q", got)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestStepRefs: the .Steps.ID references of a template, at their start,
// where dot is the prompt's data.
func TestStepRefs(t *testing.T) {
	for _, c := range []struct {
		body string
		want []string
	}{
		{"{{ .Steps.review.Output.ok }}", []string{"review@x.md:1:4"}},
		{"a\n  {{ with .Steps.plan.Output }}{{ .n }}{{ end }}", []string{"plan@x.md:2:11"}},
		{"{{ range .Step.Inputs }}{{ $.Steps.lint.Output }}{{ end }}", []string{"lint@x.md:1:28"}},
		{"{{ with .Task }}{{ .Steps.x }}{{ end }}", nil},
		{"{{ .Steps }}", nil},
	} {
		a, err := ParseAgent("x.md", []byte(c.body), testEngines)
		if err != nil {
			t.Fatalf("%q: %v", c.body, err)
		}
		var got []string
		for _, r := range a.StepRefs() {
			got = append(got, r.ID+"@"+r.Pos.String())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("StepRefs(%q) = %q, want %q", c.body, got, c.want)
		}
	}
}

// TestParseAgentLoneCR: an agent file saved with classic Mac OS line ends
// (lone CRs) had its front matter taken for prompt text, its engine and
// model silently unread; a prompt alone with them is still text.
func TestParseAgentLoneCR(t *testing.T) {
	_, err := ParseAgent("a.md", []byte("---\rengine: codex\r---\rHello\r"), testEngines)
	want := "a.md:1:4: " + loneCRMessage
	if err == nil || err.Error() != want {
		t.Errorf("ParseAgent(lone CRs) = %v, want %q", err, want)
	}
	if a, err := ParseAgent("a.md", []byte("Hello\rworld\r"), testEngines); err != nil || a.Body != "Hello\rworld\r" {
		t.Errorf("prompt with lone CRs: %v, body %q", err, a.Body)
	}
}
