package workflow

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
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
	// DefinitionFiles are the paths of the loaded file system the
	// workflow and agents were read from or looked for (absent ones and
	// the directories of local uses: too), sorted: what a change must
	// leave alone not to change the definition. Plans, fan-out items and
	// the files agents' templates read are not among them: they are
	// inputs, which steps write.
	DefinitionFiles []string
}

// LoadProject reads and validates the workflow, the agents its steps name
// and the plans of its foreach steps from fsys, rooted at the repository
// root (the working tree, or a commit's tree). engines are the engine names
// a step or an agent may give, as ParseWorkflow takes them. Every problem
// is reported at once, as Errors; the Project is returned even then, as far
// as it could be built. Without a workflow file the error is ErrNoWorkflow.
func LoadProject(fsys fs.FS, engines []string) (*Project, error) {
	return LoadProjectWith(fsys, LoadOptions{Engines: engines})
}

// WorkflowInTheWay tells why fsys has no workflow file to read when
// something else is at its place: a directory named like it, or a file
// named like the directory it is in (.codemachine). nil otherwise.
func WorkflowInTheWay(fsys fs.FS) error {
	if fi, err := fs.Stat(fsys, WorkflowFile); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory, not a file", WorkflowFile)
	}
	for i := range len(WorkflowFile) {
		if WorkflowFile[i] != '/' {
			continue
		}
		if fi, err := fs.Stat(fsys, WorkflowFile[:i]); err == nil && !fi.IsDir() {
			return fmt.Errorf("%s is a file, not a directory: the workflow is %s", WorkflowFile[:i], WorkflowFile)
		}
	}
	return nil
}

// LoadProjectWith is LoadProject with the importer that fetches the git
// sources of uses: entries. The steps a uses: entry imports take its
// place in Workflow.Steps, each with its Source; their agents are read from
// the source's agents/ unless .codemachine/agents/ has one of the same
// name, which overrides it.
func LoadProjectWith(fsys fs.FS, opts LoadOptions) (*Project, error) {
	if opts.Definition != nil {
		if p, edges := decodeDefinition(opts.Definition, fsys, opts.Importer); p != nil {
			var errs Errors
			for _, s := range p.Workflow.Steps {
				p.loadTasks(fsys, s, &errs)
			}
			return p, p.finish(errs, edges)
		}
	}
	// Every parse records what it reads: DefinitionFiles, which callers
	// check changes against, must be known whether or not the definition
	// is kept.
	rec := &recordFS{fsys: fsys, names: map[string]bool{}}
	root := fs.FS(rec)
	engines := opts.Engines
	data, err := readDefFile(root, WorkflowFile)
	var link *LinkError
	switch {
	case errors.As(err, &link):
		return nil, err
	case err == nil:
	case WorkflowInTheWay(root) != nil:
		return nil, WorkflowInTheWay(root)
	case errors.Is(err, fs.ErrNotExist):
		return nil, ErrNoWorkflow
	default:
		return nil, fmt.Errorf("load %s: %w", WorkflowFile, err)
	}
	var errs Errors
	p := newProject(parseWorkflowIn(WorkflowFile, data, engines, &errs, rootImportCtx(root, opts.Importer)), map[string]*Agent{})
	defErrs := len(errs)
	al := &agentLoader{p: p, fsys: root, engines: engines, missing: map[string]bool{}, errs: &errs}
	for _, s := range p.Workflow.Steps {
		if s.Agent != "" && agentNameRE().MatchString(s.Agent) {
			al.load(s, s.Agent, "", cmpOr(s.at.agent, s.Pos))
			al.checkPrompt(s, cmpOr(s.at.agent, s.Pos))
		}
		if s.Reviewer != "" {
			al.load(s, s.Reviewer, "review: ", cmpOr(s.at.reviewer, s.Pos))
		}
		p.loadTasks(fsys, s, &errs)
	}
	err = p.finish(errs, nil)
	rec.unwrap(p.Workflow)
	p.DefinitionFiles = rec.read()
	if opts.Parsed != nil && defErrs == 0 && al.errCount == 0 {
		if def, ok := encodeDefinition(p); ok {
			opts.Parsed(def, p.DefinitionFiles)
		}
	}
	return p, err
}

func newProject(w *Workflow, agents map[string]*Agent) *Project {
	return &Project{Workflow: w, Agents: agents, Plans: map[string]*Plan{}, PlanErrs: map[string]Errors{},
		Fanouts: map[string]*Plan{}, FanoutErrs: map[string]Errors{}}
}

// loadTasks loads the plan or the fan-out's tasks of step s, if it has
// one, from fsys.
func (p *Project) loadTasks(fsys fs.FS, s *Step, errs *Errors) {
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

// finish builds the step graph (with edges, when given, as an earlier
// graph of the same workflow found them) and returns every problem found,
// the graph's cycles last.
func (p *Project) finish(errs Errors, edges map[string][]dep) error {
	var g *Graph
	var err error
	if edges != nil {
		g, err = p.Workflow.graphFrom(edges)
	} else {
		g, err = p.Workflow.Graph()
	}
	p.Graph = g
	var cycles Errors
	if errors.As(err, &cycles) {
		errs = append(errs, cycles...)
	}
	return errs.Err()
}

// AgentFor returns the agent that step s names as name (its agent or its
// reviewer): for an imported step, its source's unless the repository's
// own agents/ overrides it. nil when it was not loaded.
func (p *Project) AgentFor(s *Step, name string) *Agent {
	if k, ok := s.agentKeys[name]; ok {
		return p.Agents[k]
	}
	return p.Agents[name]
}

// agentLoader loads the agents the steps name, each file once.
type agentLoader struct {
	p       *Project
	fsys    fs.FS
	engines []string
	missing map[string]bool // keys of agents without a file
	errs    *Errors
	// errCount counts the problems found in agents.
	errCount int
	// bad holds the keys of agents whose file has problems of its own.
	bad map[string]bool
}

// checkPrompt reports step s, whose agent's file was loaded without
// problems of its own, when its prompt would be empty: the agent's body is
// blank and the step adds no prompt. The agent would get only the fixed
// footer (where it works, what it must write) and land whatever it made of
// that as the step's work.
func (l *agentLoader) checkPrompt(s *Step, at Pos) {
	a := l.p.AgentFor(s, s.Agent)
	if a == nil || l.bad[s.agentKeys[s.Agent]] || strings.TrimSpace(a.Body) != "" || strings.TrimSpace(s.Prompt) != "" {
		return
	}
	l.errs.Add(at, "agent %q: %s has no prompt text and the step has no prompt:, so the agent would be given nothing to do; write its instructions in the file, or give the step a prompt:", s.Agent, a.File)
	l.errCount++
}

// load loads the agent that step s names at `at` (its agent, or with
// prefix "review: " its reviewer) once; a missing file is reported at
// every place that names it.
func (l *agentLoader) load(s *Step, name, prefix string, at Pos) {
	key, fsys, file, label := name, l.fsys, AgentsDir+"/"+name+".md", AgentsDir+"/"+name+".md"
	if src := s.Source; src != nil {
		if _, err := fs.Stat(l.fsys, file); err != nil {
			file = path.Join(src.Dir, "agents", name+".md")
			key, fsys, label = src.key+"#"+name, src.FS, src.file(file)
		}
	}
	if s.agentKeys == nil {
		s.agentKeys = map[string]string{}
	}
	s.agentKeys[name] = key
	if _, ok := l.p.Agents[key]; ok {
		return
	}
	if l.missing[key] {
		l.errs.Add(at, "%sagent %q: no file %s", prefix, name, label)
		l.errCount++
		return
	}
	data, err := readDefFile(fsys, file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		l.missing[key] = true
		l.errs.Add(at, "%sagent %q: no file %s", prefix, name, label)
		l.errCount++
		return
	case err != nil:
		l.errs.Add(at, "%sagent %q: %v", prefix, name, err)
		l.errCount++
		return
	}
	n := len(*l.errs)
	l.p.Agents[key] = parseAgent(label, data, l.engines, l.errs)
	l.errCount += len(*l.errs) - n
	if len(*l.errs) > n {
		if l.bad == nil {
			l.bad = map[string]bool{}
		}
		l.bad[key] = true
	}
}

func (p *Project) loadPlan(fsys fs.FS, file string) error {
	if _, ok := p.Plans[file]; ok {
		return nil
	}
	data, err := readDefFile(fsys, file)
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
