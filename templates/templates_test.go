package templates

import (
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/workflow"
)

func TestNames(t *testing.T) {
	if got, want := Names(), []string{"spec-to-code", "migrate", "feature"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	if Names()[0] != Default {
		t.Errorf("the default %q is not listed first", Default)
	}
	if len(Summaries()) != len(Names()) {
		t.Errorf("%d summaries for %d names", len(Summaries()), len(Names()))
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("nope")
	var unknown *UnknownError
	if !errors.As(err, &unknown) || unknown.Name != "nope" {
		t.Fatalf("Lookup(nope) = %v, want an *UnknownError", err)
	}
	if want := `no template "nope"; the built-in templates are: spec-to-code, migrate, feature`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// repo is the repository init makes from a template in an empty
// directory: its files under .codemachine/, and its sample at the root.
func repo(t *testing.T, tmpl *Template) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	err := fs.WalkDir(tmpl.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(tmpl.Files, p)
		fsys[path.Join(workflow.Dir, p)] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range tmpl.Sample {
		fsys[p] = &fstest.MapFile{Data: data}
	}
	return fsys
}

// TestTemplates checks each template as init writes it: the workflow loads
// with its agents, every recording parses and lies where replay looks for
// it (a step of the workflow, a task it has), and the texts init prints
// are there.
func TestTemplates(t *testing.T) {
	wantSample := map[string][]string{
		"spec-to-code": nil,
		"migrate":      {"legacy/billing.sh", "legacy/total.awk", "legacy/tax.awk", "legacy/invoice.awk"},
		"feature":      {"go.mod", "main.go", "convert/convert.go"},
	}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			tmpl, err := Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			if tmpl.Name != name || tmpl.Summary == "" || tmpl.Start == "" || tmpl.Adapt == "" || tmpl.Brief == "" {
				t.Errorf("template %+v: want a name, summary, brief, start and adapt text", tmpl)
			}
			for _, p := range wantSample[name] {
				if _, ok := tmpl.Sample[p]; !ok {
					t.Errorf("the sample lacks %s", p)
				}
			}
			if wantSample[name] == nil && tmpl.Sample != nil {
				t.Errorf("a sample of %d files, want none", len(tmpl.Sample))
			}
			fsys := repo(t, tmpl)
			if _, ok := fsys[tmpl.Brief]; !ok {
				t.Errorf("the brief %s is not in the template", tmpl.Brief)
			}
			p, err := workflow.LoadProject(fsys, agents.WorkflowEngines())
			if err != nil {
				t.Fatalf("LoadProject: %v", err)
			}
			if p.Workflow.Name != name {
				t.Errorf("workflow name %q, want %q", p.Workflow.Name, name)
			}
			checkRecordings(t, fsys, p)
		})
	}
}

// checkRecordings parses every recording of fsys and checks that replay
// looks for it where it is.
func checkRecordings(t *testing.T, fsys fstest.MapFS, p *workflow.Project) {
	t.Helper()
	steps := map[string]*workflow.Step{}
	for _, s := range p.Workflow.Steps {
		steps[s.ID] = s
	}
	n := 0
	for name, f := range fsys {
		if !strings.HasPrefix(name, agents.RecordingsDir+"/") {
			continue
		}
		n++
		rec, err := agents.ParseRecording(name, f.Data)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		s := steps[rec.Step]
		if s == nil || s.Run != "" {
			t.Errorf("%s: recorded for %q, not an agent step of the workflow", name, rec.Step)
			continue
		}
		if (rec.Task != "") != s.FansOut() {
			t.Errorf("%s: task %q for step %s", name, rec.Task, s.ID)
		}
		where := agents.RecordingPath(rec.Step, rec.Task)
		if strings.Contains(name, ".review/") {
			where = agents.ReviewRecordingPath(rec.Step, rec.Task, 1)
			if !strings.HasSuffix(strings.TrimSpace(rec.Text), `{"verdict": "approve"}`) {
				t.Errorf("%s: a reviewer's answer must end with its verdict", name)
			}
		} else if rec.Fingerprint == "" {
			t.Errorf("%s: no fingerprint", name)
		}
		if where != name {
			t.Errorf("%s: replay looks for it at %s", name, where)
		}
		if subject, _, _ := strings.Cut(rec.Text, "\n"); subject == "" || len(subject) > 60 {
			t.Errorf("%s: subject %q: want 1 to 60 characters", name, subject)
		}
	}
	if n == 0 {
		t.Error("no recordings")
	}
}
