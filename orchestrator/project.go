package orchestrator

import (
	"bytes"
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
// directory) into the repository's .codemachine/, the extra files (paths
// relative to .codemachine/, such as the editors' JSON Schemas) after it
// and, in a repository without files of its own, the template's sample code
// base (paths relative to the root). It never overwrites a file unless
// force is set, and returns the paths it wrote.
//
// An init that was killed half-way must not leave a repository that the
// next init refuses and validate calls incomplete: each file is written
// whole (a rename), workflow.yaml goes last, so that it exists only once
// everything else does, and a file that already holds exactly what init
// would write is none of the user's and no reason to refuse.
func (o *Orchestrator) Init(example fs.FS, extra, sample map[string][]byte, force bool) (*InitResult, error) {
	root := o.repo.Root()
	dest := filepath.Join(root, workflow.Dir)
	if fi, err := os.Lstat(dest); err == nil && !fi.IsDir() {
		// Refused, --force or not, before anything is written: a file
		// would fail the first write half-way ("mkdir: not a directory"),
		// and a link would have init write wherever it leads.
		what := "a file"
		if fi.Mode()&fs.ModeSymlink != 0 {
			what = "a symbolic link"
		}
		return nil, configErrorf("%s is %s, not a directory: init writes the workflow there; move it out of the way first", workflow.Dir, what)
	}
	// Refused, --force or not: --force replaces files, and a directory
	// where a file goes (or a file where a directory goes) would fail
	// its write half-way, the files before it written.
	if err := blockedTargets(example, extra, dest); err != nil {
		return nil, err
	}
	if !force {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(workflow.WorkflowFile))); err == nil {
			return nil, configErrorf("%s already exists; use --force to overwrite it with the template's", workflow.WorkflowFile)
		}
	}
	res, err := initResult(example, extra, sample, root, dest, force)
	if err != nil {
		return nil, err
	}
	w := &initWriter{force: force}
	last, err := w.example(example, dest, res)
	if err == nil {
		for _, p := range sortedKeys(extra) {
			if err = w.write(filepath.Join(dest, filepath.FromSlash(p)), path.Join(workflow.Dir, p), extra[p]); err != nil {
				break
			}
		}
	}
	if err == nil && len(res.Own) == 0 {
		for _, p := range sortedKeys(sample) {
			if err = writeWhole(filepath.Join(root, filepath.FromSlash(p)), sample[p]); err != nil {
				break
			}
			res.Sample = append(res.Sample, p)
		}
	}
	if err == nil && last != nil {
		err = w.write(filepath.Join(root, filepath.FromSlash(workflow.WorkflowFile)), workflow.WorkflowFile, last)
	}
	res.Written = w.written
	if err != nil {
		var cfg *ConfigError
		if errors.As(err, &cfg) {
			return res, err
		}
		return res, fmt.Errorf("init: %w", err)
	}
	return res, nil
}

// initResult finds what Init must know before it writes anything (the
// repository's own files, the recordings left out) and refuses, before
// anything is written, files in the way unless force.
func initResult(example fs.FS, extra, sample map[string][]byte, root, dest string, force bool) (*InitResult, error) {
	res := &InitResult{}
	var err error
	if res.Own, err = ownFiles(root, sample); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	if res.Overwritten, err = recordedOver(example, root, sample); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	res.SkippedRecordings = len(res.Overwritten) > 0 && hasRecordings(example)
	if !force {
		// Refused before anything is written: a refusal half-way would
		// leave part of the example beside the user's files.
		if err := existingTargets(example, extra, dest, len(res.Overwritten) > 0); err != nil {
			return nil, err
		}
	}
	if len(res.Own) == 0 {
		if err := checkSample(root, sample); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// hasRecordings reports whether example has a recordings directory.
func hasRecordings(example fs.FS) bool {
	fi, err := fs.Stat(example, "recordings")
	return err == nil && fi.IsDir()
}

// initWriter writes Init's files under .codemachine/ and lists them.
type initWriter struct {
	force   bool
	written []string
}

// write writes data to target (rel: its path from the root), refusing an
// existing file with other content unless force.
func (w *initWriter) write(target, rel string, data []byte) error {
	if !w.force && !sameContent(target, data) {
		if _, err := os.Lstat(target); err == nil {
			return configErrorf("%s already exists; use --force to overwrite it", rel)
		}
	}
	if err := writeWhole(target, data); err != nil {
		return err
	}
	w.written = append(w.written, rel)
	return nil
}

// example writes the example's files under dest, but for its recordings
// when res says they are left out, and but for workflow.yaml, which it
// returns for Init to write last.
func (w *initWriter) example(example fs.FS, dest string, res *InitResult) (last []byte, err error) {
	err = fs.WalkDir(example, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if len(res.Overwritten) > 0 && (p == "recordings" || strings.HasPrefix(p, "recordings/")) {
			// Replaying them would overwrite the repository's own files.
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		target := filepath.Join(dest, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := fs.ReadFile(example, p)
		if err != nil {
			return err
		}
		if path.Join(workflow.Dir, p) == workflow.WorkflowFile {
			last = data
			return nil
		}
		return w.write(target, path.Join(workflow.Dir, p), data)
	})
	return last, err
}

// sameContent reports whether target is a regular file holding exactly
// data: what an earlier init wrote there.
func sameContent(target string, data []byte) bool {
	fi, err := os.Lstat(target)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len(data)) {
		return false
	}
	got, err := os.ReadFile(target)
	return err == nil && bytes.Equal(got, data)
}

// initTmpSuffix names the file writeWhole writes before renaming it into
// place. The name is fixed, so that the next init writes the same one
// again and takes it away, where a kill left it.
const initTmpSuffix = ".codemachine-init"

// writeWhole writes data to target (making its directory) through a
// temporary file renamed into place: a kill leaves the old file or the
// new one, never a part of it.
func writeWhole(target string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	tmp := target + initTmpSuffix
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, target); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// checkSample refuses, before anything is written, a sample path that is
// not one the sample may write, or that exists with other content.
func checkSample(root string, sample map[string][]byte) error {
	for _, p := range sortedKeys(sample) {
		if !fs.ValidPath(p) || p == workflow.Dir || strings.HasPrefix(p, workflow.Dir+"/") || strings.HasPrefix(p, ".git/") {
			return fmt.Errorf("init: sample file %q: not a path the sample may write", p)
		}
		target := filepath.Join(root, filepath.FromSlash(p))
		if _, err := os.Lstat(target); err == nil && !sameContent(target, sample[p]) {
			return configErrorf("%s already exists; the template's sample code base is written only into a repository without files of its own", p)
		}
	}
	return nil
}

// existingTargets refuses, as a *ConfigError naming them, the files of
// example (but its recordings, when skipRecordings) and of extra that
// already exist under dest with other content than init writes.
// blockedTargets refuses a path of the example that something of another
// kind holds: a directory (or anything but a file or link) where a file
// goes, a file where a directory goes.
func blockedTargets(example fs.FS, extra map[string][]byte, dest string) error {
	blocked := func(p string, dir bool) error {
		fi, err := os.Lstat(filepath.Join(dest, filepath.FromSlash(p)))
		switch {
		case err != nil:
			return nil
		case dir && !fi.IsDir():
			return configErrorf("%s is a file, where init writes a directory of the example: move it out of the way first", path.Join(workflow.Dir, p))
		case !dir && !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0:
			return configErrorf("%s is a directory, where init writes a file of the example (--force replaces files only): move it out of the way first", path.Join(workflow.Dir, p))
		}
		return nil
	}
	err := fs.WalkDir(example, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		return blocked(p, d.IsDir())
	})
	if err != nil {
		var cfg *ConfigError
		if errors.As(err, &cfg) {
			return err
		}
		return fmt.Errorf("init: %w", err)
	}
	for _, p := range sortedKeys(extra) {
		if err := blocked(p, false); err != nil {
			return err
		}
	}
	return nil
}

func existingTargets(example fs.FS, extra map[string][]byte, dest string, skipRecordings bool) error {
	var exist []string
	check := func(p string, data []byte) {
		target := filepath.Join(dest, filepath.FromSlash(p))
		if _, err := os.Lstat(target); err == nil && !sameContent(target, data) {
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
			data, err := fs.ReadFile(example, p)
			if err != nil {
				return err
			}
			check(p, data)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	for _, p := range sortedKeys(extra) {
		check(p, extra[p])
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
	// Sample are the paths of the template's sample code base written
	// (relative to the root), sorted: none in a repository with files of
	// its own.
	Sample []string `json:"sample,omitempty"`
}

// ownFiles lists the top-level entries of root other than .git and
// .codemachine, at most ten. An entry that holds only files of sample, as
// sample has them (what an interrupted init wrote), is not the
// repository's own.
func ownFiles(root string, sample map[string][]byte) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var own []string
	for _, e := range entries {
		if e.Name() == ".git" || e.Name() == workflow.Dir || onlySample(root, e.Name(), sample) {
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

// onlySample reports whether the entry name of root holds nothing but
// files of sample with sample's content (and directories leading to them).
func onlySample(root, name string, sample map[string][]byte) bool {
	if len(sample) == 0 {
		return false
	}
	only := true
	err := filepath.WalkDir(filepath.Join(root, name), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if _, ok := sample[strings.TrimSuffix(rel, initTmpSuffix)]; ok && strings.HasSuffix(rel, initTmpSuffix) {
			return nil // the sample's file, being written when init was killed
		}
		data, ok := sample[rel]
		if !ok || !sameContent(p, data) {
			only = false
			return fs.SkipAll
		}
		return nil
	})
	return err == nil && only
}

// recordedOver lists the files of root that the example's recordings
// write (outside .codemachine/), sorted, but for those that are sample's
// as sample has them (an interrupted init's).
func recordedOver(example fs.FS, root string, sample map[string][]byte) ([]string, error) {
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
			target := filepath.Join(root, filepath.FromSlash(f.Path))
			if data, ok := sample[f.Path]; ok && sameContent(target, data) {
				continue
			}
			if _, err := os.Lstat(target); err == nil {
				seen[f.Path] = true
			}
		}
		return nil
	})
	return sortedKeys(seen), err
}

// ValidateReport summarizes a valid workflow.
type ValidateReport struct {
	Steps  int            `json:"steps"`
	Agents int            `json:"agents"`
	Plans  map[string]int `json:"plans"` // plan file -> tasks
	// Fanouts are the steps that fan out over files or list items: step
	// id -> tasks (an items file not written yet counts none).
	Fanouts map[string]int `json:"fanouts,omitempty"`
	// Warnings are lines of the plans that look like tasks but are not
	// ("- [ ]T3", "-[ ] T4"): not errors, but a task the user meant is
	// missing.
	Warnings []Problem `json:"warnings,omitempty"`
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
	// Warnings are those of the plans that could be read (see
	// ValidateReport.Warnings): a failing validate names them too, so
	// that a fix of the problems does not hide a missing task.
	Warnings []Problem
}

// Error lists every problem, one per line.
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
		for _, err := range gitstate.StateProblems(workflow.StateFile, data) {
			var se *gitstate.StateError
			if errors.As(err, &se) {
				problems = append(problems, Problem{File: se.File, Line: se.Line, Col: se.Col, Message: se.Msg})
			} else {
				problems = append(problems, Problem{File: workflow.StateFile, Message: err.Error()})
			}
		}
	}
	if len(problems) > 0 {
		return nil, &ConfigError{Err: &ValidationError{Problems: problems, Warnings: planWarnings(project)}}
	}
	return validateReport(project), nil
}

// validateReport counts what a valid project holds, with its plans'
// warnings.
func validateReport(project *workflow.Project) *ValidateReport {
	report := &ValidateReport{Steps: len(project.Workflow.Steps), Agents: len(project.Agents), Plans: map[string]int{},
		Warnings: planWarnings(project)}
	for _, p := range sortedKeys(project.Plans) {
		report.Plans[p] = len(project.Plans[p].Tasks)
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
	return report
}

// planWarnings are the warnings of the plans of project (nil: none), in
// file order.
func planWarnings(project *workflow.Project) []Problem {
	if project == nil {
		return nil
	}
	var out []Problem
	for _, p := range sortedKeys(project.Plans) {
		if project.Plans[p] == nil {
			continue
		}
		for _, w := range project.Plans[p].Warnings {
			out = append(out, Problem{File: w.Pos.File, Line: w.Pos.Line, Col: w.Pos.Col, Message: w.Msg})
		}
	}
	return out
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
