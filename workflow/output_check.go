package workflow

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
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
		// The decoder stops at the first keyword of the wrong type and
		// does not say where it is: find every one, each at its place,
		// then check the rest of the schema without them.
		var doc any
		if json.Unmarshal(data, &doc) == nil {
			if rest, problems := decodeProblems(doc, ""); len(problems) > 0 {
				return nil, append(problems, restProblems(rest)...)
			}
		}
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

// The shapes of the keywords whose values are schemas.
const (
	oneSchema    = iota + 1 // a schema
	schemaList              // a list of schemas
	schemaMap               // an object of schemas
	schemaOrList            // items: a schema, or (draft-07) a list of them
)

var subschemaKeywords = map[string]int{
	"$defs": schemaMap, "definitions": schemaMap, "dependencies": schemaMap, "dependentSchemas": schemaMap,
	"properties": schemaMap, "patternProperties": schemaMap,
	"prefixItems": schemaList, "allOf": schemaList, "anyOf": schemaList, "oneOf": schemaList, "items": schemaOrList,
	"additionalItems": oneSchema, "contains": oneSchema, "unevaluatedItems": oneSchema,
	"additionalProperties": oneSchema, "propertyNames": oneSchema, "unevaluatedProperties": oneSchema,
	"not": oneSchema, "if": oneSchema, "then": oneSchema, "else": oneSchema,
}

// decodeProblems finds every keyword of the schema v (decoded JSON, at
// place at) and of its subschemas whose value the validator cannot decode,
// each as "at POINTER: problem", and returns v without them. Each keyword
// is decoded alone, its subschemas (checked on their own) standing in as
// true.
func decodeProblems(v any, at string) (any, schemaErrors) {
	m, ok := v.(map[string]any)
	if !ok {
		if _, isBool := v.(bool); isBool {
			return v, nil
		}
		return true, schemaErrors{fmt.Sprintf("at %s: want a schema (an object or a boolean), got %s", cmp.Or(at, "/"), jsonKind(v))}
	}
	var out schemaErrors
	rest := make(map[string]any, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		here := at + "/" + pointerEscaper.Replace(k)
		clean, stub := subschemas(k, m[k], here, &out)
		data, err := json.Marshal(map[string]any{k: stub})
		if err != nil {
			continue
		}
		var s jsonschema.Schema
		if err := json.Unmarshal(data, &s); err != nil {
			out = append(out, fmt.Sprintf("at %s: %s", here, keywordProblem(k, stub, err)))
			continue
		}
		rest[k] = clean
	}
	return rest, out
}

// subschemas checks the subschemas in val, the value of keyword k at place
// at, adding their problems to out. It returns val with each subschema
// cleaned of its problems, and val with each of them replaced by true, for
// the keyword's own decoding. A value of another shape than the keyword's
// is returned as it is, for that decoding to refuse.
func subschemas(k string, val any, at string, out *schemaErrors) (clean, stub any) {
	sub := func(v any, place string) any {
		c, problems := decodeProblems(v, place)
		*out = append(*out, problems...)
		return c
	}
	shape := subschemaKeywords[k]
	l, isList := val.([]any)
	switch {
	case shape == oneSchema || shape == schemaOrList && !isList:
		return sub(val, at), true
	case shape == schemaList || shape == schemaOrList:
		if !isList {
			return val, val
		}
		clean, stubs := make([]any, len(l)), make([]any, len(l))
		for i, v := range l {
			clean[i], stubs[i] = sub(v, at+"/"+strconv.Itoa(i)), true
		}
		return clean, stubs
	case shape == schemaMap:
		m, ok := val.(map[string]any)
		if !ok {
			return val, val
		}
		clean, stubs := make(map[string]any, len(m)), make(map[string]any, len(m))
		for _, name := range slices.Sorted(maps.Keys(m)) {
			if _, names := m[name].([]any); names && k == "dependencies" {
				// draft-07: the properties a property needs, not a schema
				clean[name], stubs[name] = m[name], m[name]
				continue
			}
			clean[name], stubs[name] = sub(m[name], at+"/"+pointerEscaper.Replace(name)), true
		}
		return clean, stubs
	}
	return val, val
}

// restProblems are the problems of a schema that decodes (its keywords
// that did not taken out), as compiling it finds them.
func restProblems(rest any) []string {
	data, err := json.Marshal(rest)
	if err != nil {
		return nil
	}
	_, err = compileSchemaJSON(data)
	var problems schemaErrors
	switch {
	case err == nil:
		return nil
	case errors.As(err, &problems):
		return problems
	}
	return []string{strings.TrimPrefix(err.Error(), schemaInvalid)}
}

// keywordProblem words the decoding error of keyword k's value val.
func keywordProblem(k string, val any, err error) string {
	if k == "type" {
		return fmt.Sprintf("want a JSON type (%s) or a list of them, got %s", strings.Join(jsonTypes, ", "), jsonKind(val))
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("got %s, want %s", te.Value, jsonTypeOf(te.Type.Kind().String()))
	}
	if strings.Contains(err.Error(), "into an int") {
		return fmt.Sprintf("got %s, want an integer", jsonKind(val))
	}
	return err.Error()
}

// jsonKind names the JSON type of a decoded value, with the value when it
// is short.
func jsonKind(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case float64:
		return fmt.Sprintf("number %v", v)
	case string:
		return fmt.Sprintf("string %q", v)
	case []any:
		return "an array"
	}
	return "an object"
}

// schemaDecodeError words a decoding error of the schema: a keyword's value
// of the wrong JSON type.
func schemaDecodeError(err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err
	}
	field := te.Field[strings.LastIndexByte(te.Field, '.')+1:]
	return fmt.Errorf("%s: got %s, want %s", field, te.Value, jsonTypeOf(te.Type.Kind().String()))
}

// jsonTypeOf is the JSON type a Go kind is decoded from.
func jsonTypeOf(want string) string {
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
	return want
}

var jsonTypes = []string{"array", "boolean", "integer", "null", "number", "object", "string"}

// schemaProblems checks one schema (not its subschemas) at place at.
func schemaProblems(s *jsonschema.Schema, at string, draft7 bool) []string {
	var out []string
	types := s.Types
	if s.Type != "" {
		types = []string{s.Type}
	}
	for i, t := range types {
		if !slices.Contains(jsonTypes, t) {
			out = append(out, fmt.Sprintf("at %s/type: %q is not a JSON type (%s)", at, t, strings.Join(jsonTypes, ", ")))
		}
		// The meta-schema asks a list of types to be unique: a repeat is
		// a slip (a type meant and another written), not a second type.
		if j := slices.Index(types[:i], t); j >= 0 {
			out = append(out, fmt.Sprintf("at %s/type/%d: %q is listed twice (also at %s/type/%d); the types must be unique", at, i, t, at, j))
		}
	}
	// An empty enum matches no value: every answer would fail, and every
	// attempt with it.
	if s.Enum != nil && len(s.Enum) == 0 {
		out = append(out, fmt.Sprintf("at %s/enum: an empty list matches no value (list at least one)", at))
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

// remoteRef is the problem of the first reference of s to another
// document (a URL, a file) at its place, where the validator's own says
// "no loader passed to Schema.Resolve": nothing is fetched or read to
// check an answer, so such a schema can never be used. nil when s has
// none.
func remoteRef(s *jsonschema.Schema) error {
	var found error
	eachSchema(s, "", func(sub *jsonschema.Schema, at string) {
		for _, r := range [][2]string{{"$ref", sub.Ref}, {"$dynamicRef", sub.DynamicRef}} {
			if key, ref := r[0], r[1]; found == nil && ref != "" && !strings.HasPrefix(ref, "#") {
				found = fmt.Errorf("at %s/%s: %q is another document, which is never fetched or read: keep the schema it names under $defs and refer to it as \"#/$defs/NAME\"", at, key, ref)
			}
		}
	})
	return found
}

func newCheckNode(s *jsonschema.Schema) (*checkNode, error) {
	whole, err := s.Resolve(nil)
	if err != nil {
		if e := remoteRef(s); e != nil && strings.Contains(err.Error(), "cannot resolve remote schemas") {
			return nil, e
		}
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
	// boundRE is the validator's wording of a number out of its bounds:
	// the value as a fraction ("11/1"), the bound with six decimals
	// ("10.000000").
	boundRE = lazyre.New(`\b(minimum|maximum|exclusiveMinimum|exclusiveMaximum|multipleOf): (-?\d+/\d+) (is (?:less than|greater than|not a multiple of)(?: or equal to)?) (-?\d+\.\d+)`)
)

// plainBound rewrites a bound's mismatch with the numbers as JSON writes
// them ("maximum: 11 is greater than 10"): the agent reads it in its retry
// prompt, and "11/1 is greater than 10.000000" reads as another value.
func plainBound(m string) string {
	g := boundRE().FindStringSubmatch(m)
	value := g[2]
	if r, ok := new(big.Rat).SetString(g[2]); ok {
		value = r.RatString()
		if !r.IsInt() {
			f, _ := r.Float64()
			value = strconv.FormatFloat(f, 'g', -1, 64)
		}
	}
	bound := strings.TrimSuffix(strings.TrimRight(g[4], "0"), ".")
	return g[1] + ": " + value + " " + g[3] + " " + bound
}

// problem words a validation error on one line: without the validator's
// "validating root:" before it, the value's own type named the way JSON
// names it ("got string, want integer") rather than printed as Go prints
// it, and where a mismatch is further down the schema (an applicator such
// as anyOf, or a reference) that part's place in the schema kept.
func problem(err error) string {
	msg := strings.TrimPrefix(err.Error(), "validating root: ")
	msg = typeMismatchRE().ReplaceAllString(msg, "got $1, want $2$3")
	msg = anonymousRE().ReplaceAllString(msg, "")
	msg = boundRE().ReplaceAllStringFunc(msg, plainBound)
	msg = strings.ReplaceAll(msg, "not: validated against <anonymous schema>", "not: the value is one the schema rules out")
	msg = strings.ReplaceAll(strings.ReplaceAll(msg, ":\n", ": "), "\n", "; ")
	return strings.Join(strings.Fields(msg), " ")
}
