package orchestrator

import (
	"errors"
	"io/fs"
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
	}
	sample := &outputsFS{FS: fsys, patterns: patterns, files: outputs}
	seen := map[string]bool{}
	var out []Problem
	for _, s := range project.Workflow.Steps {
		agent := project.Agents[s.Agent]
		if s.Agent == "" || agent == nil {
			continue
		}
		data := workflow.PromptData{Step: workflow.StepInfo{ID: s.ID, Inputs: s.Inputs, Outputs: s.Outputs}, Attempt: 1, Repo: repo}
		if s.Foreach != "" {
			data.Task = &workflow.TaskInfo{ID: "T1", Title: "a sample task", Body: "What the sample task asks."}
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
		msg := we.Msg
		if s.Foreach == "" && strings.Contains(msg, "nil pointer evaluating *workflow.TaskInfo") {
			msg = ".Task is nil: only a foreach step's prompt has a task"
		}
		msg += " (rendering it for step " + s.ID + " with sample data)"
		if key := we.Pos.String() + we.Msg; !seen[key] {
			seen[key] = true
			out = append(out, Problem{File: we.Pos.File, Line: we.Pos.Line, Col: we.Pos.Col, Message: msg})
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
