package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/codemachine/codemachine/internal/yamlnode"
)

// Fanout is a foreach: that is not a plan file: one task per file a glob
// matches (Glob), or per item of a JSON or YAML list (Items, a file an
// earlier step writes). Exactly one of the two is set.
type Fanout struct {
	Glob  string
	Items string
}

// Source is what the tasks come from, for messages: the glob or the items
// file.
func (f *Fanout) Source() string {
	if f.Glob != "" {
		return f.Glob
	}
	return f.Items
}

// Item is what a fan-out task runs over. A glob's item is a file: Path and
// its blob id. A list's item is one element: Value as decoded (a map, a
// list, a string, a number, a bool or nil) and JSON, its canonical JSON,
// which is what CODEMACHINE_ITEM holds and what its fingerprint covers.
type Item struct {
	Path  string
	Hash  string
	Index int // 1-based position in the list (or in the glob's sorted matches)
	Value any
	JSON  []byte
}

// FileItem is what a prompt template sees as .Item for a glob's task.
type FileItem struct {
	Path string
}

// TemplateValue is the item as a prompt template sees it (.Item): a
// FileItem for a file, the element itself for a list's item.
func (it *Item) TemplateValue() any {
	if it == nil {
		return nil
	}
	if it.Path != "" {
		return FileItem{Path: it.Path}
	}
	return it.Value
}

// EnvValue is CODEMACHINE_ITEM: a file's path, a list item's JSON.
func (it *Item) EnvValue() string {
	if it.Path != "" {
		return it.Path
	}
	return string(it.JSON)
}

// Key is what an item's fingerprint covers besides its id: the file's blob
// id, or the item's JSON.
func (it *Item) Key() string {
	if it.Path != "" {
		return "file " + it.Hash
	}
	return "item " + string(it.JSON)
}

// FansOut reports whether s runs once per task: over a plan (Foreach) or
// over files or list items (Each).
func (s *Step) FansOut() bool {
	return s.Foreach != "" || s.Each != nil
}

// TaskSource names where a fan-out step's tasks come from: its plan file,
// items file or glob.
func (s *Step) TaskSource() string {
	if s.Each != nil {
		return s.Each.Source()
	}
	return s.Foreach
}

// TaskPlan returns the tasks of a fan-out step as a plan: the plan file's,
// or the items the step fans out over (nil when its items file is not
// written yet).
func (p *Project) TaskPlan(s *Step) *Plan {
	if s.Each != nil {
		return p.Fanouts[s.ID]
	}
	return p.Plans[s.Foreach]
}

// TaskErrs returns the problems of a fan-out step's tasks (its plan's, or
// its items file's).
func (p *Project) TaskErrs(s *Step) Errors {
	if s.Each != nil {
		return p.FanoutErrs[s.ID]
	}
	return p.PlanErrs[s.Foreach]
}

// loadFanout resolves the tasks of a step with a Fanout. A missing items
// file leaves the step without tasks (not written yet); its problems stop
// only that step.
func (p *Project) loadFanout(fsys fs.FS, s *Step) error {
	if s.Each.Glob != "" {
		tasks, err := GlobItems(fsys, s.Each.Glob)
		if err != nil {
			var errs Errors
			if errors.As(err, &errs) {
				// Each problem is a matched file, which has no position of
				// its own: it is named, at the foreach: that matched it,
				// so that the workflow line to change is a click away.
				for _, e := range errs {
					if e.Pos.Line == 0 && e.Pos.File != "" {
						e.Msg = e.Pos.File + ": " + e.Msg
						e.Pos = cmpOr(s.at.foreach, s.Pos)
					}
				}
				p.FanoutErrs[s.ID] = errs
				p.Fanouts[s.ID] = &Plan{File: s.Each.Glob}
				return nil
			}
			return err
		}
		p.Fanouts[s.ID] = newTaskPlan(s.Each.Glob, tasks)
		return nil
	}
	data, err := readDefFile(fsys, s.Each.Items)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	tasks, err := ParseItems(s.Each.Items, data)
	var errs Errors
	if errors.As(err, &errs) {
		p.FanoutErrs[s.ID] = errs
	}
	p.Fanouts[s.ID] = newTaskPlan(s.Each.Items, tasks)
	return nil
}

// UnwrittenTaskSources reports, at their foreach:, the plan and items
// files that do not exist in fsys while nothing can write them before their
// step runs: no step comes before the step (no needs, no step that outputs
// the file). A run fails such a step at once ("does not exist"). A step with
// an upstream step is left alone, whether or not that step declares the
// file: any step may write files besides its outputs. So is a step with a
// when:, which may be skipped instead.
func (p *Project) UnwrittenTaskSources(fsys fs.FS) Errors {
	var errs Errors
	if p.Graph == nil {
		return nil
	}
	for _, s := range p.Workflow.Steps {
		file := s.Foreach
		if s.Each != nil {
			file = s.Each.Items
		}
		if file == "" || s.When != nil || len(p.Graph.Upstream(s.ID)) > 0 {
			continue
		}
		if _, err := fs.Stat(fsys, file); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		errs.Add(cmpOr(s.at.foreach, s.Pos), "foreach: %s does not exist and no step runs before this one to write it: "+
			"commit it, or list it in the outputs of the step that writes it", file)
	}
	return errs
}

func newTaskPlan(file string, tasks []*Task) *Plan {
	pl := &Plan{File: file, Tasks: tasks, byID: make(map[string]*Task, len(tasks))}
	for _, t := range tasks {
		pl.byID[t.ID] = t
	}
	return pl
}

// GlobItems lists the files pattern matches in fsys as tasks, in path
// order: each task's id and title are the path, its Item the file. A path
// that cannot be a task id (it could not name a git ref: a space, "..", a
// segment starting with ".") is an error naming it.
func GlobItems(fsys fs.FS, pattern string) ([]*Task, error) {
	files, err := resolveFiles(fsys, []string{pattern}, false)
	if err != nil {
		return nil, err
	}
	tasks := make([]*Task, 0, len(files))
	var errs Errors
	for i, f := range files {
		if msg := checkTaskID(f.Path); msg != "" {
			errs.Add(Pos{File: shownPath(f.Path)}, "cannot be a task of foreach glob %q: %s", pattern, msg)
			continue
		}
		tasks = append(tasks, &Task{ID: f.Path, Title: f.Path, Item: &Item{Path: f.Path, Hash: f.Hash, Index: i + 1}})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return tasks, nil
}

// ParseItems reads a JSON or YAML list (JSON is YAML) as tasks, in list
// order. A task's id is the item's "id" field when it is a mapping with a
// string or number id, else its 1-based position in the list; its title
// is its "title" or "name" field, else its id. Problems (not a list, a
// duplicate or unusable id) come with the item's file:line:col.
func ParseItems(file string, data []byte) ([]*Task, error) {
	var errs Errors
	d := &yamlDoc{file: file, errs: &errs}
	root := d.parse(data)
	if root == nil {
		if len(errs) == 0 {
			return nil, nil // empty: no items
		}
		if e := jsonSyntax(file, data); e != nil {
			return nil, Errors{e}
		}
		return nil, errs
	}
	if line := conflictBlock(data); line > 0 {
		// A list at the top level reads its markers into its items'
		// text ("- a" and "<<<<<<< HEAD" below it are the item "a
		// <<<<<<< HEAD"): the file parses, with both sides in it.
		errs.Add(Pos{File: file, Line: line, Col: 1}, "%s", yamlnode.ConflictMessage)
		return nil, errs
	}
	root = yamlnode.Resolve(root)
	if root.Kind != yaml.SequenceNode {
		if at, ok := yamlnode.ConflictMarker(data); ok {
			// Both sides of a merge conflict read as one string.
			errs.Add(Pos{File: file, Line: at.Line, Col: at.Col}, "%s", yamlnode.ConflictMessage)
			return nil, errs
		}
		errs.Add(d.pos(root), "want a list of items, got %s", yamlnode.Describe(root))
		return nil, errs
	}
	var tasks []*Task
	first := map[string]int{}
	for i, n := range root.Content {
		if again, first := yamlnode.Repeated(yamlnode.Resolve(n)); again != nil {
			errs.Add(d.pos(again), "item %d: duplicate key %q (first at line %d)", i+1, again.Value, first.Line)
			continue
		}
		t, msg := itemTask(n, i+1)
		if msg != "" {
			errs.Add(d.at(n), "item %d: %s", i+1, msg)
			continue
		}
		if line, dup := first[t.ID]; dup {
			errs.Add(d.at(n), "item %d: duplicate id %q (first at line %d)", i+1, t.ID, line)
			continue
		}
		first[t.ID] = d.at(n).Line
		t.Line = d.at(n).Line
		tasks = append(tasks, t)
	}
	return tasks, errs.Err()
}

// jsonSyntax is the syntax error of a .json items file that YAML could
// not read either, as encoding/json places it: at the character in
// question, and at the end for a bracket or quote left open, where YAML
// names the line the list began on. nil for any other file, for text
// JSON reads (the YAML problem stands), and for a merge conflict or
// UTF-16 text, which the YAML report names.
func jsonSyntax(file string, data []byte) *Error {
	if !strings.EqualFold(path.Ext(file), ".json") || yamlnode.UTF16WithoutBOM(data) {
		return nil
	}
	if _, conflict := yamlnode.ConflictMarker(data); conflict {
		return nil
	}
	var v any
	var syn *json.SyntaxError
	if err := json.Unmarshal(data, &v); !errors.As(err, &syn) {
		return nil
	}
	msg := syn.Error()
	at := int(syn.Offset) - 1 // the offending byte is the last one read
	if msg == "unexpected end of JSON input" {
		// Ran out of text: the place is after its last character.
		at = len(bytes.TrimRight(data, " \t\r\n"))
		msg += " (is a bracket or quote left open?)"
	}
	at = max(0, min(at, len(data)))
	before := data[:at]
	line := bytes.Count(before, []byte("\n")) + 1
	col := utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return &Error{Pos: Pos{File: file, Line: line, Col: col}, Msg: "invalid JSON: " + msg}
}

// itemTask makes the task of the list item n at 1-based index i.
func itemTask(n *yaml.Node, i int) (*Task, string) {
	var v any
	if err := yamlnode.Resolve(n).Decode(&v); err != nil {
		return nil, yamlnode.DecodeMessage(err)
	}
	v = jsonable(v)
	data, err := json.Marshal(v)
	if err != nil {
		return nil, "cannot be written as JSON: " + err.Error()
	}
	id, title := strconv.Itoa(i), ""
	if m, ok := v.(map[string]any); ok {
		switch x := m["id"].(type) {
		case string:
			id = x
		case float64, int, int64, uint64:
			id = fmt.Sprint(x)
		case nil:
		default:
			return nil, "id: want a string or a number"
		}
		for _, k := range []string{"title", "name"} {
			if s, ok := m[k].(string); ok && title == "" {
				title = s
			}
		}
	}
	if msg := checkTaskID(id); msg != "" {
		return nil, fmt.Sprintf("id %q %s", id, msg)
	}
	if title == "" {
		title = id
	}
	return &Task{ID: id, Title: oneLineTitle(title), Item: &Item{Index: i, Value: v, JSON: data}}, ""
}

// oneLineTitle makes an item's title fit for a terminal and a commit's
// subject: control characters (a line break, an escape sequence's ESC)
// become spaces, and runs of spaces one. The item itself is left as
// written.
func oneLineTitle(s string) string {
	return strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f {
			return ' '
		}
		return r
	}, s)), " ")
}

// jsonable turns YAML's decoded maps with non-string keys into maps with
// string keys, so that every item is JSON.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	}
	return v
}

// checkTaskID says why id cannot be a task id ("" when it can): a task's
// key names git refs and files (refs/codemachine/failed/<step>/<task>), so
// it must be a valid ref path.
func checkTaskID(id string) string {
	switch {
	case id == "":
		return "is empty"
	case strings.ContainsAny(id, " \t~^:?*[\\"):
		return "has a character a git ref cannot hold (space, ~ ^ : ? * [ \\)"
	case strings.Contains(id, ".."), strings.Contains(id, "@{"), strings.Contains(id, "//"):
		return "has \"..\", \"@{\" or \"//\", which a git ref cannot hold"
	case strings.HasSuffix(id, "/"), strings.HasSuffix(id, "."), strings.HasPrefix(id, "/"):
		return "starts or ends with \"/\" or ends with \".\""
	}
	for _, seg := range strings.Split(id, "/") {
		if strings.HasPrefix(seg, ".") || strings.HasSuffix(seg, ".lock") {
			return "has a segment starting with \".\" or ending with \".lock\", which a git ref cannot hold"
		}
	}
	if !utf8.ValidString(id) {
		// Its record in state.yaml, which holds only text, would be kept
		// under another name: the task would never be done, and run and
		// land again at every run.
		return "is not UTF-8 text, which state.yaml (where a task's record is kept) cannot hold"
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return "has a control character"
		}
	}
	return ""
}

// shownPath is a path as a message shows it: as it is, or quoted (Go
// escapes) when it holds what is not printable text (a control character,
// a byte that is not UTF-8), so that it neither drives the terminal nor
// breaks the message's line.
func shownPath(p string) string {
	if utf8.ValidString(p) && !strings.ContainsFunc(p, unicode.IsControl) {
		return p
	}
	return strconv.Quote(p)
}

// ShownName is a step, task or revision name as a message shows it: as
// it is, or quoted (Go escapes) when it is empty, holds a space or what is
// not printable text, so that an empty name reads as "" and not as a
// missing word, and a stray space can be seen.
func ShownName(s string) string {
	if s != "" && utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return s
	}
	return strconv.Quote(s)
}
