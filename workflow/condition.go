package workflow

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"

	"github.com/codemachine/codemachine/internal/yamlnode"
)

// Condition is a step's when: expression (expr-lang), compiled when the
// workflow is parsed so that its mistakes are reported with file:line:col.
type Condition struct {
	Source string
	// Steps are the step ids it reads as steps.ID: the step runs after them.
	Steps []string
	// Files are the literal paths it reads with file, exists or glob: a
	// step that outputs one runs before it.
	Files []string

	program *vm.Program
	// ids are every step of the workflow: those without a record are
	// neither done nor skipped.
	ids []string
	// vars are the workflow's vars it was compiled against.
	vars map[string]any
}

// StepResult is what a when: expression sees of an earlier step as
// steps.ID.
type StepResult struct {
	// Done: the step landed (not skipped) at the commit looked at.
	Done bool
	// Skipped: its own when: was false.
	Skipped bool
	// Output is its structured output (output_schema:), nil when none.
	Output any
}

// CondInput is what a condition is evaluated over: the commit's files, the
// step records and the workflow's vars.
type CondInput struct {
	FS    fs.FS
	Steps map[string]StepResult
	Vars  map[string]any
}

// condFuncs are the functions an expression may call, bound to fsys.
func condFuncs(fsys fs.FS) map[string]any {
	return map[string]any{
		"file": func(p string) string {
			p, ok := condPath(p)
			if fsys == nil || !ok {
				return ""
			}
			data, err := fs.ReadFile(fsys, p)
			if err != nil {
				return ""
			}
			return string(data)
		},
		"exists": func(p string) bool {
			p, ok := condPath(p)
			if fsys == nil || !ok {
				return false
			}
			_, err := fs.Stat(fsys, p)
			return err == nil
		},
		"glob": func(p string) []any {
			if fsys == nil {
				return nil
			}
			files, err := resolveFiles(fsys, []string{p}, false)
			if err != nil {
				return nil
			}
			out := make([]any, len(files))
			for i, f := range files {
				out[i] = f.Path
			}
			return out
		},
	}
}

// condPath is the path p of file or exists as the file system names it
// ("./VERSION" and "docs/" are VERSION and docs); false for a path outside
// the repository, which validate reports when it is written literally.
func condPath(p string) (string, bool) {
	clean, msg := checkPath(p)
	return clean, msg == ""
}

// condEnv is the environment of an expression: steps, vars and the
// functions.
func condEnv(in CondInput) map[string]any {
	steps := make(map[string]any, len(in.Steps))
	for id, r := range in.Steps {
		steps[id] = map[string]any{"done": r.Done, "skipped": r.Skipped, "output": r.Output}
	}
	vars := in.Vars
	if vars == nil {
		vars = map[string]any{}
	}
	env := map[string]any{"steps": steps, "vars": vars}
	for name, fn := range condFuncs(in.FS) {
		env[name] = fn
	}
	return env
}

// Eval evaluates the condition; an error (a runtime type error, say) is
// the step's failure, not a skip. Its message does not name the key the
// condition is under (when or until): the caller does.
func (c *Condition) Eval(in CondInput) (bool, error) {
	env := condEnv(in)
	steps := env["steps"].(map[string]any)
	for _, id := range c.ids {
		if _, ok := steps[id]; !ok {
			steps[id] = map[string]any{"done": false, "skipped": false, "output": nil}
		}
	}
	out, err := expr.Run(c.program, env)
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("gives %T, want true or false", out)
	}
	return b, nil
}

// compileConditions compiles every step's when: now that all step ids and
// vars are known, and records what each reads.
func (d *yamlDoc) compileConditions(w *Workflow) {
	ids := map[string]*Step{}
	for _, s := range w.Steps {
		ids[s.ID] = s
	}
	vars := w.Vars
	if vars == nil {
		vars = map[string]any{}
	}
	sample := condSample(sortedIDs(ids), vars)
	for _, s := range w.Steps {
		if s.Imported() {
			// Compiled in its own workflow, with its own vars; this
			// workflow's vars win, and may have other types.
			const note = " (with the vars of the workflow that imports it)"
			d.checkVarTypes(s.When, "when", s.at.when, sample, vars, note)
			d.checkVarTypes(s.Until, "until", s.at.until, sample, vars, note)
			continue
		}
		if s.When != nil {
			d.compileCondition(s, s.When, "when", s.at.when, sample, ids, vars)
		}
		if s.Until != nil {
			d.compileCondition(s, s.Until, "until", s.at.until, sample, ids, vars)
			if s.FansOut() {
				d.errs.Add(s.at.until.Pos, "until: a foreach step cannot loop; loop a step of its own after it")
			}
		}
		if s.MaxIterations > 0 && s.Until == nil {
			d.errs.Add(s.at.maxIterations, "max_iterations: only with until:")
		}
	}
}

// compileCondition compiles one when: or until: of step s. An until: may
// read its own step's result (steps.ID.output of the iteration that just
// landed); a when: may not.
func (d *yamlDoc) compileCondition(s *Step, c *Condition, key string, at whenAt, sample map[string]any, steps map[string]*Step, vars map[string]any) {
	prog, err := expr.Compile(c.Source, expr.Env(sample), expr.AsBool())
	if err != nil {
		d.condError(key, at, err)
		return
	}
	c.program = prog
	c.ids = sortedIDs(steps)
	c.vars = vars
	refs := &condRefs{}
	root := prog.Node()
	ast.Walk(&root, refs)
	c.Files = refs.files
	for _, id := range refs.steps {
		switch {
		case id == s.ID && key == "when":
			d.errs.Add(at.Pos, "when: step %q reads its own result", id)
		case id == s.ID:
		case steps[id] == nil && !d.openUses:
			d.errs.Add(at.Pos, "%s: %s: unknown step%s", key, conditionStep(id), suggest(id, sortedIDs(steps)))
		case !slices.Contains(c.Steps, id):
			c.Steps = append(c.Steps, id)
		}
	}
	for _, b := range refs.bad {
		d.errs.Add(at.Pos, "%s: %s", key, b)
	}
	for _, id := range refs.outputs {
		if other := steps[id]; other != nil && other.OutputSchema == nil {
			d.errs.Add(at.Pos, "%s: steps.%s.output: step %s has no output_schema, so it has no output", key, id, id)
		}
	}
	known := true
	for _, name := range refs.vars {
		if _, ok := vars[name]; !ok {
			known = false
			d.errs.Add(at.Pos, "%s: vars.%s: no such entry in vars%s", key, name, suggest(name, sortedIDs(vars)))
		}
	}
	if known {
		d.checkVarTypes(c, key, at, sample, vars, "")
	}
}

// checkVarTypes compiles the compiled condition c again with the types of
// vars' values: vars are known before any run, so a comparison of a
// string var with a number, or a string var as the whole condition, is an
// error now rather than at run time. A condition that reads a var vars
// does not have is left to the error that says so. note ends the message.
func (d *yamlDoc) checkVarTypes(c *Condition, key string, at whenAt, sample, vars map[string]any, note string) {
	if c == nil || c.program == nil {
		return
	}
	refs := &condRefs{}
	root := c.program.Node()
	ast.Walk(&root, refs)
	for _, name := range refs.vars {
		if _, ok := vars[name]; !ok {
			return
		}
	}
	if _, err := expr.Compile(c.Source, expr.Env(typedVarsSample(sample, vars)), expr.AsBool()); err != nil {
		d.condError(key, at, err)
		last := (*d.errs)[len(*d.errs)-1]
		last.Msg += note
	}
}

// typedVarsSample is sample with vars as a struct whose fields have the
// types of the vars' values, so that the compiler checks how a condition
// uses them. It is for checking only: the program that runs is compiled
// against vars as a map.
func typedVarsSample(sample, vars map[string]any) map[string]any {
	names := sortedIDs(vars)
	fields := make([]reflect.StructField, 0, len(names))
	for i, name := range names {
		t := reflect.TypeOf(vars[name])
		if t == nil {
			t = reflect.TypeFor[any]()
		}
		fields = append(fields, reflect.StructField{
			Name: fmt.Sprintf("V%d", i),
			Type: t,
			Tag:  reflect.StructTag(fmt.Sprintf("expr:%q", name)),
		})
	}
	typed := make(map[string]any, len(sample))
	for k, v := range sample {
		typed[k] = v
	}
	typed["vars"] = reflect.New(reflect.StructOf(fields)).Elem().Interface()
	return typed
}

func sortedIDs[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// condError reports a compile error at its place in workflow.yaml: the
// expression's own line and column mapped into the file where the value
// is on one line (plain or quoted), else the value's line.
func (d *yamlDoc) condError(key string, at whenAt, err error) {
	pos := at.Pos
	msg := err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
		pos = condErrPos(at, fe)
	}
	msg = strings.TrimSpace(msg)
	if at.comment != "" && at.style == 0 && strings.HasPrefix(msg, "unexpected token") {
		msg += fmt.Sprintf(" (YAML took %q for a comment: quote the expression to use # in it)", at.comment)
	}
	d.errs.Add(pos, "%s: %s", key, msg)
}

// condErrPos is the place in workflow.yaml of an error at fe's line and
// column of the expression at at.
func condErrPos(at whenAt, fe *file.Error) Pos {
	if pos, ok := at.place(fe.From); ok {
		return pos
	}
	pos := at.Pos
	switch at.style {
	case 0, yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if fe.Line <= 1 {
			pos.Col += fe.Column
			if at.style != 0 {
				pos.Col++
			}
		} else {
			pos.Line += fe.Line - 1
			pos.Col = 0
		}
	default: // a block scalar: its text starts on the next line
		pos.Line += fe.Line
		pos.Col = 0
	}
	if pos.Col == 0 {
		pos.Col = at.laterCol(pos.Line-at.Line, fe)
	}
	return pos
}

// laterCol is the column of an error on the expression's line fe.Line,
// n lines after the value's first line in the file. In a literal block
// scalar (|) the file's line is the expression's, shifted by the block's
// indentation, so the column is exact; other styles fold the lines, and it
// is the line's first character.
func (at whenAt) laterCol(n int, fe *file.Error) int {
	if n < 0 || n >= len(at.lines) {
		return 1
	}
	first := at.lines[n]
	exprLines := strings.Split(at.src, "\n")
	if at.style != yaml.LiteralStyle || fe.Line < 1 || fe.Line > len(exprLines) {
		return first
	}
	exprLine := []rune(exprLines[fe.Line-1])
	lead := 0
	for lead < len(exprLine) && (exprLine[lead] == ' ' || exprLine[lead] == '\t') {
		lead++
	}
	// fe.Column counts the characters of the expression's line before
	// the error's, the block's indentation not included.
	return max(1, first-lead+fe.Column)
}

// CondFailure words an error of evaluating the step's when: (key "when")
// or until: (key "until") at run time: the key, the message and the place
// in the workflow file where the expression failed, then the expression's
// line with a pointer at it.
func (s *Step) CondFailure(key string, err error) string {
	at := s.at.when
	if key == "until" {
		at = s.at.until
	}
	var fe *file.Error
	if !errors.As(err, &fe) || at.Pos == (Pos{}) {
		return key + ": " + err.Error()
	}
	// The message may quote a value read from a file ("int(abc\n)"): its
	// line breaks would break the message's line.
	msg := lineBreakEscaper.Replace(strings.TrimSpace(fe.Message))
	return fmt.Sprintf("%s: %s (%s)%s", key, msg, condErrPos(at, fe), fe.Snippet)
}

// lineBreakEscaper writes line breaks and tabs as Go escapes.
var lineBreakEscaper = strings.NewReplacer("\r\n", `\r\n`, "\n", `\n`, "\r", `\r`, "\t", `\t`)

// whenAt is where a when: value is, and how it is written.
type whenAt struct {
	Pos
	style yaml.Style
	// src is the expression.
	src string
	// lines are the column of the first character of each line of the
	// file from the value's on, over as many lines as the value can span:
	// where an error on a later line of the expression is.
	lines []int
	// comment is the YAML comment after a plain expression on its line:
	// where expr's "#" (the element in map, filter, ...) went when the
	// expression was not quoted.
	comment string
	// spans map the expression's characters to the file, as triples: the
	// offset (in runes) in the expression where a run of characters
	// starts that is contiguous in the file, and its line and column
	// there. A folded (>) or multi-line plain or quoted value joins its
	// lines with spaces, so the expression's columns say nothing of the
	// file's lines without them. nil when the value could not be traced
	// in the file (escape sequences, say).
	spans []int
}

// place is the file position of the expression's character at rune
// offset off, from spans.
func (at whenAt) place(off int) (Pos, bool) {
	k := -1
	for i := 0; i+2 < len(at.spans); i += 3 {
		if at.spans[i] > off {
			break
		}
		k = i
	}
	if k < 0 {
		return Pos{}, false
	}
	return Pos{File: at.File, Line: at.spans[k+1], Col: at.spans[k+2] + off - at.spans[k]}, true
}

// traceSpans finds the characters of the expression v, the value of a node
// at col (its indicator or quote, or its first character) of line (1-based)
// of the file, whose text from that line on is rest: in order, a run of white space in v
// (where lines were folded) matching one in the file, a character of the
// file other than v's next one skipped only if it is white space (a
// block's indentation) or, once, a quote or escape. nil when v cannot be
// traced so.
func traceSpans(rest []byte, line, col int, v string, block bool) []int {
	cur := &textCursor{ci: col - 1}
	for range strings.Count(v, "\n") + strings.Count(v, " ") + 3 {
		if len(rest) == 0 {
			break
		}
		var text []byte
		text, rest, _ = bytes.Cut(rest, []byte("\n"))
		cur.lines = append(cur.lines, []rune(strings.TrimSuffix(string(text), "\r")))
	}
	if block {
		cur.li, cur.ci = 1, 0
	}
	var spans []int
	nextOff, nextLine, nextCol := -1, 0, 0
	off := 0
	for _, r := range v {
		if isBlank(r) {
			for c, ok := cur.at(); ok && isBlank(c); c, ok = cur.at() {
				cur.advance()
			}
			off++
			continue
		}
		if !cur.find(r) {
			return nil
		}
		if off != nextOff || cur.li+line != nextLine || cur.ci+1 != nextCol {
			spans = append(spans, off, cur.li+line, cur.ci+1)
		}
		cur.advance()
		off++
		nextOff, nextLine, nextCol = off, cur.li+line, cur.ci+1
	}
	return spans
}

func isBlank(r rune) bool { return r == ' ' || r == '\t' || r == '\n' }

// textCursor is a place (line li, rune ci) in lines of text.
type textCursor struct {
	lines  [][]rune
	li, ci int
}

// at is the rune under the cursor, '\n' at a line's end; ok is false past
// the last line.
func (c *textCursor) at() (rune, bool) {
	if c.li >= len(c.lines) {
		return 0, false
	}
	if c.ci >= len(c.lines[c.li]) {
		return '\n', true
	}
	return c.lines[c.li][c.ci], true
}

// advance moves the cursor past the rune under it.
func (c *textCursor) advance() {
	if c.ci >= len(c.lines[c.li]) {
		c.li, c.ci = c.li+1, 0
		return
	}
	c.ci++
}

// find moves the cursor to the next r, past white space and at most one
// other rune (a quote, an escape's backslash); false when it is not there.
func (c *textCursor) find(r rune) bool {
	skipped := 0
	for {
		got, ok := c.at()
		if !ok {
			return false
		}
		if got == r {
			return true
		}
		if !isBlank(got) {
			if skipped++; skipped > 1 {
				return false
			}
		}
		c.advance()
	}
}

// condRefs collects what an expression reads: steps.ID, vars.NAME, and
// the literal arguments of file, exists and glob.
type condRefs struct {
	steps, vars, files []string
	// outputs are the steps whose steps.ID.output it reads.
	outputs []string
	// bad are the literal paths that cannot name a file of the
	// repository, each as "file(PATH): the path ...".
	bad []string
}

// Visit implements ast.Visitor.
func (r *condRefs) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		if step, ok := stepsMember(n.Node); ok {
			if prop, ok := n.Property.(*ast.StringNode); ok && prop.Value == "output" {
				r.outputs = append(r.outputs, step)
			}
			return
		}
		id, ok := n.Node.(*ast.IdentifierNode)
		prop, ok2 := n.Property.(*ast.StringNode)
		if !ok || !ok2 {
			return
		}
		switch id.Value {
		case "steps":
			r.steps = append(r.steps, prop.Value)
		case "vars":
			r.vars = append(r.vars, prop.Value)
		}
	case *ast.CallNode:
		callee, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || len(n.Arguments) != 1 {
			return
		}
		if arg, ok := n.Arguments[0].(*ast.StringNode); ok && slices.Contains([]string{"file", "exists", "glob"}, callee.Value) {
			if clean, msg := checkGlob(arg.Value); msg == "" {
				r.files = append(r.files, clean)
			} else {
				r.bad = append(r.bad, fmt.Sprintf("%s(%q): the path %s", callee.Value, arg.Value, msg))
			}
		}
	}
}

// stepsMember tells whether n is steps.ID, and its ID.
func stepsMember(n ast.Node) (string, bool) {
	m, ok := n.(*ast.MemberNode)
	if !ok {
		return "", false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	prop, ok2 := m.Property.(*ast.StringNode)
	if !ok || !ok2 || id.Value != "steps" {
		return "", false
	}
	return prop.Value, true
}

// readWhen reads a step's when: expression; it is compiled once the whole
// workflow is read (compileConditions).
func (sd *stepDecoder) readWhen(kv keyVal) {
	v, ok := sd.str(kv.val, "when")
	if !ok {
		return
	}
	if strings.TrimSpace(v) == "" {
		sd.errs.Add(sd.at(kv.val), "when: empty expression")
		return
	}
	n := kv.val
	sd.s.When = &Condition{Source: v}
	sd.s.at.when = sd.whenAt(n, v)
}

// whenAt is where the expression v of node n is, and how it is written.
func (sd *stepDecoder) whenAt(n *yaml.Node, v string) whenAt {
	at := whenAt{Pos: sd.at(n), src: v, style: n.Style &^ (yaml.TaggedStyle | yaml.FlowStyle), comment: n.LineComment}
	// A block scalar starts on the line after its indicator; a quoted
	// value may hold more lines than its text.
	rest := sd.data
	for i := 1; i < n.Line && len(rest) > 0; i++ {
		_, rest, _ = bytes.Cut(rest, []byte("\n"))
	}
	block := at.style == yaml.LiteralStyle || at.style == yaml.FoldedStyle
	at.spans = traceSpans(rest, at.Line, at.Col, v, block)
	for range strings.Count(v, "\n") + 2 {
		if len(rest) == 0 {
			break
		}
		var text []byte
		text, rest, _ = bytes.Cut(rest, []byte("\n"))
		at.lines = append(at.lines, len(text)-len(bytes.TrimLeft(text, " \t"))+1)
	}
	return at
}

// DefaultMaxIterations bounds an until: loop without max_iterations.
const DefaultMaxIterations = 5

// readUntil reads a step's until: expression, compiled with the when:
// expressions.
func (sd *stepDecoder) readUntil(kv keyVal) {
	v, ok := sd.str(kv.val, "until")
	if !ok {
		return
	}
	if strings.TrimSpace(v) == "" {
		sd.errs.Add(sd.at(kv.val), "until: empty expression")
		return
	}
	n := kv.val
	sd.s.Until = &Condition{Source: v}
	sd.s.at.until = sd.whenAt(n, v)
}

// readVars reads the workflow's vars: a mapping of names to plain values
// that when: expressions read as vars.NAME.
func (wd *workflowDecoder) readVars(kv keyVal) {
	kvs, ok := wd.mapping(kv.val, "vars")
	if !ok {
		return
	}
	vars := map[string]any{}
	for _, e := range kvs {
		if !envNameRE().MatchString(e.name) {
			wd.errs.Add(wd.pos(e.key), "vars: invalid name %q: use letters, digits and _", e.name)
			continue
		}
		if again, first := yamlnode.Repeated(yamlnode.Resolve(e.val)); again != nil {
			wd.errs.Add(wd.pos(again), "vars: %s: duplicate key %q (first at line %d)", e.name, again.Value, first.Line)
			continue
		}
		var v any
		if err := e.val.Decode(&v); err != nil {
			wd.errs.Add(wd.at(e.val), "vars: %s: %s", e.name, yamlnode.DecodeMessage(err))
			continue
		}
		vars[e.name] = jsonable(v)
	}
	wd.w.Vars = vars
}

// conditionStep is how a condition names step id in a message: steps.ID, or
// steps["ID"] for an id that is empty or not written plainly, which
// steps.ID would hide.
func conditionStep(id string) string {
	if ShownName(id) != id {
		return fmt.Sprintf("steps[%q]", id)
	}
	return "steps." + id
}
