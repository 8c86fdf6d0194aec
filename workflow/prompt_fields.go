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

// referenceStart moves pos, which text/template gives as that of the last
// ".Name" of a reference, to the start of the whole reference.
func (c fieldChecker) referenceStart(pos parse.Pos, idents []string, prefix string) parse.Pos {
	full := prefix + strings.Join(idents, ".")
	end := min(int(pos)+len(idents[len(idents)-1])+1, len(c.a.Body))
	if i := strings.LastIndex(c.a.Body[:end], full); i >= 0 {
		return parse.Pos(i)
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
