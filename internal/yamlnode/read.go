// Package yamlnode is what codemachine's YAML formats (workflow.yaml and
// agent front matter, state.yaml, recordings) share for reading and writing
// yaml.v3 node trees: naming a node's type for a message, walking a mapping
// in file order, decoding scalars by their YAML tag, taking yaml.v3's syntax
// errors apart, and building nodes for marshalling.
//
// Each format words its own messages (they are part of its interface and
// its tests); this package says what is wrong and where, as nodes carry
// their line and column. It imports nothing of codemachine.
package yamlnode

import (
	"encoding/base64"
	"errors"
	"iter"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Kind names the type of n the way a message to a user says it: "a
// mapping", "a list", "a string", "a number", "a boolean", "nothing" (null),
// "an alias" or "a document".
func Kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
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

// Describe is Kind with a scalar's text, so that `got a string ("many")`
// shows what was written.
func Describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && !IsNull(n) {
		return Kind(n) + " (" + strconv.Quote(n.Value) + ")"
	}
	return Kind(n)
}

// Value is what n holds, for a message that shows it on its own: a scalar's
// text, quoted, or the Kind of anything else (null is "nothing").
func Value(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && !IsNull(n) {
		return strconv.Quote(n.Value)
	}
	return Kind(n)
}

// IsNull reports whether n is a null scalar (written "null", "~" or
// nothing at all).
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// maxAliasChain bounds Resolve. An alias can only name an earlier anchor,
// so real chains are short; the bound guards against a malformed node graph.
const maxAliasChain = 32

// Resolve follows aliases ("*name") to the node they name.
func Resolve(n *yaml.Node) *yaml.Node {
	for i := 0; i < maxAliasChain && n != nil && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

// Entry is one key: value pair of a mapping.
type Entry struct {
	Key, Val *yaml.Node
	// Repeats is the earlier key of the same name when Key is written a
	// second time in the mapping, nil otherwise. Only scalar keys are
	// compared, as they are written (aliases are not followed).
	Repeats *yaml.Node
}

// Entries yields the entries of mapping n in the order they are written.
// A "<<" merge key is an entry like any other: expanding merges is the
// business of a format that allows them.
func Entries(n *yaml.Node) iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			e := Entry{Key: n.Content[i], Val: n.Content[i+1]}
			if e.Key.Kind == yaml.ScalarNode {
				if first, dup := seen[e.Key.Value]; dup {
					e.Repeats = first
				} else {
					seen[e.Key.Value] = e.Key
				}
			}
			if !yield(e) {
				return
			}
		}
	}
}

// Repeated finds the first key written twice in a mapping anywhere in n
// (in document order; aliases are not followed, as a Decode reports the
// key where it is written): the repeated key and its first writing, or
// nils. A Decode refuses such a value with "line N: mapping key ...
// already defined at line M", which names neither the column nor the
// value's own place; this gives both.
func Repeated(n *yaml.Node) (again, first *yaml.Node) {
	if n == nil || n.Kind == yaml.AliasNode {
		return nil, nil
	}
	if n.Kind == yaml.MappingNode {
		for e := range Entries(n) {
			if e.Repeats != nil && e.Key.Value != "<<" {
				return e.Key, e.Repeats
			}
			if again, first := Repeated(e.Val); again != nil {
				return again, first
			}
		}
		return nil, nil
	}
	for _, c := range n.Content {
		if again, first := Repeated(c); again != nil {
			return again, first
		}
	}
	return nil, nil
}

// ErrType is returned by the decoders for a node that is not a scalar of
// the type they read.
var ErrType = errors.New("yamlnode: wrong type")

// ErrRange is returned by Int for a whole number an int64 cannot hold.
var ErrRange = errors.New("yamlnode: number out of range")

// Text returns the text of a scalar that is not null, whatever its tag:
// numbers and booleans are read as they are written ("model: 4").
func Text(n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || IsNull(n) {
		return "", false
	}
	return n.Value, true
}

// Int reads a scalar tagged !!int, in any of the forms YAML gives whole
// numbers (42, -7, 0x2a, 0o52, 1_000). The error is ErrType for any other
// node and ErrRange for a number too large for an int64.
func Int(n *yaml.Node) (int64, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		return 0, ErrType
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		return 0, ErrRange
	}
	return v, nil
}

// Float reads a scalar tagged !!int or !!float as a float64. YAML's .inf
// and .nan are read as what they say; a format that wants a finite number
// checks for them.
func Float(n *yaml.Node) (float64, bool) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		return 0, false
	}
	var v float64
	if err := n.Decode(&v); err != nil {
		return 0, false
	}
	return v, true
}

// Bool reads a scalar tagged !!bool: true or false. YAML 1.1's yes, no, on
// and off are strings in yaml.v3, and refused here rather than guessed at.
func Bool(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return false, false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		return false, false
	}
	return v, true
}

// Binary decodes the text of a scalar tagged !!binary: base64, which may
// be broken into lines and indented.
func Binary(n *yaml.Node) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, n.Value)
	return base64.StdEncoding.DecodeString(clean)
}

// DecodeMessage words an error of a Node's Decode on one line: the
// problems of a *yaml.TypeError (a key repeated inside a value, say)
// joined with "; ", without yaml.v3's "yaml: unmarshal errors:" heading
// and its line breaks; any other error without yaml.v3's "yaml: " prefix,
// aliases that expand to too much (a "billion laughs") saying so.
func DecodeMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return strings.Join(te.Errors, "; ")
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if msg == "document contains excessive aliasing" {
		msg = "its aliases expand to too much (excessive aliasing): write the value out, or alias less of it"
	}
	return msg
}
