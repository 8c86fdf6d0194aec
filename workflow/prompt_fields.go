package workflow

import (
	"fmt"
	"reflect"
	"strings"
	"text/template"
	"text/template/parse"
)

var promptDataType = reflect.TypeFor[PromptData]()

// checkFields reports references to fields PromptData does not have
// (".Feedbak"), which text/template would only notice when executing. Only
// places where the type of dot is known are checked: the top level, if
// blocks, and $.X anywhere; inside with and range, dot is something else.
func checkFields(a *Agent, t *template.Template, errs *Errors) {
	if t.Tree == nil || t.Root == nil {
		return
	}
	c := fieldChecker{a: a, errs: errs}
	c.walk(t.Root, true)
}

// fieldChecker walks a template's parse tree for checkFields.
type fieldChecker struct {
	a    *Agent
	errs *Errors
	// refs, when set, collects the .Steps.ID references (StepRefs).
	refs *[]StepRef
}

// StepRef is a prompt template's reference to another step's data,
// .Steps.ID (or $.Steps.ID), at the position of the reference.
type StepRef struct {
	ID  string
	Pos Pos
	// Output is whether it reads the step's .Output.
	Output bool
}

// StepRefs lists the template's .Steps.ID references where dot is the
// prompt's data: the step ids it reads, which only the workflow can tell
// known or not (an unknown one renders as "<no value>").
func (a *Agent) StepRefs() []StepRef {
	if a.tmpl == nil || a.tmpl.Tree == nil || a.tmpl.Root == nil {
		return nil
	}
	var refs []StepRef
	c := fieldChecker{a: a, errs: &Errors{}, refs: &refs}
	c.walk(a.tmpl.Root, true)
	return refs
}

// walk checks the references under n; dotKnown says whether dot is the
// PromptData there.
func (c fieldChecker) walk(n parse.Node, dotKnown bool) {
	switch n := n.(type) {
	case *parse.FieldNode:
		if dotKnown {
			c.check(n.Pos, n.Ident, ".")
		}
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			c.check(n.Pos, n.Ident[1:], "$.")
		}
	case *parse.IfNode:
		c.branch(&n.BranchNode, dotKnown, dotKnown)
	case *parse.WithNode:
		c.branch(&n.BranchNode, dotKnown, false)
	case *parse.RangeNode:
		c.branch(&n.BranchNode, dotKnown, false)
	default:
		for _, child := range sameDot(n) {
			c.walk(child, dotKnown)
		}
	}
}

// branch walks an if, with or range: its pipeline and else branch see the
// outer dot, its body sees inner.
func (c fieldChecker) branch(b *parse.BranchNode, outer, inner bool) {
	c.walk(b.Pipe, outer)
	c.walk(b.List, inner)
	c.walk(b.ElseList, outer)
}

// sameDot returns the nodes under n that see the same dot as n.
func sameDot(n parse.Node) []parse.Node {
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			return n.Nodes
		}
	case *parse.ActionNode:
		return []parse.Node{n.Pipe}
	case *parse.PipeNode:
		if n != nil {
			cmds := make([]parse.Node, len(n.Cmds))
			for i, cmd := range n.Cmds {
				cmds[i] = cmd
			}
			return cmds
		}
	case *parse.CommandNode:
		return n.Args
	case *parse.ChainNode:
		return []parse.Node{n.Node}
	case *parse.TemplateNode:
		return []parse.Node{n.Pipe}
	}
	return nil
}

// check follows the field names idents from PromptData and reports the
// first that does not exist. prefix is how the reference starts: "." or
// "$.".
func (c fieldChecker) check(pos parse.Pos, idents []string, prefix string) {
	pos = c.referenceStart(pos, idents, prefix)
	if c.refs != nil && len(idents) >= 2 && idents[0] == "Steps" {
		*c.refs = append(*c.refs, StepRef{ID: idents[1], Pos: c.a.offsetPos(int(pos)), Output: len(idents) >= 3 && idents[2] == "Output"})
	}
	typ := promptDataType
	for i, id := range idents {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if typ.Kind() == reflect.Interface || typ.Kind() == reflect.Map {
			// .Item, .Steps.ID: known only when rendered.
			return
		}
		if typ.Kind() != reflect.Struct {
			c.errs.Add(c.a.offsetPos(int(pos)), "%s has no field %q", prefix+strings.Join(idents[:i], "."), id)
			return
		}
		f, ok := typ.FieldByName(id)
		if !ok || !f.IsExported() {
			c.unknownField(pos, typ, idents[:i+1], prefix)
			return
		}
		typ = f.Type
	}
}

// referenceStart moves pos, which text/template gives as that of one of
// the ".Name"s of a reference (the first, the second for a chain of
// three or more, the last), to the start of the whole reference: the
// last place the reference is written that starts at or before pos.
func (c fieldChecker) referenceStart(pos parse.Pos, idents []string, prefix string) parse.Pos {
	full := prefix + strings.Join(idents, ".")
	lo := max(int(pos)-len(full), 0)
	end := min(int(pos)+len(full), len(c.a.Body))
	best := -1
	for i := lo; i <= int(pos) && i < end; {
		j := strings.Index(c.a.Body[i:end], full)
		if j < 0 || i+j > int(pos) {
			break
		}
		best, i = i+j, i+j+1
	}
	if best >= 0 {
		return parse.Pos(best)
	}
	return pos
}

// unknownField reports the last of idents, which struct typ has no
// exported field for, unless it names a method.
func (c fieldChecker) unknownField(pos parse.Pos, typ reflect.Type, idents []string, prefix string) {
	id := idents[len(idents)-1]
	if _, isMethod := reflect.PointerTo(typ).MethodByName(id); isMethod {
		return
	}
	var names []string
	for j := range typ.NumField() {
		if typ.Field(j).IsExported() {
			names = append(names, typ.Field(j).Name)
		}
	}
	parent := prefix + strings.Join(idents[:len(idents)-1], ".")
	c.errs.Add(c.a.offsetPos(int(pos)), "unknown field %q%s", prefix+strings.Join(idents, "."), suggestField(parent, id, names))
}

func suggestField(prefix, id string, names []string) string {
	hint := suggest(id, names)
	if hint == "" {
		return ""
	}
	// suggest quotes the bare name; show it the way it is written.
	best := strings.TrimSuffix(strings.TrimPrefix(hint, ` (did you mean "`), `"?)`)
	if prefix != "." && prefix != "$." {
		prefix += "."
	}
	return fmt.Sprintf(" (did you mean %q?)", prefix+best)
}
