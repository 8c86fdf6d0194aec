package workflow

import (
	"time"

	"github.com/codemachine/codemachine/internal/bincode"
	"go.yaml.in/yaml/v3"
)

// The encoding of a definition (defGob) in a fixed layout (package
// bincode): every field in declaration order, a pointer as a presence
// byte and its value, a map in key order. It was a gob: a new process's
// gob decoder reads and compiles the hundred-odd field types the stream
// describes before it reads a value, which was most of decoding a
// definition and about a tenth of a status's CPU time. A field added to
// the types a definition holds must be added here
// (TestDefCodecCoversEveryField fails until it is).

// defCodecMagic starts the encoding: anything else (the gob of an earlier
// binary) is not decoded.
const defCodecMagic = "cmdef2\n"

// maxVarDepth bounds the nesting of a vars: value that is kept; a deeper
// one is parsed at every load.
const maxVarDepth = 100

// Tags of the values vars: holds (what the YAML decoder gives an any).
const (
	varNil byte = iota
	varBool
	varString
	varInt
	varInt64
	varUint64
	varFloat
	varList
	varMap
)

// defEncoder is an encoding under way; ok turns false at a value it
// cannot keep exactly.
type defEncoder struct {
	bincode.Encoder
	ok bool
}

// encodeDefGob encodes d; ok is false when it cannot be encoded exactly
// (a vars: value of another type, a step with fields defGob carries
// elsewhere), and then the definition is not kept.
func encodeDefGob(d *defGob) ([]byte, bool) {
	e := &defEncoder{Encoder: bincode.Encoder{B: []byte(defCodecMagic)}, ok: true}
	e.workflow(&d.Workflow)
	e.Len(d.Steps == nil, len(d.Steps))
	for i := range d.Steps {
		e.stepGob(&d.Steps[i])
	}
	e.Len(d.Sources == nil, len(d.Sources))
	for _, s := range d.Sources {
		e.uses(s.Uses)
		e.String(s.Dir)
		e.String(s.Commit)
		e.String(s.Label)
		e.String(s.Repo)
		e.String(s.Key)
	}
	e.Len(d.Agents == nil, len(d.Agents))
	for _, k := range bincode.SortedKeys(d.Agents) {
		e.String(k)
		e.agent(d.Agents[k])
	}
	e.Len(d.Edges == nil, len(d.Edges))
	for _, k := range bincode.SortedKeys(d.Edges) {
		e.String(k)
		deps := d.Edges[k]
		e.Len(deps == nil, len(deps))
		for _, dep := range deps {
			e.String(dep.ID)
			e.pos(dep.At)
		}
	}
	e.Strings(d.Files)
	return e.B, e.ok
}

func (e *defEncoder) workflow(w *Workflow) {
	if w.Steps != nil {
		e.ok = false // carried by defGob.Steps
	}
	e.Int(int64(w.Version))
	e.String(w.Name)
	e.String(w.Defaults.Engine)
	e.String(w.Defaults.Model)
	e.Int(int64(w.Defaults.Timeout))
	e.Int(int64(w.Defaults.Retries))
	e.String(w.Trigger)
	e.Float(w.Budget.USD)
	e.Int(w.Budget.Tokens)
	e.Strings(w.AllowSecrets)
	e.sandbox(w.Sandbox)
	e.fileSize(w.MaxFileSize)
	e.vars(w.Vars)
	e.String(w.File)
}

func (e *defEncoder) pos(p Pos) {
	e.String(p.File)
	e.Int(int64(p.Line))
	e.Int(int64(p.Col))
}

func (e *defEncoder) positions(list []Pos) {
	e.Len(list == nil, len(list))
	for _, p := range list {
		e.pos(p)
	}
}

func (e *defEncoder) sandbox(s Sandbox) {
	e.String(s.Mode)
	e.Strings(s.Writable)
	e.pos(s.Pos)
}

func (e *defEncoder) fileSize(f FileSize) {
	e.Int(f.Limit)
	e.Strings(f.Allow)
}

func (e *defEncoder) uses(u Uses) {
	e.String(u.Raw)
	e.String(u.Path)
	e.String(u.URL)
	e.String(u.Ref)
}

func (e *defEncoder) agent(a *Agent) {
	e.Bool(a != nil)
	if a == nil {
		return
	}
	e.String(a.Name)
	e.String(a.Description)
	e.String(a.Engine)
	e.String(a.Model)
	e.String(a.Effort)
	e.Strings(a.Tools)
	e.String(a.File)
	e.Bytes(a.Raw)
	e.String(a.Body)
	e.Int(int64(a.BodyLine))
}

func (e *defEncoder) stepGob(g *stepGob) {
	s := &g.Step
	if s.Source != nil || s.When != nil || s.Until != nil {
		e.ok = false // carried by stepGob.Source, When and Until
	}
	e.String(s.ID)
	e.String(s.Agent)
	e.String(s.Run)
	e.String(s.Prompt)
	e.String(s.Engine)
	e.String(s.Model)
	e.String(s.Effort)
	e.Int(int64(s.Timeout))
	e.StringMap(s.Env)
	e.Strings(s.Inputs)
	e.Strings(s.Outputs)
	e.Strings(s.Needs)
	e.String(s.Foreach)
	e.Bool(s.Each != nil)
	if s.Each != nil {
		e.String(s.Each.Glob)
		e.String(s.Each.Items)
	}
	e.Int(int64(s.Parallel))
	e.Bool(s.OutputSchema != nil)
	if s.OutputSchema != nil {
		e.Bytes(s.OutputSchema.JSON)
	}
	e.Int(int64(s.MaxIterations))
	e.String(s.Check)
	e.Int(int64(s.Attempts))
	e.Bool(s.Review)
	e.String(s.Reviewer)
	e.Bool(s.Interactive)
	e.Bool(s.InteractiveAuto)
	e.Bool(s.MCP)
	e.String(s.Hooks.Before)
	e.String(s.Hooks.After)
	e.String(s.Hooks.OnFailure)
	e.sandbox(s.Sandbox)
	e.fileSize(s.MaxFileSize)
	e.pos(s.Pos)

	e.Int(int64(g.Source))
	e.cond(g.When)
	e.cond(g.Until)
	e.pos(g.ImportedAt)
	e.StringMap(g.AgentKeys)
	a := &g.At
	e.pos(a.ID)
	e.pos(a.Agent)
	e.pos(a.Foreach)
	e.pos(a.Reviewer)
	e.positions(a.Inputs)
	e.positions(a.Needs)
	e.pos(a.When)
	e.pos(a.Until)
	e.Uint(uint64(a.WhenStyle))
	e.Uint(uint64(a.UntilStyle))
	e.pos(a.MaxIterations)
	e.ints(a.WhenLines)
	e.ints(a.UntilLines)
	e.ints(a.WhenSpans)
	e.ints(a.UntilSpans)
}

func (e *defEncoder) ints(list []int) {
	e.Len(list == nil, len(list))
	for _, v := range list {
		e.Int(int64(v))
	}
}

func (e *defEncoder) cond(c *condGob) {
	e.Bool(c != nil)
	if c == nil {
		return
	}
	e.String(c.Source)
	e.Strings(c.Steps)
	e.Strings(c.Files)
	e.Strings(c.IDs)
	e.vars(c.Vars)
}

func (e *defEncoder) vars(m map[string]any) {
	e.Len(m == nil, len(m))
	for _, k := range bincode.SortedKeys(m) {
		e.String(k)
		e.value(m[k], 1)
	}
}

// value encodes one vars: value with its tag.
func (e *defEncoder) value(v any, depth int) {
	if depth > maxVarDepth {
		e.ok = false
		return
	}
	switch v := v.(type) {
	case nil:
		e.B = append(e.B, varNil)
	case bool:
		e.B = append(e.B, varBool)
		e.Bool(v)
	case string:
		e.B = append(e.B, varString)
		e.String(v)
	case int:
		e.B = append(e.B, varInt)
		e.Int(int64(v))
	case int64:
		e.B = append(e.B, varInt64)
		e.Int(v)
	case uint64:
		e.B = append(e.B, varUint64)
		e.Uint(v)
	case float64:
		e.B = append(e.B, varFloat)
		e.Float(v)
	case []any:
		e.B = append(e.B, varList)
		e.Len(v == nil, len(v))
		for _, x := range v {
			e.value(x, depth+1)
		}
	case map[string]any:
		e.B = append(e.B, varMap)
		e.Len(v == nil, len(v))
		for _, k := range bincode.SortedKeys(v) {
			e.String(k)
			e.value(v[k], depth+1)
		}
	default:
		e.ok = false
	}
}

// defDecoder reads what defEncoder wrote.
type defDecoder struct{ bincode.Decoder }

// decodeDefGob decodes what encodeDefGob wrote; ok is false for anything
// else (another format, truncated or trailing bytes).
func decodeDefGob(data []byte) (defGob, bool) {
	var d defGob
	if len(data) < len(defCodecMagic) || string(data[:len(defCodecMagic)]) != defCodecMagic {
		return d, false
	}
	r := &defDecoder{*bincode.NewDecoder(data[len(defCodecMagic):])}
	r.workflow(&d.Workflow)
	if n, isNil := r.Len(); !isNil {
		d.Steps = make([]stepGob, n)
		for i := 0; i < n && !r.Bad; i++ {
			r.stepGob(&d.Steps[i])
		}
	}
	if n, isNil := r.Len(); !isNil {
		d.Sources = make([]sourceGob, n)
		for i := 0; i < n && !r.Bad; i++ {
			s := &d.Sources[i]
			s.Uses = r.uses()
			s.Dir, s.Commit, s.Label, s.Repo, s.Key = r.String(), r.String(), r.String(), r.String(), r.String()
		}
	}
	if n, isNil := r.Len(); !isNil {
		d.Agents = make(map[string]*Agent, n)
		for i := 0; i < n && !r.Bad; i++ {
			k := r.String()
			d.Agents[k] = r.agent()
		}
	}
	if n, isNil := r.Len(); !isNil {
		d.Edges = make(map[string][]depGob, n)
		for i := 0; i < n && !r.Bad; i++ {
			k := r.String()
			var deps []depGob
			if m, mNil := r.Len(); !mNil {
				deps = make([]depGob, m)
				for j := 0; j < m && !r.Bad; j++ {
					deps[j] = depGob{ID: r.String(), At: r.pos()}
				}
			}
			d.Edges[k] = deps
		}
	}
	d.Files = r.Strings()
	if !r.Done() {
		return defGob{}, false
	}
	return d, true
}

func (r *defDecoder) workflow(w *Workflow) {
	w.Version = r.Intn()
	w.Name = r.String()
	w.Defaults.Engine = r.String()
	w.Defaults.Model = r.String()
	w.Defaults.Timeout = time.Duration(r.Int())
	w.Defaults.Retries = r.Intn()
	w.Trigger = r.String()
	w.Budget.USD = r.Float()
	w.Budget.Tokens = r.Int()
	w.AllowSecrets = r.Strings()
	w.Sandbox = r.sandbox()
	w.MaxFileSize = r.fileSize()
	w.Vars = r.vars()
	w.File = r.String()
}

func (r *defDecoder) pos() Pos {
	return Pos{File: r.String(), Line: r.Intn(), Col: r.Intn()}
}

func (r *defDecoder) positions() []Pos {
	n, isNil := r.Len()
	if isNil {
		return nil
	}
	list := make([]Pos, n)
	for i := 0; i < n && !r.Bad; i++ {
		list[i] = r.pos()
	}
	return list
}

func (r *defDecoder) sandbox() Sandbox {
	return Sandbox{Mode: r.String(), Writable: r.Strings(), Pos: r.pos()}
}

func (r *defDecoder) fileSize() FileSize {
	return FileSize{Limit: r.Int(), Allow: r.Strings()}
}

func (r *defDecoder) uses() Uses {
	return Uses{Raw: r.String(), Path: r.String(), URL: r.String(), Ref: r.String()}
}

func (r *defDecoder) agent() *Agent {
	if !r.Bool() {
		return nil
	}
	return &Agent{Name: r.String(), Description: r.String(), Engine: r.String(), Model: r.String(),
		Effort: r.String(), Tools: r.Strings(), File: r.String(), Raw: r.Bytes(), Body: r.String(), BodyLine: r.Intn()}
}

func (r *defDecoder) stepGob(g *stepGob) {
	s := &g.Step
	s.ID, s.Agent, s.Run, s.Prompt = r.String(), r.String(), r.String(), r.String()
	s.Engine, s.Model, s.Effort = r.String(), r.String(), r.String()
	s.Timeout = time.Duration(r.Int())
	s.Env = r.StringMap()
	s.Inputs, s.Outputs, s.Needs = r.Strings(), r.Strings(), r.Strings()
	s.Foreach = r.String()
	if r.Bool() {
		s.Each = &Fanout{Glob: r.String(), Items: r.String()}
	}
	s.Parallel = r.Intn()
	if r.Bool() {
		s.OutputSchema = &OutputSchema{JSON: r.Bytes()}
	}
	s.MaxIterations = r.Intn()
	s.Check = r.String()
	s.Attempts = r.Intn()
	s.Review = r.Bool()
	s.Reviewer = r.String()
	s.Interactive, s.InteractiveAuto, s.MCP = r.Bool(), r.Bool(), r.Bool()
	s.Hooks = Hooks{Before: r.String(), After: r.String(), OnFailure: r.String()}
	s.Sandbox = r.sandbox()
	s.MaxFileSize = r.fileSize()
	s.Pos = r.pos()

	g.Source = r.Intn()
	g.When = r.cond()
	g.Until = r.cond()
	g.ImportedAt = r.pos()
	g.AgentKeys = r.StringMap()
	a := &g.At
	a.ID, a.Agent, a.Foreach, a.Reviewer = r.pos(), r.pos(), r.pos(), r.pos()
	a.Inputs, a.Needs = r.positions(), r.positions()
	a.When, a.Until = r.pos(), r.pos()
	a.WhenStyle, a.UntilStyle = r.style(), r.style()
	a.MaxIterations = r.pos()
	a.WhenLines, a.UntilLines = r.ints(), r.ints()
	a.WhenSpans, a.UntilSpans = r.ints(), r.ints()
}

func (r *defDecoder) ints() []int {
	n, isNil := r.Len()
	if isNil {
		return nil
	}
	list := make([]int, n)
	for i := 0; i < n && !r.Bad; i++ {
		list[i] = r.Intn()
	}
	return list
}

func (r *defDecoder) style() yaml.Style {
	v := r.Uint()
	if uint64(yaml.Style(v)) != v {
		r.Bad = true
	}
	return yaml.Style(v)
}

func (r *defDecoder) cond() *condGob {
	if !r.Bool() {
		return nil
	}
	return &condGob{Source: r.String(), Steps: r.Strings(), Files: r.Strings(), IDs: r.Strings(), Vars: r.vars()}
}

func (r *defDecoder) vars() map[string]any {
	n, isNil := r.Len()
	if isNil {
		return nil
	}
	m := make(map[string]any, n)
	for i := 0; i < n && !r.Bad; i++ {
		k := r.String()
		m[k] = r.value(1)
	}
	return m
}

func (r *defDecoder) value(depth int) any {
	if depth > maxVarDepth || len(r.B) == 0 {
		r.Bad, r.B = true, nil
		return nil
	}
	tag := r.B[0]
	r.B = r.B[1:]
	switch tag {
	case varNil:
		return nil
	case varBool:
		return r.Bool()
	case varString:
		return r.String()
	case varInt:
		return r.Intn()
	case varInt64:
		return r.Int()
	case varUint64:
		return r.Uint()
	case varFloat:
		return r.Float()
	case varList:
		n, isNil := r.Len()
		if isNil {
			return []any(nil)
		}
		list := make([]any, n)
		for i := 0; i < n && !r.Bad; i++ {
			list[i] = r.value(depth + 1)
		}
		return list
	case varMap:
		n, isNil := r.Len()
		if isNil {
			return map[string]any(nil)
		}
		m := make(map[string]any, n)
		for i := 0; i < n && !r.Bad; i++ {
			k := r.String()
			m[k] = r.value(depth + 1)
		}
		return m
	}
	r.Bad, r.B = true, nil
	return nil
}
