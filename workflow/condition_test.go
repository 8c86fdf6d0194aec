package workflow

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestConditionEval(t *testing.T) {
	fsys := fstest.MapFS{
		"VERSION":    {Data: []byte("1.2\n")},
		"src/a.go":   {Data: []byte("a")},
		"src/b.go":   {Data: []byte("b")},
		"src/c.txt":  {Data: []byte("c")},
		"notes/x.md": {Data: []byte("x")},
	}
	in := CondInput{FS: fsys, Steps: map[string]StepResult{"build": {Done: true}, "lint": {Skipped: true}},
		Vars: map[string]any{"env": "prod", "n": 3}}
	tests := []struct {
		expr string
		want bool
	}{
		{`exists("VERSION")`, true},
		{`exists("nope")`, false},
		{`exists("notes")`, true},
		{`file("VERSION") == "1.2\n"`, true},
		{`file("nope") == ""`, true},
		{`len(glob("src/*.go")) == 2`, true},
		{`"src/a.go" in glob("src/**")`, true},
		{`steps.build.done && !steps.build.skipped`, true},
		{`steps.lint.skipped`, true},
		{`steps.other.done`, false}, // never ran: not recorded
		{`vars.env == "prod" && vars.n > 2`, true},
		{`file("VERSION") matches "^1\\."`, true},
		{`exists("./VERSION") && exists("notes/") && exists("src//a.go")`, true},
		{`file("./VERSION") == "1.2\n"`, true},
		{`file("notes/../VERSION") == "1.2\n"`, true},
	}
	src := "version: 1\nname: t\nvars: {env: dev, n: 0}\nsteps:\n  - id: build\n    run: 'true'\n  - id: lint\n    run: 'true'\n  - id: other\n    run: 'true'\n"
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			wf, err := ParseWorkflow("w.yaml", []byte(src+"  - id: s\n    run: 'true'\n    when: '"+tt.expr+"'\n"), testEngines)
			if err != nil {
				t.Fatal(err)
			}
			got, err := wf.Steps[3].When.Eval(in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %v want %v", got, tt.want)
			}
		})
	}
}

func TestConditionErrors(t *testing.T) {
	tests := []struct {
		when string
		want string
	}{
		{`exists(("x")`, `w.yaml:5:22: when: unexpected token EOF`},
		{`nosuch > 1`, `w.yaml:5:11: when: unknown name nosuch`},
		{`steps.nope.done`, `w.yaml:5:11: when: steps.nope: unknown step`},
		{`steps[""].done`, `w.yaml:5:11: when: steps[""]: unknown step`},
		{`steps.s.done`, `w.yaml:5:11: when: step "s" reads its own result`},
		{`vars.x`, `w.yaml:5:11: when: vars.x: no such entry in vars`},
		{`'1 + 2'`, `w.yaml:5:11: when: expected bool, but got int`},
		{`''`, `w.yaml:5:11: when: empty expression`},
		{`steps.other.output.ok`, `w.yaml:5:11: when: steps.other.output: step other has no output_schema, so it has no output`},
		{`file("/etc/passwd") != ""`, `w.yaml:5:11: when: file("/etc/passwd"): the path is absolute`},
		{`exists("../x") || len(glob(".git/*")) > 0`, `w.yaml:5:11: when: exists("../x"): the path escapes the repository`},
		{`len(glob(".git/*")) > 0`, `w.yaml:5:11: when: glob(".git/*"): the path points into .git/`},
		// A block scalar's later lines: the column too, not only the line.
		{"|\n      true &&\n      )", `w.yaml:7:7: when: unexpected token Bracket(")")`},
		{"|\n      steps.other.done &&\n        nope", `w.yaml:7:9: when: unknown name nope`},
		// Folded (>) and multi-line plain or quoted values join their
		// lines with spaces: the place is still the file's line and column.
		{">\n      steps.other.done &&\n      nope", `w.yaml:7:7: when: unknown name nope`},
		{">-\n      steps.other.done\n      && nope", `w.yaml:7:10: when: unknown name nope`},
		{">\n      steps.other.done &&\n\n      true && nope", `w.yaml:8:15: when: unknown name nope`},
		{"steps.other.done &&\n      true && nope", `w.yaml:6:15: when: unknown name nope`},
		{"\"steps.other.done &&\n      nope\"", `w.yaml:6:7: when: unknown name nope`},
		{"'steps.other.done && \"a\" == ''b'' &&\n      nope'", `w.yaml:6:7: when: unknown name nope`},
		// expr's # (the element in filter, map, ...) starts a YAML comment
		// in a plain scalar: the expression ends before it.
		{`len(filter(glob("*.md"), # != "x")) > 0`, `w.yaml:5:34: when: unexpected token EOF (YAML took "# != \"x\")) > 0" for a comment: quote the expression to use # in it)`},
	}
	for _, tt := range tests {
		t.Run(tt.when, func(t *testing.T) {
			src := "version: 1\nname: t\nsteps:\n  - id: s\n    when: " + tt.when + "\n    run: 'true'\n  - id: other\n    run: 'true'\n  - id: judged\n    run: 'true'\n    output_schema: {type: object}\n"
			_, err := ParseWorkflow("w.yaml", []byte(src), testEngines)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %s", err, tt.want)
			}
		})
	}
}

// vars are known when the workflow is read: validate checks how a
// condition uses their types, and accepts what fits them.
func TestConditionVarTypes(t *testing.T) {
	tests := []struct {
		when string
		want string // "" for no error
	}{
		{`vars.n > "2"`, `w.yaml:6:19: when: invalid operation: > (mismatched types int and string)`},
		{`vars.s`, `w.yaml:6:11: when: expected bool, but got string`},
		{`vars.s + 1 > 0`, `w.yaml:6:19: when: invalid operation: + (mismatched types string and int)`},
		{`vars.b`, ``},
		{`vars.n > 2 && vars.f < 1.5`, ``},
		{`vars.s == "x" && "a" in vars.l`, ``},
		{`vars.m.k == 1 && vars.z == nil`, ``},
		{`!vars.b || len(vars.l) > vars.n`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.when, func(t *testing.T) {
			src := "version: 1\nname: t\nvars: {n: 3, s: x, b: true, f: 1.5, l: [a], m: {k: 1}, z: null}\nsteps:\n  - id: s\n    when: '" + tt.when + "'\n    run: 'true'\n"
			_, err := ParseWorkflow("w.yaml", []byte(src), testEngines)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("err %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err %v, want %s", err, tt.want)
			}
		})
	}
}

// A condition's steps are dependencies, and a literal path it reads makes
// it wait for the step that outputs it.
func TestConditionGraph(t *testing.T) {
	src := "version: 1\nname: t\nsteps:\n  - id: a\n    run: 'true'\n    outputs: [out.txt]\n  - id: b\n    run: 'true'\n  - id: c\n    run: 'true'\n    when: steps.b.done && exists(\"out.txt\")\n"
	wf, err := ParseWorkflow("w.yaml", []byte(src), testEngines)
	if err != nil {
		t.Fatal(err)
	}
	g, err := wf.Graph()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.Upstream("c"), ","); got != "a,b" {
		t.Errorf("upstream of c: %s", got)
	}
}

// A skipped step is not due while its record is the skip of its current
// fingerprint; a condition's result is in the fingerprint.
func TestSkipDue(t *testing.T) {
	fsys := fstest.MapFS{WorkflowFile: {Data: []byte("version: 1\nname: t\nsteps:\n  - id: s\n    run: 'true'\n    when: exists(\"x\")\n")}}
	p, err := LoadProject(fsys, testEngines)
	if err != nil {
		t.Fatal(err)
	}
	fpFalse, fpTrue := WithCondition("fp", false), WithCondition("fp", true)
	if fpFalse == fpTrue {
		t.Fatal("the condition's result is not in the fingerprint")
	}
	p.Skips = map[string]bool{"s": true}
	if r := DueSteps(p, map[string]string{"s": fpFalse}, nil)["s"]; r != "when: is false: to skip" {
		t.Errorf("never skipped: %q", r)
	}
	if r, due := DueSteps(p, map[string]string{"s": fpFalse}, map[string]Record{"s": {Fingerprint: fpFalse, Seq: 1, Skipped: true}})["s"]; due {
		t.Errorf("skipped with this fingerprint, still due: %q", r)
	}
	p.Skips = map[string]bool{}
	if r := DueSteps(p, map[string]string{"s": fpTrue}, map[string]Record{"s": {Fingerprint: fpFalse, Seq: 1, Skipped: true}})["s"]; r != "when: is true now" {
		t.Errorf("turned true: %q", r)
	}
}

// TestCondFailureOneLine: a run-time failure that quotes a file's content
// keeps its message on one line, the line breaks of the content escaped,
// ahead of the expression's place and pointer.
func TestCondFailureOneLine(t *testing.T) {
	src := "version: 1\nsteps:\n  - id: s\n    run: 'true'\n    when: int(file(\"n.txt\")) > 2\n"
	wf, err := ParseWorkflow("w.yaml", []byte(src), testEngines)
	if err != nil {
		t.Fatal(err)
	}
	s := wf.Steps[0]
	_, err = s.When.Eval(CondInput{FS: fstest.MapFS{"n.txt": {Data: []byte("abc\n")}}})
	if err == nil {
		t.Fatal("no error")
	}
	first, _, _ := strings.Cut(s.CondFailure("when", err), "\n")
	if want := `when: invalid operation: int(abc\n) (w.yaml:5:11)`; first != want {
		t.Errorf("first line %q, want %q", first, want)
	}
}
