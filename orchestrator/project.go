package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// Init copies the example workflow (example, rooted at the example's
// directory) into the repository's .codemachine/, and the extra files
// (paths relative to .codemachine/, such as the editors' JSON Schemas)
// after it. It never overwrites a file unless force is set, and returns
// the paths it wrote.
func (o *Orchestrator) Init(example fs.FS, extra map[string][]byte, force bool) (*InitResult, error) {
	root := o.repo.Root()
	dest := filepath.Join(root, workflow.Dir)
	if !force {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(workflow.WorkflowFile))); err == nil {
			return nil, configErrorf("%s already exists; use --force to overwrite it with the example", workflow.WorkflowFile)
		}
	}
	res := &InitResult{}
	var err error
	if res.Own, err = ownFiles(root); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	if res.Overwritten, err = recordedOver(example, root); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	skip := len(res.Overwritten) > 0
	if !force {
		// Refused before anything is written: a refusal half-way would
		// leave part of the example beside the user's files.
		if err := existingTargets(example, extra, dest, skip); err != nil {
			return nil, err
		}
	}
	var written []string
	err = fs.WalkDir(example, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if skip && (p == "recordings" || strings.HasPrefix(p, "recordings/")) {
			// Replaying them would overwrite the repository's own files.
			res.SkippedRecordings = true
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		target := filepath.Join(dest, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if _, err := os.Stat(target); err == nil && !force {
			return configErrorf("%s already exists; use --force to overwrite it", path.Join(workflow.Dir, p))
		}
		data, err := fs.ReadFile(example, p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			return err
		}
		written = append(written, path.Join(workflow.Dir, p))
		return nil
	})
	if err == nil {
		err = o.writeExtra(dest, extra, force, &written)
	}
	res.Written = written
	if err != nil {
		var cfg *ConfigError
		if errors.As(err, &cfg) {
			return res, err
		}
		return res, fmt.Errorf("init: %w", err)
	}
	return res, nil
}

// existingTargets refuses, as a *ConfigError naming them, the files of
// example (but its recordings, when skipRecordings) and of extra that
// already exist under dest.
func existingTargets(example fs.FS, extra map[string][]byte, dest string, skipRecordings bool) error {
	var exist []string
	check := func(p string) {
		if _, err := os.Stat(filepath.Join(dest, filepath.FromSlash(p))); err == nil {
			exist = append(exist, path.Join(workflow.Dir, p))
		}
	}
	err := fs.WalkDir(example, ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case skipRecordings && p == "recordings" && d.IsDir():
			return fs.SkipDir
		case !d.IsDir():
			check(p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	for _, p := range sortedKeys(extra) {
		check(p)
	}
	switch len(exist) {
	case 0:
		return nil
	case 1:
		return configErrorf("%s already exists; use --force to overwrite it", exist[0])
	}
	others := strings.Join(exist[1:min(len(exist), 4)], ", ")
	if len(exist) > 4 {
		others += ", ..."
	}
	return configErrorf("%s and %d more files already exist (%s); use --force to overwrite them", exist[0], len(exist)-1, others)
}

// InitResult says what Init wrote, and what the user must know about the
// example in a repository that already has files of its own.
type InitResult struct {
	Written []string `json:"written"`
	// Own are the repository's top-level entries besides .git and
	// .codemachine (a few, sorted): the example builds a Go program at
	// the root, which is not this project.
	Own []string `json:"own,omitempty"`
	// Overwritten are the repository's files that the example's replay
	// recordings would overwrite; when there are any, the recordings are
	// not written (SkippedRecordings), so that `run --engine replay`
	// cannot replace them.
	Overwritten       []string `json:"overwritten,omitempty"`
	SkippedRecordings bool     `json:"skipped_recordings,omitempty"`
}

// ownFiles lists the top-level entries of root other than .git and
// .codemachine, at most ten.
func ownFiles(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var own []string
	for _, e := range entries {
		if e.Name() == ".git" || e.Name() == workflow.Dir {
			continue
		}
		if len(own) == 10 {
			own = append(own, "...")
			break
		}
		own = append(own, e.Name())
	}
	return own, nil
}

// recordedOver lists the files of root that the example's recordings
// write (outside .codemachine/), sorted.
func recordedOver(example fs.FS, root string) ([]string, error) {
	seen := map[string]bool{}
	err := fs.WalkDir(example, "recordings", func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return fs.SkipAll
		}
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(example, p)
		if err != nil {
			return err
		}
		rec, err := agents.ParseRecording(p, data)
		if err != nil {
			return err
		}
		for _, f := range rec.Files {
			if strings.HasPrefix(f.Path, workflow.Dir+"/") {
				continue
			}
			if _, err := os.Lstat(filepath.Join(root, filepath.FromSlash(f.Path))); err == nil {
				seen[f.Path] = true
			}
		}
		return nil
	})
	return sortedKeys(seen), err
}

// writeExtra writes Init's extra files under dest, in path order.
func (o *Orchestrator) writeExtra(dest string, extra map[string][]byte, force bool, written *[]string) error {
	for _, p := range sortedKeys(extra) {
		target := filepath.Join(dest, filepath.FromSlash(p))
		if _, err := os.Stat(target); err == nil && !force {
			return configErrorf("%s already exists; use --force to overwrite it", path.Join(workflow.Dir, p))
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(target, extra[p], 0o644); err != nil {
			return err
		}
		*written = append(*written, path.Join(workflow.Dir, p))
	}
	return nil
}

// ValidateReport summarizes a valid workflow.
type ValidateReport struct {
	Steps  int            `json:"steps"`
	Agents int            `json:"agents"`
	Plans  map[string]int `json:"plans"` // plan file -> tasks
	// Fanouts are the steps that fan out over files or list items: step
	// id -> tasks (an items file not written yet counts none).
	Fanouts map[string]int `json:"fanouts,omitempty"`
}

// Problem is one validation error with its position.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Message string `json:"message"`
}

// ValidationError lists every problem validate found, in file order.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = workflow.Pos{File: p.File, Line: p.Line, Col: p.Col}.String() + ": " + p.Message
	}
	return strings.Join(lines, "\n")
}

// Validate checks the workflow, agents, plans and state.yaml as they are in
// the working tree (uncommitted edits included), reporting every problem at
// once as a *ConfigError wrapping a *ValidationError.
func (o *Orchestrator) Validate() (*ValidateReport, error) {
	fsys := os.DirFS(o.repo.Root())
	project, err := o.loadProject(fsys, workingPins(o.repo.Root()))
	var errs workflow.Errors
	if err != nil && !errors.As(err, &errs) {
		return nil, &ConfigError{Err: err}
	}
	if project != nil {
		for _, plan := range sortedKeys(project.PlanErrs) {
			errs = append(errs, project.PlanErrs[plan]...)
		}
		for _, id := range sortedKeys(project.FanoutErrs) {
			errs = append(errs, project.FanoutErrs[id]...)
		}
		errs = append(errs, project.UnwrittenTaskSources(fsys)...)
	}
	errs.Sort()
	var problems []Problem
	for _, e := range errs {
		problems = append(problems, Problem{File: e.Pos.File, Line: e.Pos.Line, Col: e.Pos.Col, Message: e.Msg})
	}
	if len(errs) == 0 && project != nil {
		// The prompts are rendered as a run renders them (promptFS).
		pfs, done, err := promptFS(o.repo.Root())
		if err != nil {
			return nil, err
		}
		problems = append(problems, promptProblems(pfs, project, o.repo.Root())...)
		done()
	}
	var link *workflow.LinkError
	if err := workflow.CheckNoLink(fsys, workflow.StateFile); errors.As(err, &link) {
		if link.Path == workflow.StateFile {
			problems = append(problems, Problem{File: workflow.StateFile, Message: strings.TrimPrefix(err.Error(), link.Path+" ")})
		}
	} else if st, err := fs.Stat(fsys, workflow.StateFile); err == nil && st.IsDir() {
		problems = append(problems, Problem{File: workflow.StateFile, Message: "is a directory, not a file: codemachine writes its step records there"})
	} else if data, err := workflow.ReadRegular(fsys, workflow.StateFile); errors.Is(err, workflow.ErrNotRegular) {
		problems = append(problems, Problem{File: workflow.StateFile, Message: "is " + workflow.ErrNotRegular.Error()})
	} else if err == nil {
		if _, err := gitstate.ParseState(workflow.StateFile, data); err != nil {
			var se *gitstate.StateError
			if errors.As(err, &se) {
				problems = append(problems, Problem{File: se.File, Line: se.Line, Col: se.Col, Message: se.Msg})
			} else {
				problems = append(problems, Problem{File: workflow.StateFile, Message: err.Error()})
			}
		}
	}
	if len(problems) > 0 {
		return nil, &ConfigError{Err: &ValidationError{Problems: problems}}
	}
	report := &ValidateReport{Steps: len(project.Workflow.Steps), Agents: len(project.Agents), Plans: map[string]int{}}
	for p, plan := range project.Plans {
		report.Plans[p] = len(plan.Tasks)
	}
	for _, s := range project.Workflow.Steps {
		if s.Each != nil {
			if report.Fanouts == nil {
				report.Fanouts = map[string]int{}
			}
			if plan := project.TaskPlan(s); plan != nil {
				report.Fanouts[s.ID] = len(plan.Tasks)
			} else {
				report.Fanouts[s.ID] = 0
			}
		}
	}
	return report, nil
}

// Graph writes the step DAG as Mermaid ("mermaid") or Graphviz ("dot").
func (o *Orchestrator) Graph(format string, w io.Writer) error {
	project, err := o.loadProject(os.DirFS(o.repo.Root()), workingPins(o.repo.Root()))
	if err != nil {
		return &ConfigError{Err: err}
	}
	g := project.Graph
	var b strings.Builder
	switch format {
	case "", "mermaid":
		b.WriteString("graph TD\n")
		for _, s := range g.Order() {
			// Mermaid has no backslash escapes in labels: quotes are
			// entities.
			fmt.Fprintf(&b, "  %s[\"%s\"]\n", mermaidID(s.ID), strings.ReplaceAll(nodeLabel(s), `"`, "#quot;"))
			for _, up := range g.Upstream(s.ID) {
				fmt.Fprintf(&b, "  %s --> %s\n", mermaidID(up), mermaidID(s.ID))
			}
		}
	case "dot":
		b.WriteString("digraph workflow {\n  rankdir=TB;\n")
		for _, s := range g.Order() {
			fmt.Fprintf(&b, "  %q [label=%q];\n", s.ID, nodeLabel(s))
			for _, up := range g.Upstream(s.ID) {
				fmt.Fprintf(&b, "  %q -> %q;\n", up, s.ID)
			}
		}
		b.WriteString("}\n")
	default:
		return configErrorf("unknown graph format %q (mermaid or dot)", format)
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// nodeLabel is a step's box in the graph: its id, what it runs, and what
// it fans out over.
func nodeLabel(s *workflow.Step) string {
	what := s.Agent
	if s.Run != "" {
		what = "run"
	}
	switch {
	case s.Each != nil && s.Each.Glob != "":
		what += ", foreach file of " + s.Each.Glob
	case s.Each != nil:
		what += ", foreach item of " + s.Each.Items
	case s.Foreach != "":
		what += ", foreach task of " + s.Foreach
	}
	if s.When != nil {
		what += ", when: " + s.When.Source
	}
	if s.Until != nil {
		what += fmt.Sprintf(", until: %s, at most %d times", s.Until.Source, s.MaxIters())
	}
	return s.ID + " (" + what + ")"
}

// mermaidID makes a step id safe as a Mermaid node id.
func mermaidID(id string) string {
	return "s_" + strings.ReplaceAll(id, "-", "_")
}

// UncommittedWorkflowChanges lists changed or new files under .codemachine/
// that a run will not see because they are not committed.
func (o *Orchestrator) UncommittedWorkflowChanges(ctx context.Context) ([]string, error) {
	entries, err := o.repo.StatusPaths(ctx, workflow.Dir)
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// WriteSample writes a template's sample code base (path -> content,
// relative to the repository root) into the repository, in path order,
// and returns the paths written. It never overwrites: a path that exists
// already is a *ConfigError, before anything is written. init calls it only
// for a repository without files of its own.
func (o *Orchestrator) WriteSample(files map[string][]byte) ([]string, error) {
	root := o.repo.Root()
	paths := sortedKeys(files)
	for _, p := range paths {
		if !fs.ValidPath(p) || p == workflow.Dir || strings.HasPrefix(p, workflow.Dir+"/") || strings.HasPrefix(p, ".git/") {
			return nil, fmt.Errorf("init: sample file %q: not a path the sample may write", p)
		}
		if _, err := os.Lstat(filepath.Join(root, filepath.FromSlash(p))); err == nil {
			return nil, configErrorf("%s already exists; the template's sample code base is written only into a repository without files of its own", p)
		}
	}
	for _, p := range paths {
		target := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
		if err := os.WriteFile(target, files[p], 0o644); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
	}
	return paths, nil
}
