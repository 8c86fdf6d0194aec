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
		Workflow: parseWorkflow(WorkflowFile, data, engines, &errs),
		Agents:   map[string]*Agent{},
		Plans:    map[string]*Plan{},
		PlanErrs: map[string]Errors{},
	}
	missing := map[string]bool{}
	for _, s := range p.Workflow.Steps {
		if s.Agent != "" && agentNameRE().MatchString(s.Agent) {
			p.loadAgent(fsys, s, engines, missing, &errs)
		}
		if s.Foreach != "" {
			if err := p.loadPlan(fsys, s.Foreach); err != nil {
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

func (p *Project) loadAgent(fsys fs.FS, s *Step, engines []string, missing map[string]bool, errs *Errors) {
	if _, ok := p.Agents[s.Agent]; ok {
		return
	}
	file := AgentsDir + "/" + s.Agent + ".md"
	at := cmpOr(s.at.agent, s.Pos)
	if missing[s.Agent] {
		errs.Add(at, "agent %q: no file %s", s.Agent, file)
		return
	}
	data, err := fs.ReadFile(fsys, file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		missing[s.Agent] = true
		errs.Add(at, "agent %q: no file %s", s.Agent, file)
		return
	case err != nil:
		errs.Add(at, "agent %q: %v", s.Agent, err)
		return
	}
	p.Agents[s.Agent] = parseAgent(file, data, engines, errs)
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
