package fakellm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// toolset builds the tools of a request: "name:param,param" items, a
// leading "~" marking a freeform custom tool.
func toolset(specs ...string) *incoming {
	in := &incoming{}
	for _, spec := range specs {
		name, params, _ := strings.Cut(spec, ":")
		t := toolSpec{name: strings.TrimPrefix(name, "~"), custom: strings.HasPrefix(name, "~"), props: map[string]bool{}}
		for _, p := range strings.Split(params, ",") {
			if p != "" {
				t.props[p] = true
			}
		}
		in.tools = append(in.tools, t)
	}
	return in
}

var (
	claudeTools   = toolset("Bash:command,description,timeout", "Edit:file_path,old_string,new_string,replace_all", "Read:file_path,limit,offset", "Write:file_path,content")
	codexTools    = toolset("exec_command:cmd,workdir,yield_time_ms", "~apply_patch", "web_search")
	codexNoPatch  = toolset("exec_command:cmd,workdir")
	codexArgv     = toolset("shell:command,workdir", "apply_patch:input")
	codexShellCmd = toolset("shell_command:command,workdir")
	geminiTools   = toolset("read_file:file_path,start_line", "replace:allow_multiple,file_path,instruction,new_string,old_string", "write_file:content,file_path", "run_shell_command:command,description,dir_path")
	opencodeTools = toolset("bash:command,timeout,workdir", "edit:filePath,newString,oldString,replaceAll", "read:filePath,limit,offset", "write:content,filePath")
	noTools       = toolset("glob:pattern")
)

func render(c outCall) string {
	if c.custom {
		return c.name + " text:" + c.text
	}
	return c.name + " " + string(mustJSON(c.args))
}

func TestTranslate(t *testing.T) {
	write := WriteFile{Path: "src/a.txt", Content: "it's\n"}
	edit := EditFile{Path: "a.txt", Old: "old line\n", New: "new 1\nnew 2\n"}
	read := ReadFile{Path: "a.txt"}
	shell := Shell{Command: "git status"}
	tests := []struct {
		name  string
		tools *incoming
		dir   string
		call  Call
		want  string
	}{
		{"claude write", claudeTools, "/repo", write, `Write {"content":"it's\n","file_path":"/repo/src/a.txt"}`},
		{"claude write absolute", claudeTools, "/repo", WriteFile{Path: "/elsewhere/x"}, `Write {"content":"","file_path":"/elsewhere/x"}`},
		{"claude write no dir", claudeTools, "", write, `Write {"content":"it's\n","file_path":"src/a.txt"}`},
		{"claude edit", claudeTools, "/repo", edit, `Edit {"file_path":"/repo/a.txt","new_string":"new 1\nnew 2\n","old_string":"old line\n"}`},
		{"claude read", claudeTools, "/repo", read, `Read {"file_path":"/repo/a.txt"}`},
		{"claude shell", claudeTools, "/repo", shell, `Bash {"command":"git status","description":"fakellm scripted shell command"}`},

		{"codex write", codexTools, "/repo", write, "apply_patch text:*** Begin Patch\n*** Add File: src/a.txt\n+it's\n*** End Patch\n"},
		{"codex write empty", codexTools, "/repo", WriteFile{Path: "e"}, "apply_patch text:*** Begin Patch\n*** Add File: e\n*** End Patch\n"},
		{"codex edit", codexTools, "/repo", edit, "apply_patch text:*** Begin Patch\n*** Update File: a.txt\n@@\n-old line\n+new 1\n+new 2\n*** End Patch\n"},
		{"codex read", codexTools, "/repo", read, `exec_command {"cmd":"cat -- 'a.txt'"}`},
		{"codex shell", codexTools, "/repo", shell, `exec_command {"cmd":"git status"}`},
		{"codex write without apply_patch", codexNoPatch, "/repo", write, `exec_command {"cmd":"mkdir -p 'src' \u0026\u0026 printf '%s' 'it'\\''s\n' \u003e 'src/a.txt'"}`},
		{"codex write top-level without apply_patch", codexNoPatch, "/repo", WriteFile{Path: "x", Content: "y"}, `exec_command {"cmd":"printf '%s' 'y' \u003e 'x'"}`},
		{"codex edit without apply_patch", codexNoPatch, "/repo", edit, "error: no offered tool can do a \"edit\" call; tools offered: exec_command"},
		{"codex function apply_patch", codexArgv, "/repo", WriteFile{Path: "p", Content: "q"}, `apply_patch {"input":"*** Begin Patch\n*** Add File: p\n+q\n*** End Patch\n"}`},
		{"codex argv shell", codexArgv, "/repo", shell, `shell {"command":["bash","-lc","git status"]}`},
		{"codex shell_command", codexShellCmd, "/repo", shell, `shell_command {"command":"git status"}`},

		{"gemini write", geminiTools, "/repo", write, `write_file {"content":"it's\n","file_path":"/repo/src/a.txt"}`},
		{"gemini edit", geminiTools, "/repo", edit, `replace {"file_path":"/repo/a.txt","instruction":"fakellm scripted edit","new_string":"new 1\nnew 2\n","old_string":"old line\n"}`},
		{"gemini read", geminiTools, "/repo", read, `read_file {"file_path":"/repo/a.txt"}`},
		{"gemini shell", geminiTools, "/repo", shell, `run_shell_command {"command":"git status","description":"fakellm scripted shell command"}`},

		{"opencode write", opencodeTools, "/repo", write, `write {"content":"it's\n","filePath":"/repo/src/a.txt"}`},
		{"opencode edit", opencodeTools, "/repo", edit, `edit {"filePath":"/repo/a.txt","newString":"new 1\nnew 2\n","oldString":"old line\n"}`},
		{"opencode read", opencodeTools, "/repo", read, `read {"filePath":"/repo/a.txt"}`},
		{"opencode shell", opencodeTools, "/repo", shell, `bash {"command":"git status"}`},

		{"raw function tool", claudeTools, "/repo", ToolCall{Name: "Bash", Args: map[string]any{"command": "ls", "timeout": 5}}, `Bash {"command":"ls","timeout":5}`},
		{"raw custom tool", codexTools, "/repo", ToolCall{Name: "apply_patch", Text: "*** Begin Patch\n*** End Patch\n"}, "apply_patch text:*** Begin Patch\n*** End Patch\n"},
		{"raw tool not offered", claudeTools, "/repo", ToolCall{Name: "Nope"}, `error: no offered tool can do a "tool" call; tools offered: Bash Edit Read Write`},

		{"no write tool", noTools, "/repo", write, `error: no offered tool can do a "write" call; tools offered: glob`},
		{"no read tool", noTools, "/repo", read, `error: no offered tool can do a "read" call; tools offered: glob`},
		{"no shell tool", noTools, "/repo", shell, `error: no offered tool can do a "shell" call; tools offered: glob`},
		{"nil call", noTools, "/repo", nil, "error: nil call"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := translator{in: tt.tools, dir: tt.dir}.translate(tt.call)
			got := ""
			if err != nil {
				got = "error: " + err.Error()
			} else {
				got = render(out)
			}
			if got != tt.want {
				t.Errorf("translate(%#v)\n got: %s\nwant: %s", tt.call, got, tt.want)
			}
		})
	}
}

// TestShellFallbackWrites runs the shell command the Codex fallback
// produces, with awkward content, and checks the file it writes.
func TestShellFallbackWrites(t *testing.T) {
	dir := t.TempDir()
	content := "quotes ' \" `backticks` $HOME %s %d\n\\ and no final newline"
	out, err := translator{in: codexNoPatch}.translate(WriteFile{Path: "deep/dir/f.txt", Content: content})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", out.args["cmd"].(string))
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	got, err := os.ReadFile(filepath.Join(dir, "deep/dir/f.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != content {
		t.Errorf("wrote %q, want %q", got, content)
	}
}

// TestUntranslatableCallAnswers400: a call no offered tool can do fails
// the request loudly (the CLI shows the error) and the log says why.
func TestUntranslatableCallAnswers400(t *testing.T) {
	s := Start(t, Script{Turns: []Turn{{Calls: []Call{EditFile{Path: "a", Old: "b"}}}}})
	body := `{"model":"m","tools":[{"type":"function","function":{"name":"glob","parameters":{"properties":{"pattern":{}}}}}],"messages":[]}`
	e := post(t, s.URL(), "/v1/chat/completions", body)
	if e.status != 400 || !strings.Contains(e.body, `no offered tool can do a \"edit\" call`) {
		t.Errorf("answer %d %s", e.status, e.body)
	}
	r := s.Requests()[0]
	if !strings.HasPrefix(r.Error, "fakellm: turn 0 call 0: no offered tool") || len(r.Calls) != 0 || r.Status != 400 {
		t.Errorf("logged %v", r)
	}
}

// TestScriptDirOverridesCwd: Script.Dir wins over the directory the prompt
// states.
func TestScriptDirOverridesCwd(t *testing.T) {
	s := Start(t, Script{Dir: "/override", Turns: []Turn{{Calls: []Call{WriteFile{Path: "f", Content: "x"}}}}})
	d := decode(t, APIAnthropic, false, post(t, s.URL(), "/v1/messages", apiCases[0].body(false)))
	if len(d.calls) != 1 || !strings.Contains(d.calls[0], `"file_path":"/override/f"`) {
		t.Errorf("calls %v", d.calls)
	}
}
