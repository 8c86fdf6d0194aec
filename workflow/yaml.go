package workflow

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// yamlDoc decodes YAML into nodes and turns everything it finds wrong into
// Errors with the node's position. The schema walkers below read nodes
// instead of decoding into structs so that every message can point at the
// exact key or value it is about.
type yamlDoc struct {
	file string
	// lineOffset is added to every node line: front matter is parsed on its
	// own but reported in lines of the whole agent file.
	lineOffset int
	errs       *Errors
}

var yamlErrRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// parse decodes data and returns the root node of its single document, or
// nil when data holds no document or has a syntax error (reported).
func (d *yamlDoc) parse(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.syntaxError(data, err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(data, err)
		return nil
	default:
		at := &next
		if len(next.Content) > 0 {
			at = next.Content[0]
		}
		d.errs.Add(d.pos(at), "more than one YAML document (remove the second \"---\")")
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

// syntaxError converts a yaml.v3 error, whose only position is a "line N"
// in its text, into an Error. The column is not reported by yaml.v3; it is 1
// except for tab indentation, the most common mistake, which gets a hint.
func (d *yamlDoc) syntaxError(data []byte, err error) {
	line, msg := 1, err.Error()
	if m := yamlErrRE.FindStringSubmatch(msg); m != nil {
		msg = m[2]
		if m[1] != "" {
			if n, convErr := strconv.Atoi(m[1]); convErr == nil && n > 0 {
				line = n
				// yaml.v3 prints the 0-based line for parser errors
				// (only scanner errors are converted to 1-based).
				if isParserProblem(msg) {
					line++
				}
			}
		}
	}
	col, hint := 1, syntaxHints[msg]
	if text, ok := lineAt(data, line); ok {
		indent := text[:len(text)-len(strings.TrimLeft(text, " \t"))]
		if i := strings.IndexByte(indent, '\t'); i >= 0 {
			col, hint = i+1, "indent with spaces, not tabs"
		}
	}
	if hint != "" {
		msg += " (" + hint + ")"
	}
	d.errs.Add(Pos{File: d.file, Line: line + d.lineOffset, Col: col}, "invalid YAML: %s", msg)
}

// syntaxHints say what usually causes libyaml's terse messages.
var syntaxHints = map[string]string{
	"found unexpected end of stream":                 "is a quote left open?",
	"mapping values are not allowed in this context": "check the indentation, or quote a value that contains \": \"",
	"did not find expected key":                      "check the indentation",
	"did not find expected '-' indicator":            "check the indentation of the list",
	"could not find expected ':'":                    "a key needs \": \" after it",
}

// parserProblems are the messages of libyaml's parser, as opposed to its
// scanner; see yaml.v3's parserc.go.
var parserProblems = []string{
	"did not find expected <",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or",
	"found duplicate %",
	"found incompatible YAML document",
	"found undefined tag handle",
}

func isParserProblem(msg string) bool {
	for _, p := range parserProblems {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// lineAt returns the 1-based line n of data without its line ending.
func lineAt(data []byte, n int) (string, bool) {
	for i := 1; len(data) > 0; i++ {
		end := bytes.IndexByte(data, '\n')
		line := data
		if end >= 0 {
			line, data = data[:end], data[end+1:]
		} else {
			data = nil
		}
		if i == n {
			return strings.TrimSuffix(string(line), "\r"), true
		}
	}
	return "", false
}

func (d *yamlDoc) pos(n *yaml.Node) Pos {
	return Pos{File: d.file, Line: n.Line + d.lineOffset, Col: n.Column}
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	// An alias can only name an earlier anchor, so chains are short; the
	// bound only guards against a malformed node graph.
	for i := 0; i < 32 && n != nil && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

// kindName describes a node's type the way a message to the user needs it.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		}
		return "a string"
	}
	return "an alias"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// keyVal is one entry of a mapping.
type keyVal struct {
	key, val *yaml.Node
	name     string
}

// maxMergeDepth bounds nested "<<" merges, which could otherwise make a
// small file expand exponentially.
const maxMergeDepth = 8

// mapping returns the entries of a mapping node in file order, with YAML
// merge keys ("<<: *anchor") expanded and duplicate keys reported. what
// names the mapping in messages. It reports a type error and returns false
// when n is not a mapping.
func (d *yamlDoc) mapping(n *yaml.Node, what string) ([]keyVal, bool) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errs.Add(d.pos(n), "%s: want a mapping, got %s", what, kindName(n))
		return nil, false
	}
	var out []keyVal
	seen := map[string]*yaml.Node{}
	d.collect(n, what, 0, seen, &out, true)
	return out, true
}

func (d *yamlDoc) collect(n *yaml.Node, what string, depth int, seen map[string]*yaml.Node, out *[]keyVal, explicit bool) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errs.Add(d.pos(k), "%s: keys must be strings, got %s", what, kindName(k))
			continue
		}
		if k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			// Only keys written in the same mapping are a mistake; a
			// merged key is meant to be overridden.
			if explicit && first != nil {
				d.errs.Add(d.pos(k), "duplicate key %q in %s (first at line %d)", k.Value, what, first.Line+d.lineOffset)
			}
			continue
		}
		if explicit {
			seen[k.Value] = k
		} else {
			seen[k.Value] = nil
		}
		*out = append(*out, keyVal{key: k, val: v, name: k.Value})
	}
	for _, m := range merges {
		if depth >= maxMergeDepth {
			d.errs.Add(d.pos(m), "%s: merges nested too deeply", what)
			return
		}
		m = resolve(m)
		sources := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			sources = m.Content
		}
		for _, src := range sources {
			src = resolve(src)
			if src.Kind != yaml.MappingNode {
				d.errs.Add(d.pos(src), "%s: \"<<\" wants a mapping or a list of mappings, got %s", what, kindName(src))
				continue
			}
			d.collect(src, what, depth+1, seen, out, false)
		}
	}
}

// unknownKey reports a key the schema does not have, with a suggestion.
func (d *yamlDoc) unknownKey(kv keyVal, where string, known []string) {
	d.errs.Add(d.pos(kv.key), "unknown key %q%s%s", kv.name, where, suggest(kv.name, known))
}

// str reads a scalar as text. Numbers and booleans are accepted as their
// literal text (model: 4, check: true); null means unset.
func (d *yamlDoc) str(n *yaml.Node, what string) (string, bool) {
	n = resolve(n)
	if isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.errs.Add(d.pos(n), "%s: want a string, got %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

// integer reads a whole number.
func (d *yamlDoc) integer(n *yaml.Node, what string) (int64, bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		var v int64
		if err := n.Decode(&v); err == nil {
			return v, true
		}
		d.errs.Add(d.pos(n), "%s: number %s is out of range", what, n.Value)
		return 0, false
	}
	d.errs.Add(d.pos(n), "%s: want a whole number, got %s", what, describe(n))
	return 0, false
}

// number reads an integer or a decimal number.
func (d *yamlDoc) number(n *yaml.Node, what string) (float64, bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		var v float64
		if err := n.Decode(&v); err == nil {
			return v, true
		}
	}
	d.errs.Add(d.pos(n), "%s: want a number, got %s", what, describe(n))
	return 0, false
}

// boolean reads true or false. YAML 1.1 spellings (yes, on) are refused:
// yaml.v3 reads them as strings, and guessing would hide typos.
func (d *yamlDoc) boolean(n *yaml.Node, what string) (bool, bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var v bool
		if err := n.Decode(&v); err == nil {
			return v, true
		}
	}
	d.errs.Add(d.pos(n), "%s: want true or false, got %s", what, describe(n))
	return false, false
}

// duration reads a Go duration such as 30m or 1h30m.
func (d *yamlDoc) duration(n *yaml.Node, what string) (time.Duration, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errs.Add(d.pos(n), "%s: want a duration like 30m or 90s, got %s", what, kindName(n))
		return 0, false
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.errs.Add(d.pos(n), "%s: want a duration like 30m or 90s, got %q", what, n.Value)
		return 0, false
	}
	if v <= 0 {
		d.errs.Add(d.pos(n), "%s: must be positive, got %s", what, n.Value)
		return 0, false
	}
	return v, true
}

// strList reads a list of strings; a single string (YAML string, not a
// number) is accepted as a list of one. It returns the values with their
// nodes, for positions in later checks.
func (d *yamlDoc) strList(n *yaml.Node, what, want string) ([]string, []*yaml.Node) {
	n = resolve(n)
	switch {
	case isNull(n):
		return nil, nil
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str":
		return []string{n.Value}, []*yaml.Node{n}
	case n.Kind != yaml.SequenceNode:
		d.errs.Add(d.pos(n), "%s: want %s, got %s", what, want, describe(n))
		return nil, nil
	}
	var vals []string
	var nodes []*yaml.Node
	for _, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.ScalarNode || isNull(item) {
			d.errs.Add(d.pos(item), "%s: want %s, got %s in the list", what, want, kindName(item))
			continue
		}
		vals = append(vals, item.Value)
		nodes = append(nodes, item)
	}
	return vals, nodes
}

// describe is kindName plus the scalar's text, so that "got a string
// "many"" shows what was written.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return kindName(n) + " (" + strconv.Quote(n.Value) + ")"
	}
	return kindName(n)
}
