package workflow

import (
	"math"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults of workflow.yaml.
const (
	DefaultEngine  = "auto"
	DefaultTimeout = 30 * time.Minute
	DefaultRetries = 2
	DefaultTrigger = "commit"
)

var (
	defaultsKeys = []string{"engine", "model", "timeout", "retries"}
	budgetKeys   = []string{"usd", "tokens"}
)

// ParseWorkflow parses and validates a workflow.yaml. file is the path used
// in messages. engines are the names engine: may give, in the order an
// error lists them: the model does not know the engines, its caller passes
// the agents registry's (agents.WorkflowEngines). Top-level keys starting
// with "x-" are ignored: they hold YAML anchors for steps to merge
// ("<<: *common"). Every problem is reported, as Errors; the Workflow is
// returned even then, holding what could be read (steps without a usable
// id are left out), so that callers can go on checking agents and plans.
// Without the repository's files, a uses: entry is checked for its form
// only; its steps are not read, and the step ids that needs: and
// conditions name are not checked (LoadProject reads and checks them).
func ParseWorkflow(file string, data []byte, engines []string) (*Workflow, error) {
	var errs Errors
	w := parseWorkflow(file, data, engines, &errs)
	return w, errs.Err()
}

func parseWorkflow(file string, data []byte, engines []string, errs *Errors) *Workflow {
	return parseWorkflowIn(file, data, engines, errs, nil)
}

// parseWorkflowIn is parseWorkflow reading uses: entries with imp (nil:
// each is an error).
func parseWorkflowIn(file string, data []byte, engines []string, errs *Errors, imp *importCtx) *Workflow {
	wd := &workflowDecoder{yamlDoc: &yamlDoc{file: file, engines: engines, errs: errs, imp: imp}, w: &Workflow{
		File:     file,
		Trigger:  DefaultTrigger,
		Defaults: Defaults{Engine: DefaultEngine, Timeout: DefaultTimeout, Retries: DefaultRetries},
	}}
	n := wd.parse(data)
	if n == nil {
		if len(*errs) == 0 {
			errs.Add(Pos{File: file, Line: 1, Col: 1}, "empty workflow: want \"version: 1\" and a list of steps")
		}
		return wd.w
	}
	kvs, ok := wd.mapping(n, "workflow")
	if !ok {
		return wd.w
	}
	decodeKeys(wd, workflowFields, kvs, func(kv keyVal) {
		// x- keys are extension fields, as in Compose files: a place
		// for YAML anchors that steps merge with "<<".
		if !strings.HasPrefix(kv.name, "x-") {
			wd.unknownKey(kv, "", workflowKeys)
		}
	})
	if !wd.haveVersion {
		errs.Add(wd.pos(n), "missing key \"version\" (want version: 1)")
	}
	if !wd.haveSteps {
		errs.Add(wd.pos(n), "missing key \"steps\"")
	}
	mergeImportedVars(wd.w, imp)
	wd.compileConditions(wd.w)
	return wd.w
}

// workflowDecoder reads the top-level keys of a workflow into w.
type workflowDecoder struct {
	*yamlDoc
	w                      *Workflow
	haveVersion, haveSteps bool // the keys every workflow must have
}

// workflowFields are the top-level keys of a workflow.
var workflowFields = []keyDecoder[*workflowDecoder]{
	{"version", (*workflowDecoder).readVersion},
	{"name", func(wd *workflowDecoder, kv keyVal) { wd.w.Name, _ = wd.str(kv.val, "name") }},
	{"defaults", func(wd *workflowDecoder, kv keyVal) { wd.defaults(kv.val, &wd.w.Defaults) }},
	{"trigger", (*workflowDecoder).readTrigger},
	{"budget", func(wd *workflowDecoder, kv keyVal) { wd.budget(kv.val, &wd.w.Budget) }},
	{"allow_secrets", func(wd *workflowDecoder, kv keyVal) { wd.w.AllowSecrets, _ = wd.globs(kv.val, "allow_secrets") }},
	{"sandbox", func(wd *workflowDecoder, kv keyVal) { wd.w.Sandbox = wd.sandbox(kv.val, "") }},
	{"max_file_size", func(wd *workflowDecoder, kv keyVal) { wd.w.MaxFileSize = wd.fileSize(kv.val, "") }},
	{"vars", (*workflowDecoder).readVars},
	{"steps", func(wd *workflowDecoder, kv keyVal) { wd.haveSteps, wd.w.Steps = true, wd.steps(kv.val) }},
}

var workflowKeys = keyNames(workflowFields)

func (wd *workflowDecoder) readVersion(kv keyVal) {
	wd.haveVersion = true
	v, ok := wd.integer(kv.val, "version")
	switch {
	case ok && v != 1:
		wd.errs.Add(wd.pos(kv.val), "unsupported version %d (this codemachine reads version 1)", v)
	case ok:
		wd.w.Version = 1
	}
}

func (wd *workflowDecoder) readTrigger(kv keyVal) {
	v, ok := wd.str(kv.val, "trigger")
	switch {
	case !ok:
	case v != "commit" && v != "save":
		wd.errs.Add(wd.pos(kv.val), "trigger: want commit or save, got %q", v)
	default:
		wd.w.Trigger = v
	}
}

func (d *yamlDoc) defaults(n *yaml.Node, def *Defaults) {
	kvs, _ := d.mapping(n, "defaults")
	for _, kv := range kvs {
		switch kv.name {
		case "engine":
			if v, ok := d.str(kv.val, "engine"); ok && d.engineIn(kv.val, v, agentEngines(d.engines)) {
				if v == "shell" {
					d.errs.Add(d.at(kv.val), "engine: shell runs commands, which a run: step does anyway; defaults.engine is the engine of the agent steps")
				} else {
					def.Engine = v
				}
			}
		case "model":
			def.Model, _ = d.model(kv.val, "model")
		case "timeout":
			if v, ok := d.duration(kv.val, "timeout"); ok {
				def.Timeout = v
			}
		case "retries":
			if v, ok := d.intIn(kv.val, "retries", 0, 100); ok {
				def.Retries = int(v)
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
					d.errs.Add(d.pos(kv.val), "usd: want 0 or more, got %s", kv.val.Value)
				} else {
					b.USD = v
				}
			}
		case "tokens":
			if v, ok := d.intIn(kv.val, "tokens", 0, math.MaxInt64); ok {
				b.Tokens = v
			}
		default:
			d.unknownKey(kv, " in budget", budgetKeys)
		}
	}
}

// engine checks an engine name and reports whether it is known.
func (d *yamlDoc) engine(n *yaml.Node, name string) bool {
	return d.engineIn(n, name, d.engines)
}

// agentEngines are the engines an agent may run with: all but shell.
func agentEngines(engines []string) []string {
	return slices.DeleteFunc(slices.Clone(engines), func(e string) bool { return e == "shell" })
}

// engineIn is engine with the names that may be given there: an agent
// file's engine: may not be shell, so an unknown one is not offered it.
func (d *yamlDoc) engineIn(n *yaml.Node, name string, choices []string) bool {
	if slices.Contains(d.engines, name) {
		return true
	}
	hint := suggest(name, choices)
	if hint == "" {
		hint = " (want one of " + strings.Join(choices, ", ") + ")"
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
