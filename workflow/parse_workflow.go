package workflow

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/codemachine/codemachine/internal/yamlnode"
)

// Defaults of workflow.yaml (DESIGN 4).
const (
	DefaultEngine  = "auto"
	DefaultTimeout = 30 * time.Minute
	DefaultRetries = 2
	DefaultTrigger = "commit"
)

var (
	topKeys      = []string{"version", "name", "defaults", "trigger", "budget", "allow_secrets", "steps"}
	defaultsKeys = []string{"engine", "model", "timeout", "retries"}
	budgetKeys   = []string{"usd", "tokens"}
	hookKeys     = []string{"before", "after", "on_failure"}
	stepKeys     = []string{"id", "agent", "run", "prompt", "engine", "model", "effort", "timeout", "env",
		"inputs", "outputs", "needs", "foreach", "parallel", "check", "attempts", "review", "interactive", "hooks"}
)

var (
	stepIDRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	agentNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ParseWorkflow parses and validates a workflow.yaml. file is the path used
// in messages. engines are the names engine: may give, in the order an
// error lists them: the model does not know the engines, its caller passes
// the agents registry's (agents.WorkflowEngines). Top-level keys starting with "x-" are ignored: they hold
// YAML anchors for steps to merge ("<<: *common"). Every problem is reported, as Errors; the Workflow is returned
// even then, holding what could be read (steps without a usable id are left
// out), so that callers can go on checking agents and plans.
func ParseWorkflow(file string, data []byte, engines []string) (*Workflow, error) {
	var errs Errors
	w := parseWorkflow(file, data, engines, &errs)
	return w, errs.Err()
}

func parseWorkflow(file string, data []byte, engines []string, errs *Errors) *Workflow {
	d := &yamlDoc{file: file, engines: engines, errs: errs}
	w := &Workflow{
		File:     file,
		Trigger:  DefaultTrigger,
		Defaults: Defaults{Engine: DefaultEngine, Timeout: DefaultTimeout, Retries: DefaultRetries},
	}
	n := d.parse(data)
	if n == nil {
		if len(*errs) == 0 {
			errs.Add(Pos{File: file, Line: 1, Col: 1}, "empty workflow: want \"version: 1\" and a list of steps")
		}
		return w
	}
	kvs, ok := d.mapping(n, "workflow")
	if !ok {
		return w
	}
	var haveVersion, haveSteps bool
	for _, kv := range kvs {
		switch kv.name {
		case "version":
			haveVersion = true
			if v, ok := d.integer(kv.val, "version"); ok && v != 1 {
				errs.Add(d.pos(kv.val), "unsupported version %d (this codemachine reads version 1)", v)
			} else if ok {
				w.Version = 1
			}
		case "name":
			w.Name, _ = d.str(kv.val, "name")
		case "defaults":
			d.defaults(kv.val, &w.Defaults)
		case "trigger":
			if v, ok := d.str(kv.val, "trigger"); ok {
				if v != "commit" && v != "save" {
					errs.Add(d.pos(kv.val), "trigger: want commit or save, got %q", v)
				} else {
					w.Trigger = v
				}
			}
		case "budget":
			d.budget(kv.val, &w.Budget)
		case "allow_secrets":
			w.AllowSecrets, _ = d.globs(kv.val, "allow_secrets")
		case "steps":
			haveSteps = true
			w.Steps = d.steps(kv.val)
		default:
			// x- keys are extension fields, as in Compose files: a
			// place for YAML anchors that steps merge with "<<".
			if !strings.HasPrefix(kv.name, "x-") {
				d.unknownKey(kv, "", topKeys)
			}
		}
	}
	if !haveVersion {
		errs.Add(d.pos(n), "missing key \"version\" (want version: 1)")
	}
	if !haveSteps {
		errs.Add(d.pos(n), "missing key \"steps\"")
	}
	return w
}

func (d *yamlDoc) defaults(n *yaml.Node, def *Defaults) {
	kvs, _ := d.mapping(n, "defaults")
	for _, kv := range kvs {
		switch kv.name {
		case "engine":
			if v, ok := d.str(kv.val, "engine"); ok && d.engine(kv.val, v) {
				def.Engine = v
			}
		case "model":
			def.Model, _ = d.str(kv.val, "model")
		case "timeout":
			if v, ok := d.duration(kv.val, "timeout"); ok {
				def.Timeout = v
			}
		case "retries":
			if v, ok := d.integer(kv.val, "retries"); ok {
				if v < 0 || v > 100 {
					d.errs.Add(d.pos(kv.val), "retries: want 0 to 100, got %d", v)
				} else {
					def.Retries = int(v)
				}
			}
		default:
			d.unknownKey(kv, " in defaults", defaultsKeys)
		}
	}
}

func (d *yamlDoc) budget(n *yaml.Node, b *Budget) {
	kvs, _ := d.mapping(n, "budget")
	for _, kv := range kvs {
		switch kv.name {
		case "usd":
			if v, ok := d.number(kv.val, "usd"); ok {
				if v < 0 {
					d.errs.Add(d.pos(kv.val), "usd: must not be negative")
				} else {
					b.USD = v
				}
			}
		case "tokens":
			if v, ok := d.integer(kv.val, "tokens"); ok {
				if v < 0 {
					d.errs.Add(d.pos(kv.val), "tokens: must not be negative")
				} else {
					b.Tokens = v
				}
			}
		default:
			d.unknownKey(kv, " in budget", budgetKeys)
		}
	}
}

// engine checks an engine name and reports whether it is known.
func (d *yamlDoc) engine(n *yaml.Node, name string) bool {
	if slices.Contains(d.engines, name) {
		return true
	}
	hint := suggest(name, d.engines)
	if hint == "" {
		hint = " (want one of " + strings.Join(d.engines, ", ") + ")"
	}
	d.errs.Add(d.at(n), "unknown engine %q%s", name, hint)
	return false
}

// globs reads a list of globs (or one glob) and validates each one.
func (d *yamlDoc) globs(n *yaml.Node, what string) ([]string, []Pos) {
	vals, nodes := d.strList(n, what, "a list of globs")
	var out []string
	var pos []Pos
	for i, v := range vals {
		clean, msg := checkGlob(v)
		if msg != "" {
			d.errs.Add(d.pos(nodes[i]), "%s: %q %s", what, v, msg)
			continue
		}
		out = append(out, clean)
		pos = append(pos, d.pos(nodes[i]))
	}
	return out, pos
}

// stepRef is a needs entry, checked once all step ids are known.
type stepRef struct {
	step *Step
	id   string
	node *yaml.Node
}

func (d *yamlDoc) steps(n *yaml.Node) []*Step {
	n = yamlnode.Resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.errs.Add(d.pos(n), "steps: want a list of steps, got %s", yamlnode.Describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		d.errs.Add(d.pos(n), "steps: want at least one step")
		return nil
	}
	var steps []*Step
	firstAt := map[string]int{} // id -> line of its first definition
	named := map[string]bool{}  // every id written, valid or not: needs to it are not "unknown"
	var refs []stepRef
	for i, item := range n.Content {
		s, idNode, stepRefs := d.step(yamlnode.Resolve(item), i+1)
		refs = append(refs, stepRefs...)
		if idNode == nil {
			continue
		}
		named[s.ID] = true
		if line, dup := firstAt[s.ID]; dup {
			d.errs.Add(d.pos(idNode), "duplicate step id %q (first at line %d)", s.ID, line)
			continue
		}
		firstAt[s.ID] = d.pos(idNode).Line
		if stepIDRE.MatchString(s.ID) {
			steps = append(steps, s)
		}
	}
	ids := make([]string, 0, len(steps))
	for _, s := range steps {
		ids = append(ids, s.ID)
	}
	for _, r := range refs {
		switch {
		case r.id == r.step.ID:
			d.errs.Add(d.pos(r.node), "step %q needs itself", r.id)
		case !named[r.id]:
			d.errs.Add(d.pos(r.node), "needs unknown step %q%s", r.id, suggest(r.id, ids))
		}
	}
	return steps
}

// step parses one step. idNode is nil when the step has no id; refs are its
// needs entries.
func (d *yamlDoc) step(n *yaml.Node, index int) (s *Step, idNode *yaml.Node, refs []stepRef) {
	s = &Step{Pos: d.pos(n)}
	s.at.id = s.Pos
	label := fmt.Sprintf("step #%d", index)
	if n.Kind != yaml.MappingNode {
		d.errs.Add(d.pos(n), "%s: want a mapping, got %s", label, yamlnode.Describe(n))
		return s, nil, nil
	}
	// The id names the step in every other message, so look for it first.
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := yamlnode.Resolve(n.Content[i]), yamlnode.Resolve(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Value == "id" && v.Kind == yaml.ScalarNode && !yamlnode.IsNull(v) {
			label = fmt.Sprintf("step %q", v.Value)
		}
	}
	kvs, _ := d.mapping(n, label)
	for _, kv := range kvs {
		if kv.name != "id" {
			continue
		}
		if v, ok := d.str(kv.val, "id"); ok {
			s.ID, idNode = v, yamlnode.Resolve(kv.val)
			s.at.id = d.pos(idNode)
			label = fmt.Sprintf("step %q", v)
			if !stepIDRE.MatchString(v) {
				d.errs.Add(s.at.id, "invalid step id %q: use lowercase letters, digits and \"-\", starting with a letter or digit", v)
			}
		}
	}
	if idNode == nil {
		d.errs.Add(s.Pos, "%s: missing key \"id\"", label)
	}
	var agentKey, runKey, engineNode *yaml.Node
	for _, kv := range kvs {
		switch kv.name {
		case "id":
		case "agent":
			if v, ok := d.str(kv.val, "agent"); ok {
				agentKey = kv.key
				s.Agent, s.at.agent = v, d.at(kv.val)
				if !agentNameRE.MatchString(v) || strings.HasSuffix(v, ".md") {
					d.errs.Add(s.at.agent, "agent: invalid agent name %q: want the name of a file in %s/, without \".md\"", v, AgentsDir)
				}
			}
		case "run":
			if v, ok := d.str(kv.val, "run"); ok {
				runKey, s.Run = kv.key, v
			}
		case "prompt":
			s.Prompt, _ = d.str(kv.val, "prompt")
		case "engine":
			if v, ok := d.str(kv.val, "engine"); ok && d.engine(kv.val, v) {
				s.Engine, engineNode = v, yamlnode.Resolve(kv.val)
			}
		case "model":
			s.Model, _ = d.str(kv.val, "model")
		case "effort":
			s.Effort, _ = d.str(kv.val, "effort")
		case "timeout":
			s.Timeout, _ = d.duration(kv.val, "timeout")
		case "env":
			s.Env = d.env(kv.val)
		case "inputs":
			s.Inputs, s.at.inputs = d.globs(kv.val, "inputs")
		case "outputs":
			s.Outputs, _ = d.globs(kv.val, "outputs")
		case "needs":
			vals, nodes := d.strList(kv.val, "needs", "a list of step ids")
			for i, v := range vals {
				if slices.Contains(s.Needs, v) {
					continue
				}
				s.Needs = append(s.Needs, v)
				s.at.needs = append(s.at.needs, d.pos(nodes[i]))
				refs = append(refs, stepRef{step: s, id: v, node: nodes[i]})
			}
		case "foreach":
			d.foreach(kv.val, s)
		case "parallel":
			s.Parallel = d.atLeastOne(kv.val, "parallel")
		case "check":
			s.Check, _ = d.str(kv.val, "check")
		case "attempts":
			s.Attempts = d.atLeastOne(kv.val, "attempts")
		case "review":
			s.Review, _ = d.boolean(kv.val, "review")
		case "interactive":
			if v, ok := d.boolean(kv.val, "interactive"); ok && v {
				// Accepting it and running headless would silently
				// do something else than asked.
				d.errs.Add(d.at(kv.val), "interactive steps are not supported yet")
			}
		case "hooks":
			d.hooks(kv.val, &s.Hooks, label)
		default:
			d.unknownKey(kv, " in "+label, stepKeys)
		}
	}
	switch {
	case agentKey != nil && runKey != nil:
		second := runKey
		if agentKey.Line > runKey.Line || (agentKey.Line == runKey.Line && agentKey.Column > runKey.Column) {
			second = agentKey
		}
		d.errs.Add(d.pos(second), "%s has both agent and run; keep one", label)
	case agentKey == nil && runKey == nil:
		d.errs.Add(s.Pos, "%s has neither agent nor run", label)
	case runKey != nil && engineNode != nil && s.Engine != "shell":
		d.errs.Add(d.pos(engineNode), "engine: a run step always uses the shell engine, got %q", s.Engine)
	case agentKey != nil && s.Engine == "shell":
		d.errs.Add(d.pos(engineNode), "engine: shell runs commands; an agent step needs an agent engine")
	}
	return s, idNode, refs
}

func (d *yamlDoc) foreach(n *yaml.Node, s *Step) {
	v, ok := d.str(n, "foreach")
	if !ok {
		return
	}
	at := d.at(n)
	if hasMeta(v) {
		d.errs.Add(at, "foreach: %q is a glob; want the path of one plan file", v)
		return
	}
	clean, msg := checkGlob(v)
	if msg != "" {
		d.errs.Add(at, "foreach: %q %s", v, msg)
		return
	}
	s.Foreach, s.at.foreach = clean, at
}

func (d *yamlDoc) atLeastOne(n *yaml.Node, what string) int {
	v, ok := d.integer(n, what)
	switch {
	case !ok:
		return 0
	case v < 1 || v > 1000:
		d.errs.Add(d.at(n), "%s: want 1 to 1000, got %d", what, v)
		return 0
	}
	return int(v)
}

func (d *yamlDoc) env(n *yaml.Node) map[string]string {
	kvs, ok := d.mapping(n, "env")
	if !ok {
		return nil
	}
	env := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		if !envNameRE.MatchString(kv.name) {
			d.errs.Add(d.pos(kv.key), "env: invalid variable name %q", kv.name)
			continue
		}
		v, _ := d.str(kv.val, "env "+kv.name)
		env[kv.name] = v
	}
	return env
}

func (d *yamlDoc) hooks(n *yaml.Node, h *Hooks, label string) {
	kvs, _ := d.mapping(n, "hooks")
	for _, kv := range kvs {
		switch kv.name {
		case "before":
			h.Before, _ = d.str(kv.val, "before")
		case "after":
			h.After, _ = d.str(kv.val, "after")
		case "on_failure":
			h.OnFailure, _ = d.str(kv.val, "on_failure")
		default:
			d.unknownKey(kv, " in hooks of "+label, hookKeys)
		}
	}
}
