package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/codemachine/codemachine/internal/lazyre"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// OutputSchema is a step's output_schema: a JSON Schema (written in YAML
// or JSON) that the step's final answer must match. The answer, parsed,
// is the step's output: stored in state.yaml, and read by later steps'
// templates (.Steps.ID.Output) and conditions (steps.ID.output).
type OutputSchema struct {
	// JSON is the schema as canonical JSON (what the fingerprint covers).
	JSON   []byte
	schema *jsonschema.Schema
}

// readOutputSchema reads and compiles output_schema:.
func (sd *stepDecoder) readOutputSchema(kv keyVal) {
	n := kv.val
	var v any
	if err := n.Decode(&v); err != nil {
		sd.errs.Add(sd.at(n), "output_schema: %v", err)
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
		sd.errs.Add(sd.at(n), "output_schema: %v", err)
		return
	}
	sd.s.OutputSchema = s
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
// lists, strings, numbers, booleans). Drafts are told by $schema; without
// one, draft 2020-12.
func CompileOutputSchema(doc any) (*OutputSchema, error) {
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	// The compiler wants numbers as json.Number.
	parsed, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	const url = "mem:///output_schema.json"
	if err := c.AddResource(url, parsed); err != nil {
		return nil, err
	}
	sch, err := c.Compile(url)
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	switch {
	case errors.As(err, &sve) && errors.As(sve.Err, &ve):
		return nil, errors.New("not a valid JSON Schema: " + strings.Join(leafErrors(ve), "; "))
	case err != nil:
		return nil, errors.New(strings.ReplaceAll(firstLine(err.Error()), url, ""))
	}
	return &OutputSchema{JSON: data, schema: sch}, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

var answerFenceRE = lazyre.New("(?s)```[a-zA-Z]*\\s*\n(.*?)```")

// Check finds the JSON value in an agent's final answer (the whole answer,
// else its last fenced code block, else the text from its first "{" to its
// last "}") and validates it. It returns the value as canonical JSON, or
// an error listing every mismatch (one per line, each with its place in
// the value), which is what the retry prompt tells the agent.
func (o *OutputSchema) Check(answer string) ([]byte, error) {
	v, err := findJSON(answer)
	if err != nil {
		return nil, err
	}
	if err := o.schema.Validate(v); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return nil, errors.New(strings.Join(leafErrors(ve), "\n"))
		}
		return nil, err
	}
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
		if v, err := jsonschema.UnmarshalJSON(strings.NewReader(strings.TrimSpace(c))); err == nil {
			return v, nil
		}
	}
	if text == "" {
		return nil, errors.New("the final answer is empty; it must be a JSON value")
	}
	return nil, errors.New("the final answer holds no JSON value (give it whole, or in a ```json block)")
}

var printer = message.NewPrinter(language.English)

// leafErrors flattens a validation error into "at PATH: problem" lines.
func leafErrors(ve *jsonschema.ValidationError) []string {
	if len(ve.Causes) == 0 {
		at := "/" + strings.Join(ve.InstanceLocation, "/")
		return []string{"at " + at + ": " + ve.ErrorKind.LocalizedString(printer)}
	}
	var out []string
	for _, c := range ve.Causes {
		out = append(out, leafErrors(c)...)
	}
	return out
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
