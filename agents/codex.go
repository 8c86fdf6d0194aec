package agents

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Codex (`codex`), headless:
//
//	codex exec --json --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox -C DIR
//	      [-m M] [-c model_reasoning_effort="E"] [resume ID] -      (prompt on stdin)
//
// The final text is the last agent_message item, usage turn.completed's
// (the thread's total, less what a resumed session had used before; the
// session's rollout when no turn completed), the session id
// thread.started's thread_id. Codex
// reports no cost, nor the model: that comes from --model or, without one,
// from config.toml's top-level model. Codex sends "error" events while it
// retries by itself ("Reconnecting... 1/5"); only turn.failed fails a run.
var codexCLI = cliEngine{name: "codex", bin: "codex", pkg: "@openai/codex",
	args: codexArgs, prepare: codexPrepare, newStream: newCodexStream, takesMCP: true,
	interactive: codexInteractive, records: codexRecords}

func codexArgs(req Request, _ []string) []string {
	args := []string{"exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"}
	if req.Dir != "" {
		args = append(args, "-C", req.Dir)
	}
	if req.Model != "" {
		args = append(args, "-m", req.Model)
	}
	if req.Effort != "" {
		args = append(args, "-c", "model_reasoning_effort="+strconv.Quote(req.Effort))
	}
	if m := req.MCP; m != nil {
		// -c values are TOML; a JSON string or list of strings is one.
		command, _ := json.Marshal(m.Command)
		list, _ := json.Marshal(append([]string{}, m.Args...))
		args = append(args, "-c", "mcp_servers."+m.Name+".command="+string(command),
			"-c", "mcp_servers."+m.Name+".args="+string(list))
	}
	if req.Resume != "" {
		args = append(args, "resume", req.Resume)
	}
	return append(args, "-") // the prompt is on stdin
}

// codexHome is the config dir Codex uses with env.
func codexHome(env []string) string { return homeDir(env, "CODEX_HOME", ".codex") }

// codexKept is what Codex's private config dir keeps between runs: its
// rollouts and the session index, for exec resume.
var codexKept = []string{"sessions", "session_index.jsonl"}

// codexPrepare points CODEX_HOME at a private dir under req.Home, seeded
// with the user's config.toml (providers, model, features), profiles,
// login (auth.json) and instructions.
func codexPrepare(req Request, env []string) ([]string, error) {
	if req.Home == "" {
		return env, nil
	}
	src := codexHome(env)
	h := homeSpec{
		config:      []string{"config.toml", "AGENTS.md", "AGENTS.override.md"},
		credentials: []string{"auth.json"},
		linked:      []string{"prompts", "rules", "skills"},
		kept:        codexKept,
	}
	if profiles, err := filepath.Glob(filepath.Join(src, "*.config.toml")); err == nil {
		for _, p := range profiles {
			h.config = append(h.config, filepath.Base(p))
		}
	}
	dst := filepath.Join(req.Home, "codex")
	if err := seedHome(src, dst, req.Home, h); err != nil {
		return nil, err
	}
	return setEnv(env, "CODEX_HOME", dst), nil
}

// codexConfigModel reads the top-level model of a Codex config.toml (""
// when there is none): the model a run without --model uses.
func codexConfigModel(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			return "" // the top-level keys come before any table
		}
		if k, v, ok := tomlString(line); ok && k == "model" {
			return v
		}
	}
	return ""
}

// tomlString parses a line `key = "value"` (a bare key and a basic or
// literal string, with an optional trailing comment): enough for the few
// settings codemachine reads from Codex's config.
func tomlString(line string) (key, value string, ok bool) {
	k, v, found := strings.Cut(line, "=")
	if !found {
		return "", "", false
	}
	key = strings.Trim(strings.TrimSpace(k), `"'`)
	v = strings.TrimSpace(v)
	if len(v) < 2 {
		return "", "", false
	}
	switch v[0] {
	case '"':
		end := strings.IndexByte(v[1:], '"')
		if end < 0 {
			return "", "", false
		}
		s, err := strconv.Unquote(v[:end+2])
		if err != nil {
			return "", "", false
		}
		return key, s, true
	case '\'':
		end := strings.IndexByte(v[1:], '\'')
		if end < 0 {
			return "", "", false
		}
		return key, v[1 : end+1], true
	}
	return "", "", false
}

// codexStream parses `codex exec --json`.
type codexStream struct {
	req       Request
	env       []string
	out       outcome
	completed bool
	failed    bool
	lastError string // the last "error" event
	// base is the session's usage before this run: turn.completed
	// reports the thread's total, which in a resumed session counts the
	// runs before this one.
	base codexTokens
}

func newCodexStream(req Request, env []string) stream {
	s := &codexStream{req: req, env: env}
	if req.Model == "" {
		s.out.res.Model = codexConfigModel(filepath.Join(codexHome(env), "config.toml"))
	}
	if req.Resume != "" {
		// Read before the run starts: no process of it writes yet.
		s.base = codexSessionTokens(env, req.Resume)
	}
	return s
}

// codexSessionTokens is the usage a session's rollout
// ($CODEX_HOME/sessions/.../rollout-...-<session>.jsonl) last recorded:
// the thread's total so far, zero when there is no such record.
func codexSessionTokens(env []string, session string) codexTokens {
	var total codexTokens
	if session == "" || strings.ContainsAny(session, `/\`) {
		return total
	}
	var path string
	_ = filepath.WalkDir(filepath.Join(codexHome(env), "sessions"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, session+".jsonl") {
			path = p
			return filepath.SkipAll
		}
		return nil
	})
	if path == "" {
		return total
	}
	forEachLine(path, func(line []byte) {
		var ev struct {
			Payload struct {
				Type string `json:"type"`
				Info *struct {
					Total codexTokens `json:"total_token_usage"`
				} `json:"info"`
			} `json:"payload"`
		}
		if json.Unmarshal(line, &ev) == nil && ev.Payload.Type == "token_count" && ev.Payload.Info != nil {
			total = ev.Payload.Info.Total
		}
	})
	return total
}

// codexItem is the item of an item.started or item.completed event.
type codexItem struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Message  string `json:"message"`
	Command  string `json:"command"`
	ExitCode *int   `json:"exit_code"`
	Changes  []struct {
		Path string `json:"path"`
		Kind string `json:"kind"`
	} `json:"changes"`
}

type codexEvent struct {
	Type     string     `json:"type"`
	ThreadID string     `json:"thread_id"`
	Message  string     `json:"message"`
	Item     *codexItem `json:"item"`
	Usage    *struct {
		InputTokens  int64 `json:"input_tokens"`
		OutputTokens int64 `json:"output_tokens"`
	} `json:"usage"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func (s *codexStream) stdout(line []byte) {
	var ev codexEvent
	if !decodeEvent(line, &ev, &s.out) {
		return
	}
	switch ev.Type {
	case "thread.started":
		if ev.ThreadID != "" {
			s.out.res.SessionID = ev.ThreadID
			emit(s.req, "session", ev.ThreadID)
		}
	case "item.started":
		s.out.retrying = "" // an answer came
		if ev.Item != nil && ev.Item.Type == "command_execution" {
			emit(s.req, "tool", oneLine("shell "+ev.Item.Command))
		}
	case "item.completed":
		s.out.retrying = ""
		if ev.Item != nil {
			s.itemCompleted(ev.Item)
		}
	case "turn.completed":
		s.completed = true
		if ev.Usage != nil {
			s.turnUsage(codexTokens{Input: ev.Usage.InputTokens, Output: ev.Usage.OutputTokens})
		}
	case "turn.failed":
		s.failed = true
		if ev.Error != nil && ev.Error.Message != "" {
			s.lastError = ev.Error.Message
		}
	case "error":
		// Sent while Codex retries on its own, and once more before
		// turn.failed; only the latter fails the run.
		if strings.HasPrefix(ev.Message, "Reconnecting") {
			s.out.retried = true
			s.out.retrying = codexRetrying(ev.Message)
		} else {
			s.lastError = ev.Message
		}
		emit(s.req, "error", ev.Message)
	}
}

// turnUsage adds a turn.completed's usage, the thread's total so far,
// less what the session had used before (base).
func (s *codexStream) turnUsage(total codexTokens) {
	in, out := total.Input-s.base.Input, total.Output-s.base.Output
	if in < 0 || out < 0 {
		// Not the total the session's record had: a count of its own.
		in, out = total.Input, total.Output
	}
	s.out.res.TokensIn += in
	s.out.res.TokensOut += out
	s.base = total
}

// itemCompleted passes on the agent's message, the files it changed and
// warnings.
func (s *codexStream) itemCompleted(it *codexItem) {
	switch it.Type {
	case "agent_message":
		s.out.res.Text = it.Text
		emit(s.req, "text", it.Text)
	case "command_execution":
		if it.ExitCode != nil && *it.ExitCode != 0 {
			s.out.res.addToolError("shell", fmt.Sprintf("%s exited with %d", it.Command, *it.ExitCode))
		}
	case "file_change":
		for _, c := range it.Changes {
			emit(s.req, "tool", c.Kind+" "+c.Path)
		}
	case "error":
		// A warning (unknown model metadata, say); the turn goes on.
		emit(s.req, "error", it.Message)
	}
}

// codexToolError reads a tool call that Codex's tool router refused or
// could not run, which no item reports: the model gets the error, and
// standard error gets "<time> ERROR codex_core::tools::router:
// error=apply_patch verification failed: ..." (a patch that does not
// apply) or "error=exec_command failed: ... rejected: ..." (a command its
// policy refuses). tool is the tool as the other errors name it.
func codexToolError(line string) (tool, msg string, ok bool) {
	_, msg, ok = strings.Cut(line, "codex_core::tools::router: error=")
	if !ok || strings.TrimSpace(msg) == "" {
		return "", "", false
	}
	tool, rest, _ := strings.Cut(msg, " ")
	switch tool {
	case "exec_command", "shell", "shell_command", "local_shell":
		return "shell", rest, true
	case "apply_patch":
		return tool, rest, true
	}
	return "", msg, true
}

// codexRetrying is the error of a "Reconnecting... 2/5 (ERROR)" event.
func codexRetrying(msg string) string {
	if i := strings.IndexByte(msg, '('); i >= 0 && strings.HasSuffix(msg, ")") {
		msg = msg[i+1 : len(msg)-1]
	}
	return oneLine(msg)
}

func (s *codexStream) stderr(line []byte) {
	if strings.Contains(string(line), "no rollout found") {
		s.out.noSession = true
	}
	if tool, msg, ok := codexToolError(string(line)); ok {
		s.out.res.addToolError(tool, msg)
	}
	noteStderr(&s.out, line, "Reading additional input from stdin", "Refusing to create helper binaries")
}

func (s *codexStream) outcome(int) outcome {
	if !s.completed && s.out.res.SessionID != "" {
		// No turn.completed, so no usage in the stream (a failed turn, a
		// run stopped): the session's record has what its requests used.
		// The process has exited; nothing of the run writes the record.
		if total := codexSessionTokens(s.env, s.out.res.SessionID); total.Input >= s.base.Input && total.Output >= s.base.Output {
			s.turnUsage(total)
		}
	}
	out := s.out
	out.done = s.completed || s.failed
	out.ok = s.completed && !s.failed
	if s.failed {
		msg, status := describeAPIError(s.lastError)
		if status == 0 {
			status = statusIn(msg)
		}
		out.msg, out.status = msg, status
	}
	return out
}
