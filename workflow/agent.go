package workflow

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"unicode/utf8"

	"github.com/codemachine/codemachine/internal/lazyre"

	"github.com/bmatcuk/doublestar/v4"
	"go.yaml.in/yaml/v3"

	"github.com/codemachine/codemachine/internal/yamlnode"
)

// tmplName is the name the body is parsed under. Template errors carry it;
// it is replaced by the agent file's position before a user sees them.
const tmplName = "prompt"

// MaxPromptSize bounds a rendered prompt: a template that loops or globs the
// whole repository should fail clearly, not exhaust memory.
const MaxPromptSize = 16 << 20

// placeholderFuncs lets Parse check function names; Render binds the real
// ones to a file system.
var placeholderFuncs = template.FuncMap{
	"file":   func(string) (string, error) { return "", nil },
	"fileOr": func(string, string) (string, error) { return "", nil },
	"glob":   func(string) (string, error) { return "", nil },
}

// ParseAgent parses an agent file: optional YAML front matter between "---"
// lines, then a text/template body. Unknown front-matter keys are ignored, so
// Claude Code's .claude/agents/*.md files (which carry keys like color) work
// as they are. The template is parsed here so that syntax errors and unknown
// functions or fields are found by validation, not halfway through a run.
// engines are the names engine: may give, as ParseWorkflow takes them. The
// Agent is returned even with errors, holding what could be read.
func ParseAgent(file string, data []byte, engines []string) (*Agent, error) {
	var errs Errors
	a := parseAgent(file, data, engines, &errs)
	return a, errs.Err()
}

func parseAgent(file string, data []byte, engines []string, errs *Errors) *Agent {
	a := &Agent{
		Name:     strings.TrimSuffix(path.Base(file), ".md"),
		File:     file,
		Raw:      data,
		BodyLine: 1,
	}
	if at, ok := loneCRLines(file, data); ok && bytes.HasPrefix(bytes.TrimPrefix(data, []byte("\uFEFF")), []byte("---\r")) {
		// Its front matter would be prompt text, its engine and model
		// unread; a prompt alone is text whatever its line ends.
		errs.Add(at, "%s", loneCRMessage)
		return a
	}
	body := string(bytes.TrimPrefix(data, []byte("\uFEFF")))
	if front, rest, bodyLine, ok := splitFrontMatter(body); ok {
		a.frontMatter(front, engines, errs)
		body, a.BodyLine = rest, bodyLine
	} else if bodyLine < 0 {
		errs.Add(Pos{File: file, Line: 1, Col: 1}, "front matter: no closing \"---\" line")
		return a
	}
	a.Body = body
	checkBodyNUL(a, errs)
	checkBodyConflict(a, errs)
	a.compile(errs)
	return a
}

// checkBodyConflict reports an unresolved merge conflict in the body,
// which would otherwise reach the agent as its prompt, both sides and
// the markers in it.
func checkBodyConflict(a *Agent, errs *Errors) {
	var c conflictScan
	for n, text := range strings.Split(a.Body, "\n") {
		c.line(text, n+1)
	}
	if c.found > 0 {
		errs.Add(Pos{File: a.File, Line: a.BodyLine + c.found - 1, Col: 1}, "%s", yamlnode.ConflictMessage)
	}
}

// checkBodyNUL reports a NUL byte in the body: a prompt reaches an
// interactive step's CLI as a command-line argument, which cannot hold one,
// and no model is helped by one (it comes from a binary file pasted in).
func checkBodyNUL(a *Agent, errs *Errors) {
	i := strings.IndexByte(a.Body, 0)
	if i < 0 {
		return
	}
	before := a.Body[:i]
	lineStart := strings.LastIndexByte(before, '\n') + 1
	errs.Add(Pos{File: a.File, Line: a.BodyLine + strings.Count(before, "\n"), Col: utf8.RuneCountInString(before[lineStart:]) + 1},
		"a NUL byte in the prompt: an interactive step passes the prompt as a command-line argument, which cannot hold one")
}

// compile parses Body into a.tmpl, reporting syntax errors, unknown
// functions and unknown fields.
func (a *Agent) compile(errs *Errors) {
	t, err := template.New(tmplName).Funcs(placeholderFuncs).Parse(a.Body)
	if err != nil {
		errs.Add(a.parseErrorPos(err), "%s", templateMsg(err))
		return
	}
	a.tmpl = t
	checkFields(a, t, errs)
}

// splitFrontMatter splits "---\n...\n---\n" off the start of s. ok is false
// when s has no front matter; bodyLine is then 1, or -1 when the opening
// line has no closing one.
func splitFrontMatter(s string) (front, body string, bodyLine int, ok bool) {
	first, _, found := strings.Cut(s, "\n")
	if strings.TrimRight(first, " \t\r") != "---" {
		return "", s, 1, false
	}
	if !found {
		return "", "", -1, false
	}
	start := len(first) + 1
	for off, line := start, 2; off < len(s); line++ {
		text, _, _ := strings.Cut(s[off:], "\n")
		next := off + len(text) + 1
		if strings.TrimRight(text, " \t\r") == "---" {
			return s[start:off], s[min(next, len(s)):], line + 1, true
		}
		off = next
	}
	return "", "", -1, false
}

// agentKeys are the front-matter keys an agent file's parser reads (the
// cases of frontMatter's switch; the schema's keys are checked against
// them); every other key is ignored.
var agentKeys = []string{"name", "description", "engine", "model", "effort", "tools"}

func (a *Agent) frontMatter(front string, engines []string, errs *Errors) {
	// The front matter's first line is line 2 of the file.
	d := &yamlDoc{file: a.File, lineOffset: 1, engines: engines, errs: errs}
	n := d.parse([]byte(front))
	if n == nil {
		return
	}
	kvs, _ := d.mapping(n, "front matter")
	for _, kv := range kvs {
		switch kv.name {
		case "name":
			if v, ok := d.str(kv.val, "name"); ok && v != "" {
				a.Name = v
			}
		case "description":
			a.Description, _ = d.str(kv.val, "description")
		case "engine":
			if v, ok := d.str(kv.val, "engine"); ok && d.engineIn(kv.val, v, agentEngines(engines)) {
				if v == "shell" {
					errs.Add(d.at(kv.val), "engine: shell runs commands; an agent needs an agent engine")
				} else {
					a.Engine = v
				}
			}
		case "model":
			a.Model, _ = d.model(kv.val, "model")
			if a.Model == "inherit" {
				// Claude Code's agent files say "inherit" for the
				// model of the session that calls them: here, the
				// step's or the workflow's default.
				a.Model = ""
			}
		case "effort":
			a.Effort, _ = d.setting(kv.val, "effort", "an effort")
		case "tools":
			a.Tools = d.tools(kv.val)
		}
	}
}

// tools reads a list of tool names or a comma-separated string, the two
// forms Claude Code agent files use.
func (d *yamlDoc) tools(n *yaml.Node) []string {
	n = yamlnode.Resolve(n)
	if n.Kind == yaml.ScalarNode && !yamlnode.IsNull(n) {
		var out []string
		for t := range strings.SplitSeq(n.Value, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
		return out
	}
	vals, _ := d.strList(n, "tools", "a list of tool names")
	return vals
}

var (
	parseErrRE = lazyre.New(`^template: ` + tmplName + `:(\d+): (.*)$`)
	execErrRE  = lazyre.New(`(?s)^template: ` + tmplName + `:(\d+):(\d+): executing "[^"]*" at <(.*?)>: (.*)$`)
	// undefFnRE matches the parse errors that name what is undefined: a
	// function, or a variable ($x) never declared.
	undefFnRE = lazyre.New(`^(?:function "([^"]*)" not defined|undefined variable "([^"]*)")$`)
)

// parseErrorPos turns the "template: prompt:LINE:" of a parse error into a
// position in the agent file. text/template gives no column; it is taken
// from the offending name when the message has one, else the line's first
// action.
func (a *Agent) parseErrorPos(err error) Pos {
	m := parseErrRE().FindStringSubmatch(err.Error())
	if m == nil {
		return Pos{File: a.File, Line: a.BodyLine, Col: 1}
	}
	line, _ := strconv.Atoi(m[1])
	col := 1
	if text, ok := lineAt([]byte(a.Body), line); ok {
		if f := undefFnRE().FindStringSubmatch(m[2]); f != nil {
			if i := indexWord(text, f[1]+f[2]); i >= 0 {
				col = i + 1
			}
		} else if i := strings.Index(text, "{{"); i >= 0 {
			col = i + 1
		}
	}
	return Pos{File: a.File, Line: a.BodyLine + line - 1, Col: col}
}

// indexWord finds word in text where it is not part of a longer name.
func indexWord(text, word string) int {
	for from := 0; ; {
		i := strings.Index(text[from:], word)
		if i < 0 {
			return -1
		}
		i += from
		end := i + len(word)
		if (i == 0 || !isNameByte(text[i-1])) && (end == len(text) || !isNameByte(text[end])) {
			return i
		}
		from = i + 1
	}
}

func isNameByte(c byte) bool {
	return c == '_' || c == '.' || c == '$' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// templateMsg strips text/template's "template: name:line:" prefix.
func templateMsg(err error) string {
	if m := parseErrRE().FindStringSubmatch(err.Error()); m != nil {
		return m[2]
	}
	return strings.TrimPrefix(err.Error(), "template: "+tmplName+": ")
}

// offsetPos converts a byte offset in Body into a file position.
func (a *Agent) offsetPos(off int) Pos {
	off = min(max(off, 0), len(a.Body))
	before := a.Body[:off]
	line := strings.Count(before, "\n")
	col := off - (strings.LastIndexByte(before, '\n') + 1)
	return Pos{File: a.File, Line: a.BodyLine + line, Col: col + 1}
}

// missingFileError is what `file` returns for a path that does not exist.
type missingFileError struct{ path string }

func (e *missingFileError) Error() string { return fmt.Sprintf("file %q does not exist", e.path) }

// errPromptTooLarge stops rendering once MaxPromptSize is reached.
var errPromptTooLarge = fmt.Errorf("prompt is larger than %d MiB", MaxPromptSize>>20)

type limitWriter struct {
	buf bytes.Buffer
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > MaxPromptSize {
		return 0, errPromptTooLarge
	}
	return w.buf.Write(p)
}

// Render executes the agent's template with data. The functions read from
// fsys (the step's view of the repository): file PATH, fileOr PATH DEFAULT
// and glob PATTERN. Errors are *Error values positioned in the agent file.
func (a *Agent) Render(fsys fs.FS, data PromptData) (string, error) {
	t := a.tmpl
	if t == nil {
		// An Agent built in code rather than by ParseAgent.
		var errs Errors
		c := *a
		c.BodyLine = max(c.BodyLine, 1)
		c.compile(&errs)
		if err := errs.Err(); err != nil {
			return "", err
		}
		t = c.tmpl
	}
	t, err := t.Clone()
	if err != nil {
		return "", fmt.Errorf("render %s: %w", a.File, err)
	}
	t.Funcs(template.FuncMap{
		"file": func(p string) (string, error) {
			return readRepoFile(fsys, p)
		},
		"fileOr": func(p, def string) (string, error) {
			s, err := readRepoFile(fsys, p)
			var missing *missingFileError
			if errors.As(err, &missing) {
				return def, nil
			}
			return s, err
		},
		"glob": func(pattern string) (string, error) {
			return globFiles(fsys, pattern)
		},
	})
	var out limitWriter
	if err := t.Execute(&out, data); err != nil {
		return "", nilFieldError(a.execError(err), data)
	}
	return out.buf.String(), nil
}

// nilFieldError words a template's use of .Task or .Item in a prompt that
// has none (text/template says "nil pointer evaluating
// *workflow.TaskInfo.Title", naming Go types): what it is and which steps
// have one.
func nilFieldError(err error, data PromptData) error {
	var we *Error
	if !errors.As(err, &we) {
		return err
	}
	switch {
	case data.Task == nil && strings.Contains(we.Msg, "nil pointer evaluating *workflow.TaskInfo"):
		we.Msg = ".Task is nil: only a foreach step's prompt has a task"
	case data.Item == nil && (strings.HasPrefix(we.Msg, ".Item.") && strings.Contains(we.Msg, "nil pointer evaluating") ||
		strings.Contains(we.Msg, "evaluating .Item")):
		we.Msg = ".Item is nil: only a step with foreach: {glob: ...} or {items: ...} has an item"
	}
	return err
}

func (a *Agent) execError(err error) error {
	if errors.Is(err, errPromptTooLarge) {
		return &Error{Pos: Pos{File: a.File}, Msg: err.Error()}
	}
	m := execErrRE().FindStringSubmatch(err.Error())
	if m == nil {
		return &Error{Pos: Pos{File: a.File}, Msg: templateMsg(err)}
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	msg := m[4]
	var missing *missingFileError
	var pathErr *pathError
	switch {
	case errors.As(err, &missing):
		msg = missing.Error()
	case errors.As(err, &pathErr):
		msg = pathErr.Error()
	default:
		msg = m[3] + ": " + strings.TrimPrefix(msg, "error calling ")
	}
	// text/template's column is 0-based.
	return &Error{Pos: Pos{File: a.File, Line: a.BodyLine + line - 1, Col: col + 1}, Msg: msg}
}

// pathError is a file or glob argument the template may not use.
type pathError struct {
	fn, path, msg string
}

func (e *pathError) Error() string { return fmt.Sprintf("%s %q: %s", e.fn, e.path, e.msg) }

func readRepoFile(fsys fs.FS, p string) (string, error) {
	name, msg := checkPath(p)
	if msg != "" {
		return "", &pathError{fn: "file", path: p, msg: msg}
	}
	data, err := ReadRegular(fsys, name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", &missingFileError{path: p}
	case errors.Is(err, ErrNotRegular):
		return "", &pathError{fn: "file", path: p, msg: "is " + ErrNotRegular.Error()}
	case err != nil:
		return "", &pathError{fn: "file", path: p, msg: readFailure(fsys, name, err)}
	}
	return string(data), nil
}

// readFailure says why name could not be read. The file system a prompt
// reads follows a symbolic link only while it stays in the repository
// (orchestrator's promptFS): a read that failed on the way through a link
// names the link rather than the file system's "path escapes from parent".
func readFailure(fsys fs.FS, name string, err error) string {
	var link *LinkError
	if errors.As(CheckNoLink(fsys, name), &link) {
		return fmt.Sprintf("cannot be read through the symbolic link %s (to %s): a prompt reads only files inside the repository", link.Path, link.Target)
	}
	return err.Error()
}

// globFiles renders every file matching pattern, sorted by path, each under
// an HTML comment naming it so that the model can tell them apart.
func globFiles(fsys fs.FS, pattern string) (string, error) {
	clean, msg := checkGlob(pattern)
	if msg != "" {
		return "", &pathError{fn: "glob", path: pattern, msg: msg}
	}
	matches, err := doublestar.Glob(repoFS{fsys}, clean, doublestar.WithFilesOnly(), doublestar.WithNoFollow())
	if err != nil {
		return "", &pathError{fn: "glob", path: pattern, msg: err.Error()}
	}
	slices.Sort(matches)
	var b strings.Builder
	for _, m := range matches {
		data, err := ReadRegular(fsys, m)
		if err != nil {
			if isDir(fsys, m) || errors.Is(err, ErrNotRegular) || CheckNoLink(fsys, m) != nil {
				// A symlink to a directory; a named pipe; a link that
				// leads out of the repository, which a prompt does not
				// read (file names it as an error).
				continue
			}
			return "", &pathError{fn: "glob", path: pattern, msg: err.Error()}
		}
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "<!-- %s -->\n", m)
		b.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteString("\n")
		}
		if b.Len() > MaxPromptSize {
			return "", errPromptTooLarge
		}
	}
	return b.String(), nil
}

func isDir(fsys fs.FS, name string) bool {
	fi, err := fs.Stat(fsys, name)
	return err == nil && fi.IsDir()
}

// Footer is the fixed text the orchestrator appends to every agent prompt:
// where the repository is, what the step must produce, and that committing
// is codemachine's job (an agent's own commits would be folded anyway, but
// saying so saves the agent the work).
func Footer(repo string, outputs []string) string {
	var b strings.Builder
	b.WriteString("\n---\n")
	fmt.Fprintf(&b, "Repository root: %s\n", repo)
	if len(outputs) == 0 {
		b.WriteString("Outputs: no files are required.\n")
	} else {
		b.WriteString("Outputs you must produce (relative to the repository root):\n")
		for _, o := range outputs {
			fmt.Fprintf(&b, "- %s\n", o)
		}
	}
	b.WriteString("Do not commit; codemachine commits your changes.\n")
	return b.String()
}

// repoFS hides the repository's .git directory (or file, in a linked
// worktree) from globbing: it is git's, and walking it for "**" is slow.
type repoFS struct{ fsys fs.FS }

func isGitPath(name string) bool {
	first, _, _ := strings.Cut(name, "/")
	return strings.EqualFold(first, ".git")
}

func (r repoFS) Open(name string) (fs.File, error) {
	if isGitPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return r.fsys.Open(name)
}

func (r repoFS) Stat(name string) (fs.FileInfo, error) {
	if isGitPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return fs.Stat(r.fsys, name)
}

func (r repoFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if isGitPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	entries, err := fs.ReadDir(r.fsys, name)
	if name == "." {
		entries = slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return isGitPath(e.Name()) })
	}
	return entries, err
}
