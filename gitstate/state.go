package gitstate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/codemachine/codemachine/internal/yamlnode"
)

// StateHeader is the comment that opens every state.yaml codemachine writes.
const StateHeader = "# Written by codemachine; committed with each step. Do not edit by hand."

// StateError is a problem in state.yaml, located by line and column.
type StateError struct {
	File      string
	Line, Col int // 0 when unknown
	Msg       string
}

// Error is "file:line:col: message" (line and column when known).
func (e *StateError) Error() string {
	switch {
	case e.Line > 0 && e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// NewState returns an empty state of the current version.
func NewState() *State {
	return &State{Version: StateVersion, Steps: map[string]*StepRecord{}}
}

// ParseState reads state.yaml. Empty content (a missing file) is an empty
// state. Anything else that is not exactly what Marshal writes, give or
// take formatting, is a *StateError pointing at the offending node.
func ParseState(file string, data []byte) (*State, error) {
	return parseState(&stateParser{file: file}, data)
}

// StateProblems lists every problem of state.yaml, each a *StateError,
// where ParseState stops at the first: validate reports them all at once.
func StateProblems(file string, data []byte) []error {
	p := &stateParser{file: file, collect: true}
	_, err := parseState(p, data)
	if err != nil {
		// A problem that stops the parse: the syntax, or a root that
		// is no mapping.
		return append(p.errs, err)
	}
	return p.errs
}

func parseState(p *stateParser, data []byte) (*State, error) {
	file := p.file
	s := NewState()
	var doc yaml.Node
	// Only the first document counts, as Unmarshal reads it.
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(file, data, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return s, nil
	}
	root := doc.Content[0]
	if yamlnode.IsNull(root) {
		return s, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, p.errf(root, "state must be a mapping, found %s", yamlnode.Value(root))
	}
	// A version key that is there but wrong (a newer one, not a number)
	// is reported as such, not also as missing.
	sawVersion := false
	err := p.mapping(root, "state", func(key string, k, v *yaml.Node) error {
		switch key {
		case "version":
			sawVersion = true
			n, err := p.int(v, key)
			if err != nil {
				return err
			}
			if n > StateVersion {
				return p.errf(v, "written by a newer codemachine (state version %d, this one reads %d); upgrade codemachine", n, StateVersion)
			}
			if n < 1 {
				return p.errf(v, "version must be %d, found %d", StateVersion, n)
			}
			s.Version = int(n)
		case "seq":
			n, err := p.int(v, key)
			if err != nil {
				return err
			}
			s.Seq = n
		case "uses":
			return p.mapping(v, "uses", func(src string, k, v *yaml.Node) error {
				commit, err := p.str(v, src)
				if err != nil {
					return err
				}
				if !isHash(commit) {
					return p.errf(v, "uses: %s: want a commit id, found %q", src, commit)
				}
				if s.Uses == nil {
					s.Uses = map[string]string{}
				}
				s.Uses[src] = commit
				return nil
			})
		case "steps":
			return p.mapping(v, "steps", func(id string, k, v *yaml.Node) error {
				rec := &StepRecord{}
				if err := p.record(v, "step "+strconv.Quote(id), &rec.RunRecord, &rec.Tasks); err != nil {
					return err
				}
				s.Steps[id] = rec
				return nil
			})
		default:
			return p.errf(k, "unknown key %q (expected version, seq, uses or steps)", key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !sawVersion {
		if p.collect {
			p.errs = append(p.errs, p.errf(root, "missing version"))
			return s, nil
		}
		return nil, p.errf(root, "missing version")
	}
	return s, nil
}

// stateParser reads state.yaml's nodes. With collect, a problem in an
// entry of a mapping is kept in errs and the parse goes on with the next
// entry (StateProblems); without, the first one ends it.
type stateParser struct {
	file    string
	collect bool
	errs    []error
}

func (p *stateParser) errf(n *yaml.Node, format string, args ...any) error {
	return &StateError{File: p.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)}
}

// mapping calls f for each key of a mapping node in order; null is an empty
// mapping; duplicate keys are errors.
func (p *stateParser) mapping(n *yaml.Node, what string, f func(key string, k, v *yaml.Node) error) error {
	if yamlnode.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return p.errf(n, "%s must be a mapping, found %s", what, yamlnode.Value(n))
	}
	for e := range yamlnode.Entries(n) {
		var err error
		switch {
		case e.Key.Kind != yaml.ScalarNode:
			err = p.errf(e.Key, "%s: keys must be plain strings", what)
		case e.Repeats != nil:
			err = p.errf(e.Key, "%s: duplicate key %q", what, e.Key.Value)
		default:
			err = f(e.Key.Value, e.Key, e.Val)
		}
		if err == nil {
			continue
		}
		if !p.collect {
			return err
		}
		p.errs = append(p.errs, err)
	}
	return nil
}

// record parses a step or task record; tasks is nil for a task record,
// which cannot nest further tasks.
func (p *stateParser) record(n *yaml.Node, what string, r *RunRecord, tasks *map[string]*RunRecord) error {
	return p.mapping(n, what, func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "fingerprint":
			r.Fingerprint, err = p.str(v, key)
		case "seq":
			r.Seq, err = p.int(v, key)
		case "finished_at":
			var s string
			if s, err = p.str(v, key); err == nil {
				r.FinishedAt, err = time.Parse(time.RFC3339Nano, s)
				if err != nil {
					err = p.errf(v, "finished_at: %q is not an RFC 3339 time (like 2026-11-24T10:15:00Z)", s)
				}
			}
		case "engine":
			r.Engine, err = p.str(v, key)
		case "model":
			r.Model, err = p.str(v, key)
		case "attempts":
			var n int64
			n, err = p.int(v, key)
			r.Attempts = int(n)
		case "tokens_in":
			r.TokensIn, err = p.int(v, key)
		case "tokens_out":
			r.TokensOut, err = p.int(v, key)
		case "cost_usd":
			r.CostUSD, err = p.float(v, key)
			r.CostKnown = true
		case "duration":
			var s string
			if s, err = p.str(v, key); err == nil {
				r.Duration, err = time.ParseDuration(s)
				if err != nil || r.Duration < 0 {
					err = p.errf(v, "duration: %q is not a duration (like 1m12s)", s)
				}
			}
		case "iteration":
			var n int64
			n, err = p.int(v, key)
			r.Iteration = int(n)
		case "output":
			r.Output, err = p.output(v)
		case "files":
			r.Files, err = p.files(v)
		case "skipped":
			b, ok := yamlnode.Bool(v)
			if !ok {
				return p.errf(v, "skipped must be true or false, found %s", yamlnode.Value(v))
			}
			r.Skipped = b
		case "tasks":
			if tasks == nil {
				return p.errf(k, "%s: unknown key %q (tasks do not nest)", what, key)
			}
			*tasks = map[string]*RunRecord{}
			err = p.mapping(v, "tasks", func(id string, _, tv *yaml.Node) error {
				tr := &RunRecord{}
				if err := p.record(tv, "task "+strconv.Quote(id), tr, nil); err != nil {
					return err
				}
				(*tasks)[id] = tr
				return nil
			})
		default:
			return p.errf(k, "%s: unknown key %q", what, key)
		}
		return err
	})
}

// output reads a record's structured output, which must be JSON: read
// later as the step's output, a hand edit that broke it would read as
// nothing, silently.
func (p *stateParser) output(n *yaml.Node) (string, error) {
	s, err := p.str(n, "output")
	if err == nil && s != "" && !json.Valid([]byte(s)) {
		return "", p.errf(n, "output must be JSON (the step's structured output), found %q", clip(s, 60))
	}
	return s, err
}

// clip shortens s to at most n bytes for a message, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// files reads a record's list of output files.
func (p *stateParser) files(n *yaml.Node) (string, error) {
	n = yamlnode.Resolve(n)
	if n.Kind != yaml.SequenceNode {
		return "", p.errf(n, "files must be a list of paths, found %s", yamlnode.Value(n))
	}
	files := make([]string, 0, len(n.Content))
	for _, f := range n.Content {
		v, ok := yamlnode.Text(f)
		if !ok || v == "" || strings.Contains(v, "\n") {
			return "", p.errf(f, "files: each must be a path, found %s", yamlnode.Value(f))
		}
		files = append(files, v)
	}
	return strings.Join(files, "\n"), nil
}

func (p *stateParser) str(n *yaml.Node, key string) (string, error) {
	v, ok := yamlnode.Text(n)
	if !ok {
		return "", p.errf(n, "%s must be a string, found %s", key, yamlnode.Value(n))
	}
	return v, nil
}

func (p *stateParser) int(n *yaml.Node, key string) (int64, error) {
	v, err := yamlnode.Int(n)
	if errors.Is(err, yamlnode.ErrRange) || err != nil && n.Tag == "!!float" && wholeDigits(n.Value) {
		// Digits past what an int64 holds (yaml.v3 tags them a float).
		return 0, p.errf(n, "%s must be a whole number from 0 to %d, found %s", key, int64(math.MaxInt64), n.Value)
	}
	if err != nil {
		return 0, p.errf(n, "%s must be a whole number, found %s", key, yamlnode.Value(n))
	}
	if v < 0 {
		return 0, p.errf(n, "%s must not be negative, found %d", key, v)
	}
	return v, nil
}

// wholeDigits reports whether s is digits alone, with an optional sign.
func wholeDigits(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func (p *stateParser) float(n *yaml.Node, key string) (float64, error) {
	v, ok := yamlnode.Float(n)
	if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, p.errf(n, "%s must be a number, found %s", key, yamlnode.Value(n))
	}
	if v < 0 {
		return 0, p.errf(n, "%s must not be negative, found %s", key, n.Value)
	}
	return v, nil
}

// syntaxError turns a yaml.v3 syntax error in data into a *StateError at
// the mistake's place (yamlnode.Locate).
func syntaxError(file string, data []byte, err error) error {
	if at, ok := yamlnode.ConflictMarker(data); ok {
		return &StateError{File: file, Line: at.Line, Col: at.Col, Msg: yamlnode.ConflictMessage}
	}
	if yamlnode.UTF16WithoutBOM(data) {
		return &StateError{File: file, Line: 1, Col: 1, Msg: yamlnode.UTF16Message}
	}
	at := yamlnode.Locate(data, err)
	return &StateError{File: file, Line: at.Line, Col: at.Col, Msg: yamlnode.Syntax(err).Msg}
}

// Marshal renders the state deterministically: fixed key order, steps and
// tasks sorted by id, FinishedAt in UTC to the second, cost_usd only when
// the cost is known.
//
// state.yaml gains a record per task and is rewritten at every landing, so
// a plan of 500 tasks would spend 12 ms a landing in the YAML encoder. The
// records are encoded once each (see fragments) and put together; the
// output is byte for byte the encoder's for the whole document, which
// Marshal falls back to where a fragment cannot stand for it.
func (s *State) Marshal() []byte {
	if out, ok := s.marshalFragments(); ok {
		return out
	}
	return s.marshalTree()
}

// marshalFragments assembles the document from the encoder's output for
// each record and key, indented to their place. ok is false where the
// document has a shape the fragments do not cover (no steps, an empty task
// map, a key the encoder writes as a complex key).
func (s *State) marshalFragments() (out []byte, ok bool) {
	ids := make([]string, 0, len(s.Steps))
	for _, id := range sortedKeys(s.Steps) {
		if s.Steps[id] != nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, false
	}
	v := s.Version
	if v == 0 {
		v = StateVersion
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s\nversion: %d\nseq: %d\n", StateHeader, v, s.Seq)
	if len(s.Uses) > 0 {
		buf.Write(encodeNode(s.usesNode()))
	}
	buf.WriteString("steps:\n")
	for _, id := range ids {
		rec := s.Steps[id]
		if !fragments.writeEntry(&buf, "  ", id, &rec.RunRecord) {
			return nil, false
		}
		if len(rec.Tasks) == 0 {
			continue
		}
		tids := make([]string, 0, len(rec.Tasks))
		for _, tid := range sortedKeys(rec.Tasks) {
			if rec.Tasks[tid] != nil {
				tids = append(tids, tid)
			}
		}
		if len(tids) == 0 {
			return nil, false
		}
		buf.WriteString("    tasks:\n")
		for _, tid := range tids {
			if !fragments.writeEntry(&buf, "      ", tid, rec.Tasks[tid]) {
				return nil, false
			}
		}
	}
	return buf.Bytes(), true
}

// fragments caches the encoder's output for records and mapping keys.
var fragments = &fragmentCache{}

// fragmentCacheSize bounds each cache; past it the cache starts over (a
// long watch session writes many records, a state holds its plan's).
const fragmentCacheSize = 8192

type fragmentCache struct {
	mu      sync.Mutex
	records map[RunRecord][]byte
	keys    map[string]string
}

// writeEntry writes "key:" at indent and the record's lines below it,
// indented two more; false when the key is not a simple key.
func (c *fragmentCache) writeEntry(buf *bytes.Buffer, indent, key string, r *RunRecord) bool {
	k, ok := c.key(key)
	if !ok {
		return false
	}
	buf.WriteString(indent)
	buf.WriteString(k)
	buf.WriteString(":\n")
	text := c.record(r)
	for len(text) > 0 {
		line, rest, _ := bytes.Cut(text, []byte("\n"))
		buf.WriteString(indent)
		buf.WriteString("  ")
		buf.Write(line)
		buf.WriteByte('\n')
		text = rest
	}
	return true
}

// key is how the encoder writes s as a mapping key, when on one line.
func (c *fragmentCache) key(s string) (string, bool) {
	c.mu.Lock()
	k, ok := c.keys[s]
	c.mu.Unlock()
	if ok {
		return k, k != ""
	}
	doc := encodeNode(&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{yamlnode.StrNode(s), yamlnode.StrNode("v")}})
	k, simple := strings.CutSuffix(string(doc), ": v\n")
	if !simple || k == "" || strings.ContainsAny(k, "\n") || strings.HasPrefix(k, "? ") {
		k = ""
	}
	c.mu.Lock()
	if c.keys == nil || len(c.keys) >= fragmentCacheSize {
		c.keys = map[string]string{}
	}
	c.keys[s] = k
	c.mu.Unlock()
	return k, k != ""
}

// record is the encoder's output for the record as a document of its own.
func (c *fragmentCache) record(r *RunRecord) []byte {
	c.mu.Lock()
	text, ok := c.records[*r]
	c.mu.Unlock()
	if ok {
		return text
	}
	text = encodeNode(recordNode(r))
	c.mu.Lock()
	if c.records == nil || len(c.records) >= fragmentCacheSize {
		c.records = map[RunRecord][]byte{}
	}
	c.records[*r] = text
	c.mu.Unlock()
	return text
}

// encodeNode encodes a node tree as Marshal's encoder does.
func encodeNode(n *yaml.Node) []byte {
	out, err := yamlnode.Encode(n)
	if err != nil {
		// The encoder fails only on malformed node trees or invalid
		// UTF-8; these trees are well formed and their strings are valid.
		panic(fmt.Sprintf("gitstate: encode state: %v", err))
	}
	return out
}

// marshalTree encodes the whole document in one go.
func (s *State) marshalTree() []byte {
	root := &yaml.Node{Kind: yaml.MappingNode}
	v := s.Version
	if v == 0 {
		v = StateVersion
	}
	yamlnode.Add(root, "version", yamlnode.IntNode(int64(v)))
	yamlnode.Add(root, "seq", yamlnode.IntNode(s.Seq))
	if len(s.Uses) > 0 {
		u := s.usesNode()
		root.Content = append(root.Content, u.Content...)
	}
	steps := &yaml.Node{Kind: yaml.MappingNode}
	for _, id := range sortedKeys(s.Steps) {
		rec := s.Steps[id]
		if rec == nil {
			continue
		}
		n := recordNode(&rec.RunRecord)
		if len(rec.Tasks) > 0 {
			tasks := &yaml.Node{Kind: yaml.MappingNode}
			for _, tid := range sortedKeys(rec.Tasks) {
				if tr := rec.Tasks[tid]; tr != nil {
					yamlnode.Add(tasks, tid, recordNode(tr))
				}
			}
			yamlnode.Add(n, "tasks", tasks)
		}
		yamlnode.Add(steps, id, n)
	}
	if len(steps.Content) == 0 {
		steps = &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	}
	yamlnode.Add(root, "steps", steps)

	return append([]byte(StateHeader+"\n"), encodeNode(root)...)
}

// usesNode is a mapping holding the uses: key and the pins.
func (s *State) usesNode() *yaml.Node {
	pins := &yaml.Node{Kind: yaml.MappingNode}
	for _, src := range sortedKeys(s.Uses) {
		yamlnode.Add(pins, src, yamlnode.StrNode(s.Uses[src]))
	}
	n := &yaml.Node{Kind: yaml.MappingNode}
	yamlnode.Add(n, "uses", pins)
	return n
}

func recordNode(r *RunRecord) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	yamlnode.Add(n, "fingerprint", yamlnode.StrNode(r.Fingerprint))
	yamlnode.Add(n, "seq", yamlnode.IntNode(r.Seq))
	if !r.FinishedAt.IsZero() {
		yamlnode.Add(n, "finished_at", yamlnode.TimeNode(r.FinishedAt.UTC().Truncate(time.Second)))
	}
	yamlnode.Add(n, "engine", yamlnode.StrNode(r.Engine))
	yamlnode.Add(n, "model", yamlnode.StrNode(r.Model))
	yamlnode.Add(n, "attempts", yamlnode.IntNode(int64(r.Attempts)))
	yamlnode.Add(n, "tokens_in", yamlnode.IntNode(r.TokensIn))
	yamlnode.Add(n, "tokens_out", yamlnode.IntNode(r.TokensOut))
	if r.CostKnown {
		yamlnode.Add(n, "cost_usd", yamlnode.FloatNode(r.CostUSD))
	}
	yamlnode.Add(n, "duration", yamlnode.StrNode(r.Duration.String()))
	if r.Skipped {
		yamlnode.Add(n, "skipped", yamlnode.BoolNode(true))
	}
	if r.Iteration > 0 {
		yamlnode.Add(n, "iteration", yamlnode.IntNode(int64(r.Iteration)))
	}
	if r.Output != "" {
		yamlnode.Add(n, "output", yamlnode.StrNode(r.Output))
	}
	if files := r.OutputFiles(); len(files) > 0 {
		list := &yaml.Node{Kind: yaml.SequenceNode}
		for _, f := range files {
			list.Content = append(list.Content, yamlnode.StrNode(f))
		}
		yamlnode.Add(n, "files", list)
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
