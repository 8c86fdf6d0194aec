package fakellm

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// outCall is a tool call in the requesting CLI's own terms.
type outCall struct {
	id     string
	name   string
	custom bool           // freeform input: text instead of args
	args   map[string]any // function tools
	text   string         // custom tools
}

// shellDescription fills the optional "description" parameter of shell
// tools, which the CLIs show next to the command.
const shellDescription = "fakellm scripted shell command"

// translator maps neutral calls onto the tools one request offered.
type translator struct {
	in  *incoming
	dir string // directory for absolute paths; "" = leave paths as written
}

// abs makes p absolute for tools that want absolute paths, when the
// directory is known.
func (tr translator) abs(p string) string {
	if filepath.IsAbs(p) || tr.dir == "" {
		return p
	}
	return filepath.Join(tr.dir, p)
}

// has reports whether the tool is offered with all the given parameters.
func (tr translator) has(name string, params ...string) (toolSpec, bool) {
	t, ok := tr.in.tool(name)
	if !ok {
		return t, false
	}
	for _, p := range params {
		if !t.props[p] {
			return t, false
		}
	}
	return t, true
}

// fn builds a function call, adding each optional parameter only when the
// tool declares it.
func (tr translator) fn(t toolSpec, args map[string]any, optional map[string]any) outCall {
	for k, v := range optional {
		if t.props[k] {
			args[k] = v
		}
	}
	return outCall{name: t.name, args: args}
}

func (tr translator) translate(c Call) (outCall, error) {
	switch c := c.(type) {
	case WriteFile:
		return tr.write(c)
	case EditFile:
		return tr.edit(c)
	case ReadFile:
		return tr.read(c)
	case Shell:
		return tr.shell(c.Command)
	case ToolCall:
		t, ok := tr.in.tool(c.Name)
		if !ok {
			return outCall{}, tr.missing(c)
		}
		if t.custom {
			return outCall{name: t.name, custom: true, text: c.Text}, nil
		}
		args := map[string]any{}
		for k, v := range c.Args {
			args[k] = v
		}
		return outCall{name: t.name, args: args}, nil
	case nil:
		return outCall{}, fmt.Errorf("nil call")
	}
	return outCall{}, fmt.Errorf("unknown call type %T", c)
}

func (tr translator) missing(c Call) error {
	return fmt.Errorf("no offered tool can do a %q call; tools offered: %s", c.neutral(), strings.Join(tr.in.toolNames(), " "))
}

func (tr translator) write(c WriteFile) (outCall, error) {
	if t, ok := tr.has("Write", "file_path", "content"); ok { // Claude
		return tr.fn(t, map[string]any{"file_path": tr.abs(c.Path), "content": c.Content}, nil), nil
	}
	if t, ok := tr.has("write_file", "file_path", "content"); ok { // Gemini
		return tr.fn(t, map[string]any{"file_path": tr.abs(c.Path), "content": c.Content}, nil), nil
	}
	if t, ok := tr.has("write", "filePath", "content"); ok { // opencode
		return tr.fn(t, map[string]any{"filePath": tr.abs(c.Path), "content": c.Content}, nil), nil
	}
	if call, ok := tr.patch(addFilePatch(c.Path, c.Content)); ok { // Codex
		return call, nil
	}
	// Codex without apply_patch (a model slug missing from its catalog):
	// write through the shell.
	dir := path.Dir(filepath.ToSlash(c.Path))
	cmd := fmt.Sprintf("printf '%%s' %s > %s", shellQuote(c.Content), shellQuote(c.Path))
	if dir != "." && dir != "/" {
		cmd = fmt.Sprintf("mkdir -p %s && %s", shellQuote(dir), cmd)
	}
	call, err := tr.shell(cmd)
	if err != nil {
		return outCall{}, tr.missing(c)
	}
	return call, nil
}

func (tr translator) edit(c EditFile) (outCall, error) {
	if t, ok := tr.has("Edit", "file_path", "old_string", "new_string"); ok { // Claude
		return tr.fn(t, map[string]any{"file_path": tr.abs(c.Path), "old_string": c.Old, "new_string": c.New}, nil), nil
	}
	if t, ok := tr.has("replace", "file_path", "old_string", "new_string"); ok { // Gemini
		return tr.fn(t, map[string]any{"file_path": tr.abs(c.Path), "old_string": c.Old, "new_string": c.New},
			map[string]any{"instruction": "fakellm scripted edit"}), nil
	}
	if t, ok := tr.has("edit", "filePath", "oldString", "newString"); ok { // opencode
		return tr.fn(t, map[string]any{"filePath": tr.abs(c.Path), "oldString": c.Old, "newString": c.New}, nil), nil
	}
	if call, ok := tr.patch(updateFilePatch(c.Path, c.Old, c.New)); ok { // Codex
		return call, nil
	}
	return outCall{}, tr.missing(c)
}

func (tr translator) read(c ReadFile) (outCall, error) {
	if t, ok := tr.has("Read", "file_path"); ok { // Claude
		return tr.fn(t, map[string]any{"file_path": tr.abs(c.Path)}, nil), nil
	}
	if t, ok := tr.has("read_file", "file_path"); ok { // Gemini
		return tr.fn(t, map[string]any{"file_path": tr.abs(c.Path)}, nil), nil
	}
	if t, ok := tr.has("read", "filePath"); ok { // opencode
		return tr.fn(t, map[string]any{"filePath": tr.abs(c.Path)}, nil), nil
	}
	call, err := tr.shell("cat -- " + shellQuote(c.Path))
	if err != nil {
		return outCall{}, tr.missing(c)
	}
	return call, nil
}

func (tr translator) shell(cmd string) (outCall, error) {
	desc := map[string]any{"description": shellDescription}
	if t, ok := tr.has("Bash", "command"); ok { // Claude
		return tr.fn(t, map[string]any{"command": cmd}, desc), nil
	}
	if t, ok := tr.has("run_shell_command", "command"); ok { // Gemini
		return tr.fn(t, map[string]any{"command": cmd}, desc), nil
	}
	if t, ok := tr.has("bash", "command"); ok { // opencode
		return tr.fn(t, map[string]any{"command": cmd}, desc), nil
	}
	if t, ok := tr.has("exec_command", "cmd"); ok { // Codex (unified exec)
		return tr.fn(t, map[string]any{"cmd": cmd}, nil), nil
	}
	if t, ok := tr.has("shell_command", "command"); ok { // Codex (shell_command variant)
		return tr.fn(t, map[string]any{"command": cmd}, nil), nil
	}
	if t, ok := tr.has("shell", "command"); ok { // Codex (argv variant)
		return tr.fn(t, map[string]any{"command": []any{"bash", "-lc", cmd}}, nil), nil
	}
	return outCall{}, tr.missing(Shell{Command: cmd})
}

// patch calls Codex's apply_patch, as a freeform custom tool or as a
// function tool taking {"input": patch}, whichever is offered.
func (tr translator) patch(p string) (outCall, bool) {
	t, ok := tr.in.tool("apply_patch")
	if !ok {
		return outCall{}, false
	}
	if t.custom {
		return outCall{name: t.name, custom: true, text: p}, true
	}
	if t.props["input"] {
		return outCall{name: t.name, args: map[string]any{"input": p}}, true
	}
	return outCall{}, false
}

// addFilePatch is an apply_patch "Add File" hunk. apply_patch ends every
// line with a newline, so content without a final newline gets one.
func addFilePatch(p, content string) string {
	var b strings.Builder
	b.WriteString("*** Begin Patch\n*** Add File: " + p + "\n")
	for _, line := range patchLines(content) {
		b.WriteString("+" + line + "\n")
	}
	b.WriteString("*** End Patch\n")
	return b.String()
}

// updateFilePatch replaces the lines of old by the lines of new.
func updateFilePatch(p, old, new string) string {
	var b strings.Builder
	b.WriteString("*** Begin Patch\n*** Update File: " + p + "\n@@\n")
	for _, line := range patchLines(old) {
		b.WriteString("-" + line + "\n")
	}
	for _, line := range patchLines(new) {
		b.WriteString("+" + line + "\n")
	}
	b.WriteString("*** End Patch\n")
	return b.String()
}

func patchLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// shellQuote quotes s for sh as one word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
