package workflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/codemachine/codemachine/internal/lazyre"
	"go.yaml.in/yaml/v3"

	"github.com/codemachine/codemachine/internal/yamlnode"
)

// OutputSchema is a step's output_schema: a JSON Schema (written in YAML
// or JSON) that the step's final answer must match. The answer, parsed,
// is the step's output: stored in state.yaml, and read by later steps'
// templates (.Steps.ID.Output) and conditions (steps.ID.output).
type OutputSchema struct {
	// JSON is the schema as canonical JSON (what the fingerprint covers).
	JSON []byte
	root *checkNode
}

// readOutputSchema reads and compiles output_schema:.
func (sd *stepDecoder) readOutputSchema(kv keyVal) {
	n := kv.val
	if again, first := yamlnode.Repeated(yamlnode.Resolve(n)); again != nil {
		sd.errs.Add(sd.pos(again), "output_schema: duplicate key %q (first at line %d)", again.Value, first.Line)
		return
	}
	if bad, why := notJSONNumber(n); bad != nil {
		sd.errs.Add(sd.pos(bad), "output_schema: %s", why)
		return
	}
	var v any
	if err := n.Decode(&v); err != nil {
		sd.errs.Add(sd.at(n), "output_schema: %s", yamlnode.DecodeMessage(err))
		return
	}
	if _, ok := jsonable(v).(map[string]any); !ok {
		if b, isBool := v.(bool); !isBool || !b {
			sd.errs.Add(sd.at(n), "output_schema: want a JSON Schema (a mapping), got %s", describeValue(n))
			return
		}
	}
	s, err := CompileOutputSchema(jsonable(v))
	if err != nil {
		var problems schemaErrors
		if !errors.As(err, &problems) {
			problems = schemaErrors{strings.TrimPrefix(err.Error(), schemaInvalid)}
		}
		for _, p := range problems {
			sd.errs.Add(sd.at(schemaNodeAt(n, p)), "output_schema: %s%s", schemaInvalid, p)
		}
		return
	}
	sd.s.OutputSchema = s
}

var yamlNumberRE = lazyre.New(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// notJSONNumber finds the first plain scalar under n, a key aside, that
// YAML reads as a number JSON cannot hold: .inf or .nan, or a number out of
// float64's range such as 1e999, which YAML quietly reads as a string (so
// the schema would say "got string, want number", or compare an answer
// with the text "1e999"). It returns the node and why it is refused.
func notJSONNumber(n *yaml.Node) (*yaml.Node, string) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			return nil, ""
		}
		var f float64
		switch tag := n.ShortTag(); {
		case tag == "!!float" && n.Decode(&f) == nil && (math.IsInf(f, 0) || math.IsNaN(f)):
			return n, fmt.Sprintf("%s is not a JSON number (JSON has no infinity or NaN)", n.Value)
		case tag == "!!str" && yamlNumberRE().MatchString(n.Value):
			return n, fmt.Sprintf("%s is too large for a number (at most about ±1.8e308); quote it if a string is meant", n.Value)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if bad, why := notJSONNumber(n.Content[i]); bad != nil {
				return bad, why
			}
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			if bad, why := notJSONNumber(c); bad != nil {
				return bad, why
			}
		}
	}
	return nil, ""
}

func describeValue(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// CompileOutputSchema compiles a JSON Schema given as decoded JSON (maps,
// lists, strings, numbers, booleans). Drafts are told by $schema: draft
// 2020-12 (the default) and draft-07.
func CompileOutputSchema(doc any) (*OutputSchema, error) {
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	root, err := compileSchemaJSON(data)
	if err != nil {
		return nil, err
	}
	return &OutputSchema{JSON: data, root: root}, nil
}

const schemaInvalid = "not a valid JSON Schema: "

// compileSchemaJSON compiles a JSON Schema given as JSON.
func compileSchemaJSON(data []byte) (*checkNode, error) {
	s, err := parseSchema(data)
	if err != nil {
		return nil, fmt.Errorf("%s%w", schemaInvalid, err)
	}
	root, err := newCheckNode(s)
	if err != nil {
		return nil, fmt.Errorf("%s%w", schemaInvalid, err)
	}
	if err := refLoop(s); err != nil {
		return nil, fmt.Errorf("%s%w", schemaInvalid, err)
	}
	return root, nil
}

var schemaPointerRE = lazyre.New(`^at (/[^:\s]*):`)

// schemaNodeAt is the node of the schema n that a problem's place ("at
// /properties/a/type: ...", a JSON Pointer) names: the deepest node on
// its way that the YAML has, n itself when the problem names no place.
func schemaNodeAt(n *yaml.Node, problem string) *yaml.Node {
	m := schemaPointerRE().FindStringSubmatch(problem)
	if m == nil {
		return n
	}
	for _, seg := range strings.Split(strings.TrimPrefix(m[1], "/"), "/") {
		if seg == "" {
			break
		}
		seg = strings.NewReplacer("~1", "/", "~0", "~").Replace(seg)
		next := schemaChild(n, seg)
		if next == nil {
			break
		}
		n = next
	}
	return n
}

// schemaChild is the value under key seg of a mapping, or at index seg of
// a list; nil when there is none.
func schemaChild(n *yaml.Node, seg string) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg {
				return n.Content[i+1]
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i]
		}
	}
	return nil
}

var answerFenceRE = lazyre.New("(?s)```[a-zA-Z]*\\s*\n(.*?)```")

// Check finds the JSON value in an agent's final answer (the whole answer,
// else its last fenced code block, else the text from its first "{" to its
// last "}", else the object or list that starts a line and ends the
// answer) and validates it. It returns the value as canonical JSON, or
// an error listing every mismatch (one per line, each with its place in
// the value), which is what the retry prompt tells the agent.
func (o *OutputSchema) Check(answer string) ([]byte, error) {
	v, err := findJSON(answer)
	if err != nil {
		return nil, err
	}
	if problems := o.root.collect(numbersAsFloats(v), "", nil); len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	// v keeps its numbers as written (json.Number): a large integer is
	// stored exactly, not rounded through float64.
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return data, nil
}

// findJSON parses the JSON value of an answer (see Check).
func findJSON(answer string) (any, error) {
	text := strings.TrimSpace(answer)
	candidates := []string{text}
	if m := answerFenceRE().FindAllStringSubmatch(text, -1); len(m) > 0 {
		candidates = append(candidates, m[len(m)-1][1])
	}
	if i, j := strings.Index(text, "{"), strings.LastIndex(text, "}"); i >= 0 && j > i {
		candidates = append(candidates, text[i:j+1])
	}
	for _, c := range candidates {
		if v, err := decodeJSON(strings.TrimSpace(c)); err == nil {
			return v, nil
		}
	}
	if v, ok := lastJSONValue(text); ok {
		return v, nil
	}
	if text == "" {
		return nil, errors.New("the final answer is empty; it must be a JSON value")
	}
	return nil, errors.New("the final answer holds no JSON value (give it whole, or in a ```json block)")
}

// maxJSONLines bounds the lines lastJSONValue tries, from the end.
const maxJSONLines = 200

// lastJSONValue finds the JSON object or list that ends text and starts a
// line: what a command prints last after lines of its own ("compiling
// {main}", an earlier value).
func lastJSONValue(text string) (any, bool) {
	end := len(text)
	for tries := 0; end > 0 && tries < maxJSONLines; tries++ {
		start := strings.LastIndexByte(text[:end], '\n') + 1
		if line := strings.TrimSpace(text[start:end]); strings.HasPrefix(line, "{") || strings.HasPrefix(line, "[") {
			if v, err := decodeJSON(strings.TrimSpace(text[start:])); err == nil {
				return v, true
			}
		}
		end = start - 1
	}
	return nil, false
}

// decodeJSON decodes exactly one JSON value, numbers as json.Number.
func decodeJSON(text string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

// numbersAsFloats copies v with its json.Numbers as float64, the numbers
// the validator compares.
func numbersAsFloats(v any) any {
	switch v := v.(type) {
	case json.Number:
		// The decoder checked the syntax; out of float64's range it is ±Inf,
		// still a number.
		f, _ := v.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = numbersAsFloats(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = numbersAsFloats(x)
		}
		return out
	}
	return v
}

// ParseOutput decodes a stored output (state.yaml's JSON); nil when none
// or unreadable.
func ParseOutput(data string) any {
	if data == "" {
		return nil
	}
	var v any
	if json.Unmarshal([]byte(data), &v) != nil {
		return nil
	}
	return v
}
