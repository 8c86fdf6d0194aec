package fakellm

import (
	"sort"
	"strings"
)

// AuxText is the answer to a helper request that offers no tools and asks
// for no particular format: short, like the session title it usually is.
const AuxText = "fakellm session"

// auxAnswer is the text of the answer to a helper request: a JSON value
// that fits the requested schema (Claude's {title}, Gemini's router
// {reasoning, model_choice}), else AuxText.
func auxAnswer(schema map[string]any) string {
	if schema == nil {
		return AuxText
	}
	return string(mustJSON(sampleOf(schema, 0)))
}

// sampleOf builds a small value that satisfies a JSON schema (also in
// Gemini's dialect, whose types are upper case): the first enum value or
// const, "fakellm" for strings, the minimum (or zero) for numbers, every property of an
// object. depth bounds recursive schemas.
func sampleOf(schema map[string]any, depth int) any {
	if depth > 8 || schema == nil {
		return nil
	}
	if c, ok := schema["const"]; ok {
		return c
	}
	if enum := list(schema["enum"]); len(enum) > 0 {
		return enum[0]
	}
	for _, key := range []string{"anyOf", "oneOf", "allOf"} {
		if alts := list(schema[key]); len(alts) > 0 {
			return sampleOf(asMap(alts[0]), depth+1)
		}
	}
	typ, _ := schema["type"].(string)
	if types := list(schema["type"]); len(types) > 0 {
		// ["string", "null"]: take the first.
		typ, _ = types[0].(string)
	}
	switch strings.ToLower(typ) {
	case "object":
		props := asMap(schema["properties"])
		keys := make([]string, 0, len(props))
		for k := range props {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		obj := map[string]any{}
		for _, k := range keys {
			obj[k] = sampleOf(asMap(props[k]), depth+1)
		}
		return obj
	case "array":
		return []any{}
	case "integer", "number":
		if m, ok := schema["minimum"].(float64); ok {
			return m
		}
		return 0
	case "boolean":
		return false
	case "null":
		return nil
	}
	if schema["properties"] != nil {
		return sampleOf(map[string]any{"type": "object", "properties": schema["properties"]}, depth)
	}
	return "fakellm"
}
