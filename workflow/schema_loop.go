package workflow

import (
	"cmp"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
)

// schemaBase is the base URI of an output_schema without an $id of its own:
// what its references ("#/$defs/a") are resolved against.
const schemaBase = "urn:codemachine:output-schema"

// schemaIndex knows where every schema of a document is and what its
// references name, as far as the document itself resolves them (a schema
// with a remote reference does not compile).
type schemaIndex struct {
	at        map[*jsonschema.Schema]string // JSON Pointer from the document's root
	base      map[*jsonschema.Schema]*url.URL
	resources map[string]string // $id (without fragment) -> its schema's pointer
	anchors   map[string]*jsonschema.Schema
	byPtr     map[string]*jsonschema.Schema
}

// refLoop finds a loop of references that never goes into a part of the
// value: {$ref: "#"}, two $defs referring to each other, an allOf that
// refers back to its own schema. Validating any value against such a
// schema recurses until the stack runs out, which is a crash of the whole
// program, not an error; so it is refused when the schema is compiled. The
// error names the place where the loop closes.
func refLoop(root *jsonschema.Schema) error {
	ix := &schemaIndex{at: map[*jsonschema.Schema]string{}, base: map[*jsonschema.Schema]*url.URL{},
		resources: map[string]string{}, anchors: map[string]*jsonschema.Schema{}, byPtr: map[string]*jsonschema.Schema{}}
	base, _ := url.Parse(schemaBase)
	ix.add(root, "", base)
	draft7 := root.Schema == draft07
	const (
		visiting = 1
		done     = 2
	)
	state := map[*jsonschema.Schema]int{}
	// visit reports the place where a loop through s closes, if any.
	var visit func(s *jsonschema.Schema) (string, bool)
	visit = func(s *jsonschema.Schema) (string, bool) {
		switch state[s] {
		case visiting:
			return ix.at[s], true
		case done:
			return "", false
		}
		state[s] = visiting
		for _, next := range ix.inPlace(s, draft7) {
			if at, loop := visit(next); loop {
				return at, true
			}
		}
		state[s] = done
		return "", false
	}
	// Only what the root reaches is ever checked: walk goes from it
	// through the in-place schemas and into those of the value's parts
	// (properties, items, ...), looking for a loop from each it meets.
	var walk func(s *jsonschema.Schema) error
	seen := map[*jsonschema.Schema]bool{}
	walk = func(s *jsonschema.Schema) error {
		if seen[s] {
			return nil
		}
		seen[s] = true
		if at, loop := visit(s); loop {
			return fmt.Errorf("at %s: its references lead back to it without going into a part of the value: checking an answer against it would never end", cmp.Or(at, "/"))
		}
		for _, next := range ix.reached(s, draft7) {
			if err := walk(next); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root)
}

// add records s, found at pointer at, and every schema under it; base is
// the URI s's references are resolved against.
func (ix *schemaIndex) add(s *jsonschema.Schema, at string, base *url.URL) {
	if s == nil {
		return
	}
	if id, err := url.Parse(s.ID); s.ID != "" && err == nil {
		if strings.HasPrefix(s.ID, "#") {
			// draft-07 names a plain-name anchor with $id: "#name".
			ix.anchors[resourceKey(base)+s.ID] = s
		} else {
			base = base.ResolveReference(id)
			ix.resources[resourceKey(base)] = at
		}
	}
	if at == "" {
		ix.resources[resourceKey(base)] = at
	}
	for _, a := range []string{s.Anchor, s.DynamicAnchor} {
		if a != "" {
			ix.anchors[resourceKey(base)+"#"+a] = s
		}
	}
	ix.at[s], ix.base[s], ix.byPtr[at] = at, base, s
	forSubschemas(s, func(sub *jsonschema.Schema, path ...string) {
		p := at
		for _, seg := range path {
			p += "/" + pointerEscaper.Replace(seg)
		}
		ix.add(sub, p, base)
	})
}

// resourceKey is a URI without its fragment.
func resourceKey(u *url.URL) string {
	c := *u
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}

// resolve finds the schema that reference ref of s names; nil when the
// document does not hold it.
func (ix *schemaIndex) resolve(s *jsonschema.Schema, ref string) *jsonschema.Schema {
	u, err := url.Parse(ref)
	if err != nil {
		return nil
	}
	target := ix.base[s].ResolveReference(u)
	res, ok := ix.resources[resourceKey(target)]
	switch {
	case target.Fragment == "" && ok:
		return ix.byPtr[res]
	case strings.HasPrefix(target.Fragment, "/") && ok:
		return ix.byPtr[res+target.Fragment]
	}
	return ix.anchors[resourceKey(target)+"#"+target.Fragment]
}

// inPlace lists the schemas that apply to the same part of the value as
// s: those of its references and of its in-place applicators (allOf,
// anyOf, oneOf, not, if/then/else, dependentSchemas). In draft-07 a $ref
// is all there is of its schema.
func (ix *schemaIndex) inPlace(s *jsonschema.Schema, draft7 bool) []*jsonschema.Schema {
	var out []*jsonschema.Schema
	for _, ref := range []string{s.Ref, s.DynamicRef} {
		if ref == "" {
			continue
		}
		if t := ix.resolve(s, ref); t != nil {
			out = append(out, t)
		}
	}
	if draft7 && s.Ref != "" {
		return out
	}
	out = append(out, s.AllOf...)
	out = append(out, s.AnyOf...)
	out = append(out, s.OneOf...)
	for _, c := range []*jsonschema.Schema{s.Not, s.If, s.Then, s.Else} {
		if c != nil {
			out = append(out, c)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.DependentSchemas)) {
		out = append(out, s.DependentSchemas[k])
	}
	for _, k := range slices.Sorted(maps.Keys(s.DependencySchemas)) {
		out = append(out, s.DependencySchemas[k])
	}
	return out
}

// reached lists the schemas that checking a value against s may apply
// to the value or its parts: its in-place ones, and those of its parts'
// keywords (properties, items, ...). $defs are reached only through
// references.
func (ix *schemaIndex) reached(s *jsonschema.Schema, draft7 bool) []*jsonschema.Schema {
	out := ix.inPlace(s, draft7)
	if draft7 && s.Ref != "" {
		return out
	}
	forSubschemas(s, func(sub *jsonschema.Schema, path ...string) {
		if path[0] != "$defs" && path[0] != "definitions" {
			out = append(out, sub)
		}
	})
	return out
}

// forSubschemas calls f for every direct subschema of s with the keys
// that lead to it from s (a keyword, then a name or an index).
func forSubschemas(s *jsonschema.Schema, f func(sub *jsonschema.Schema, path ...string)) {
	one := func(name string, c *jsonschema.Schema) {
		if c != nil {
			f(c, name)
		}
	}
	list := func(name string, cs []*jsonschema.Schema) {
		for i, c := range cs {
			if c != nil {
				f(c, name, strconv.Itoa(i))
			}
		}
	}
	named := func(name string, m map[string]*jsonschema.Schema) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if m[k] != nil {
				f(m[k], name, k)
			}
		}
	}
	named("$defs", s.Defs)
	named("definitions", s.Definitions)
	named("dependencies", s.DependencySchemas)
	list("prefixItems", s.PrefixItems)
	one("items", s.Items)
	list("items", s.ItemsArray)
	one("additionalItems", s.AdditionalItems)
	one("contains", s.Contains)
	one("unevaluatedItems", s.UnevaluatedItems)
	named("properties", s.Properties)
	named("patternProperties", s.PatternProperties)
	one("additionalProperties", s.AdditionalProperties)
	one("propertyNames", s.PropertyNames)
	one("unevaluatedProperties", s.UnevaluatedProperties)
	list("allOf", s.AllOf)
	list("anyOf", s.AnyOf)
	list("oneOf", s.OneOf)
	one("not", s.Not)
	one("if", s.If)
	one("then", s.Then)
	one("else", s.Else)
	named("dependentSchemas", s.DependentSchemas)
	one("contentSchema", s.ContentSchema)
}
