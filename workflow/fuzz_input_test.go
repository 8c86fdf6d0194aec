package workflow

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// fuzzDeadline is how long one parse of a fuzzed input may take: the
// parsers read text a person wrote, and none of it may make them hang.
const fuzzDeadline = 5 * time.Second

// withDeadline runs fn and fails t when it takes longer than fuzzDeadline.
func withDeadline(t *testing.T, fn func()) {
	t.Helper()
	start := time.Now()
	fn()
	if d := time.Since(start); d > fuzzDeadline {
		t.Fatalf("took %v", d)
	}
}

func FuzzParseItems(f *testing.F) {
	for _, s := range []string{
		"[1, 2, 3]", "[1, 2,", "[1, 2}", "{a: 1", `[{"id": "a", "title": "A"}, {"id": 2}]`,
		"- id: a\n  name: x\n- id: a\n", "- &x {id: 1}\n- *x\n", "- {id: 1, id: 2}\n",
		"<<<<<<< HEAD\n- a\n=======\n- b\n>>>>>>> x\n", "\ufeff[1]", "[1]\r\n", "- a\r- b\r",
		"[\"a\", \"b\"\n", "- {id: [1]}\n- {id: 1.5}\n- {id: null}\n", "\x00\x01", "- !!binary aGk=\n",
	} {
		f.Add(s, "items.json")
		f.Add(s, "items.yaml")
	}
	f.Fuzz(func(t *testing.T, data, file string) {
		if file == "" {
			file = "items.yaml"
		}
		var tasks []*Task
		var err error
		withDeadline(t, func() { tasks, err = ParseItems(file, []byte(data)) })
		checkErrors(t, file, err)
		seen := map[string]bool{}
		for _, task := range tasks {
			if task.ID == "" || seen[task.ID] {
				t.Fatalf("task id %q empty or repeated", task.ID)
			}
			seen[task.ID] = true
			if task.Line < 1 {
				t.Fatalf("task %q at line %d", task.ID, task.Line)
			}
			if strings.ContainsAny(task.Title, "\n\r") {
				t.Fatalf("title spans lines: %q", task.Title)
			}
		}
	})
}

// fuzzWorkflow is a workflow whose second step's key holds value, written
// by the YAML encoder so that any text is one well-formed value.
func fuzzWorkflow(t *testing.T, key string, value any) []byte {
	t.Helper()
	doc := map[string]any{
		"version": 1,
		"vars":    map[string]any{"n": 3, "s": "x", "b": true, "l": []any{1, "a"}},
		"steps": []any{
			map[string]any{"id": "a", "run": "true", "outputs": []string{"a.txt"}, "output_schema": map[string]any{"type": "object"}},
			map[string]any{"id": "b", "run": "true", "outputs": []string{"b.txt"}, key: value},
		},
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func FuzzCondition(f *testing.F) {
	for _, s := range []string{
		`steps.a.done`, `vars.b && exists("x")`, `file("VERSION") != "0.0.0\n"`, `len(glob("*.go")) > 0`,
		`steps.a.output.approved`, `vars.n > "2"`, `vars.s`, `1 +`, `"abc`, `exists("/etc")`, `file("../x") == ""`,
		`steps.b.done`, `steps.zz.done`, `all(vars.l, # == 1)`, `x # comment`, `(((((`, `[1,2][5] == 1`,
		`vars.l[9] == 1`, `1/0 == 1`, `"a" matches "("`, `steps.a.output.x.y.z == 1`, `let x = 1; x == 1`,
		`glob("**/[") == []`, `nil`, "\x00", `upper(steps.a.output) == "A"`,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, expr string, until bool) {
		if !utf8.ValidString(expr) {
			return // the encoder writes it as !!binary: not an expression at all
		}
		key := "when"
		if until {
			key = "until"
		}
		data := fuzzWorkflow(t, key, expr)
		var w *Workflow
		var err error
		withDeadline(t, func() { w, err = ParseWorkflow("w.yaml", data, testEngines) })
		checkErrors(t, "w.yaml", err)
		if err != nil || len(w.Steps) != 2 {
			return
		}
		c := w.Steps[1].When
		if until {
			c = w.Steps[1].Until
		}
		if c == nil {
			return
		}
		in := CondInput{
			Steps: map[string]StepResult{"a": {Done: true, Output: map[string]any{"approved": true}}},
			Vars:  map[string]any{"n": 3, "s": "x", "b": true, "l": []any{1, "a"}},
		}
		if strings.Contains(expr, "..") {
			return // a range over a huge number runs as long as it is told to
		}
		withDeadline(t, func() { _, _ = c.Eval(in) })
	})
}

func FuzzOutputSchema(f *testing.F) {
	for _, s := range []string{
		`{type: object, required: [approved], properties: {approved: {type: boolean}}}`,
		`{$ref: "#"}`, `{allOf: [{$ref: "#"}]}`, `{type: [object, object]}`, `{enum: []}`, `{maximum: 1e999}`,
		`{type: 3}`, `{$schema: "http://json-schema.org/draft-07/schema#", type: string}`, `{$schema: "x"}`,
		`{$defs: {a: {$ref: "#/$defs/b"}, b: {$ref: "#/$defs/a"}}, $ref: "#/$defs/a"}`, `true`, `false`, `[]`, `"s"`,
		`{pattern: "("}`, `{properties: {a: {type: string, a: 1, a: 2}}}`, `{$ref: "http://example.com/s.json"}`,
		`{minimum: .inf}`, `{type: object, additionalProperties: {$ref: "#"}}`, `{anchors: &a [*a]}`,
		`{$dynamicRef: "#x"}`, `{$id: "x", $anchor: "1"}`, `{format: email, type: string}`,
	} {
		f.Add(s, `{"approved": true}`)
	}
	f.Fuzz(func(t *testing.T, schema, answer string) {
		var node yaml.Node
		if yaml.Unmarshal([]byte(schema), &node) != nil || len(node.Content) != 1 {
			return // the workflow's own YAML errors are FuzzParseWorkflow's
		}
		data := fuzzWorkflow(t, "output_schema", node.Content[0])
		var w *Workflow
		var err error
		withDeadline(t, func() { w, err = ParseWorkflow("w.yaml", data, testEngines) })
		checkErrors(t, "w.yaml", err)
		if err != nil || len(w.Steps) != 2 || w.Steps[1].OutputSchema == nil {
			return
		}
		withDeadline(t, func() {
			out, cerr := w.Steps[1].OutputSchema.Check(answer)
			if cerr == nil && len(out) == 0 {
				t.Fatal("a matching answer gave no value")
			}
		})
	})
}

func FuzzParseUses(f *testing.F) {
	for _, s := range []string{
		"./shared/lint", "../x", "/abs", "https://github.com/acme/flows.git@v2", "git@github.com:a/b.git@main",
		"file:///tmp/r@v1", "ftp://x/y@1", "https://host", "https://h/p", "https://h/p@", "https://h/p@a..b",
		"https://h/p@x.lock", "-oProxy=x:y@z", "a b:c@d", ".", "./", "./a/../..", "user@host:path@ref/",
		"ssh://h/p@r@s", "x:y", "\x00", "https://h/p@v1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if utf8.ValidString(s) {
			data, err := yaml.Marshal(map[string]any{"version": 1, "steps": []any{map[string]any{"uses": s}}})
			if err != nil {
				t.Fatal(err)
			}
			_, werr := ParseWorkflow("w.yaml", data, testEngines)
			checkErrors(t, "w.yaml", werr)
		}
		u, err := ParseUses(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.Contains(s, "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
			return
		}
		switch {
		case u.IsGit():
			if u.Ref == "" || strings.HasPrefix(u.URL, "-") || strings.ContainsAny(u.URL+u.Ref, " \t\n") {
				t.Fatalf("ParseUses(%q) = %+v", s, u)
			}
			if u.URL+"@"+u.Ref != s {
				t.Fatalf("ParseUses(%q): %q@%q is not what was written", s, u.URL, u.Ref)
			}
		default:
			if u.Path == "" || u.Path == ".." || strings.HasPrefix(u.Path, "../") || strings.HasPrefix(u.Path, "/") {
				t.Fatalf("ParseUses(%q) = %+v", s, u)
			}
		}
	})
}
