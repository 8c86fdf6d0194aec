package workflow

import (
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
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
