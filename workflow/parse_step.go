package workflow

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/codemachine/codemachine/internal/lazyre"

	"go.yaml.in/yaml/v3"

	"github.com/codemachine/codemachine/internal/yamlnode"
)

var (
	stepIDRE    = lazyre.New(`^[a-z0-9][a-z0-9-]*$`)
	agentNameRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	envNameRE   = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// stepRef is a needs entry, checked once all step ids are known.
type stepRef struct {
	step *Step
	id   string
	node *yaml.Node
}

// steps parses the list of steps and checks what involves more than one:
// duplicate ids and needs entries that name no step.
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
	firstAt := map[string]string{} // id -> where it was first defined, for messages
	named := map[string]bool{}     // every id written, valid or not: needs to it are not "unknown"
	var refs []stepRef
	for i, item := range n.Content {
		item = yamlnode.Resolve(item)
		if isUsesEntry(item) {
			imported, urefs := d.usesEntry(item)
			refs = append(refs, urefs...)
			steps = append(steps, d.addImported(imported, firstAt, named)...)
			continue
		}
		sd := d.step(item, i+1)
		refs = append(refs, sd.refs...)
		if sd.idNode == nil {
			continue
		}
		s := sd.s
		named[s.ID] = true
		if first, dup := firstAt[s.ID]; dup {
			d.errs.Add(d.pos(sd.idNode), "duplicate step id %q (first %s)", s.ID, first)
			continue
		}
		firstAt[s.ID] = fmt.Sprintf("at line %d", d.pos(sd.idNode).Line)
		if stepIDRE().MatchString(s.ID) {
			steps = append(steps, s)
		}
	}
	d.checkNeeds(steps, refs, named)
	return steps
}

// addImported returns the imported steps whose ids no earlier step has,
// reporting the others at the uses: value that imported them.
func (d *yamlDoc) addImported(imported []*Step, firstAt map[string]string, named map[string]bool) []*Step {
	var out []*Step
	for _, s := range imported {
		named[s.ID] = true
		if first, dup := firstAt[s.ID]; dup {
			d.errs.Add(s.importedAt, "uses: %s: step id %q, imported from %s, collides with the step %s", s.Source.Uses.Raw, s.ID, s.Pos, first)
			continue
		}
		firstAt[s.ID] = fmt.Sprintf("imported by uses at line %d", s.importedAt.Line)
		out = append(out, s)
	}
	return out
}

// checkNeeds reports needs entries that name the step itself or no step
// written at all (named holds every id written, valid or not).
func (d *yamlDoc) checkNeeds(steps []*Step, refs []stepRef, named map[string]bool) {
	ids := make([]string, 0, len(steps))
	for _, s := range steps {
		ids = append(ids, s.ID)
	}
	for _, r := range refs {
		switch {
		case r.id == r.step.ID:
			d.errs.Add(d.pos(r.node), "step %q needs itself", r.id)
		case !named[r.id] && !d.openUses:
			d.errs.Add(d.pos(r.node), "needs unknown step %q%s", r.id, suggest(r.id, ids))
		}
	}
}

// stepDecoder reads the keys of one step into s.
type stepDecoder struct {
	*yamlDoc
	s *Step
	// label names the step in messages: step "id", or step #N before its
	// id is known.
	label string
	// idNode is the id's value; nil when the step has no usable id.
	idNode *yaml.Node
	// The keys that decide what kind of step this is, checked once all
	// keys are read.
	agentKey, runKey, engineNode *yaml.Node
	// mcpNode is the value of mcp: only an agent can be given tools, and
	// a run step that sets it (even to false) says it expects one.
	mcpNode *yaml.Node
	// interactiveNode is the value of interactive: only an agent has a UI
	// to talk in, and a run step that sets it (even to false) says it
	// expects one.
	interactiveNode *yaml.Node
	// promptNode and effortNode are the values of prompt and effort: only
	// an agent has a prompt and a reasoning effort.
	promptNode, effortNode *yaml.Node
	// foreachKey is the foreach key, parallelNode a valid parallel's
	// value: parallel says how many of a foreach step's tasks run at once.
	foreachKey, parallelNode *yaml.Node
	// refs are the step's needs entries.
	refs []stepRef
}

// stepFields are the keys a step may have, in the order a suggestion for a
// misspelt key weighs them.
var stepFields = []keyDecoder[*stepDecoder]{
	{"id", func(*stepDecoder, keyVal) {}}, // read before the others: see readID
	{"agent", (*stepDecoder).readAgent},
	{"run", (*stepDecoder).readRun},
	{"prompt", func(sd *stepDecoder, kv keyVal) {
		if v, ok := sd.str(kv.val, "prompt"); ok {
			sd.s.Prompt, sd.promptNode = v, kv.val
		}
	}},
	{"engine", (*stepDecoder).readEngine},
	{"model", func(sd *stepDecoder, kv keyVal) { sd.s.Model, _ = sd.model(kv.val, "model") }},
	{"effort", func(sd *stepDecoder, kv keyVal) {
		if v, ok := sd.setting(kv.val, "effort", "an effort"); ok {
			sd.s.Effort, sd.effortNode = v, kv.val
		}
	}},
	{"timeout", func(sd *stepDecoder, kv keyVal) { sd.s.Timeout, _ = sd.duration(kv.val, "timeout") }},
	{"env", func(sd *stepDecoder, kv keyVal) { sd.s.Env = sd.env(kv.val) }},
	{"inputs", func(sd *stepDecoder, kv keyVal) { sd.s.Inputs, sd.s.at.inputs = sd.globs(kv.val, "inputs") }},
	{"outputs", func(sd *stepDecoder, kv keyVal) { sd.s.Outputs, _ = sd.globs(kv.val, "outputs") }},
	{"needs", (*stepDecoder).readNeeds},
	{"foreach", func(sd *stepDecoder, kv keyVal) { sd.foreachKey = kv.key; sd.foreach(kv.val, sd.s) }},
	{"when", (*stepDecoder).readWhen},
	{"output_schema", (*stepDecoder).readOutputSchema},
	{"until", (*stepDecoder).readUntil},
	{"max_iterations", func(sd *stepDecoder, kv keyVal) {
		sd.s.MaxIterations, sd.s.at.maxIterations = sd.atLeastOne(kv.val, "max_iterations"), sd.at(kv.val)
	}},
	{"parallel", func(sd *stepDecoder, kv keyVal) {
		if sd.s.Parallel = sd.atLeastOne(kv.val, "parallel"); sd.s.Parallel > 0 {
			sd.parallelNode = kv.val
		}
	}},
	{"check", func(sd *stepDecoder, kv keyVal) { sd.s.Check, _ = sd.str(kv.val, "check") }},
	{"attempts", func(sd *stepDecoder, kv keyVal) { sd.s.Attempts = sd.atLeastOne(kv.val, "attempts") }},
	{"review", (*stepDecoder).readReview},
	{"interactive", (*stepDecoder).readInteractive},
	{"mcp", (*stepDecoder).readMCP},
	{"hooks", func(sd *stepDecoder, kv keyVal) { sd.hooks(kv.val, &sd.s.Hooks, sd.label) }},
	{"sandbox", func(sd *stepDecoder, kv keyVal) { sd.s.Sandbox = sd.sandbox(kv.val, sd.label+": ") }},
	{"max_file_size", func(sd *stepDecoder, kv keyVal) { sd.s.MaxFileSize = sd.fileSize(kv.val, sd.label+": ") }},
}

var stepKeys = keyNames(stepFields)

// step parses one step. The decoder it returns holds the step, its id node
// (nil when it has none) and its needs entries.
func (d *yamlDoc) step(n *yaml.Node, index int) *stepDecoder {
	sd := &stepDecoder{yamlDoc: d, s: &Step{Pos: d.pos(n)}, label: fmt.Sprintf("step #%d", index)}
	sd.s.at.id = sd.s.Pos
	if n.Kind != yaml.MappingNode {
		d.errs.Add(d.pos(n), "%s: want a mapping, got %s", sd.label, yamlnode.Describe(n))
		return sd
	}
	// The id names the step in every other message, so look for it first.
	sd.labelByID(n)
	kvs, _ := d.mapping(n, sd.label)
	sd.readID(kvs)
	decodeKeys(sd, stepFields, kvs, func(kv keyVal) { d.unknownKey(kv, " in "+sd.label, stepKeys) })
	sd.checkKind()
	return sd
}

// labelByID names the step by the id written in n, before the keys are
// read, so that their messages say which step they are about.
func (sd *stepDecoder) labelByID(n *yaml.Node) {
	for e := range yamlnode.Entries(n) {
		k, v := yamlnode.Resolve(e.Key), yamlnode.Resolve(e.Val)
		if id, ok := yamlnode.Text(v); ok && k.Kind == yaml.ScalarNode && k.Value == "id" {
			sd.label = fmt.Sprintf("step %q", id)
		}
	}
}

// readID reads the id among the step's keys.
func (sd *stepDecoder) readID(kvs []keyVal) {
	for _, kv := range kvs {
		if kv.name != "id" {
			continue
		}
		if v, ok := sd.str(kv.val, "id"); ok {
			sd.s.ID, sd.idNode = v, yamlnode.Resolve(kv.val)
			sd.s.at.id = sd.pos(sd.idNode)
			sd.label = fmt.Sprintf("step %q", v)
			if !stepIDRE().MatchString(v) {
				sd.errs.Add(sd.s.at.id, "invalid step id %q: use lowercase letters, digits and \"-\", starting with a letter or digit", v)
			}
		}
	}
	if sd.idNode == nil {
		sd.errs.Add(sd.s.Pos, "%s: missing key \"id\"", sd.label)
	}
}

func (sd *stepDecoder) readAgent(kv keyVal) {
	v, ok := sd.str(kv.val, "agent")
	if !ok {
		return
	}
	sd.agentKey = kv.key
	sd.s.Agent, sd.s.at.agent = v, sd.at(kv.val)
	if !agentNameRE().MatchString(v) || strings.HasSuffix(v, ".md") {
		sd.errs.Add(sd.s.at.agent, "agent: invalid agent name %q: want the name of a file in %s/, without \".md\"", v, AgentsDir)
	}
}

func (sd *stepDecoder) readRun(kv keyVal) {
	if v, ok := sd.str(kv.val, "run"); ok {
		if strings.TrimSpace(v) == "" {
			// It would run nothing and land nothing, and a step whose
			// Run is empty is taken for an agent step elsewhere.
			sd.errs.Add(sd.at(kv.val), "run: the command is empty: give the command the step runs")
		}
		sd.runKey, sd.s.Run = kv.key, v
	}
}

func (sd *stepDecoder) readEngine(kv keyVal) {
	if v, ok := sd.str(kv.val, "engine"); ok && sd.engine(kv.val, v) {
		sd.s.Engine, sd.engineNode = v, yamlnode.Resolve(kv.val)
	}
}

// readNeeds reads the step ids the step needs, once each; they are checked
// once every step is known (checkNeeds).
func (sd *stepDecoder) readNeeds(kv keyVal) {
	vals, nodes := sd.strList(kv.val, "needs", "a list of step ids")
	for i, v := range vals {
		if slices.Contains(sd.s.Needs, v) {
			continue
		}
		sd.s.Needs = append(sd.s.Needs, v)
		sd.s.at.needs = append(sd.s.at.needs, sd.pos(nodes[i]))
		sd.refs = append(sd.refs, stepRef{step: sd.s, id: v, node: nodes[i]})
	}
}

// readInteractive reads interactive: true, false or auto (interactive
// with a terminal, autonomous without one).
func (sd *stepDecoder) readInteractive(kv keyVal) {
	n := yamlnode.Resolve(kv.val)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && n.Value == "auto" {
		sd.s.InteractiveAuto, sd.interactiveNode = true, kv.val
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		sd.errs.Add(sd.pos(n), "interactive: want true, false or auto, got %q", n.Value)
		return
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		// Not "want true or false", which would hide auto.
		sd.errs.Add(sd.pos(n), "interactive: want true, false or auto, got %s", yamlnode.Describe(n))
		return
	}
	if v, ok := sd.boolean(kv.val, "interactive"); ok {
		sd.s.Interactive, sd.interactiveNode = v, kv.val
	}
}

// readReview reads review: true or false (a person reviews the step's
// change), or the name of the agent that reviews it.
func (sd *stepDecoder) readReview(kv keyVal) {
	n := yamlnode.Resolve(kv.val)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		v := n.Value
		sd.s.at.reviewer = sd.at(kv.val)
		if !agentNameRE().MatchString(v) || strings.HasSuffix(v, ".md") {
			sd.errs.Add(sd.s.at.reviewer, "review: want true, false or the name of a reviewer agent (a file in %s/, without \".md\"), got %q", AgentsDir, v)
			return
		}
		sd.s.Review, sd.s.Reviewer = true, v
		return
	}
	v, ok := yamlnode.Bool(n)
	if !ok {
		sd.errs.Add(sd.pos(n), "review: want true, false or a reviewer agent's name, got %s", yamlnode.Describe(n))
	}
	sd.s.Review = v
}

func (sd *stepDecoder) readMCP(kv keyVal) {
	if v, ok := sd.boolean(kv.val, "mcp"); ok {
		sd.s.MCP, sd.mcpNode = v, kv.val
	}
}

// checkKind reports a step that is not exactly one of an agent step and a
// run step, or whose engine does not fit its kind.
func (sd *stepDecoder) checkKind() {
	switch agent, run := sd.agentKey, sd.runKey; {
	case agent != nil && run != nil:
		second := run
		if agent.Line > run.Line || (agent.Line == run.Line && agent.Column > run.Column) {
			second = agent
		}
		sd.errs.Add(sd.pos(second), "%s has both agent and run; keep one", sd.label)
	case agent == nil && run == nil:
		sd.errs.Add(sd.s.Pos, "%s has neither agent nor run", sd.label)
	case run != nil && sd.engineNode != nil && sd.s.Engine != "shell":
		sd.errs.Add(sd.pos(sd.engineNode), "engine: a run step always uses the shell engine, got %q", sd.s.Engine)
	case agent != nil && sd.s.Engine == "shell":
		sd.errs.Add(sd.pos(sd.engineNode), "engine: shell runs commands; an agent step needs an agent engine")
	}
	if sd.runKey != nil && sd.agentKey == nil {
		sd.checkRunOnly()
	}
	if sd.parallelNode != nil && sd.foreachKey == nil {
		sd.errs.Add(sd.at(sd.parallelNode), "parallel: only with foreach (how many of the step's tasks run at once)")
	}
}

// checkRunOnly reports, each on its own, the keys of a run step that only
// an agent step can use.
func (sd *stepDecoder) checkRunOnly() {
	for _, c := range []struct {
		node *yaml.Node
		msg  string
	}{
		{sd.promptNode, "prompt: a run step is a command; only an agent step has a prompt to add to"},
		{sd.effortNode, "effort: a run step is a command; only an agent step has a reasoning effort"},
		{sd.interactiveNode, "interactive: a run step is a command; only an agent step has a UI to talk in"},
		{sd.mcpNode, "mcp: a run step has no agent to give codemachine's MCP server to"},
	} {
		if c.node != nil {
			sd.errs.Add(sd.at(c.node), "%s", c.msg)
		}
	}
}

func (d *yamlDoc) foreach(n *yaml.Node, s *Step) {
	if yamlnode.Resolve(n).Kind == yaml.MappingNode {
		d.fanout(n, s)
		return
	}
	v, ok := d.str(n, "foreach")
	if !ok {
		return
	}
	at := d.at(n)
	if hasMeta(v) {
		// A glob where a plan file goes is most often a fan-out over
		// files written in the plan's form: say how to write that.
		d.errs.Add(at, "foreach: %q is a glob; want the path of one plan file, or foreach: {glob: %q} for one task per matching file", v, v)
		return
	}
	clean, msg := checkGlob(v)
	if msg != "" {
		d.errs.Add(at, "foreach: %q %s", v, msg)
		return
	}
	switch strings.ToLower(path.Ext(clean)) {
	case ".json", ".yaml", ".yml":
		// Read as a plan, a list of items has no checklist line: the
		// step would have no task, and say nothing of why.
		d.errs.Add(at, "foreach: %q would be read as a plan (a Markdown checklist), which a JSON or YAML file is not; for one task per item of its list, write foreach: {items: %q}", v, clean)
		return
	}
	s.Foreach, s.at.foreach = clean, at
}

func (d *yamlDoc) atLeastOne(n *yaml.Node, what string) int {
	v, _ := d.intIn(n, what, 1, 1000)
	return int(v)
}

func (d *yamlDoc) env(n *yaml.Node) map[string]string {
	kvs, ok := d.mapping(n, "env")
	if !ok {
		return nil
	}
	env := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		if !envNameRE().MatchString(kv.name) {
			d.errs.Add(d.pos(kv.key), "env: invalid variable name %q", kv.name)
			continue
		}
		if yamlnode.IsNull(yamlnode.Resolve(kv.val)) {
			// "A:" with no value reads as passing the caller's A through
			// (as in Docker Compose), which it would not: it would set A
			// to "". The schema refuses it too.
			d.errs.Add(d.pos(kv.val), "env %s: want a value (a string, number or boolean), got null: write \"\" for an empty one, or name %s in CODEMACHINE_PASS_ENV to pass yours", kv.name, kv.name)
			continue
		}
		v, _ := d.str(kv.val, "env "+kv.name)
		env[kv.name] = v
	}
	return env
}

var hookKeys = []string{"before", "after", "on_failure"}

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

var fanoutKeys = []string{"glob", "items"}

// fanout reads foreach: {glob: PATTERN} or {items: FILE}.
func (d *yamlDoc) fanout(n *yaml.Node, s *Step) {
	kvs, _ := d.mapping(n, "foreach")
	at := d.at(n)
	var f Fanout
	for _, kv := range kvs {
		v, ok := d.str(kv.val, "foreach "+kv.name)
		if !ok && slices.Contains(fanoutKeys, kv.name) {
			return
		}
		switch kv.name {
		case "glob":
			clean, msg := checkGlob(v)
			if msg != "" {
				d.errs.Add(d.at(kv.val), "foreach glob: %q %s", v, msg)
				return
			}
			f.Glob = clean
		case "items":
			if hasMeta(v) {
				d.errs.Add(d.at(kv.val), "foreach items: %q is a glob; want the path of one JSON or YAML file", v)
				return
			}
			clean, msg := checkPath(v)
			if msg != "" {
				d.errs.Add(d.at(kv.val), "foreach items: %q %s", v, msg)
				return
			}
			f.Items = clean
		default:
			d.unknownKey(kv, " in foreach", fanoutKeys)
			return
		}
	}
	switch {
	case f.Glob != "" && f.Items != "":
		d.errs.Add(at, "foreach: has both glob and items; keep one")
	case f.Glob == "" && f.Items == "":
		d.errs.Add(at, "foreach: want a plan file, {glob: PATTERN} or {items: FILE}")
	default:
		s.Each, s.at.foreach = &f, at
	}
}
