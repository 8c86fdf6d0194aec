package orchestrator

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"testing/fstest"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/codemachine/codemachine/workflow"
)

// promptProblems renders every agent step's prompt with sample data, as
// validate does, and returns the template's runtime errors (a nil .Task
// outside a foreach step, a file that does not exist, a path leaving the
// repository, runaway recursion), each at its file:line:col, once.
// A file that a step of the workflow writes counts as there, empty: it is
// only missing until that step ran.
func promptProblems(fsys fs.FS, project *workflow.Project, repo string) []Problem {
	outputs := map[string]bool{}
	var patterns []string
	for _, s := range project.Workflow.Steps {
		patterns = append(patterns, s.Outputs...)
		if s.Foreach != "" {
			outputs[s.Foreach] = true
		}
		if s.Each != nil && s.Each.Items != "" {
			outputs[s.Each.Items] = true
		}
		if s.Each != nil && s.Each.Glob != "" {
			outputs[sampleFile] = true
		}
	}
	sample := &outputsFS{FS: fsys, patterns: patterns, files: outputs}
	// Every step's output as an empty mapping: its fields render as
	// "<no value>" instead of failing on a step that has not run yet.
	steps := map[string]workflow.StepData{}
	for _, s := range project.Workflow.Steps {
		steps[s.ID] = workflow.StepData{Output: map[string]any{}}
	}
	seen := map[string]bool{}
	byID := map[string]*workflow.Step{}
	for _, s := range project.Workflow.Steps {
		byID[s.ID] = s
	}
	var out []Problem
	for _, s := range project.Workflow.Steps {
		agent := project.AgentFor(s, s.Agent)
		if s.Agent == "" || agent == nil {
			continue
		}
		out = append(out, unknownStepRefs(agent, s, steps, seen)...)
		out = append(out, schemalessOutputRefs(agent, s, byID, seen)...)
		data := workflow.PromptData{Step: workflow.StepInfo{ID: s.ID, Inputs: s.Inputs, Outputs: s.Outputs}, Attempt: 1, Repo: repo, Steps: steps}
		if s.FansOut() {
			data.Task = &workflow.TaskInfo{ID: "T1", Title: "a sample task", Body: "What the sample task asks."}
			data.Item = sampleItem(project, s)
		}
		_, err := agent.Render(sample, data)
		var we *workflow.Error
		switch {
		case err == nil:
			continue
		case errors.As(err, &we):
		default:
			we = &workflow.Error{Pos: workflow.Pos{File: agent.File}, Msg: err.Error()}
		}
		msg := we.Msg + " (rendering it for step " + s.ID + " with sample data)"
		if key := we.Pos.String() + we.Msg; !seen[key] {
			seen[key] = true
			out = append(out, Problem{File: we.Pos.File, Line: we.Pos.Line, Col: we.Pos.Col, Message: msg})
		}
	}
	return out
}

// unknownStepRefs reports the .Steps.ID references of agent's template
// (the prompt of step s) to ids that are no step of the workflow: they
// would render as "<no value>". Each place is reported once (seen).
func unknownStepRefs(agent *workflow.Agent, s *workflow.Step, steps map[string]workflow.StepData, seen map[string]bool) []Problem {
	var out []Problem
	for _, r := range agent.StepRefs() {
		if _, ok := steps[r.ID]; ok {
			continue
		}
		ids := make([]string, 0, len(steps))
		for id := range steps {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		msg := fmt.Sprintf(".Steps.%s: unknown step (the steps: %s) (rendering it for step %s)", r.ID, strings.Join(ids, ", "), s.ID)
		if key := r.Pos.String() + ".Steps." + r.ID; !seen[key] {
			seen[key] = true
			out = append(out, Problem{File: r.Pos.File, Line: r.Pos.Line, Col: r.Pos.Col, Message: msg})
		}
	}
	return out
}

// schemalessOutputRefs reports the .Steps.ID.Output references of agent's
// template (the prompt of step s) to steps without output_schema, whose
// output is always nil. Each place is reported once (seen).
func schemalessOutputRefs(agent *workflow.Agent, s *workflow.Step, byID map[string]*workflow.Step, seen map[string]bool) []Problem {
	var out []Problem
	for _, r := range agent.StepRefs() {
		other := byID[r.ID]
		if !r.Output || other == nil || other.OutputSchema != nil {
			continue
		}
		msg := fmt.Sprintf(".Steps.%s.Output: step %s has no output_schema, so it has no output (rendering it for step %s)", r.ID, r.ID, s.ID)
		if key := r.Pos.String() + ".Steps." + r.ID + ".Output"; !seen[key] {
			seen[key] = true
			out = append(out, Problem{File: r.Pos.File, Line: r.Pos.Line, Col: r.Pos.Col, Message: msg})
		}
	}
	return out
}

// outputsFS is the working tree with the files the workflow's steps write
// (and the foreach plans) present, empty, where they do not exist yet.
type outputsFS struct {
	fs.FS
	patterns []string
	files    map[string]bool
}

func (o *outputsFS) Open(name string) (fs.File, error) {
	f, err := o.FS.Open(name)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	ok := o.files[name]
	for _, p := range o.patterns {
		if m, _ := doublestar.Match(p, name); m {
			ok = true
		}
	}
	if !ok {
		return nil, err
	}
	return fstest.MapFS{name: {}}.Open(name)
}

// Stat describes name as Open would find it, without opening it: opening
// a named pipe waits for a writer.
func (o *outputsFS) Stat(name string) (fs.FileInfo, error) {
	fi, err := fs.Stat(o.FS, name)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return fi, err
	}
	f, oerr := o.Open(name)
	if oerr != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

// ReadLink and Lstat are the working tree's: a template's read that fails
// on a symbolic link names it (workflow.CheckNoLink).
func (o *outputsFS) ReadLink(name string) (string, error) { return fs.ReadLink(o.FS, name) }

// Lstat describes name without following a final symbolic link.
func (o *outputsFS) Lstat(name string) (fs.FileInfo, error) { return fs.Lstat(o.FS, name) }

// sampleItem is the .Item a fan-out step's prompt is checked with: the
// first file a glob matches or the first item of the list when there is
// one, else for a glob a file that does not exist (sampleFile, which
// outputsFS shows as empty: a template may read its item with file) and
// for a list an empty mapping (its fields render as "<no value>"); nil for
// a plan.
func sampleItem(project *workflow.Project, s *workflow.Step) any {
	if s.Each == nil {
		return nil
	}
	if plan := project.TaskPlan(s); plan != nil && len(plan.Tasks) > 0 {
		return plan.Tasks[0].Item.TemplateValue()
	}
	if s.Each.Glob != "" {
		return workflow.FileItem{Path: sampleFile}
	}
	return map[string]any{}
}

// sampleFile is the sample item of a glob that matches no file yet.
const sampleFile = "sample/file"
