package workflow

import (
	"errors"
	"fmt"
	"io/fs"
)

// Project is everything a repository's .codemachine/ defines, loaded and
// cross-checked.
type Project struct {
	Workflow *Workflow
	// Agents are the agents the steps name, by name (the file's base name
	// without .md).
	Agents map[string]*Agent
	// Plans are the foreach plan files, by path. A plan file that does not
	// exist is absent: it is not written yet.
	Plans map[string]*Plan
	// PlanErrs are the problems of each broken plan. They are not load
	// errors: a broken plan stops only its foreach step.
	PlanErrs map[string]Errors
	// Fanouts are the tasks of the steps with foreach: {glob: ...} or
	// {items: ...}, by step id; absent while an items file is not written
	// yet. Their Done is left for the caller, who knows each task's
	// record (see TaskFingerprint).
	Fanouts map[string]*Plan
	// FanoutErrs are the problems of a fan-out's items, by step id; like
	// PlanErrs they stop only that step.
	FanoutErrs map[string]Errors
	// Skips are the steps whose when: is false at the commit looked at,
	// set by the caller, who evaluates the conditions (Condition.Eval):
	// such a step is due until it is recorded as skipped.
	Skips map[string]bool
	// UntilMet are the until: loops whose condition holds at the commit
	// looked at, set by the caller like Skips.
	UntilMet map[string]bool
	// Graph is the step graph; its cycles are load errors.
	Graph *Graph
}

// LoadProject reads and validates the workflow, the agents its steps name
// and the plans of its foreach steps from fsys, rooted at the repository
// root (the working tree, or a commit's tree). engines are the engine names
// a step or an agent may give, as ParseWorkflow takes them. Every problem
// is reported at once, as Errors; the Project is returned even then, as far
// as it could be built. Without a workflow file the error is ErrNoWorkflow.
func LoadProject(fsys fs.FS, engines []string) (*Project, error) {
	data, err := fs.ReadFile(fsys, WorkflowFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoWorkflow
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", WorkflowFile, err)
	}
	var errs Errors
	p := &Project{
		Workflow:   parseWorkflow(WorkflowFile, data, engines, &errs),
		Agents:     map[string]*Agent{},
		Plans:      map[string]*Plan{},
		PlanErrs:   map[string]Errors{},
		Fanouts:    map[string]*Plan{},
		FanoutErrs: map[string]Errors{},
	}
	missing := map[string]bool{}
	for _, s := range p.Workflow.Steps {
		if s.Agent != "" && agentNameRE().MatchString(s.Agent) {
			p.loadAgent(fsys, s.Agent, "", cmpOr(s.at.agent, s.Pos), engines, missing, &errs)
		}
		if s.Reviewer != "" {
			p.loadAgent(fsys, s.Reviewer, "review: ", cmpOr(s.at.reviewer, s.Pos), engines, missing, &errs)
		}
		if s.Foreach != "" {
			if err := p.loadPlan(fsys, s.Foreach); err != nil {
				errs.Add(cmpOr(s.at.foreach, s.Pos), "foreach: %v", err)
			}
		}
		if s.Each != nil {
			if err := p.loadFanout(fsys, s); err != nil {
				errs.Add(cmpOr(s.at.foreach, s.Pos), "foreach: %v", err)
			}
		}
	}
	g, err := p.Workflow.Graph()
	p.Graph = g
	var cycles Errors
	if errors.As(err, &cycles) {
		errs = append(errs, cycles...)
	}
	return p, errs.Err()
}

// loadAgent loads the agent named at `at` (a step's agent, or with
// prefix "review: " its reviewer) once; a missing file is reported at
// every place that names it.
func (p *Project) loadAgent(fsys fs.FS, name, prefix string, at Pos, engines []string, missing map[string]bool, errs *Errors) {
	if _, ok := p.Agents[name]; ok {
		return
	}
	file := AgentsDir + "/" + name + ".md"
	if missing[name] {
		errs.Add(at, "%sagent %q: no file %s", prefix, name, file)
		return
	}
	data, err := fs.ReadFile(fsys, file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		missing[name] = true
		errs.Add(at, "%sagent %q: no file %s", prefix, name, file)
		return
	case err != nil:
		errs.Add(at, "%sagent %q: %v", prefix, name, err)
		return
	}
	p.Agents[name] = parseAgent(file, data, engines, errs)
}

func (p *Project) loadPlan(fsys fs.FS, file string) error {
	if _, ok := p.Plans[file]; ok {
		return nil
	}
	data, err := fs.ReadFile(fsys, file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	plan, err := ParsePlan(file, data)
	p.Plans[file] = plan
	var perrs Errors
	if errors.As(err, &perrs) {
		p.PlanErrs[file] = perrs
	}
	return nil
}
