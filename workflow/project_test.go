package workflow

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

const exampleWorkflow = `version: 1
name: spec-to-code
steps:
  - id: architecture
    agent: architect
    inputs: [.codemachine/spec.md]
    outputs: [.codemachine/architecture.md]
  - id: plan
    agent: planner
    inputs: [.codemachine/spec.md, .codemachine/architecture.md]
    outputs: [.codemachine/plan.md]
    review: true
  - id: implement
    agent: coder
    foreach: .codemachine/plan.md
    inputs: [.codemachine/architecture.md]
    parallel: 3
    check: go test ./...
    attempts: 3
  - id: review
    agent: reviewer
    needs: [implement]
  - id: fmt
    run: gofmt -w .
    needs: [implement]
`

func exampleFS() fstest.MapFS {
	agent := func(name string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("---\nname: " + name + "\n---\nYou are the " + name + ".\n")}
	}
	return fstest.MapFS{
		WorkflowFile:                        {Data: []byte(exampleWorkflow)},
		AgentsDir + "/architect.md":         agent("architect"),
		AgentsDir + "/planner.md":           agent("planner"),
		AgentsDir + "/coder.md":             agent("coder"),
		AgentsDir + "/reviewer.md":          agent("reviewer"),
		AgentsDir + "/unused.md":            {Data: []byte("{{ broken")},
		".codemachine/spec.md":              {Data: []byte("# Todo CLI\n")},
		".codemachine/plan.md":              {Data: []byte("# Plan\n- [x] T1: Layout\n- [ ] T2: Config (after: T1)\n- [ ] T3: README (after: T2)\n")},
		".codemachine/recordings/plan.yaml": {Data: []byte("not read")},
	}
}

func TestLoadProject(t *testing.T) {
	p, err := LoadProject(exampleFS(), testEngines)
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range p.Agents {
		if a.File != AgentsDir+"/"+name+".md" {
			t.Errorf("agent %s: File %s", name, a.File)
		}
	}
	if got := strings.Join(slices.Sorted(maps.Keys(p.Agents)), ","); got != "architect,coder,planner,reviewer" {
		t.Errorf("agents %s (the unused, broken one must not be loaded)", got)
	}
	plan := p.Plans[".codemachine/plan.md"]
	if plan == nil || len(plan.Tasks) != 3 || len(p.PlanErrs) != 0 {
		t.Fatalf("plan %+v, errs %v", plan, p.PlanErrs)
	}
	if got := ids(p.Graph.Order()); got != "architecture,plan,implement,review,fmt" {
		t.Errorf("Order %s", got)
	}
}

func TestLoadProjectNoWorkflow(t *testing.T) {
	_, err := LoadProject(fstest.MapFS{"README.md": {}}, testEngines)
	if !errors.Is(err, ErrNoWorkflow) {
		t.Fatalf("error %v, want ErrNoWorkflow", err)
	}
	if err.Error() != "no .codemachine/workflow.yaml (run `codemachine init`)" {
		t.Errorf("message %q", err)
	}
}

func TestLoadProjectReadError(t *testing.T) {
	fsys := fstest.MapFS{WorkflowFile: {Mode: fs.ModeDir}}
	_, err := LoadProject(fsys, testEngines)
	if err == nil || errors.Is(err, ErrNoWorkflow) || err.Error() != ".codemachine/workflow.yaml is a directory, not a file" {
		t.Fatalf("error %v", err)
	}
	// .codemachine a file: neither "no workflow" nor "not a directory".
	_, err = LoadProject(fstest.MapFS{Dir: {Data: []byte("x")}}, testEngines)
	if err == nil || err.Error() != ".codemachine is a file, not a directory: the workflow is .codemachine/workflow.yaml" {
		t.Fatalf("error %v", err)
	}
}

func TestLoadProjectPlans(t *testing.T) {
	t.Run("not written yet", func(t *testing.T) {
		fsys := exampleFS()
		delete(fsys, ".codemachine/plan.md")
		p, err := LoadProject(fsys, testEngines)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.Plans[".codemachine/plan.md"]; ok || len(p.PlanErrs) != 0 {
			t.Errorf("Plans %v PlanErrs %v", p.Plans, p.PlanErrs)
		}
	})
	t.Run("broken plan stops only its step", func(t *testing.T) {
		fsys := exampleFS()
		fsys[".codemachine/plan.md"] = &fstest.MapFile{Data: []byte("- [ ] T1: a\n- [ ] T1: b\n")}
		p, err := LoadProject(fsys, testEngines)
		if err != nil {
			t.Fatalf("a broken plan is not a load error: %v", err)
		}
		errs := p.PlanErrs[".codemachine/plan.md"]
		if len(errs) != 1 || errs.Error() != `.codemachine/plan.md:2:7: duplicate task id "T1" (first at line 1)` {
			t.Errorf("PlanErrs = %v", errs)
		}
		if p.Plans[".codemachine/plan.md"] == nil {
			t.Error("the broken plan should still be in Plans")
		}
	})
}

func TestLoadProjectAllErrorsAtOnce(t *testing.T) {
	fsys := exampleFS()
	fsys[WorkflowFile] = &fstest.MapFile{Data: []byte(`version: 1
steps:
  - id: a
    agent: ghost
  - id: b
    agent: ghost
    timeout: soon
  - id: c
    agent: architect
    needs: [d]
  - id: d
    run: x
    needs: [c]
`)}
	fsys[AgentsDir+"/architect.md"] = &fstest.MapFile{Data: []byte("---\nengine: gpt\n---\n{{ .Nope }}\n")}
	_, err := LoadProject(fsys, testEngines)
	want := `.codemachine/agents/architect.md:2:9: unknown engine "gpt" (want one of auto, claude, codex, gemini, opencode, replay)
.codemachine/agents/architect.md:4:4: unknown field ".Nope"
.codemachine/workflow.yaml:4:12: agent "ghost": no file .codemachine/agents/ghost.md
.codemachine/workflow.yaml:6:12: agent "ghost": no file .codemachine/agents/ghost.md
.codemachine/workflow.yaml:7:14: timeout: want a duration like 30m or 90s, got "soon"
.codemachine/workflow.yaml:13:13: cycle: c -> d -> c`
	if err == nil || err.Error() != want {
		t.Errorf("errors:\n%v\nwant:\n%s", err, want)
	}
}

// TestLoadProjectEmptyPrompt: a step whose agent file has no prompt text
// (empty, blank, or front matter alone) and that adds no prompt: of its
// own would send the agent nothing to do; it is an error at the step's
// agent:, for each such step. A prompt: on the step, or a body, is enough,
// and an agent file with problems of its own is not reported twice.
func TestLoadProjectEmptyPrompt(t *testing.T) {
	tests := []struct {
		name, agent, prompt, want string
	}{
		{"empty file", "", "", `.codemachine/workflow.yaml:4:12: agent "a": .codemachine/agents/a.md has no prompt text and the step has no prompt:, so the agent would be given nothing to do; write its instructions in the file, or give the step a prompt:`},
		{"blank lines", "\n  \n\t\n", "", `.codemachine/workflow.yaml:4:12: agent "a": .codemachine/agents/a.md has no prompt text`},
		{"front matter only", "---\nname: a\nmodel: opus\n---\n\n", "", `.codemachine/workflow.yaml:4:12: agent "a": .codemachine/agents/a.md has no prompt text`},
		{"step prompt", "", "    prompt: Write the README.\n", ""},
		{"body", "---\nname: a\n---\nWrite the README.\n", "", ""},
		{"broken front matter", "---\nname: a\n", "", `.codemachine/agents/a.md:1:1: front matter: no closing "---" line`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				WorkflowFile:        {Data: []byte("version: 1\nsteps:\n  - id: s\n    agent: a\n" + tt.prompt)},
				AgentsDir + "/a.md": {Data: []byte(tt.agent)},
			}
			_, err := LoadProject(fsys, testEngines)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if tt.want == "" && got != "" || tt.want != "" && !strings.HasPrefix(got, tt.want) || strings.Count(got, "\n") > 0 {
				t.Errorf("errors:\n%s\nwant one:\n%s", got, tt.want)
			}
		})
	}
}

// bigProject is a 100-step workflow: a chain of agent steps, each reading
// the previous step's output and a shared source tree.
func bigProject(steps int) fstest.MapFS {
	fsys := fstest.MapFS{}
	var w strings.Builder
	w.WriteString("version: 1\nname: big\nsteps:\n")
	for i := range steps {
		fmt.Fprintf(&w, "  - id: step-%d\n    agent: agent-%d\n    inputs: [out/%d.md, \"src/**/*.go\"]\n    outputs: [out/%d.md]\n",
			i, i, i-1, i)
		fsys[fmt.Sprintf("%s/agent-%d.md", AgentsDir, i)] = &fstest.MapFile{
			Data: []byte(fmt.Sprintf("---\nname: agent-%d\nmodel: sonnet\n---\nDo step {{ .Step.ID }}.\n{{ file \"out/%d.md\" }}\n", i, i-1)),
		}
		fsys[fmt.Sprintf("out/%d.md", i)] = &fstest.MapFile{Data: []byte(strings.Repeat("text ", 200))}
		fsys[fmt.Sprintf("src/pkg%d/f.go", i%10)] = &fstest.MapFile{Data: []byte("package x\n")}
	}
	fsys[WorkflowFile] = &fstest.MapFile{Data: []byte(w.String())}
	return fsys
}

func loadAndFingerprint(root fs.FS) (map[string]string, error) {
	p, err := LoadProject(root, testEngines)
	if err != nil {
		return nil, err
	}
	fsys := CacheFS(root)
	fps := map[string]string{}
	for _, s := range p.Graph.Order() {
		in, err := ResolveInputs(fsys, s.Inputs)
		if err != nil {
			return nil, err
		}
		fps[s.ID] = Fingerprint(s, p.Agents[s.Agent], "claude", "sonnet", in)
	}
	return fps, nil
}

// diskProject writes bigProject to a temp dir: the real case reads a
// working tree, and fstest.MapFS scans every file on each ReadDir.
func diskProject(tb testing.TB, steps int) fs.FS {
	tb.Helper()
	dir := tb.TempDir()
	for name, f := range bigProject(steps) {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, f.Data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return os.DirFS(dir)
}

// TestBigProjectFast guards the status budget (50 ms in all, docs/benchmarks.md)
// with a wide margin for slow, loaded or -race runs; the benchmark below
// gives the real figure.
func TestBigProjectFast(t *testing.T) {
	fsys := diskProject(t, 100)
	want, err := loadAndFingerprint(bigProject(100))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	fps, err := loadAndFingerprint(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("load + fingerprints of 100 steps took %v", d)
	}
	if len(fps) != 100 || !maps.Equal(fps, want) {
		t.Errorf("fingerprints on disk and in memory differ")
	}
}

func BenchmarkLoadAndFingerprint100(b *testing.B) {
	fsys := diskProject(b, 100)
	for b.Loop() {
		if _, err := loadAndFingerprint(fsys); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLoadProjectReviewerAndDial: review: AGENT loads that agent as a
// reviewer (a step's agent may be one too), review: true names none, and
// interactive: auto is kept apart from true.
func TestLoadProjectReviewerAndDial(t *testing.T) {
	agent := func(name string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("---\nname: " + name + "\ndescription: d\n---\nbody\n")}
	}
	fsys := fstest.MapFS{
		WorkflowFile: {Data: []byte(`version: 1
steps:
  - id: a
    agent: coder
    outputs: [a.txt]
    review: critic
    interactive: auto
  - id: b
    agent: critic
    outputs: [b.txt]
    review: true
    interactive: true
  - id: c
    run: echo c > c.txt
    review: coder
`)},
		AgentsDir + "/coder.md":  agent("coder"),
		AgentsDir + "/critic.md": agent("critic"),
	}
	p, err := LoadProject(fsys, testEngines)
	if err != nil {
		t.Fatalf("LoadProject: %v", err)
	}
	tests := []struct {
		id                string
		review            bool
		reviewer          string
		interactive, auto bool
	}{
		{"a", true, "critic", false, true},
		{"b", true, "", true, false},
		{"c", true, "coder", false, false},
	}
	for _, tt := range tests {
		s := p.Graph.Step(tt.id)
		if s.Review != tt.review || s.Reviewer != tt.reviewer || s.Interactive != tt.interactive || s.InteractiveAuto != tt.auto {
			t.Errorf("step %s: review %v reviewer %q interactive %v auto %v; want %v %q %v %v", tt.id,
				s.Review, s.Reviewer, s.Interactive, s.InteractiveAuto, tt.review, tt.reviewer, tt.interactive, tt.auto)
		}
	}
	if p.Agents["critic"] == nil || p.Agents["coder"] == nil || len(p.Agents) != 2 {
		t.Errorf("agents %v, want coder and critic", p.Agents)
	}
}

// TestLoadProjectLinks: a file of the definition that is a symbolic link,
// or lies under one, is refused naming the link, whichever file system
// is read (a commit's tree shows a link as such; the working tree would
// follow it), so that validate and a run read the same thing.
func TestLoadProjectLinks(t *testing.T) {
	link := func(target string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
	}
	tests := []struct {
		name  string
		edit  func(fstest.MapFS)
		want  string
		whole bool // the load fails as a whole, not with a problem at a step
	}{
		{"agent", func(m fstest.MapFS) {
			m["shared/coder.md"] = m[".codemachine/agents/coder.md"]
			m[".codemachine/agents/coder.md"] = link("../../shared/coder.md")
		}, `agent "coder": .codemachine/agents/coder.md is a symbolic link (to ../../shared/coder.md)`, false},
		{"agents directory", func(m fstest.MapFS) {
			for k, v := range m {
				if rest, ok := strings.CutPrefix(k, ".codemachine/agents/"); ok {
					m["shared/"+rest] = v
					delete(m, k)
				}
			}
			m[".codemachine/agents"] = link("../shared")
		}, `.codemachine/agents is a symbolic link (to ../shared)`, false},
		{"plan", func(m fstest.MapFS) {
			m["docs/plan.md"] = &fstest.MapFile{Data: []byte("- [ ] T1: one\n")}
			m[".codemachine/plan.md"] = link("../docs/plan.md")
		}, `foreach: .codemachine/plan.md is a symbolic link (to ../docs/plan.md)`, false},
		{"workflow", func(m fstest.MapFS) {
			m["wf.yaml"] = m[".codemachine/workflow.yaml"]
			m[".codemachine/workflow.yaml"] = link("../wf.yaml")
		}, `.codemachine/workflow.yaml is a symbolic link (to ../wf.yaml)`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := exampleFS()
			tt.edit(fsys)
			_, err := LoadProject(fsys, testEngines)
			var link *LinkError
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadProject: %v, want an error with %q", err, tt.want)
			}
			if tt.whole && !errors.As(err, &link) {
				t.Fatalf("LoadProject: %T %v, want a *LinkError", err, err)
			}
		})
	}
}
