package agents

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/codemachine/codemachine/internal/lazyre"

	"go.yaml.in/yaml/v3"

	"github.com/codemachine/codemachine/internal/yamlnode"
)

// RecordingsDir is where recordings live, relative to the repository root.
const RecordingsDir = ".codemachine/recordings"

// Recording is one recorded agent run: what `codemachine run --record`
// stores and the replay engine applies (format in docs/internals.md).
type Recording struct {
	Step    string
	Task    string // "" outside foreach steps
	Engine  string // the engine that made the recording
	Model   string
	Session string
	// Fingerprint is the step's (or task's) fingerprint when it was
	// recorded: its definition, agent, model and inputs. Replaying for
	// another fingerprint (an edited spec, say) is said (Result.Warnings).
	Fingerprint string
	TokensIn    int64
	TokensOut   int64
	CostUSD     float64
	CostKnown   bool // cost_usd is written only when known
	Duration    time.Duration
	Text        string       // the agent's final message
	Files       []FileChange // the change the run made, applied in order
}

// FileChange is one file the recorded run wrote or deleted.
type FileChange struct {
	Path    string // slash-separated, relative to the repository root
	Content []byte // nil for a deleted file
	Mode    string // octal permissions ("0755"); "" = 0644
	Deleted bool
}

// RecordingPath returns where the recording of a step (or of one task of a
// foreach step) lives, relative to the repository root.
func RecordingPath(step, task string) string {
	if task == "" {
		return RecordingsDir + "/" + step + ".yaml"
	}
	return RecordingsDir + "/" + step + "/" + task + ".yaml"
}

// ReviewRecordingPath returns where the recording of a reviewer agent's
// review of a step (or task) in the given round lives, relative to the
// repository root: .codemachine/recordings/<step>.review/[<task>/]<round>.yaml
// (a step id has no dot). Its step and task are the reviewed step's; its
// text ends with the verdict.
func ReviewRecordingPath(step, task string, round int) string {
	dir := RecordingsDir + "/" + step + ".review"
	if task != "" {
		dir += "/" + task
	}
	return fmt.Sprintf("%s/%d.yaml", dir, round)
}

// RecordingError is a problem in a recording file, at a position when one
// is known (Line and Col are 1-based; 0 = unknown).
type RecordingError struct {
	File      string
	Line, Col int
	Msg       string
}

// Error says which recording is missing or unusable and how to record it again.
func (e *RecordingError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

const recordingHeader = "# codemachine recording: replayed by `codemachine run --engine replay`"

// MarshalRecording renders r as readable YAML: text as literal blocks where
// that keeps every byte, double-quoted strings with escapes where it would
// not (CR, trailing blanks, control characters), and !!binary for content
// that is not UTF-8. ParseRecording gives back exactly r.
func MarshalRecording(r *Recording) ([]byte, error) {
	m := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, v *yaml.Node) { yamlnode.Add(m, key, v) }
	if r.Step == "" {
		return nil, errors.New("marshal recording: no step")
	}
	for _, f := range []struct{ key, v string }{
		{"step", r.Step}, {"task", r.Task}, {"engine", r.Engine}, {"model", r.Model}, {"session", r.Session},
		{"fingerprint", r.Fingerprint},
	} {
		if !utf8.ValidString(f.v) {
			return nil, fmt.Errorf("marshal recording: %s %q is not valid UTF-8", f.key, f.v)
		}
		if f.v != "" {
			add(f.key, yamlnode.BytesNode([]byte(f.v)))
		}
	}
	if r.TokensIn < 0 || r.TokensOut < 0 {
		return nil, fmt.Errorf("marshal recording: negative token count (%d in, %d out)", r.TokensIn, r.TokensOut)
	}
	add("tokens_in", yamlnode.IntNode(r.TokensIn))
	add("tokens_out", yamlnode.IntNode(r.TokensOut))
	if r.CostKnown {
		if r.CostUSD < 0 || math.IsInf(r.CostUSD, 0) || math.IsNaN(r.CostUSD) {
			return nil, fmt.Errorf("marshal recording: bad cost %v", r.CostUSD)
		}
		add("cost_usd", yamlnode.FloatNode(r.CostUSD))
	}
	if r.Duration < 0 {
		return nil, fmt.Errorf("marshal recording: negative duration %s", r.Duration)
	}
	add("duration", yamlnode.StrNode(r.Duration.String()))
	if r.Text != "" {
		add("text", yamlnode.BytesNode([]byte(r.Text)))
	}
	if len(r.Files) > 0 {
		files := &yaml.Node{Kind: yaml.SequenceNode}
		for i, f := range r.Files {
			fm, err := fileChangeNode(i, f)
			if err != nil {
				return nil, err
			}
			files.Content = append(files.Content, fm)
		}
		add("files", files)
	}
	doc := &yaml.Node{Kind: yaml.DocumentNode, HeadComment: recordingHeader, Content: []*yaml.Node{m}}
	out, err := yamlnode.Encode(doc)
	if err != nil {
		return nil, fmt.Errorf("marshal recording: %w", err)
	}
	return out, nil
}

// fileChangeNode renders files[i] of a recording.
func fileChangeNode(i int, f FileChange) (*yaml.Node, error) {
	if err := checkPath(f.Path); err != nil {
		return nil, fmt.Errorf("marshal recording: files[%d]: %w", i, err)
	}
	fm := &yaml.Node{Kind: yaml.MappingNode}
	yamlnode.Add(fm, "path", yamlnode.BytesNode([]byte(f.Path)))
	if f.Deleted {
		if f.Content != nil || f.Mode != "" {
			return nil, fmt.Errorf("marshal recording: files[%d] %s: a deleted file has no content or mode", i, f.Path)
		}
		yamlnode.Add(fm, "deleted", yamlnode.BoolNode(true))
		return fm, nil
	}
	if f.Mode != "" {
		m, err := parseMode(f.Mode)
		if err != nil {
			return nil, fmt.Errorf("marshal recording: files[%d] %s: %w", i, f.Path, err)
		}
		yamlnode.Add(fm, "mode", yamlnode.StrNode(fmt.Sprintf("%04o", m)))
	}
	yamlnode.Add(fm, "content", yamlnode.BytesNode(f.Content))
	return fm, nil
}

var modeRE = lazyre.New(`^0?[0-7]{3}$`)

// parseMode parses octal permissions as recordings write them ("0755").
func parseMode(s string) (fs.FileMode, error) {
	if !modeRE().MatchString(s) {
		return 0, fmt.Errorf("bad mode %q: want octal permissions such as \"0644\" or \"0755\"", s)
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("bad mode %q: %w", s, err)
	}
	return fs.FileMode(m), nil
}

// checkPath accepts a clean, relative, slash-separated path that stays in
// the repository and out of .git (in any letter case, as git itself refuses
// on case-insensitive file systems).
func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case !utf8.ValidString(p):
		return fmt.Errorf("path %q is not valid UTF-8", p)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("path %q holds a NUL byte", p)
	case path.IsAbs(p):
		return fmt.Errorf("path %q is absolute; want a path relative to the repository root", p)
	}
	for _, el := range strings.Split(p, "/") {
		switch {
		case el == "..":
			return fmt.Errorf("path %q escapes the repository", p)
		case el == "" || el == ".":
			return fmt.Errorf("path %q is not clean (want %q)", p, strings.TrimPrefix(path.Clean("/"+p), "/"))
		case strings.EqualFold(el, ".git"):
			return fmt.Errorf("path %q points into .git", p)
		}
	}
	return nil
}

// ParseRecording parses a recording. file names it in errors, which are
// *RecordingError with the line and column of the offending node: YAML
// syntax, unknown or repeated keys, wrong types, and file paths that are
// absolute, escape the repository or point into .git.
func ParseRecording(file string, data []byte) (*Recording, error) {
	p := recParser{file: file}
	doc, extra, err := yamlnode.Documents(data)
	switch {
	case err != nil:
		if at, ok := yamlnode.ConflictMarker(data); ok {
			// libyaml's word for the markers is a missing ':' lines on.
			return nil, &RecordingError{File: file, Line: at.Line, Col: at.Col, Msg: yamlnode.ConflictMessage}
		}
		at := yamlnode.Locate(data, err)
		return nil, &RecordingError{File: file, Line: at.Line, Col: at.Col, Msg: yamlnode.Syntax(err).Msg}
	case doc == nil:
		return nil, &RecordingError{File: file, Msg: "empty recording"}
	case extra != nil:
		return nil, p.errf(extra, "more than one YAML document")
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		n := doc
		if len(doc.Content) == 1 {
			n = doc.Content[0]
		}
		return nil, p.errf(n, "want a mapping of recording fields (step, text, files, ...)")
	}
	return p.recording(doc.Content[0])
}

var (
	recordingKeys  = []string{"step", "task", "engine", "model", "session", "fingerprint", "tokens_in", "tokens_out", "cost_usd", "duration", "text", "files"}
	fileChangeKeys = []string{"path", "content", "mode", "deleted"}
)

type recParser struct{ file string }

func (p *recParser) errf(n *yaml.Node, format string, args ...any) *RecordingError {
	return &RecordingError{File: p.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)}
}

// fields walks a mapping, rejecting unknown and repeated keys, and calls
// set for each known one.
func (p *recParser) fields(m *yaml.Node, known []string, set func(key string, v *yaml.Node) error) error {
	for e := range yamlnode.Entries(m) {
		k, v := e.Key, e.Val
		if k.Kind != yaml.ScalarNode {
			return p.errf(k, "want a field name")
		}
		if e.Repeats != nil {
			return p.errf(k, "%s repeated (first at line %d)", k.Value, e.Repeats.Line)
		}
		if !slices.Contains(known, k.Value) {
			msg := fmt.Sprintf("unknown field %q", k.Value)
			if s := suggest(k.Value, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return p.errf(k, "%s", msg)
		}
		if v.Kind == yaml.AliasNode {
			return p.errf(v, "%s: YAML aliases are not supported in recordings", k.Value)
		}
		if err := set(k.Value, v); err != nil {
			return err
		}
	}
	return nil
}

func (p *recParser) recording(m *yaml.Node) (*Recording, error) {
	r := &Recording{}
	var err error
	ferr := p.fields(m, recordingKeys, func(key string, v *yaml.Node) error {
		switch key {
		case "step":
			r.Step, err = p.str(key, v)
		case "task":
			r.Task, err = p.str(key, v)
		case "engine":
			r.Engine, err = p.str(key, v)
		case "model":
			r.Model, err = p.str(key, v)
		case "session":
			r.Session, err = p.str(key, v)
		case "fingerprint":
			r.Fingerprint, err = p.str(key, v)
		case "tokens_in":
			r.TokensIn, err = p.count(key, v)
		case "tokens_out":
			r.TokensOut, err = p.count(key, v)
		case "cost_usd":
			r.CostUSD, err = p.cost(key, v)
			r.CostKnown = true
		case "duration":
			r.Duration, err = p.duration(key, v)
		case "text":
			var b []byte
			b, err = p.bytes(key, v)
			r.Text = string(b)
		case "files":
			r.Files, err = p.files(v)
		}
		return err
	})
	if ferr != nil {
		return nil, ferr
	}
	if r.Step == "" {
		return nil, p.errf(m, "missing step")
	}
	return r, nil
}

func (p *recParser) files(seq *yaml.Node) ([]FileChange, error) {
	if seq.Kind != yaml.SequenceNode {
		if seq.ShortTag() == "!!null" {
			return nil, nil
		}
		return nil, p.errf(seq, "files: want a list of files")
	}
	files := make([]FileChange, 0, len(seq.Content))
	for i, n := range seq.Content {
		f, err := p.fileChange(i, n)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// fileChange reads files[i]: a written file (content, maybe mode) or a
// deleted one.
func (p *recParser) fileChange(i int, n *yaml.Node) (FileChange, error) {
	if n.Kind != yaml.MappingNode {
		return FileChange{}, p.errf(n, "files[%d]: want a mapping (path, content, mode, deleted)", i)
	}
	var f FileChange
	var hasContent bool
	err := p.fields(n, fileChangeKeys, func(key string, v *yaml.Node) error {
		switch key {
		case "path":
			return p.path(key, v, &f.Path)
		case "content":
			hasContent = true
			return p.content(key, v, &f.Content)
		case "mode":
			return p.mode(key, v, &f.Mode)
		case "deleted":
			var err error
			f.Deleted, err = p.boolean(key, v)
			return err
		}
		return nil
	})
	switch {
	case err != nil:
		return FileChange{}, err
	case f.Path == "":
		return FileChange{}, p.errf(n, "files[%d]: missing path", i)
	case f.Deleted && (hasContent || f.Mode != ""):
		return FileChange{}, p.errf(n, "files[%d] %s: a deleted file has no content or mode", i, f.Path)
	case !f.Deleted && !hasContent:
		return FileChange{}, p.errf(n, "files[%d] %s: missing content (content: \"\" for an empty file, deleted: true for a deletion)", i, f.Path)
	}
	return f, nil
}

// path reads a file's path, which must stay in the repository.
func (p *recParser) path(key string, v *yaml.Node, path *string) error {
	s, err := p.str(key, v)
	if err != nil {
		return err
	}
	*path = s
	if err := checkPath(s); err != nil {
		return p.errf(v, "%v", err)
	}
	return nil
}

// content reads a file's content; an empty one is not nil, which stands
// for no content.
func (p *recParser) content(key string, v *yaml.Node, content *[]byte) error {
	b, err := p.bytes(key, v)
	if err != nil {
		return err
	}
	if b == nil {
		b = []byte{}
	}
	*content = b
	return nil
}

// mode reads a file's permissions, kept as four octal digits.
func (p *recParser) mode(key string, v *yaml.Node, mode *string) error {
	s, err := p.str(key, v)
	if err != nil {
		return err
	}
	m, err := parseMode(s)
	if err != nil {
		*mode = s
		return p.errf(v, "%v", err)
	}
	*mode = fmt.Sprintf("%04o", m)
	return nil
}

// scalar returns an error naming key and want when v is not a scalar.
func (p *recParser) scalar(key, want string, v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode {
		return p.errf(v, "%s: want %s, got %s", key, want, yamlnode.Kind(v))
	}
	return nil
}

// str reads a string field; a number or boolean counts as its text, null as "".
func (p *recParser) str(key string, v *yaml.Node) (string, error) {
	if err := p.scalar(key, "a string", v); err != nil {
		return "", err
	}
	switch v.ShortTag() {
	case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
		return v.Value, nil
	case "!!null":
		return "", nil
	}
	return "", p.errf(v, "%s: want a string, got %s", key, v.ShortTag())
}

// bytes reads text or !!binary content.
func (p *recParser) bytes(key string, v *yaml.Node) ([]byte, error) {
	if err := p.scalar(key, "text or !!binary", v); err != nil {
		return nil, err
	}
	if v.ShortTag() == "!!binary" {
		b, err := yamlnode.Binary(v)
		if err != nil {
			return nil, p.errf(v, "%s: bad !!binary (base64): %v", key, err)
		}
		return b, nil
	}
	s, err := p.str(key, v)
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

func (p *recParser) count(key string, v *yaml.Node) (int64, error) {
	if err := p.scalar(key, "a number", v); err != nil {
		return 0, err
	}
	n, err := yamlnode.Int(v)
	if err != nil {
		return 0, p.errf(v, "%s: want a whole number, got %q", key, v.Value)
	}
	if n < 0 {
		return 0, p.errf(v, "%s: must not be negative", key)
	}
	return n, nil
}

func (p *recParser) cost(key string, v *yaml.Node) (float64, error) {
	if err := p.scalar(key, "a number", v); err != nil {
		return 0, err
	}
	f, ok := yamlnode.Float(v)
	if !ok || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, p.errf(v, "%s: want a number of US dollars, got %q", key, v.Value)
	}
	if f < 0 {
		return 0, p.errf(v, "%s: must not be negative", key)
	}
	return f, nil
}

func (p *recParser) duration(key string, v *yaml.Node) (time.Duration, error) {
	s, err := p.str(key, v)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, p.errf(v, "%s: want a duration such as 41s or 2m3.5s, got %q", key, s)
	}
	if d < 0 {
		return 0, p.errf(v, "%s: must not be negative", key)
	}
	return d, nil
}

func (p *recParser) boolean(key string, v *yaml.Node) (bool, error) {
	if err := p.scalar(key, "true or false", v); err != nil {
		return false, err
	}
	b, ok := yamlnode.Bool(v)
	if !ok {
		return false, p.errf(v, "%s: want true or false, got %q", key, v.Value)
	}
	return b, nil
}

// suggest returns the known name closest to s when it is a likely typo
// (edit distance at most 2), "" otherwise.
func suggest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
