package fakellm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ScriptError is a problem in a script file, at a position.
type ScriptError struct {
	File      string
	Line, Col int
	Msg       string
}

// Error is "file:line:col: message" (just "file: message" without a
// position).
func (e *ScriptError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// LoadScript reads a script file (YAML, or JSON, which is YAML too).
func LoadScript(path string) (Script, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Script{}, fmt.Errorf("load script: %w", err)
	}
	return ParseScript(path, data)
}

// ParseScript decodes a script file; file names it in errors, which are a
// *ScriptError with the line and column of the offending node. The format
// is described in README.md:
//
//	dir: /abs/dir            # optional
//	turns:
//	  - text: Creating src/app.txt.
//	    calls:
//	      - write: {path: src/app.txt, content: "hello\n"}
//	      - shell: git add -A && git commit -qm x
//	    usage: {input: 100, output: 20}
//	  - fail: {status: 429, retry_after: 1s, times: 1}
//	    text: DONE
func ParseScript(file string, data []byte) (Script, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Script{}, yamlError(file, err)
	}
	d := &decoder{file: file}
	var s Script
	if len(doc.Content) == 0 {
		return s, &ScriptError{File: file, Msg: "empty script: want a mapping with turns"}
	}
	root := doc.Content[0]
	d.mapping(root, map[string]func(*yaml.Node){
		"dir":   func(n *yaml.Node) { s.Dir = d.str(n) },
		"turns": func(n *yaml.Node) { s.Turns = d.turns(n) },
	})
	if d.err != nil {
		return Script{}, d.err
	}
	return s, nil
}

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: ...") into a
// ScriptError.
func yamlError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		_, rest, _ := strings.Cut(msg, ":")
		return &ScriptError{File: file, Line: line, Col: 1, Msg: strings.TrimSpace(rest)}
	}
	return &ScriptError{File: file, Msg: msg}
}

// decoder walks the YAML nodes, keeping the first error.
type decoder struct {
	file string
	err  error
}

func (d *decoder) fail(n *yaml.Node, format string, args ...any) {
	if d.err == nil {
		d.err = &ScriptError{File: d.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)}
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// mapping calls the field function of each key; unknown keys are errors
// that suggest the closest known key.
func (d *decoder) mapping(n *yaml.Node, fields map[string]func(*yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, "want a mapping, got %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fields[k.Value]
		if !ok {
			d.fail(k, "unknown key %q%s", k.Value, suggest(k.Value, fields))
			return
		}
		if seen[k.Value] {
			d.fail(k, "duplicate key %q", k.Value)
			return
		}
		seen[k.Value] = true
		f(v)
	}
}

// suggest is a " (did you mean "x"?)" for a misspelt key, or "".
func suggest(key string, fields map[string]func(*yaml.Node)) string {
	best, bestDist := "", 3
	var names []string
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if dist := editDistance(key, name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	if best == "" {
		return " (known: " + strings.Join(names, ", ") + ")"
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func (d *decoder) str(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.fail(n, "want a string, got %s", kindName(n))
		return ""
	}
	return n.Value
}

func (d *decoder) integer(n *yaml.Node) int64 {
	var v int64
	if n.Kind != yaml.ScalarNode || n.Decode(&v) != nil {
		d.fail(n, "want an integer, got %q", n.Value)
		return 0
	}
	if v < 0 {
		d.fail(n, "want a number >= 0, got %d", v)
	}
	return v
}

func (d *decoder) duration(n *yaml.Node) time.Duration {
	s := d.str(n)
	if d.err != nil {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		d.fail(n, "want a duration such as 1s or 500ms, got %q", s)
		return 0
	}
	return v
}

func (d *decoder) turns(n *yaml.Node) []Turn {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, "turns: want a list, got %s", kindName(n))
		return nil
	}
	turns := make([]Turn, 0, len(n.Content))
	for _, tn := range n.Content {
		var t Turn
		d.mapping(tn, map[string]func(*yaml.Node){
			"text":  func(v *yaml.Node) { t.Text = d.str(v) },
			"calls": func(v *yaml.Node) { t.Calls = d.calls(v) },
			"usage": func(v *yaml.Node) {
				d.mapping(v, map[string]func(*yaml.Node){
					"input":  func(v *yaml.Node) { t.Usage.Input = d.integer(v) },
					"output": func(v *yaml.Node) { t.Usage.Output = d.integer(v) },
				})
			},
			"delay": func(v *yaml.Node) { t.Delay = d.duration(v) },
			"fail":  func(v *yaml.Node) { t.Fail = d.failure(v) },
		})
		if d.err == nil {
			if err := checkTurn(t); err != nil {
				d.fail(tn, "%v", err)
			}
		}
		turns = append(turns, t)
	}
	return turns
}

func (d *decoder) failure(n *yaml.Node) *Failure {
	f := &Failure{}
	d.mapping(n, map[string]func(*yaml.Node){
		"kind": func(v *yaml.Node) {
			f.Kind = FailureKind(d.str(v))
			switch f.Kind {
			case FailStatus, FailMalformed, FailHang:
			default:
				d.fail(v, "kind: want status, malformed or hang, got %q", v.Value)
			}
		},
		"status": func(v *yaml.Node) {
			f.Status = int(d.integer(v))
			if d.err == nil && (f.Status < 400 || f.Status > 599) {
				d.fail(v, "status: %d is not an error status (400-599)", f.Status)
			}
		},
		"message":     func(v *yaml.Node) { f.Message = d.str(v) },
		"type":        func(v *yaml.Node) { f.Type = d.str(v) },
		"retry_after": func(v *yaml.Node) { f.RetryAfter = d.duration(v) },
		"times":       func(v *yaml.Node) { f.Times = int(d.integer(v)) },
	})
	return f
}

func (d *decoder) calls(n *yaml.Node) []Call {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, "calls: want a list, got %s", kindName(n))
		return nil
	}
	var calls []Call
	for _, cn := range n.Content {
		if cn.Kind != yaml.MappingNode || len(cn.Content) != 2 {
			d.fail(cn, "a call is a mapping with one key: write, edit, read, shell or tool")
			return nil
		}
		c := d.call(cn.Content[0], cn.Content[1])
		if d.err != nil {
			return nil
		}
		if err := checkCall(c); err != nil {
			d.fail(cn, "%v", err)
			return nil
		}
		calls = append(calls, c)
	}
	return calls
}

// call decodes one call; read and shell also take a plain string.
func (d *decoder) call(k, v *yaml.Node) Call {
	switch k.Value {
	case "write":
		var c WriteFile
		d.mapping(v, map[string]func(*yaml.Node){
			"path":    func(v *yaml.Node) { c.Path = d.str(v) },
			"content": func(v *yaml.Node) { c.Content = d.str(v) },
		})
		return c
	case "edit":
		var c EditFile
		d.mapping(v, map[string]func(*yaml.Node){
			"path": func(v *yaml.Node) { c.Path = d.str(v) },
			"old":  func(v *yaml.Node) { c.Old = d.str(v) },
			"new":  func(v *yaml.Node) { c.New = d.str(v) },
		})
		return c
	case "read":
		var c ReadFile
		if v.Kind == yaml.ScalarNode {
			c.Path = d.str(v)
			return c
		}
		d.mapping(v, map[string]func(*yaml.Node){"path": func(v *yaml.Node) { c.Path = d.str(v) }})
		return c
	case "shell":
		var c Shell
		if v.Kind == yaml.ScalarNode {
			c.Command = d.str(v)
			return c
		}
		d.mapping(v, map[string]func(*yaml.Node){"command": func(v *yaml.Node) { c.Command = d.str(v) }})
		return c
	case "tool":
		var c ToolCall
		d.mapping(v, map[string]func(*yaml.Node){
			"name": func(v *yaml.Node) { c.Name = d.str(v) },
			"text": func(v *yaml.Node) { c.Text = d.str(v) },
			"args": func(v *yaml.Node) {
				if v.Kind != yaml.MappingNode {
					d.fail(v, "args: want a mapping, got %s", kindName(v))
					return
				}
				var m map[string]any
				if err := v.Decode(&m); err != nil {
					d.fail(v, "args: %v", err)
					return
				}
				args, err := jsonable(m)
				if err != nil {
					d.fail(v, "args: %v", err)
					return
				}
				c.Args = args.(map[string]any)
			},
		})
		return c
	}
	d.fail(k, "unknown call %q (want write, edit, read, shell or tool)", k.Value)
	return nil
}

// jsonable converts decoded YAML into values encoding/json can marshal:
// mappings must have string keys.
func jsonable(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("mapping key %v is not a string", k)
			}
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	}
	return v, nil
}

// Validate checks what the server cannot serve: calls without the fields
// they need, failures with a non-error status, negative numbers. It reports
// the first problem.
func (s Script) Validate() error {
	for i, t := range s.Turns {
		for j, c := range t.Calls {
			if err := checkCall(c); err != nil {
				return fmt.Errorf("turn %d: call %d: %w", i, j, err)
			}
		}
		if err := checkTurn(t); err != nil {
			return fmt.Errorf("turn %d: %w", i, err)
		}
	}
	return nil
}

func checkTurn(t Turn) error {
	if t.Usage.Input < 0 || t.Usage.Output < 0 {
		return errors.New("negative usage")
	}
	if t.Delay < 0 {
		return errors.New("negative delay")
	}
	if t.Fail != nil {
		if err := checkFailure(t.Fail); err != nil {
			return fmt.Errorf("fail: %w", err)
		}
	}
	return nil
}

func checkFailure(f *Failure) error {
	switch f.kind() {
	case FailStatus:
		if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
			return fmt.Errorf("status %d is not an error status (400-599)", f.Status)
		}
	case FailMalformed, FailHang:
	default:
		return fmt.Errorf("unknown kind %q (want status, malformed or hang)", f.Kind)
	}
	if f.Times < 0 {
		return errors.New("negative times")
	}
	if f.RetryAfter < 0 {
		return errors.New("negative retry_after")
	}
	return nil
}

func checkCall(c Call) error {
	switch c := c.(type) {
	case nil:
		return errors.New("nil call")
	case WriteFile:
		if c.Path == "" {
			return errors.New("write: no path")
		}
	case EditFile:
		if c.Path == "" || c.Old == "" {
			return errors.New("edit: needs path and old")
		}
	case ReadFile:
		if c.Path == "" {
			return errors.New("read: no path")
		}
	case Shell:
		if c.Command == "" {
			return errors.New("shell: no command")
		}
	case ToolCall:
		if c.Name == "" {
			return errors.New("tool: no name")
		}
		if _, err := json.Marshal(c.Args); err != nil {
			return fmt.Errorf("tool %s: args: %w", c.Name, err)
		}
	}
	return nil
}
