package workflow

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/rogpeppe/go-internal/txtar"
	"go.yaml.in/yaml/v3"
)

// resolved is a schema ready to validate with.
func resolved(t *testing.T, name string) (*jsonschema.Resolved, map[string]any) {
	t.Helper()
	data, err := Schema(name, testEngines)
	if err != nil {
		t.Fatal(err)
	}
	var s jsonschema.Schema
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Resolve(nil)
	if err != nil {
		t.Fatalf("schema %s: %v", name, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	return rs, raw
}

// instance reads a YAML document as JSON would hold it (merge keys
// expanded), for the validator.
func instance(t *testing.T, name, data string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(data), &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out any
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// props returns the property names of the schema object at path
// (keys separated by "/") in the raw schema.
func props(t *testing.T, raw map[string]any, path string) []string {
	t.Helper()
	node := raw
	for _, k := range strings.Split(path, "/") {
		if k == "" {
			continue
		}
		next, ok := node[k].(map[string]any)
		if !ok {
			t.Fatalf("schema has no %s", path)
		}
		node = next
	}
	p, ok := node["properties"].(map[string]any)
	if !ok {
		t.Fatalf("schema %s has no properties", path)
	}
	return slices.Sorted(maps.Keys(p))
}

func sorted(keys []string) []string { return slices.Sorted(slices.Values(keys)) }

// TestSchemaKeysAreTheParsers: the schema describes exactly the keys the
// parsers read, at every level, so that a key added to a parser fails here
// until the schema has it (and the other way round).
func TestSchemaKeysAreTheParsers(t *testing.T) {
	_, raw := resolved(t, SchemaWorkflow)
	for _, c := range []struct {
		path string
		keys []string
	}{
		{"", workflowKeys},
		{"properties/defaults", defaultsKeys},
		{"properties/budget", budgetKeys},
		{"$defs/step", stepKeys},
		{"$defs/step/properties/hooks", hookKeys},
		{"$defs/uses", usesEntryKeys},
	} {
		if got, want := props(t, raw, c.path), sorted(c.keys); !slices.Equal(got, want) {
			t.Errorf("schema %q has keys %v; the parser reads %v", c.path, got, want)
		}
	}
	_, agentRaw := resolved(t, SchemaAgent)
	if got, want := props(t, agentRaw, ""), sorted(agentKeys); !slices.Equal(got, want) {
		t.Errorf("agent schema has keys %v; the parser reads %v", got, want)
	}
	engines := raw["$defs"].(map[string]any)["engine"].(map[string]any)["enum"]
	if got := toStrings(engines); !slices.Equal(got, testEngines) {
		t.Errorf("engine enum %v, want the engines given, %v", got, testEngines)
	}
	if got := toStrings(agentRaw["$defs"].(map[string]any)["engine"].(map[string]any)["enum"]); slices.Contains(got, "shell") {
		t.Errorf("an agent's engine may be shell: %v", got)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

// doc is a document to validate: a workflow or an agent file.
type doc struct {
	name, data string
	agent      bool
}

var fenceRE = regexp.MustCompile("(?ms)^```(yaml|markdown)\n(.*?)^```")

// snippets finds the workflows and agent files in a Markdown document's
// fenced blocks: yaml blocks with a version key, markdown blocks with
// front matter.
func snippets(t *testing.T, file string) []doc {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var docs []doc
	for i, m := range fenceRE.FindAllStringSubmatch(string(data), -1) {
		name := file + " block " + string(rune('1'+i))
		switch {
		case m[1] == "yaml" && regexp.MustCompile(`(?m)^version:`).MatchString(m[2]):
			docs = append(docs, doc{name: name, data: m[2]})
		case m[1] == "markdown" && strings.HasPrefix(m[2], "---\n"):
			docs = append(docs, doc{name: name, data: m[2], agent: true})
		}
	}
	return docs
}

// examples are every workflow and agent file the project shows a user or
// tests with: the example init copies (the template), the docs' and the
// README's snippets, and the workflows and agents of the CLI's test
// scripts and of this package's testdata.
func examples(t *testing.T) []doc {
	t.Helper()
	var docs []doc
	add := func(name string, agent bool) {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, doc{name: name, data: string(data), agent: agent})
	}
	add("../.codemachine-example/workflow.yaml", false)
	agents, _ := filepath.Glob("../.codemachine-example/agents/*.md")
	for _, a := range agents {
		add(a, true)
	}
	if len(agents) == 0 {
		t.Fatal("no example agents found")
	}
	add("testdata/parse/full.yaml", false)
	for _, md := range []string{"../docs/workflow.md", "../README.md"} {
		docs = append(docs, snippets(t, md)...)
	}
	scripts, _ := filepath.Glob("../cmd/codemachine/testdata/*/*.txtar")
	for _, s := range scripts {
		ar, err := txtar.ParseFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range ar.Files {
			name := s + ":" + f.Name
			switch {
			case strings.HasSuffix(f.Name, ".yaml") && strings.Contains(string(f.Data), "steps:") && strings.Contains(string(f.Data), "version:"):
				docs = append(docs, doc{name: name, data: string(f.Data)})
			case strings.HasSuffix(f.Name, ".md") && strings.HasPrefix(string(f.Data), "---\n"):
				docs = append(docs, doc{name: name, data: string(f.Data), agent: true})
			}
		}
	}
	return docs
}

// TestSchemaAcceptsEveryExample: every workflow and agent file the parser
// accepts, among the examples, templates, docs snippets and test scripts,
// validates against the schema; so do the docs' (which must parse).
func TestSchemaAcceptsEveryExample(t *testing.T) {
	wf, _ := resolved(t, SchemaWorkflow)
	ag, _ := resolved(t, SchemaAgent)
	docs := examples(t)
	counts := map[bool]int{}
	for _, d := range docs {
		fromDocs := strings.HasSuffix(strings.SplitN(d.name, " block", 2)[0], ".md") && strings.Contains(d.name, " block")
		if d.agent {
			a, err := ParseAgent(d.name, []byte(d.data), testEngines)
			if err != nil {
				if fromDocs {
					t.Errorf("%s does not parse: %v", d.name, err)
				}
				continue
			}
			front, _, _, _ := splitFrontMatter(d.data)
			if err := ag.Validate(instance(t, d.name, front)); err != nil {
				t.Errorf("%s: the parser accepts it (agent %q), the schema does not: %v", d.name, a.Name, err)
			}
			counts[true]++
			continue
		}
		if _, err := ParseWorkflow(d.name, []byte(d.data), testEngines); err != nil {
			if fromDocs {
				t.Errorf("%s does not parse: %v", d.name, err)
			}
			continue
		}
		if err := wf.Validate(instance(t, d.name, d.data)); err != nil {
			t.Errorf("%s: the parser accepts it, the schema does not: %v", d.name, err)
		}
		counts[false]++
	}
	// Enough of each to mean something (the scripts hold dozens).
	if counts[false] < 20 || counts[true] < 8 {
		t.Errorf("validated %d workflows and %d agents; the examples were not found", counts[false], counts[true])
	}
}

// TestSchemaRejects: the schema is no formality: what the parser refuses
// for its shape, the schema refuses too.
func TestSchemaRejects(t *testing.T) {
	wf, _ := resolved(t, SchemaWorkflow)
	const head = "version: 1\nsteps:\n"
	for name, data := range map[string]string{
		"unknown top-level key": "version: 1\nstepz: []\nsteps:\n  - {id: a, run: x}\n",
		"version 2":             "version: 2\nsteps:\n  - {id: a, run: x}\n",
		"no steps":              "version: 1\n",
		"unknown step key":      head + "  - {id: a, run: x, retry: 3}\n",
		"agent and run":         head + "  - {id: a, run: x, agent: b}\n",
		"neither agent nor run": head + "  - {id: a}\n",
		"bad id":                head + "  - {id: A_b, run: x}\n",
		"parallel as string":    head + "  - {id: a, run: x, parallel: two}\n",
		"parallel 0":            head + "  - {id: a, run: x, parallel: 0}\n",
		"bad duration":          head + "  - {id: a, run: x, timeout: 5 minutes}\n",
		"unknown engine":        head + "  - {id: a, agent: b, engine: gpt}\n",
		"unknown hook":          head + "  - {id: a, run: x, hooks: {befor: y}}\n",
		"env list":              head + "  - {id: a, run: x, env: [A]}\n",
		"interactive as string": head + "  - {id: a, agent: b, interactive: yes please}\n",
		"trigger":               "version: 1\ntrigger: push\nsteps:\n  - {id: a, run: x}\n",
		"negative budget":       "version: 1\nbudget: {usd: -1}\nsteps:\n  - {id: a, run: x}\n",
		"unknown defaults key":  "version: 1\ndefaults: {engin: claude}\nsteps:\n  - {id: a, run: x}\n",
		"mcp as string":         head + "  - {id: a, agent: b, mcp: yes please}\n",
		"run step engine":       head + "  - {id: a, run: x, engine: claude}\n",
		"run step interactive":  head + "  - {id: a, run: x, interactive: true}\n",
		"run step mcp":          head + "  - {id: a, run: x, mcp: false}\n",
		"agent step shell":      head + "  - {id: a, agent: b, engine: shell}\n",
	} {
		if err := wf.Validate(instance(t, name, data)); err == nil {
			t.Errorf("%s: the schema accepts\n%s", name, data)
		}
	}
	// What the parser refuses and a schema can say: an editor marks it
	// before codemachine validate does.
	for name, data := range map[string]string{
		"max_iterations without until": head + "  - {id: a, run: x, max_iterations: 3}\n",
		"parallel without foreach":     head + "  - {id: a, run: x, parallel: 2}\n",
		"foreach step loops":           head + "  - {id: a, run: x, foreach: p.md, until: \"true\"}\n",
		"empty foreach":                head + "  - {id: a, run: x, foreach: \"\"}\n",
		"empty foreach glob":           head + "  - {id: a, run: x, foreach: {glob: \"\"}}\n",
		"empty foreach items":          head + "  - {id: a, run: x, foreach: {items: \"\"}}\n",
		"empty input":                  head + "  - {id: a, run: x, inputs: [\"\"]}\n",
		"empty output":                 head + "  - {id: a, run: x, outputs: \"\"}\n",
		"empty writable path":          head + "  - {id: a, run: x, sandbox: {writable: [\"\"]}}\n",
		"zero max_file_size":           head + "  - {id: a, run: x, max_file_size: 0}\n",
		"run step prompt":              head + "  - {id: a, run: x, prompt: hi}\n",
		"run step effort":              head + "  - {id: a, run: x, effort: high}\n",
		"shell as the default engine":  "version: 1\ndefaults: {engine: shell}\nsteps:\n  - {id: a, run: x}\n",
		"null env value":               head + "  - {id: a, run: x, env: {A: null}}\n",
		"empty env value":              head + "  - id: a\n    run: x\n    env:\n      A:\n",
		"zero timeout":                 head + "  - {id: a, run: x, timeout: 0s}\n",
		"zero timeout of parts":        head + "  - {id: a, run: x, timeout: 0h0.0m}\n",
		"zero default timeout":         "version: 1\ndefaults: {timeout: 0m}\nsteps:\n  - {id: a, run: x}\n",
	} {
		if _, err := ParseWorkflow(WorkflowFile, []byte(data), testEngines); err == nil {
			t.Errorf("%s: the parser accepts\n%s", name, data)
		}
		if err := wf.Validate(instance(t, name, data)); err == nil {
			t.Errorf("%s: the schema accepts\n%s", name, data)
		}
	}
	// And what it accepts, the schema accepts too.
	for name, data := range map[string]string{
		"timeout with a zero part": head + "  - {id: a, run: x, timeout: 0h30m}\n",
		"empty env value":          head + "  - {id: a, run: x, env: {A: \"\"}}\n",
	} {
		if _, err := ParseWorkflow(WorkflowFile, []byte(data), testEngines); err != nil {
			t.Errorf("%s: the parser refuses\n%s: %v", name, data, err)
		}
		if err := wf.Validate(instance(t, name, data)); err != nil {
			t.Errorf("%s: the schema refuses\n%s: %v", name, data, err)
		}
	}
	ag, _ := resolved(t, SchemaAgent)
	for name, data := range map[string]string{
		"shell engine": "engine: shell\n",
		"tools number": "tools: 3\n",
	} {
		if err := ag.Validate(instance(t, name, data)); err == nil {
			t.Errorf("agent %s: the schema accepts %q", name, data)
		}
	}
	if err := ag.Validate(instance(t, "claude keys", "name: x\ncolor: blue\nmodel: inherit\n")); err != nil {
		t.Errorf("an agent with Claude Code's own keys: %v", err)
	}
	// A model written as a number is read as its text, in an agent's front
	// matter as in the workflow.
	if _, err := ParseAgent("a.md", []byte("---\nmodel: 4\n---\nbody\n"), testEngines); err != nil {
		t.Fatalf("the parser refuses a numeric model: %v", err)
	}
	if err := ag.Validate(instance(t, "numeric model", "model: 4\n")); err != nil {
		t.Errorf("an agent with a numeric model: %v", err)
	}
}

// TestAgentKeysAreRead: each key agentKeys names is one the front-matter
// parser reads (it lands in the Agent), so that the list the schema is
// checked against is the parser's.
func TestAgentKeysAreRead(t *testing.T) {
	values := map[string]string{"name": "n", "description": "d", "engine": "claude", "model": "m", "effort": "high", "tools": "Read"}
	for _, k := range agentKeys {
		v, ok := values[k]
		if !ok {
			t.Fatalf("no test value for front-matter key %q", k)
		}
		a, err := ParseAgent("a.md", []byte("---\n"+k+": "+v+"\n---\nbody\n"), testEngines)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{"name": a.Name, "description": a.Description, "engine": a.Engine, "model": a.Model,
			"effort": a.Effort, "tools": strings.Join(a.Tools, ",")}
		if got[k] != v {
			t.Errorf("front-matter key %q: read %q, want %q", k, got[k], v)
		}
	}
}
