package workflow

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rogpeppe/go-internal/txtar"
)

// parsedDef loads fsys with Parsed set and returns the project, what
// Parsed was given (nil, nil when it was not called) and the load's error.
func parsedDef(t *testing.T, fsys fs.FS, imp Importer) (*Project, []byte, []string, error) {
	t.Helper()
	var def []byte
	var read []string
	p, err := LoadProjectWith(fsys, LoadOptions{Engines: testEngines, Importer: imp,
		Parsed: func(d []byte, r []string) { def, read = d, r }})
	return p, def, read, err
}

// definitionFixture is a workflow with every kind of value a definition
// holds: vars, conditions, a loop, an output schema, agents with front
// matter, a review, plans and fan-outs, and steps imported from a local
// directory and from a git source (itself importing a directory of its
// own).
func definitionFixture(t *testing.T) (fstest.MapFS, *fakeImporter) {
	t.Helper()
	local := fstest.MapFS{
		WorkflowFile: {Data: []byte(`version: 1
vars: {level: strict, n: 3, ratio: 0.5, list: [a, 1, true, null], nested: {k: [x]}}
steps:
  - id: build
    agent: builder
    outputs: [out/build.txt]
    output_schema: {type: object, properties: {ok: {type: boolean}}, required: [ok]}
  - uses: ./shared/lint
    needs: [build]
  - uses: https://example.com/flows.git@v1
  - id: ship
    run: ship
    needs: [report, remote]
    when: vars.level == "strict" && vars.remote_only && steps.build.done
    review: checker
  - id: loop
    run: ./again
    until: steps.build.output.ok || file("done.txt") != ""
    max_iterations: 4
  - id: each
    run: echo
    foreach: {glob: "src/*.go"}
  - id: items
    run: echo
    foreach: {items: out/items.json}
  - id: tasks
    agent: builder
    foreach: .codemachine/plan.md
`)},
		".codemachine/agents/builder.md": {Data: []byte("---\nname: builder\nengine: claude\nmodel: opus\ntools: [Read, Edit]\n---\nBuild {{.Step.ID}}.\n")},
		".codemachine/agents/checker.md": {Data: []byte("Check {{.Step.ID}}.\n")},
		".codemachine/plan.md":           {Data: []byte("- [ ] A: first\n- [x] B: second (after: A)\n")},
		"src/a.go":                       {Data: []byte("package a\n")},
		"src/b.go":                       {Data: []byte("package b\n")},
		"out/items.json":                 {Data: []byte(`[{"n": 1}, "two"]`)},
		"shared/lint/workflow.yaml": {Data: []byte(`version: 1
vars: {level: lax}
steps:
  - id: lint
    run: golint
  - id: report
    agent: reporter
    needs: [lint]
    when: steps.lint.done
`)},
		"shared/lint/agents/reporter.md": {Data: []byte("Report.\n")},
	}
	remote := fstest.MapFS{
		".codemachine/workflow.yaml": {Data: []byte(`version: 1
vars: {remote_only: true}
steps:
  - id: remote
    agent: reporter
  - uses: ./extra
`)},
		".codemachine/agents/reporter.md": {Data: []byte("Remote report.\n")},
		"extra/workflow.yaml":             {Data: []byte("version: 1\nsteps:\n  - id: extra\n    agent: helper\n")},
		"extra/agents/helper.md":          {Data: []byte("Help.\n")},
	}
	return local, &fakeImporter{repos: map[string]fstest.MapFS{"https://example.com/flows.git@v1": remote}}
}

// TestDefinitionRoundTrip: a project loaded from its kept definition is
// the parsed one: every field of the workflow, its steps (positions,
// sources and what they read from included) and agents, the plans,
// fan-outs and graph; its conditions evaluate, its schemas check and its
// agents render alike.
func TestDefinitionRoundTrip(t *testing.T) {
	local, imp := definitionFixture(t)
	read := roundTrip(t, local, imp)
	wantRead := []string{".codemachine/agents/builder.md", ".codemachine/agents/checker.md",
		".codemachine/agents/helper.md", ".codemachine/agents/reporter.md", WorkflowFile,
		"shared/lint", "shared/lint/agents/reporter.md", "shared/lint/workflow.yaml"}
	if !slices.Equal(read, wantRead) {
		t.Errorf("read = %q\nwant %q", read, wantRead)
	}

	// A load that keeps nothing knows them too: they are what a step's
	// change is checked against.
	p, err := LoadProjectWith(local, LoadOptions{Engines: testEngines, Importer: imp})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.DefinitionFiles, wantRead) {
		t.Errorf("DefinitionFiles = %q\nwant %q", p.DefinitionFiles, wantRead)
	}

	full, err := os.ReadFile("testdata/parse/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{WorkflowFile: {Data: full}, ".codemachine/plan.md": {Data: []byte("- [ ] A: a\n")}}
	for _, a := range []string{"architect", "planner", "coder", "reviewer"} {
		fsys[AgentsDir+"/"+a+".md"] = &fstest.MapFile{Data: []byte("---\ndescription: " + a + "\n---\nDo {{.Step.ID}}.\n")}
	}
	roundTrip(t, fsys, nil)
}

// roundTrip loads fsys parsed, then from the definition Parsed gave, and
// compares the two projects; it returns the paths Parsed gave.
func roundTrip(t *testing.T, local fs.FS, imp *fakeImporter) []string {
	t.Helper()
	var ii Importer
	if imp != nil {
		ii = imp
	}
	want, def, read, err := parsedDef(t, local, ii)
	if err != nil {
		t.Fatal(err)
	}
	if def == nil {
		t.Fatal("Parsed was not called for a valid workflow")
	}
	imports := 0
	if imp != nil {
		imports = imp.n
	}
	got, err := LoadProjectWith(local, LoadOptions{Engines: testEngines, Importer: ii, Definition: def,
		Parsed: func([]byte, []string) { t.Error("parsed although the definition was given") }})
	if err != nil {
		t.Fatal(err)
	}
	if imp != nil && imp.n != imports+1 {
		t.Errorf("the git source was imported %d times on decoding, want once", imp.n-imports)
	}
	if diff := deepDiff(reflect.ValueOf(want), reflect.ValueOf(got), "project"); diff != "" {
		t.Fatal(diff)
	}
	for _, s := range want.Workflow.Steps {
		g := stepByID(got.Workflow, s.ID)
		if s.Source != nil && !sameFS(s.Source.FS, g.Source.FS) {
			t.Errorf("step %s: its source's files are not the same", s.ID)
		}
		for _, c := range [][2]*Condition{{s.When, g.When}, {s.Until, g.Until}} {
			if c[0] == nil {
				continue
			}
			in := CondInput{FS: local, Steps: map[string]StepResult{"build": {Done: true}, "lint": {Done: true}}, Vars: want.Workflow.Vars}
			w, werr := c[0].Eval(in)
			in.Vars = got.Workflow.Vars
			gv, gerr := c[1].Eval(in)
			if w != gv || fmt.Sprint(werr) != fmt.Sprint(gerr) {
				t.Errorf("step %s: condition %q gives %v, %v from the definition, %v, %v parsed", s.ID, c[0].Source, gv, gerr, w, werr)
			}
		}
		if s.OutputSchema != nil {
			for _, answer := range []string{`{"ok": true}`, `{"ok": 1}`, `{}`} {
				w, werr := s.OutputSchema.Check(answer)
				gv, gerr := g.OutputSchema.Check(answer)
				if string(w) != string(gv) || fmt.Sprint(werr) != fmt.Sprint(gerr) {
					t.Errorf("step %s: schema check of %s: %s, %v; want %s, %v", s.ID, answer, gv, gerr, w, werr)
				}
			}
		}
		if s.Agent != "" {
			data := PromptData{Step: StepInfo{ID: s.ID}}
			w, werr := want.AgentFor(s, s.Agent).Render(local, data)
			gv, gerr := got.AgentFor(g, g.Agent).Render(local, data)
			if w != gv || fmt.Sprint(werr) != fmt.Sprint(gerr) {
				t.Errorf("step %s: prompt %q, %v; want %q, %v", s.ID, gv, gerr, w, werr)
			}
		}
	}
	return read
}

// TestDefinitionNotUsed: a definition that does not decode (corrupt,
// truncated, empty) or whose git source now imports at another commit is
// not used: the workflow is parsed, and Parsed called again.
func TestDefinitionNotUsed(t *testing.T) {
	local, imp := definitionFixture(t)
	_, def, _, _ := parsedDef(t, local, imp)
	corrupt := slices.Clone(def)
	for i := len(corrupt) / 2; i < len(corrupt); i += 7 {
		corrupt[i] ^= 0x5a
	}
	moved := &movedImporter{imp}
	for name, c := range map[string]struct {
		def []byte
		imp Importer
	}{
		"corrupt":       {corrupt, imp},
		"truncated":     {def[:len(def)/2], imp},
		"empty":         {[]byte{}, imp},
		"garbage":       {[]byte("not a gob"), imp},
		"another pin":   {def, moved},
		"no importer":   {def, nil},
		"other version": {append([]byte{0x07}, def...), imp},
	} {
		t.Run(name, func(t *testing.T) {
			parsed := false
			p, err := LoadProjectWith(local, LoadOptions{Engines: testEngines, Importer: c.imp, Definition: c.def,
				Parsed: func([]byte, []string) { parsed = true }})
			if c.imp == nil {
				if err == nil || !strings.Contains(err.Error(), ErrNoImporter.Error()) {
					t.Fatalf("without an importer: %v, want the parse's error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !parsed {
				t.Error("the definition was used")
			}
			if c.imp == moved && stepByID(p.Workflow, "remote").Source.Commit != moved.commit() {
				t.Errorf("source read at %s, want the new commit", stepByID(p.Workflow, "remote").Source.Commit)
			}
		})
	}
}

// movedImporter imports its sources at another commit.
type movedImporter struct{ *fakeImporter }

func (m *movedImporter) commit() string { return strings.Repeat("d", 40) }

func (m *movedImporter) Import(u Uses) (fs.FS, string, error) {
	f, _, err := m.fakeImporter.Import(u)
	return f, m.commit(), err
}

// TestDefinitionSameErrors: every malformed case gives the same problems
// loaded from its kept definition as parsed, and a case whose workflow or
// agents have problems is not kept at all.
func TestDefinitionSameErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/malformed/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		t.Run(name, func(t *testing.T) {
			a, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			fsys := archiveFS(a, "want")
			p, def, _, perr := parsedDef(t, fsys, nil)
			if def == nil {
				return
			}
			kept++
			var errs Errors
			if errors.As(perr, &errs) {
				for _, e := range errs {
					if !strings.HasPrefix(e.Pos.File, ".codemachine/plan") && !strings.Contains(e.Msg, "cycle") &&
						!strings.Contains(e.Msg, "foreach") && !strings.Contains(e.Msg, "output") {
						t.Errorf("kept although the workflow has a problem: %v", e)
					}
				}
			}
			got, gerr := LoadProjectWith(fsys, LoadOptions{Engines: testEngines, Definition: def})
			if fmt.Sprint(perr) != fmt.Sprint(gerr) {
				t.Errorf("errors from the definition:\n%v\nparsed:\n%v", gerr, perr)
			}
			if p != nil && fmt.Sprint(p.PlanErrs, p.FanoutErrs) != fmt.Sprint(got.PlanErrs, got.FanoutErrs) {
				t.Errorf("plan errors from the definition %v, parsed %v", got.PlanErrs, p.PlanErrs)
			}
		})
	}
	if kept == 0 {
		t.Error("no case was kept: the plan and graph cases should be")
	}
}

// TestDefinitionNotKept: vars that the encoding does not give back as they are
// (a YAML timestamp decodes to a time.Time) make a definition that is not
// kept.
func TestDefinitionNotKept(t *testing.T) {
	fsys := fstest.MapFS{WorkflowFile: {Data: []byte("version: 1\nvars: {at: !!timestamp 2026-12-06}\nsteps:\n  - id: a\n    run: x\n    when: vars.at != nil\n")}}
	p, def, _, err := parsedDef(t, fsys, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, isTime := p.Workflow.Vars["at"].(time.Time); !isTime {
		t.Fatalf("vars.at is a %T, want the time.Time this test is about", p.Workflow.Vars["at"])
	}
	if def != nil {
		t.Error("kept vars holding a time.Time")
	}
}

// sameFS reports whether a and b are the same file system (the same
// MapFS).
func sameFS(a, b fs.FS) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	return va.Type() == vb.Type() && va.Kind() == reflect.Map && va.UnsafePointer() == vb.UnsafePointer()
}

// deepDiff compares a and b as reflect.DeepEqual does, but with nil and
// empty slices and maps alike (gob keeps no difference), file systems and
// functions left out (compared by the caller), and the compiled forms
// (conditions' programs, agents' templates, schemas' checkers) left out:
// their behaviour is compared by the caller. It returns the first
// difference, "" when there is none.
func deepDiff(a, b reflect.Value, at string) string {
	if a.Kind() != b.Kind() {
		return fmt.Sprintf("%s: kind %v, want %v", at, b.Kind(), a.Kind())
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return fmt.Sprintf("%s: nil %v, want nil %v", at, b.IsNil(), a.IsNil())
			}
			return ""
		}
		if a.Kind() == reflect.Interface && a.Elem().Type() != b.Elem().Type() {
			return fmt.Sprintf("%s: %v, want %v", at, b.Elem().Type(), a.Elem().Type())
		}
		return deepDiff(a.Elem(), b.Elem(), at)
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			f := a.Type().Field(i)
			switch f.Name {
			case "program", "tmpl", "root", "FS":
				continue
			}
			if d := deepDiff(a.Field(i), b.Field(i), at+"."+f.Name); d != "" {
				return d
			}
		}
		return ""
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: length %d, want %d", at, b.Len(), a.Len())
		}
		for i := 0; i < a.Len(); i++ {
			if d := deepDiff(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", at, i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Map:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: %d entries, want %d", at, b.Len(), a.Len())
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() {
				return fmt.Sprintf("%s: no key %v", at, k)
			}
			if d := deepDiff(a.MapIndex(k), bv, fmt.Sprintf("%s[%v]", at, k)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Func:
		return ""
	}
	if a.CanInterface() && b.CanInterface() {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			return fmt.Sprintf("%s: %v, want %v", at, b.Interface(), a.Interface())
		}
		return ""
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		return fmt.Sprintf("%s: %v, want %v", at, b, a)
	}
	return ""
}

// TestDefinitionCoversUnexported: defcodec.go keeps exported fields only, so every
// unexported field of what a definition holds is carried by definition.go
// by hand or rebuilt on decoding. A field added to these types must be
// added there too (and to this list).
func TestDefinitionCoversUnexported(t *testing.T) {
	handled := []string{
		"Agent.tmpl",            // parsed again when first rendered
		"Condition.ids",         // condGob.IDs
		"Condition.program",     // compiled again (decodeCond)
		"Condition.vars",        // condGob.Vars
		"OutputSchema.root",     // compiled again from JSON
		"Source.key",            // sourceGob.Key
		"Source.repo",           // sourceGob.Repo
		"Step.agentKeys",        // stepGob.AgentKeys
		"Step.at",               // atGob
		"Step.importedAt",       // stepGob.ImportedAt
		"stepPositions.agent",   // atGob.Agent
		"stepPositions.foreach", // atGob.Foreach
		"stepPositions.id",      // atGob.ID
		"stepPositions.inputs",  // atGob.Inputs
		"stepPositions.maxIterations",
		"stepPositions.needs",
		"stepPositions.reviewer",
		"stepPositions.until", // atGob.Until, UntilStyle
		"stepPositions.when",  // atGob.When, WhenStyle
		"whenAt.comment",      // read only by compile errors: a definition with errors is not kept
		"whenAt.lines",        // atGob.WhenLines, UntilLines
		"whenAt.spans",        // atGob.WhenSpans, UntilSpans
		"whenAt.src",          // the condition's Source
		"whenAt.style",
	}
	var found []string
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(ty reflect.Type) {
		switch ty.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(ty.Elem())
			return
		case reflect.Map:
			walk(ty.Key())
			walk(ty.Elem())
			return
		case reflect.Struct:
		default:
			return
		}
		if seen[ty] || ty.PkgPath() != reflect.TypeOf(Step{}).PkgPath() {
			return
		}
		seen[ty] = true
		for i := 0; i < ty.NumField(); i++ {
			f := ty.Field(i)
			name := ty.Name() + "." + f.Name
			if !f.IsExported() {
				found = append(found, name)
			}
			switch name {
			case "Agent.tmpl", "Condition.program", "OutputSchema.root":
				continue // rebuilt whole
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeOf(Workflow{}))
	walk(reflect.TypeOf(Agent{}))
	slices.Sort(found)
	if !slices.Equal(found, handled) {
		t.Errorf("unexported fields of a definition: %q\nhandled by definition.go: %q", found, handled)
	}
}
