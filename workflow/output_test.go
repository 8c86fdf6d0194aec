package workflow

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

func compileSchemaText(t *testing.T, text string) (*OutputSchema, error) {
	t.Helper()
	var doc any
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	return CompileOutputSchema(doc)
}

func TestOutputSchemaCheck(t *testing.T) {
	const summary = `{"type": "object", "required": ["summary", "score"],
		"properties": {"summary": {"type": "string"}, "score": {"type": "integer", "minimum": 0},
			"tags": {"type": "array", "items": {"type": "string", "minLength": 2}}}}`
	tests := []struct {
		name, schema, answer string
		want                 string   // the canonical JSON stored, when it matches
		problems             []string // each a substring of one line of the error, in order
	}{
		{name: "match", schema: summary, answer: `{"summary": "ok", "score": 3}`, want: `{"score":3,"summary":"ok"}`},
		{name: "fenced", schema: summary, answer: "Here:\n```json\n{\"summary\": \"ok\", \"score\": 3}\n```\n",
			want: `{"score":3,"summary":"ok"}`},
		{name: "large integer kept exactly", schema: summary,
			answer: `{"summary": "ok", "score": 12345678901234567890}`, want: `{"score":12345678901234567890,"summary":"ok"}`},
		{name: "every mismatch", schema: summary, answer: `{"score": "high", "tags": ["ok", "x", 3]}`,
			problems: []string{"at /: required: missing properties", "summary",
				"at /score: got string, want integer",
				"at /tags/1: minLength", "at /tags/2: got integer, want string"}},
		{name: "root type", schema: summary, answer: `[1]`, problems: []string{"at /: got array, want object"}},
		{name: "prefixItems", schema: `{"prefixItems": [{"type": "string"}], "items": {"type": "integer"}}`,
			answer: `[1, "x", 2]`, problems: []string{"at /0: got integer, want string", "at /1: got string, want integer"}},
		{name: "draft-07 items list", schema: `{"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}], "additionalItems": false}`,
			answer: `["a", 2]`, problems: []string{"at /: "}},
		{name: "references: first mismatch", schema: `{"$defs": {"n": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/n"}, "b": {"$ref": "#/$defs/n"}}}`,
			// The validator visits properties in map order: a or b, either one.
			answer: `{"a": "x", "b": "y"}`, problems: []string{"at /: validating /properties/", ": validating /$defs/n: got string, want integer"}},
		{name: "unevaluatedProperties", schema: `{"properties": {"a": {"type": "string"}}, "unevaluatedProperties": false}`,
			answer: `{"a": 1, "b": 2}`, problems: []string{"at /: validating /unevaluatedProperties: not:", "at /a: got integer, want string"}},
		{name: "no JSON", schema: summary, answer: `all good`, problems: []string{"holds no JSON value"}},
		{name: "two values", schema: `{}`, answer: `{"a": 1} {"b": 2}`, problems: []string{"holds no JSON value"}},
		{name: "after lines with braces", schema: summary, answer: "compiling {main}\n{\"summary\": \"ok\", \"score\": 3}\n",
			want: `{"score":3,"summary":"ok"}`},
		{name: "the last of two lines", schema: summary, answer: "{\"summary\": \"old\", \"score\": 1}\n{\"summary\": \"ok\", \"score\": 3}",
			want: `{"score":3,"summary":"ok"}`},
		{name: "indented after a log line", schema: summary, answer: "warn: {x}\nresult:\n{\n  \"summary\": \"ok\",\n  \"score\": 3\n}\n",
			want: `{"score":3,"summary":"ok"}`},
		{name: "a value not at the end", schema: `{}`, answer: "{\"a\": 1}\ndone {x}", problems: []string{"holds no JSON value"}},
		{name: "beyond float64", schema: `{"type": "number", "minimum": 0}`, answer: `1e400`, want: `1e400`},
		{name: "above maximum", schema: `{"properties": {"score": {"type": "integer", "maximum": 10}}}`,
			answer: `{"score": 11}`, problems: []string{"at /score: maximum: 11 is greater than 10"}},
		{name: "below a fractional minimum", schema: `{"type": "number", "minimum": -2.5}`,
			answer: `-3.25`, problems: []string{"at /: minimum: -3.25 is less than -2.5"}},
		{name: "exclusive maximum", schema: `{"type": "number", "exclusiveMaximum": 1}`,
			answer: `1`, problems: []string{"at /: exclusiveMaximum: 1 is greater than or equal to 1"}},
		{name: "not a multiple", schema: `{"type": "number", "multipleOf": 0.5}`,
			answer: `0.75`, problems: []string{"at /: multipleOf: 0.75 is not a multiple of 0.5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := compileSchemaText(t, tt.schema)
			if err != nil {
				t.Fatal(err)
			}
			got, err := o.Check(tt.answer)
			if tt.problems == nil {
				if err != nil || string(got) != tt.want {
					t.Fatalf("Check = %s, %v; want %s", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check = %s, want problems %q", got, tt.problems)
			}
			rest := err.Error()
			for _, p := range tt.problems {
				i := strings.Index(rest, p)
				if i < 0 {
					t.Fatalf("error %q lacks %q (in order)", err, p)
				}
				rest = rest[i+len(p):]
			}
		})
	}
}

func TestOutputSchemaInvalid(t *testing.T) {
	tests := []struct{ schema, want string }{
		{`{"type": "objekt"}`, `not a valid JSON Schema: at /type: "objekt" is not a JSON type`},
		{`{"properties": {"a": {"type": ["string", "text"]}}}`, `at /properties/a/type: "text" is not a JSON type`},
		{`{"properties": {"a": {"minimum": "x"}}}`, `not a valid JSON Schema: at /properties/a/minimum: got string, want number`},
		{`{"required": "x"}`, `at /required: got string, want array`},
		{`{"properties": {"a": 7}}`, `at /properties/a: want a schema (an object or a boolean), got number 7`},
		{`{"items": {"type": 3}}`, `at /items/type: want a JSON type`},
		{`{"allOf": [true, {"maxLength": "5"}]}`, `at /allOf/1/maxLength: got string "5", want an integer`},
		{`{"minItems": -1}`, `at /minItems: -1 is negative`},
		{`{"type": ["object", "object"]}`, `at /type/1: "object" is listed twice (also at /type/0)`},
		{`{"items": {"type": ["string", "null", "string"]}}`, `at /items/type/2: "string" is listed twice (also at /items/type/0)`},
		{`{"properties": {"a": {"enum": []}}}`, `at /properties/a/enum: an empty list matches no value`},
		{`{"multipleOf": 0}`, `at /multipleOf: 0 is not above 0`},
		{`{"items": [{"type": "string"}]}`, `at /items: want a schema, got a list`},
		{`{"pattern": "("}`, `pattern: error parsing regexp`},
		{`{"$ref": "#/$defs/missing"}`, `missing`},
		{`{"$schema": "http://json-schema.org/draft-04/schema#"}`, `at /$schema: "http://json-schema.org/draft-04/schema#" is not a draft codemachine validates`},
	}
	for _, tt := range tests {
		_, err := compileSchemaText(t, tt.schema)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CompileOutputSchema(%s) = %v, want an error with %q", tt.schema, err, tt.want)
		}
	}
	for _, ok := range []string{`true`, `{}`, `{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "string"}`,
		`{"$schema": "http://json-schema.org/draft-07/schema", "type": "string"}`} {
		if _, err := compileSchemaText(t, ok); err != nil {
			t.Errorf("CompileOutputSchema(%s): %v", ok, err)
		}
	}
}

// TestOutputSchemaRefLoop: a schema whose references come back to where
// they started without going into a part of the value would make the
// validator recurse until the stack runs out, a crash no recover stops;
// it is refused when compiled. Recursion through a part of the value
// (a tree, a list of lists) is fine, however deep the value.
func TestOutputSchemaRefLoop(t *testing.T) {
	loops := []struct{ name, schema, at string }{
		{"itself", `{"$ref": "#"}`, "at /:"},
		{"two defs", `{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}`, "at /$defs/a:"},
		{"allOf", `{"type": "object", "allOf": [{"$ref": "#"}]}`, "at /:"},
		{"not", `{"not": {"$ref": "#"}}`, "at /:"},
		{"anchor", `{"$defs": {"a": {"$anchor": "x", "anyOf": [{"$ref": "#x"}]}}, "$ref": "#/$defs/a"}`, "at /$defs/a:"},
		{"$id", `{"$id": "https://example.com/s.json", "oneOf": [{"$ref": "https://example.com/s.json"}]}`, "at /:"},
		{"escaped key", `{"$defs": {"a/b": {"$ref": "#/$defs/a~1b"}}, "$ref": "#/$defs/a~1b"}`, "at /$defs/a~1b:"},
		{"inside a property", `{"properties": {"p": {"$defs": {"d": {"$ref": "#/properties/p"}}, "$ref": "#/properties/p/$defs/d"}}}`, "at /properties/p:"},
		{"draft-07", `{"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"a": {"$ref": "#/definitions/a"}}, "$ref": "#/definitions/a"}`, "at /definitions/a:"},
	}
	for _, tt := range loops {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileSchemaText(t, tt.schema)
			if err == nil || !strings.Contains(err.Error(), tt.at+" its references lead back to it") {
				t.Fatalf("CompileOutputSchema = %v, want the loop %q refused", err, tt.at)
			}
		})
	}
	fine := []struct{ name, schema, answer string }{
		{"tree", `{"type": "object", "properties": {"child": {"$ref": "#"}}}`, `{"child": {"child": {"child": {}}}}`},
		{"nested lists", `{"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"}`, `[[[[]]], []]`},
		{"unused def", `{"$defs": {"a": {"$ref": "#/$defs/a"}}, "type": "integer"}`, `1`},
		{"draft-07 ignores what is beside $ref", `{"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"s": {"type": "string"}}, "$ref": "#/definitions/s", "allOf": [{"$ref": "#"}]}`, `"x"`},
	}
	for _, tt := range fine {
		t.Run(tt.name, func(t *testing.T) {
			o, err := compileSchemaText(t, tt.schema)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.Check(tt.answer); err != nil {
				t.Fatalf("Check(%s): %v", tt.answer, err)
			}
		})
	}
}

// TestOutputSchemaCheckConcurrent checks one schema from many goroutines,
// as the tasks of a foreach step do (run it with -race).
func TestOutputSchemaCheckConcurrent(t *testing.T) {
	o, err := compileSchemaText(t, `{"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}, "s": {"pattern": "^a"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			answer := `{"n": 1, "s": "abc"}`
			if i%2 == 1 {
				answer = `{"n": "x", "s": "b"}`
			}
			_, err := o.Check(answer)
			if (err != nil) != (i%2 == 1) {
				t.Errorf("answer %s: %v", answer, err)
			}
		})
	}
	wg.Wait()
}

// An invalid output_schema is reported where its problem is, each problem
// at its own place: the keyword's value, or the schema when its problem
// names no place in it.
func TestOutputSchemaErrorPlaces(t *testing.T) {
	src := `version: 1
steps:
  - id: l
    run: 'true'
    output_schema:
      type: object
      properties:
        a: {type: strin}
        b: {type: string, minLength: -1}
        "x/y":
          type: array
          items: [{type: string}]
  - id: m
    run: 'true'
    output_schema: {properties: {a: {minimum: x}}}
  - id: "n"
    run: 'true'
    output_schema:
      type: objekt
      required: 3
      properties:
        a: {maxLength: "5", items: {type: 3}}
        b: 7
`
	_, err := ParseWorkflow("w.yaml", []byte(src), testEngines)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`w.yaml:8:19: output_schema: not a valid JSON Schema: at /properties/a/type: "strin" is not a JSON type`,
		`w.yaml:9:38: output_schema: not a valid JSON Schema: at /properties/b/minLength: -1 is negative`,
		`w.yaml:12:18: output_schema: not a valid JSON Schema: at /properties/x~1y/items: want a schema, got a list`,
		`w.yaml:15:47: output_schema: not a valid JSON Schema: at /properties/a/minimum: got string, want number`,
		// A keyword of the wrong type does not hide the others.
		`w.yaml:19:13: output_schema: not a valid JSON Schema: at /type: "objekt" is not a JSON type`,
		`w.yaml:20:17: output_schema: not a valid JSON Schema: at /required: got number, want array`,
		`w.yaml:22:24: output_schema: not a valid JSON Schema: at /properties/a/maxLength: got string "5", want an integer`,
		`w.yaml:22:43: output_schema: not a valid JSON Schema: at /properties/a/items/type: want a JSON type`,
		`w.yaml:23:12: output_schema: not a valid JSON Schema: at /properties/b: want a schema (an object or a boolean), got number 7`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
