package workflow

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/rogpeppe/go-internal/txtar"
)

// seedFiles adds to f every file of the testdata archives and directories
// whose name satisfies keep, so that each fuzz target starts from the real
// formats and from every known mistake.
func seedFiles(f *testing.F, keep func(name string) bool, dirs ...string) {
	f.Helper()
	archives, err := filepath.Glob("testdata/*/*.txtar")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range archives {
		a, err := txtar.ParseFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, af := range a.Files {
			if keep(af.Name) {
				f.Add(af.Data)
			}
		}
	}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			if !e.IsDir() && keep(e.Name()) {
				data, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					f.Fatal(err)
				}
				f.Add(data)
			}
		}
	}
}

// checkErrors asserts that err is nil or Errors whose every entry points
// into file at a real line.
func checkErrors(t *testing.T, file string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want Errors: %v", err, err)
	}
	for _, e := range errs {
		if e.Pos.File != file || e.Pos.Line < 1 || e.Pos.Col < 1 {
			t.Errorf("error without a position: %q at %+v", e.Msg, e.Pos)
		}
		if strings.Contains(e.Msg, "\n") {
			t.Errorf("error spans lines: %q", e.Msg)
		}
	}
}

func FuzzParseWorkflow(f *testing.F) {
	seedFiles(f, func(name string) bool { return strings.HasSuffix(name, ".yaml") }, "testdata/parse")
	f.Add([]byte(exampleWorkflow))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := ParseWorkflow("w.yaml", data, testEngines)
		if w == nil {
			t.Fatal("nil Workflow")
		}
		checkErrors(t, "w.yaml", err)
		g, gerr := w.Graph()
		checkErrors(t, "w.yaml", gerr)
		if len(g.Order()) != len(w.Steps) {
			t.Fatalf("Order has %d steps, workflow %d", len(g.Order()), len(w.Steps))
		}
		for _, s := range w.Steps {
			if len(Fingerprint(s, nil, w.Defaults.Engine, w.Defaults.Model, nil)) != 64 {
				t.Fatal("bad fingerprint")
			}
		}
	})
}

func FuzzParseAgent(f *testing.F) {
	seedFiles(f, func(name string) bool { return strings.HasPrefix(name, AgentsDir+"/") })
	fsys := fstest.MapFS{
		"a.md":      {Data: []byte("A")},
		"d/b.md":    {Data: []byte("B")},
		"d/c.txt":   {Data: []byte("C")},
		".git/HEAD": {Data: []byte("ref: refs/heads/main\n")},
	}
	data := PromptData{
		Step: StepInfo{ID: "s", Inputs: []string{"a.md"}, Outputs: []string{"o.md"}},
		Task: &TaskInfo{ID: "T1", Title: "t", Body: "b"}, Feedback: "f", CheckOutput: "c", Attempt: 2, Repo: "/r",
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := ParseAgent(".codemachine/agents/x.md", raw, testEngines)
		if a == nil {
			t.Fatal("nil Agent")
		}
		checkErrors(t, ".codemachine/agents/x.md", err)
		if err != nil || bytes.Contains(raw, []byte("range")) {
			// A range over a huge number renders for as long as it
			// is told to; that is the template's meaning, not a bug.
			return
		}
		if _, err := a.Render(fsys, data); err != nil {
			var perr *Error
			if !errors.As(err, &perr) || perr.Pos.File != ".codemachine/agents/x.md" {
				t.Fatalf("render error not positioned: %v", err)
			}
			if strings.Contains(err.Error(), "template: ") {
				t.Fatalf("render error leaks text/template's prefix: %v", err)
			}
		}
	})
}

func FuzzParsePlan(f *testing.F) {
	seedFiles(f, func(name string) bool { return strings.HasSuffix(name, ".md") && !strings.Contains(name, "/agents/") }, "testdata/plan")
	f.Add([]byte("- [ ] T1: a\r\n  body\r\n- [x] T2: b (after: T1)\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePlan("plan.md", data)
		if p == nil {
			t.Fatal("nil Plan")
		}
		checkErrors(t, "plan.md", err)
		for i, task := range p.Tasks {
			if p.Task(task.ID) != task {
				continue // a duplicate id: SetDone targets the first
			}
			out, err := p.SetDone(task.ID, !task.Done)
			if err != nil {
				t.Fatalf("SetDone(%s): %v", task.ID, err)
			}
			diff := 0
			for j := range data {
				if data[j] != out[j] {
					diff++
					if j != task.Box {
						t.Fatalf("SetDone(%s) changed byte %d, box is at %d", task.ID, j, task.Box)
					}
				}
			}
			if diff != 1 || len(out) != len(data) {
				t.Fatalf("SetDone(%s) changed %d bytes", task.ID, diff)
			}
			again, _ := ParsePlan("plan.md", out)
			if len(again.Tasks) != len(p.Tasks) {
				t.Fatalf("reparse: %d tasks, was %d", len(again.Tasks), len(p.Tasks))
			}
			for j, t2 := range again.Tasks {
				t1 := *p.Tasks[j]
				if j == i {
					t1.Done = !t1.Done
				}
				if !jsonEqual(t1, *t2) {
					t.Fatalf("reparse task %d:\n got %+v\nwant %+v", j, *t2, t1)
				}
			}
		}
	})
}
