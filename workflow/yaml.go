package workflow

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/codemachine/codemachine/internal/lazyre"
	"github.com/codemachine/codemachine/internal/yamlnode"
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
	// engines are the names an engine: value may give.
	engines []string
	errs    *Errors
	// imp reads uses: entries; nil where there are no files to read
	// them from.
	imp *importCtx
	// data is the text parse read: the expressions' errors on a later
	// line of a multi-line value find their column in it.
	data []byte
	// openUses is set when a uses: entry could not be read for want of
	// imp: the step ids it imports are unknown, and not reported as such.
	openUses bool
}

// parse decodes data and returns the root node of its single document, or
// nil when data holds no document or has a syntax error (reported).
func (d *yamlDoc) parse(data []byte) *yaml.Node {
	d.data = data
	doc, extra, err := yamlnode.Documents(data)
	switch {
	case err != nil:
		d.syntaxError(data, err)
		return nil
	case extra != nil:
		at := extra
		if len(extra.Content) > 0 {
			at = extra.Content[0]
		}
		d.errs.Add(d.pos(at), "more than one YAML document (remove the second \"---\")")
		return nil
	case doc == nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0:
		return nil
	}
	return doc.Content[0]
}

// syntaxError converts a yaml.v3 error into an Error at the mistake's
// place (yamlnode.Locate), with a hint at what usually causes libyaml's
// terse messages; tab indentation, the most common mistake, gets the
// column of its tab.
func (d *yamlDoc) syntaxError(data []byte, err error) {
	if at, ok := yamlnode.ConflictMarker(data); ok {
		d.errs.Add(Pos{File: d.file, Line: at.Line + d.lineOffset, Col: at.Col}, "%s", yamlnode.ConflictMessage)
		return
	}
	if yamlnode.UTF16WithoutBOM(data) {
		d.errs.Add(Pos{File: d.file, Line: 1 + d.lineOffset, Col: 1}, "%s", yamlnode.UTF16Message)
		return
	}
	at, msg := yamlnode.Locate(data, err), yamlnode.Syntax(err).Msg
	line, col, hint := max(at.Line, 1), max(at.Col, 1), syntaxHints[msg]
	if end, ok := unclosedFlow(data, msg); ok {
		// Placed where the list began, which for a file that is one list
		// is 1:1, as if nothing were found: the end, where the closing
		// bracket is missing, is the place, as a .json file's is.
		line, col, hint = end.Line, end.Col, "is a bracket left open?"
	}
	if text, ok := lineAt(data, line); ok {
		if w := wrongCloser(text, col, msg); w != "" {
			hint = w
		}
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

// maxUnclosed bounds the brackets unclosedFlow closes.
const maxUnclosed = 16

// unclosedFlow tells whether the YAML problem msg of data is a flow list or
// mapping ("[1, 2", "{a: 1", "[1, 2,") that the text ends inside: closing
// the brackets yaml.v3 asks for at the end makes it parse. It returns the
// place just after the text's last character.
func unclosedFlow(data []byte, msg string) (yamlnode.Place, bool) {
	if len(data) > yamlnode.MaxReparse {
		return yamlnode.Place{}, false // each parse of it takes seconds
	}
	text := bytes.TrimRight(data, " \t\r\n")
	closers := []string{flowCloser(msg)}
	if msg == "did not find expected node content" && bytes.HasSuffix(text, []byte(",")) {
		// The text ends after a comma, where the next item should be:
		// the message does not say which bracket is open.
		closers = []string{"]", "}"}
	}
	for _, c := range closers {
		if c != "" && closesFlow(slices.Concat(text, []byte(c))) {
			line := bytes.Count(text, []byte("\n")) + 1
			last := text[bytes.LastIndexByte(text, '\n')+1:]
			return yamlnode.Place{Line: line, Col: utf8.RuneCount(last) + 1}, true
		}
	}
	return yamlnode.Place{}, false
}

// closesFlow tells whether fixed parses once the brackets yaml.v3 asks
// for, at most maxUnclosed of them, are added at its end.
func closesFlow(fixed []byte) bool {
	for range maxUnclosed {
		var v any
		err := yaml.Unmarshal(fixed, &v)
		if err == nil {
			return true
		}
		c := flowCloser(yamlnode.Syntax(err).Msg)
		if c == "" {
			return false
		}
		fixed = append(fixed, c...)
	}
	return false
}

// wrongCloser is the hint for the closing bracket at column col of text
// when it is not the one libyaml's msg asks for ("[1, 2}"); "" otherwise.
func wrongCloser(text string, col int, msg string) string {
	want := flowCloser(msg)
	r := []rune(text)
	if want == "" || col < 1 || col > len(r) || (r[col-1] != ']' && r[col-1] != '}') || string(r[col-1]) == want {
		return ""
	}
	kind := map[string]string{"]": "a list opened with [", "}": "a mapping opened with {"}[want]
	return fmt.Sprintf("%s is closed with %s, not %c", kind, want, r[col-1])
}

// flowCloser is the bracket libyaml's msg asks for, "" for another problem.
func flowCloser(msg string) string {
	switch msg {
	case "did not find expected ',' or ']'":
		return "]"
	case "did not find expected ',' or '}'":
		return "}"
	}
	return ""
}

// syntaxHints say what usually causes libyaml's terse messages.
var syntaxHints = map[string]string{
	"found unexpected end of stream":                 "is a quote left open?",
	"mapping values are not allowed in this context": "check the indentation, or quote a value that contains \": \"",
	"did not find expected key":                      "check the indentation",
	"did not find expected '-' indicator":            "check the indentation of the list",
	"could not find expected ':'":                    "a key needs \": \" after it",
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

// pos is where n is in the file.
func (d *yamlDoc) pos(n *yaml.Node) Pos {
	return Pos{File: d.file, Line: n.Line + d.lineOffset, Col: n.Column}
}

// at is where the node an alias names is, or n itself.
func (d *yamlDoc) at(n *yaml.Node) Pos {
	return d.pos(yamlnode.Resolve(n))
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
	n = yamlnode.Resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errs.Add(d.pos(n), "%s: want a mapping, got %s", what, yamlnode.Kind(n))
		return nil, false
	}
	m := merger{yamlDoc: d, what: what, seen: map[string]*yaml.Node{}}
	m.collect(n, 0, true)
	return m.out, true
}

// merger gathers the entries of one mapping and of the mappings it merges.
type merger struct {
	*yamlDoc
	what string
	// seen holds every key gathered so far: the key node where it was
	// written in the mapping itself, nil where a merge brought it in.
	seen map[string]*yaml.Node
	out  []keyVal
}

// collect adds the entries of n, then those its merge keys bring in that
// are not set yet. explicit is set for the mapping itself, as opposed to
// one it merges.
func (m *merger) collect(n *yaml.Node, depth int, explicit bool) {
	var merges []*yaml.Node
	for e := range yamlnode.Entries(n) {
		k := yamlnode.Resolve(e.Key)
		switch {
		case k.Kind != yaml.ScalarNode:
			m.errs.Add(m.pos(k), "%s: keys must be strings, got %s", m.what, yamlnode.Kind(k))
		case k.Tag == "!!merge":
			merges = append(merges, e.Val)
		default:
			m.add(k, e.Val, explicit)
		}
	}
	for _, merge := range merges {
		if depth >= maxMergeDepth {
			m.errs.Add(m.pos(merge), "%s: merges nested too deeply", m.what)
			return
		}
		m.merge(yamlnode.Resolve(merge), depth)
	}
}

// add gathers key k unless it is set already, which is a mistake only
// between two keys written in the same mapping: a merged key is meant to
// be overridden.
func (m *merger) add(k, v *yaml.Node, explicit bool) {
	if first, dup := m.seen[k.Value]; dup {
		if explicit && first != nil {
			m.errs.Add(m.pos(k), "duplicate key %q in %s (first at line %d)", k.Value, m.what, first.Line+m.lineOffset)
		}
		return
	}
	m.seen[k.Value] = nil
	if explicit {
		m.seen[k.Value] = k
	}
	m.out = append(m.out, keyVal{key: k, val: v, name: k.Value})
}

// merge gathers what the value of a "<<" key brings in: one mapping or a
// list of them.
func (m *merger) merge(v *yaml.Node, depth int) {
	sources := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		sources = v.Content
	}
	for _, src := range sources {
		src = yamlnode.Resolve(src)
		if src.Kind != yaml.MappingNode {
			m.errs.Add(m.pos(src), "%s: \"<<\" wants a mapping or a list of mappings, got %s", m.what, yamlnode.Kind(src))
			continue
		}
		m.collect(src, depth+1, false)
	}
}

// keyDecoder is one key of a mapping the schema has, with the function that
// decodes its value into the decoder D of the mapping.
type keyDecoder[D any] struct {
	key    string
	decode func(D, keyVal)
}

// decodeKeys decodes each entry with the decoder of its key, and calls
// unknown for a key the schema does not have.
func decodeKeys[D any](dec D, fields []keyDecoder[D], kvs []keyVal, unknown func(keyVal)) {
	for _, kv := range kvs {
		i := slices.IndexFunc(fields, func(f keyDecoder[D]) bool { return f.key == kv.name })
		if i < 0 {
			unknown(kv)
			continue
		}
		fields[i].decode(dec, kv)
	}
}

// keyNames lists the keys of fields in order: the candidates, in the order
// they are weighed, of a suggestion for a misspelt key.
func keyNames[D any](fields []keyDecoder[D]) []string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return keys
}

// unknownKey reports a key the schema does not have, with a suggestion.
func (d *yamlDoc) unknownKey(kv keyVal, where string, known []string) {
	d.errs.Add(d.pos(kv.key), "unknown key %q%s%s", kv.name, where, suggest(kv.name, known))
}

// str reads a scalar as text. Numbers and booleans are accepted as their
// literal text (model: 4, check: true); null means unset.
func (d *yamlDoc) str(n *yaml.Node, what string) (string, bool) {
	n = yamlnode.Resolve(n)
	if yamlnode.IsNull(n) {
		return "", false
	}
	v, ok := yamlnode.Text(n)
	if !ok {
		d.errs.Add(d.pos(n), "%s: want a string, got %s", what, yamlnode.Kind(n))
	}
	if ok && strings.IndexByte(v, 0) >= 0 {
		// Only an escape ("\0", "\x00") of a quoted string makes one.
		d.errs.Add(d.pos(n), "%s: holds a NUL byte, which no command, path or environment variable can hold", what)
	}
	return v, ok
}

// model reads a model name: text that goes on the engine's command line
// and into the Codemachine-Model trailer of every commit, where a line
// break would start a forged trailer and an escape sequence would drive
// the terminal of whoever reads the log.
func (d *yamlDoc) model(n *yaml.Node, what string) (string, bool) {
	return d.setting(n, what, "a model name")
}

// setting reads a one-word setting passed to the engine's command line
// (model, effort), refusing what a line of text cannot hold; kind names
// it in the message.
func (d *yamlDoc) setting(n *yaml.Node, what, kind string) (string, bool) {
	v, ok := d.str(n, what)
	if ok {
		if msg := settingProblem(v, kind); msg != "" {
			d.errs.Add(d.at(n), "%s: %s", what, msg)
			return "", false
		}
	}
	return v, ok
}

// ModelProblem says what makes s unusable as a model name (a control
// character such as a line break or an ESC, or text that is not UTF-8),
// or "" when it is fine. The --model flag and CODEMACHINE_MODEL are held
// to the same rule as the workflow's model keys.
func ModelProblem(s string) string {
	return settingProblem(s, "a model name")
}

func settingProblem(s, kind string) string {
	if !utf8.ValidString(s) {
		return fmt.Sprintf("%q is not UTF-8 text", s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Sprintf("%q has a control character (U+%04X), which %s cannot hold", s, r, kind)
		}
	}
	return ""
}

// integer reads a whole number.
func (d *yamlDoc) integer(n *yaml.Node, what string) (int64, bool) {
	n = yamlnode.Resolve(n)
	v, err := yamlnode.Int(n)
	switch {
	case errors.Is(err, yamlnode.ErrRange):
		d.errs.Add(d.pos(n), "%s: number %s is out of range", what, n.Value)
	case err != nil:
		d.errs.Add(d.pos(n), "%s: want a whole number, got %s", what, yamlnode.Describe(n))
	}
	return v, err == nil
}

// intIn reads a whole number from lo to hi. Every way of missing says the
// range: a number out of it, one too large for any integer, a fraction or
// an exponent (1.5, 1e3), or not a number at all.
func (d *yamlDoc) intIn(n *yaml.Node, what string, lo, hi int64) (int64, bool) {
	n = yamlnode.Resolve(n)
	want := fmt.Sprintf("%d to %d", lo, hi)
	if hi == math.MaxInt64 {
		want = fmt.Sprintf("%d or more", lo)
	}
	v, err := yamlnode.Int(n)
	switch {
	case err == nil && (v < lo || v > hi):
		d.errs.Add(d.pos(n), "%s: want %s, got %d", what, want, v)
	case err == nil:
		return v, true
	case errors.Is(err, yamlnode.ErrRange) || n.Tag == "!!float":
		d.errs.Add(d.pos(n), "%s: want a whole number, %s, got %s", what, want, n.Value)
	default:
		d.errs.Add(d.pos(n), "%s: want a whole number, %s, got %s", what, want, yamlnode.Describe(n))
	}
	return 0, false
}

// number reads an integer or a decimal number.
func (d *yamlDoc) number(n *yaml.Node, what string) (float64, bool) {
	n = yamlnode.Resolve(n)
	v, ok := yamlnode.Float(n)
	if ok && math.IsNaN(v) {
		// YAML's .nan compares false with everything: a limit of it
		// would never be reached.
		d.errs.Add(d.pos(n), "%s: want a number, got %s, which is none", what, n.Value)
		return 0, false
	}
	if !ok {
		if _, err := strconv.ParseFloat(n.Value, 64); errors.Is(err, strconv.ErrRange) && n.Style == 0 {
			// yaml.v3 reads a number too large for a float as a
			// string: "got a string" would hide why.
			d.errs.Add(d.pos(n), "%s: number %s is out of range", what, n.Value)
			return 0, false
		}
		d.errs.Add(d.pos(n), "%s: want a number, got %s", what, yamlnode.Describe(n))
	}
	return v, ok
}

// boolean reads true or false. YAML 1.1 spellings (yes, on) are refused:
// yaml.v3 reads them as strings, and guessing would hide typos.
func (d *yamlDoc) boolean(n *yaml.Node, what string) (bool, bool) {
	n = yamlnode.Resolve(n)
	v, ok := yamlnode.Bool(n)
	if !ok {
		d.errs.Add(d.pos(n), "%s: want true or false, got %s", what, yamlnode.Describe(n))
	}
	return v, ok
}

// duration reads a Go duration such as 30m or 1h30m.
func (d *yamlDoc) duration(n *yaml.Node, what string) (time.Duration, bool) {
	n = yamlnode.Resolve(n)
	text, ok := yamlnode.Text(n)
	if !ok {
		d.errs.Add(d.pos(n), "%s: want a duration like 30m or 90s, got %s", what, yamlnode.Kind(n))
		return 0, false
	}
	v, err := time.ParseDuration(text)
	if err != nil && durationRE().MatchString(text) {
		// Well formed, but past what a duration can hold (about 292
		// years): say the range, not the form.
		d.errs.Add(d.pos(n), "%s: want more than 0s and at most %s, got %q", what, fmt.Sprintf("%dh", math.MaxInt64/int64(time.Hour)), text)
		return 0, false
	}
	if err != nil {
		d.errs.Add(d.pos(n), "%s: want a duration like 30m or 90s, got %q", what, text)
		return 0, false
	}
	if v <= 0 {
		d.errs.Add(d.pos(n), "%s: must be positive, got %s", what, text)
		return 0, false
	}
	return v, true
}

// durationRE matches what time.ParseDuration reads, whatever its size.
var durationRE = lazyre.New(`^[-+]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)

// strList reads a list of strings; a single string (YAML string, not a
// number) is accepted as a list of one. It returns the values with their
// nodes, for positions in later checks.
func (d *yamlDoc) strList(n *yaml.Node, what, want string) ([]string, []*yaml.Node) {
	n = yamlnode.Resolve(n)
	switch {
	case yamlnode.IsNull(n):
		return nil, nil
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str":
		return []string{n.Value}, []*yaml.Node{n}
	case n.Kind != yaml.SequenceNode:
		d.errs.Add(d.pos(n), "%s: want %s, got %s", what, want, yamlnode.Describe(n))
		return nil, nil
	}
	var vals []string
	var nodes []*yaml.Node
	for _, item := range n.Content {
		item = yamlnode.Resolve(item)
		v, ok := yamlnode.Text(item)
		if !ok {
			d.errs.Add(d.pos(item), "%s: want %s, got %s in the list", what, want, yamlnode.Kind(item))
			continue
		}
		vals = append(vals, v)
		nodes = append(nodes, item)
	}
	return vals, nodes
}
