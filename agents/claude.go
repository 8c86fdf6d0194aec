package agents

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Claude Code (`claude`), headless:
//
//	claude -p --output-format stream-json --verbose --permission-mode bypassPermissions
//	       [--model M] [--effort E] [--resume ID]      (prompt on stdin)
//
// As root, Claude refuses bypassPermissions unless IS_SANDBOX=1 (or its
// bubblewrap sandbox) says the machine is a sandbox, and no other mode
// works unattended in codemachine's worktrees: with acceptEdits (even with
// the tools allowed by name or by path) it refuses every edit under a
// .git directory as a "sensitive file", and the pool lives under
// .git/codemachine/worktrees. So as root without IS_SANDBOX=1 the run
// fails at once, saying so, rather than running an agent that can change
// nothing. The final text is result.result, usage result.usage (input
// counts cache reads and writes), the cost result.total_cost_usd, the
// session id the session_id every event carries, the model the init
// event's.
var claudeCLI = cliEngine{name: "claude", bin: "claude", pkg: "@anthropic-ai/claude-code",
	args: claudeArgs, prepare: claudePrepare, newStream: newClaudeStream, takesMCP: true,
	interactive: claudeInteractive, records: claudeRecords}

// geteuid is os.Geteuid, replaceable in tests.
var geteuid = os.Geteuid

// errClaudeRoot is the failure of a run as root outside a sandbox.
const errClaudeRoot = "as root, Claude Code runs unattended only with IS_SANDBOX=1 (it refuses bypassPermissions " +
	"otherwise, and any other mode refuses edits in the worktrees under .git/): set IS_SANDBOX=1 if this machine " +
	"is a sandbox, or run codemachine as a regular user"

// claudeCanBypass reports whether Claude accepts bypassPermissions here
// (its own rule: not root, or IS_SANDBOX=1, or its bubblewrap sandbox).
func claudeCanBypass(env []string) bool {
	return geteuid() != 0 || envValue(env, "IS_SANDBOX") == "1" || envValue(env, "CLAUDE_CODE_BUBBLEWRAP") != ""
}

func claudeArgs(req Request, _ []string) []string {
	args := []string{"-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "bypassPermissions"}
	if req.Model != "" {
		args = append(args, "--model", req.Model)
	}
	if req.Effort != "" {
		args = append(args, "--effort", req.Effort)
	}
	if req.Resume != "" {
		args = append(args, "--resume", req.Resume)
	}
	if req.MCP != nil {
		// --mcp-config takes the JSON itself as well as a file; the
		// user's own MCP servers stay (no --strict-mcp-config).
		args = append(args, "--mcp-config", claudeMCPConfig(req.MCP))
	}
	return args
}

// claudeHome is how Claude's private config dir is made: its
// transcripts (projects/) stay for --resume.
var claudeHome = homeSpec{
	config:      []string{"settings.json", "CLAUDE.md"},
	credentials: []string{".credentials.json"},
	linked:      []string{"agents", "commands", "skills", "plugins", "output-styles"},
	kept:        []string{"projects"},
}

// claudeMCPConfig is the --mcp-config JSON that adds one stdio server.
// alwaysLoad makes Claude wait for it before its first model request
// (for MCP_CONNECT_TIMEOUT_MS: see claudeMCPWait): otherwise the first
// request can go out while the server is still starting, with a
// WaitForMcpServers tool in place of the server's tools.
func claudeMCPConfig(m *MCPServer) string {
	type server struct {
		Type       string   `json:"type"`
		Command    string   `json:"command"`
		Args       []string `json:"args"`
		AlwaysLoad bool     `json:"alwaysLoad"`
	}
	cfg := map[string]map[string]server{"mcpServers": {m.Name: {Type: "stdio", Command: m.Command, Args: m.Args, AlwaysLoad: true}}}
	data, _ := json.Marshal(cfg) // strings only: no error
	return string(data)
}

// claudeMCPWait is how long (ms) a headless Claude waits for the MCP
// servers of its configuration before its first request, when the user
// has not set MCP_CONNECT_TIMEOUT_MS. Claude's default, 5 s, is shorter
// than codemachine's server can take to start on a loaded machine, and
// a step given the server (mcp: true) needs its tools; the wait ends as
// soon as the server answers, so a long bound costs nothing.
const claudeMCPWait = "120000"

// claudePrepare says IS_SANDBOX=1 in a sandboxed run and points CLAUDE_CONFIG_DIR at a private dir under req.Home,
// seeded from the user's config dir and global config file (~/.claude.json,
// or .claude.json inside CLAUDE_CONFIG_DIR when that is set), which Claude
// rewrites on every start and which concurrent runs would corrupt.
func claudePrepare(req Request, env []string) ([]string, error) {
	if req.Sandbox != nil && req.Sandbox.Landlock && envValue(env, "IS_SANDBOX") == "" {
		// codemachine's own sandbox confines the run: what Claude's
		// refusal of bypassPermissions as root asks for.
		env = setEnv(env, "IS_SANDBOX", "1")
	}
	if !claudeCanBypass(env) {
		return nil, errors.New(errClaudeRoot)
	}
	if req.MCP != nil && envValue(env, "MCP_CONNECT_TIMEOUT_MS") == "" {
		env = setEnv(env, "MCP_CONNECT_TIMEOUT_MS", claudeMCPWait)
	}
	if req.Home == "" {
		return env, nil
	}
	src := homeDir(env, "CLAUDE_CONFIG_DIR", ".claude")
	dst := filepath.Join(req.Home, "claude")
	if err := seedHome(src, dst, req.Home, claudeHome); err != nil {
		return nil, err
	}
	global := filepath.Join(envValue(env, "HOME"), ".claude.json")
	if envValue(env, "CLAUDE_CONFIG_DIR") != "" {
		global = filepath.Join(src, ".claude.json")
	}
	if envValue(env, "HOME") != "" || envValue(env, "CLAUDE_CONFIG_DIR") != "" {
		if err := copyFile(global, filepath.Join(dst, ".claude.json")); err != nil {
			return nil, err
		}
	}
	return setEnv(env, "CLAUDE_CONFIG_DIR", dst), nil
}

// claudeStream parses `--output-format stream-json --verbose`.
type claudeStream struct {
	req Request
	out outcome
	// configDir is Claude's config dir in this run; configDenied the
	// first tool error saying Claude could not write there (see user).
	configDir, configDenied string
	// usage per API message id, for a run cut off before its result
	// event: each content block of a message comes as its own event with
	// the message's usage.
	usage map[string][2]int64
	order []string
	text  string // the last assistant text, when no result came
	// tools names the tool calls by id, for their results' errors.
	tools map[string]string
}

func newClaudeStream(req Request, env []string) stream {
	return &claudeStream{req: req, usage: map[string][2]int64{}, tools: map[string]string{}, configDir: homeDir(env, "CLAUDE_CONFIG_DIR", ".claude")}
}

type claudeUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
}

func (u claudeUsage) in() int64 {
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
}

type claudeEvent struct {
	Type      string         `json:"type"`
	Subtype   string         `json:"subtype"`
	SessionID string         `json:"session_id"`
	Model     string         `json:"model"`
	Message   *claudeMessage `json:"message"`
	// result
	IsError bool `json:"is_error"`
	Denials []struct {
		ToolName string `json:"tool_name"`
	} `json:"permission_denials"`
	Result         *string     `json:"result"`
	APIErrorStatus *int        `json:"api_error_status"`
	TotalCostUSD   *float64    `json:"total_cost_usd"`
	Usage          claudeUsage `json:"usage"`
	Errors         []string    `json:"errors"`
	// system/api_retry
	ErrorStatus  *int    `json:"error_status"`
	Error        any     `json:"error"`
	RetryDelayMS float64 `json:"retry_delay_ms"`
	Attempt      int     `json:"attempt"`
	MaxRetries   int     `json:"max_retries"`
}

// claudeMessage is an assistant event's API message.
type claudeMessage struct {
	ID      string      `json:"id"`
	Model   string      `json:"model"`
	Usage   claudeUsage `json:"usage"`
	Content []struct {
		Type  string         `json:"type"`
		Text  string         `json:"text"`
		Name  string         `json:"name"`
		Input map[string]any `json:"input"`
		ID    string         `json:"id"`
		// tool_result blocks (in user events)
		ToolUseID string          `json:"tool_use_id"`
		IsError   bool            `json:"is_error"`
		Result    json.RawMessage `json:"content"`
	} `json:"content"`
}

func (s *claudeStream) stdout(line []byte) {
	var ev claudeEvent
	if !decodeEvent(line, &ev, &s.out) {
		return
	}
	if ev.SessionID != "" && s.out.res.SessionID == "" {
		s.out.res.SessionID = ev.SessionID
		emit(s.req, "session", ev.SessionID)
	}
	switch ev.Type {
	case "system":
		s.system(&ev)
	case "assistant":
		if ev.Message != nil {
			s.assistant(ev.Message)
		}
	case "user":
		if ev.Message != nil {
			s.user(ev.Message)
		}
	case "result":
		s.result(&ev)
	}
}

// system handles the init event (the model) and api_retry events.
func (s *claudeStream) system(ev *claudeEvent) {
	switch ev.Subtype {
	case "init":
		if m := claudeModel(ev.Model); m != "" {
			s.out.res.Model = m
		}
	case "api_retry":
		// Claude retries by itself; the event says why.
		s.out.retried = true
		if ev.ErrorStatus != nil {
			s.out.status = *ev.ErrorStatus
		}
		s.out.retrying = claudeErrorText(ev.Error, ev.ErrorStatus)
		emit(s.req, "error", "retrying the model request: "+s.out.retrying)
	}
}

// assistant notes an API message's usage, which counts when the run is cut
// off before its result, and passes its text and tool calls on.
func (s *claudeStream) assistant(m *claudeMessage) {
	s.out.retrying = "" // an answer came
	if m.ID != "" && m.Model != "<synthetic>" {
		if _, seen := s.usage[m.ID]; !seen {
			s.order = append(s.order, m.ID)
		}
		s.usage[m.ID] = [2]int64{m.Usage.in(), m.Usage.OutputTokens}
	}
	for _, c := range m.Content {
		switch c.Type {
		case "text":
			s.text = c.Text
			emit(s.req, "text", c.Text)
		case "tool_use":
			if c.ID != "" {
				s.tools[c.ID] = c.Name
			}
			emit(s.req, "tool", toolSummary(c.Name, c.Input, "command", "file_path", "path", "pattern", "url"))
		}
	}
}

// user looks at the tool results Claude sends back to the model for the
// sign that its config dir is read-only: Claude writes there before every
// Bash call (session-env, shell snapshots), and when it cannot, every Bash
// call fails with EACCES or EROFS on that dir while the run itself goes on
// and reports success. Every failed tool call also goes into the result's
// ToolErrors.
func (s *claudeStream) user(m *claudeMessage) {
	for _, c := range m.Content {
		if c.Type != "tool_result" || !c.IsError {
			continue
		}
		text := toolResultText(c.Result)
		s.out.res.addToolError(s.tools[c.ToolUseID], text)
		if s.configDenied != "" || s.configDir == "" {
			continue
		}
		if (strings.Contains(text, "EACCES") || strings.Contains(text, "EROFS") || strings.Contains(text, "EPERM")) &&
			strings.Contains(text, s.configDir) {
			s.configDenied = oneLine(text)
			emit(s.req, "error", "Claude Code cannot write its config dir: "+s.configDenied)
		}
	}
}

// toolResultText is a tool result's content as text: a string, or the
// text blocks of a list.
func toolResultText(raw json.RawMessage) string {
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return str
	}
	var blocks []struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &blocks)
	var b strings.Builder
	for _, bl := range blocks {
		b.WriteString(bl.Text)
	}
	return b.String()
}

// result handles the final event: text, usage, cost and how the run ended.
func (s *claudeStream) result(ev *claudeEvent) {
	for _, d := range ev.Denials {
		// Deny rules in the user's settings hold even in
		// bypassPermissions; the agent was told, and may have worked
		// around it.
		emit(s.req, "error", "permission denied: "+d.ToolName)
	}
	s.out.done = true
	s.out.ok = !ev.IsError && ev.Subtype == "success"
	if ev.Result != nil {
		s.out.res.Text = *ev.Result
	}
	s.out.res.TokensIn, s.out.res.TokensOut = ev.Usage.in(), ev.Usage.OutputTokens
	if ev.TotalCostUSD != nil {
		s.out.res.CostUSD, s.out.res.CostKnown = *ev.TotalCostUSD, true
	}
	if ev.APIErrorStatus != nil {
		s.out.status = *ev.APIErrorStatus
	} else if !s.out.ok {
		s.out.status = 0 // a retried status is not what failed in the end
	}
	if !s.out.ok {
		s.failed(ev)
	}
}

// failed takes the error message of a failed result: subtype "success"
// with is_error (an API error) carries it in result, error_* subtypes may
// carry errors. The text is then no answer.
func (s *claudeStream) failed(ev *claudeEvent) {
	msg := s.out.res.Text
	if msg == "" && len(ev.Errors) > 0 {
		msg = strings.Join(ev.Errors, "; ")
	}
	if msg == "" && ev.Subtype != "success" {
		msg = strings.ReplaceAll(ev.Subtype, "_", " ")
	}
	s.out.msg = msg
	s.out.res.Text = ""
	if s.out.status == 0 {
		s.out.status = statusIn(msg)
	}
}

func (s *claudeStream) stderr(line []byte) {
	if strings.Contains(string(line), "No conversation found") {
		s.out.noSession = true
	}
	noteStderr(&s.out, line)
}

func (s *claudeStream) outcome(int) outcome {
	out := s.out
	if !out.done {
		// Cut off: what the API messages so far used, and the last text.
		for _, id := range s.order {
			u := s.usage[id]
			out.res.TokensIn += u[0]
			out.res.TokensOut += u[1]
		}
		out.res.Text = s.text
	}
	if out.done && !out.ok && out.msg == "" {
		out.msg = out.stderrMsg
	}
	if s.configDenied != "" {
		// Claude reports success, but none of its Bash calls ran: the
		// step's work cannot be trusted to be done.
		out.ok = false
		out.class, out.classSet = Fatal, true
		out.msg = "Claude Code could not write its config dir " + s.configDir + ", so every Bash call failed (" +
			s.configDenied + "): give it a writable CLAUDE_CONFIG_DIR"
	}
	return out
}

// claudeModel is the model an init event names, as the API knows it:
// Claude Code shows a model it runs with its 1M-token context as
// "claude-opus-4-8[1m]", and sends "claude-opus-4-8".
func claudeModel(m string) string {
	if i := strings.LastIndexByte(m, '['); i > 0 && strings.HasSuffix(m, "]") {
		return m[:i]
	}
	return m
}

// claudeErrorText describes an api_retry event's error. Without a status
// the request got no HTTP answer at all: Claude then says only "unknown".
func claudeErrorText(e any, status *int) string {
	var parts []string
	if status != nil {
		parts = append(parts, "HTTP "+strconv.Itoa(*status))
	}
	if s, ok := e.(string); ok && s != "" && (s != "unknown" || status != nil) {
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "no answer from the model API: connection error or timeout"
	}
	return strings.Join(parts, " ")
}
