package workflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/codemachine/codemachine/internal/lazyre"
	"github.com/google/jsonschema-go/jsonschema"
)

// The validator is github.com/google/jsonschema-go, which the MCP SDK links
// anyway and which builds nothing while the program starts. It validates
// drafts 2020-12 and 07, stops at a value's first mismatch and does not
// check a schema against its meta-schema; this file adds what output_schema
// promises beyond that: the schema's own mistakes, with their place in it,
// and every mismatch of an answer, each with its place in the value.

// The $schema values the validator takes, by their spellings.
const (
	draft07   = "http://json-schema.org/draft-07/schema#"
	draft2020 = "https://json-schema.org/draft/2020-12/schema"
)

// parseSchema decodes a schema and checks what its meta-schema says of
// the keywords the validator reads without checking: the draft, the type
// names, the counts that cannot be negative.
func parseSchema(data []byte) (*jsonschema.Schema, error) {
	var s jsonschema.Schema
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, schemaDecodeError(err)
	}
	switch d := strings.TrimSuffix(strings.Replace(s.Schema, "http://", "https://", 1), "#"); d {
	case "":
	case "https://json-schema.org/draft/2020-12/schema":
		s.Schema = draft2020
	case "https://json-schema.org/draft-07/schema":
		s.Schema = draft07
	default:
		return nil, fmt.Errorf("at /$schema: %q is not a draft codemachine validates (2020-12, the default, or draft-07)", s.Schema)
	}
	var problems []string
	eachSchema(&s, "", func(sub *jsonschema.Schema, at string) {
		problems = append(problems, schemaProblems(sub, at, s.Schema == draft07)...)
	})
	if len(problems) > 0 {
		return nil, schemaErrors(problems)
	}
	return &s, nil
}

// schemaErrors are the problems of a schema, each "at POINTER: problem".
type schemaErrors []string

func (e schemaErrors) Error() string { return strings.Join(e, "; ") }

// schemaDecodeError words a decoding error of the schema: a keyword's value
// of the wrong JSON type.
func schemaDecodeError(err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err
	}
	field := te.Field[strings.LastIndexByte(te.Field, '.')+1:]
	want := te.Type.Kind().String()
	switch {
	case strings.HasPrefix(want, "float"):
		want = "number"
	case strings.HasPrefix(want, "int"), strings.HasPrefix(want, "uint"):
		want = "integer"
	case want == "slice":
		want = "array"
	case want == "map", want == "struct":
		want = "object"
	case want == "bool":
		want = "boolean"
	}
	return fmt.Errorf("%s: got %s, want %s", field, te.Value, want)
}

var jsonTypes = []string{"array", "boolean", "integer", "null", "number", "object", "string"}

// schemaProblems checks one schema (not its subschemas) at place at.
func schemaProblems(s *jsonschema.Schema, at string, draft7 bool) []string {
	var out []string
	types := s.Types
	if s.Type != "" {
		types = []string{s.Type}
	}
	for _, t := range types {
		if !slices.Contains(jsonTypes, t) {
			out = append(out, fmt.Sprintf("at %s/type: %q is not a JSON type (%s)", at, t, strings.Join(jsonTypes, ", ")))
		}
	}
	counts := []struct {
		name string
		n    *int
	}{
		{"minLength", s.MinLength}, {"maxLength", s.MaxLength}, {"minItems", s.MinItems}, {"maxItems", s.MaxItems},
		{"minContains", s.MinContains}, {"maxContains", s.MaxContains},
		{"minProperties", s.MinProperties}, {"maxProperties", s.MaxProperties},
	}
	for _, c := range counts {
		if c.n != nil && *c.n < 0 {
			out = append(out, fmt.Sprintf("at %s/%s: %d is negative", at, c.name, *c.n))
		}
	}
	if s.MultipleOf != nil && *s.MultipleOf <= 0 {
		out = append(out, fmt.Sprintf("at %s/multipleOf: %v is not above 0", at, *s.MultipleOf))
	}
	if s.ItemsArray != nil && !draft7 {
		out = append(out, fmt.Sprintf("at %s/items: want a schema, got a list (draft 2020-12 writes a list of schemas as prefixItems)", at))
	}
	return out
}

// pointerEscaper escapes a key as a segment of a JSON Pointer.
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// eachSchema calls f for s and every subschema under it, with its place
// (a JSON Pointer into the schema).
func eachSchema(s *jsonschema.Schema, at string, f func(*jsonschema.Schema, string)) {
	if s == nil {
		return
	}
	f(s, at)
	forSubschemas(s, func(sub *jsonschema.Schema, path ...string) {
		p := at
		for _, seg := range path {
			p += "/" + pointerEscaper.Replace(seg)
		}
		eachSchema(sub, p, f)
	})
}

// checkNode validates one place of a value. self is the schema there with
// the schemas of its properties and items made empty (they accept
// anything); props, prefix and items check those parts, each at its own
// place. The keywords of a schema all have to hold, so the value matches
// the schema exactly when every node on its way matches: this finds every
// mismatch, where the validator alone stops at the first. A schema with
// references ($ref, $dynamicRef) is one node: a part cut out of it may not
// resolve alone.
type checkNode struct {
	self   *jsonschema.Resolved
	props  map[string]*checkNode
	prefix []*checkNode
	items  *checkNode
}

func newCheckNode(s *jsonschema.Schema) (*checkNode, error) {
	whole, err := s.Resolve(nil)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "jsonschema.Schema: <anonymous schema>: "))
	}
	refs := false
	eachSchema(s, "", func(sub *jsonschema.Schema, _ string) {
		refs = refs || sub.Ref != "" || sub.DynamicRef != ""
	})
	if refs {
		return &checkNode{self: whole}, nil
	}
	n, err := splitSchema(s, s.Schema)
	if err != nil {
		// Not expected (the whole resolved); the whole schema still checks.
		return &checkNode{self: whole}, nil
	}
	return n, nil
}

// splitSchema builds the checkNode of s, a schema without references, in
// the given draft.
func splitSchema(s *jsonschema.Schema, draft string) (*checkNode, error) {
	self := s.CloneSchemas()
	self.Schema = draft
	n := &checkNode{}
	if len(s.Properties) > 0 {
		n.props = map[string]*checkNode{}
		for k, p := range s.Properties {
			c, err := splitSchema(p, draft)
			if err != nil {
				return nil, err
			}
			n.props[k] = c
			self.Properties[k] = &jsonschema.Schema{}
		}
	}
	prefix := s.PrefixItems
	if s.ItemsArray != nil {
		prefix = s.ItemsArray
	}
	for i, p := range prefix {
		c, err := splitSchema(p, draft)
		if err != nil {
			return nil, err
		}
		n.prefix = append(n.prefix, c)
		if s.ItemsArray != nil {
			self.ItemsArray[i] = &jsonschema.Schema{}
		} else {
			self.PrefixItems[i] = &jsonschema.Schema{}
		}
	}
	if s.Items != nil {
		c, err := splitSchema(s.Items, draft)
		if err != nil {
			return nil, err
		}
		n.items = c
		self.Items = &jsonschema.Schema{}
	}
	r, err := self.Resolve(nil)
	if err != nil {
		return nil, err
	}
	n.self = r
	return n, nil
}

// collect appends a line "at PLACE: problem" to out for each mismatch of
// v (numbers as float64) at place at.
func (n *checkNode) collect(v any, at string, out []string) []string {
	if err := n.self.Validate(v); err != nil {
		place := at
		if place == "" {
			place = "/"
		}
		out = append(out, "at "+place+": "+problem(err))
	}
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(n.props)) {
			if x, ok := v[k]; ok {
				out = n.props[k].collect(x, at+"/"+k, out)
			}
		}
	case []any:
		for i, x := range v {
			c := n.items
			if i < len(n.prefix) {
				c = n.prefix[i]
			}
			if c != nil {
				out = c.collect(x, at+"/"+strconv.Itoa(i), out)
			}
		}
	}
	return out
}

var (
	typeMismatchRE = lazyre.New(`type: .*? has type "(\w+)", want (one of )?"([^"]*)"`)
	anonymousRE    = lazyre.New(` \[(<anonymous schema> ?)+\]`)
)

// problem words a validation error on one line: without the validator's
// "validating root:" before it, the value's own type named the way JSON
// names it ("got string, want integer") rather than printed as Go prints
// it, and where a mismatch is further down the schema (an applicator such
// as anyOf, or a reference) that part's place in the schema kept.
func problem(err error) string {
	msg := strings.TrimPrefix(err.Error(), "validating root: ")
	msg = typeMismatchRE().ReplaceAllString(msg, "got $1, want $2$3")
	msg = anonymousRE().ReplaceAllString(msg, "")
	msg = strings.ReplaceAll(msg, "not: validated against <anonymous schema>", "not: the value is one the schema rules out")
	msg = strings.ReplaceAll(strings.ReplaceAll(msg, ":\n", ": "), "\n", "; ")
	return strings.Join(strings.Fields(msg), " ")
}
