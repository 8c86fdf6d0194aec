package workflow

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"slices"
)

// The JSON Schemas of workflow.yaml and of agent front matter, for editors
// (yaml-language-server) and `codemachine schema`. They are kept true by
// schema_test.go: their keys are the parsers' keys, and every example,
// template and documentation snippet validates against them. A key added
// to a parser (stepFields, workflowFields, ...) fails that test until the
// schema describes it too.
//
//go:embed schema/*.json
var schemaFiles embed.FS

// Schema names.
const (
	SchemaWorkflow = "workflow"
	SchemaAgent    = "agent"
)

// SchemaNames are the schemas Schema knows.
var SchemaNames = []string{SchemaWorkflow, SchemaAgent}

// Schema returns the JSON Schema called name (SchemaWorkflow or
// SchemaAgent), indented, with engines (the agents registry's, as the
// parsers take them) as the values engine: may have; an agent's engine is
// never shell.
func Schema(name string, engines []string) ([]byte, error) {
	if !slices.Contains(SchemaNames, name) {
		return nil, fmt.Errorf("no schema %q (%s or %s)", name, SchemaWorkflow, SchemaAgent)
	}
	data, err := schemaFiles.ReadFile("schema/" + name + ".json")
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("schema %s: %w", name, err)
	}
	if name == SchemaAgent {
		engines = slices.DeleteFunc(slices.Clone(engines), func(e string) bool { return e == "shell" })
	}
	engine := doc["$defs"].(map[string]any)["engine"].(map[string]any)
	engine["enum"] = engines
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "<<" in a description stays readable
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
