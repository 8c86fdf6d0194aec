package agents

import (
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Gemini CLI (`gemini`), headless:
//
//	gemini --output-format stream-json --yolo --skip-trust [-m M] [--resume ID]   (prompt on stdin)
//
// --skip-trust trusts the worktree for the session (in an untrusted folder
// YOLO is downgraded to asking). Gemini has no effort setting; Effort is
// ignored. The final text is the assistant deltas after the last tool
// call (the result event has none), usage result.stats (the session's chat
// record for a run cut off before it), the session id and model the init
// event's (the model of result.stats that used the most tokens when the
// init event says "auto"); there is no cost. The exit code of a failed
// model request is its HTTP status mod 256 (400 -> 144, 429 -> 173); 41-55
// are Gemini's own fatal errors (authentication, input, sandbox, config,
// turn limit, tool, untrusted workspace).
var geminiCLI = cliEngine{name: "gemini", bin: "gemini", pkg: "@google/gemini-cli",
	args: geminiArgs, prepare: geminiPrepare, newStream: newGeminiStream,
	interactive: geminiInteractive, records: geminiRecords}

func geminiArgs(req Request, _ []string) []string {
	args := []string{"--output-format", "stream-json", "--yolo", "--skip-trust"}
	if req.Model != "" {
		args = append(args, "-m", req.Model)
	}
	if req.Resume != "" {
		args = append(args, "--resume", req.Resume)
	}
	return args
}

// geminiRoot is the directory holding .gemini for env: GEMINI_CLI_HOME or
// HOME.
func geminiRoot(env []string) string {
	if v := envValue(env, "GEMINI_CLI_HOME"); v != "" {
		return v
	}
	return envValue(env, "HOME")
}

// geminiHome is how Gemini's private ~/.gemini is made: its chats (tmp/)
// and the project index that names their directories stay for --resume.
var geminiHome = homeSpec{
	config:      []string{"settings.json", "installation_id", "user_id", "GEMINI.md", ".env", "trustedFolders.json"},
	credentials: []string{"oauth_creds.json", "google_accounts.json", "mcp-oauth-tokens.json"},
	linked:      []string{"commands", "extensions", "agents", "skills", "policies"},
	kept:        []string{"tmp", "projects.json", "history"},
}

// geminiPrepare gives the run a private GEMINI_CLI_HOME under req.Home,
// seeded with the user's settings, login and definitions, and removes a
// stale projects.json.lock from whichever dir the run uses: Gemini CLI
// sometimes exits holding it, and the next run would wait about 13 s.
func geminiPrepare(req Request, env []string) ([]string, error) {
	if req.Home != "" {
		root := filepath.Join(req.Home, "gemini")
		src := ""
		if r := geminiRoot(env); r != "" {
			src = filepath.Join(r, ".gemini")
		}
		if err := seedHome(src, filepath.Join(root, ".gemini"), req.Home, geminiHome); err != nil {
			return nil, err
		}
		env = setEnv(env, "GEMINI_CLI_HOME", root)
	}
	if root := geminiRoot(env); root != "" {
		if err := removeStaleLock(filepath.Join(root, ".gemini", "projects.json.lock")); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// geminiFatalExits are Gemini CLI's own exit codes for errors a retry
// would repeat.
var geminiFatalExits = map[int]string{
	41: "authentication error",
	42: "input error",
	44: "sandbox error",
	52: "configuration error",
	53: "turn limit reached",
	54: "tool execution error",
	55: "untrusted workspace",
}

// geminiStream parses `--output-format stream-json`.
type geminiStream struct {
	req    Request
	env    []string
	start  time.Time // when the run started, for its chat record
	out    outcome
	text   strings.Builder   // assistant deltas since the last tool call
	errMsg string            // the result's (or an error event's) message
	tools  map[string]string // tool_id -> tool_name, to name a failed call
}

func newGeminiStream(req Request, env []string) stream {
	if req.Effort != "" {
		emit(req, "error", "gemini has no effort setting; effort "+req.Effort+" is ignored")
	}
	return &geminiStream{req: req, env: env, start: time.Now()}
}

type geminiEvent struct {
	Type      string         `json:"type"`
	SessionID string         `json:"session_id"`
	Model     string         `json:"model"`
	Role      string         `json:"role"`
	Content   string         `json:"content"`
	ToolName  string         `json:"tool_name"`
	ToolID    string         `json:"tool_id"`
	Params    map[string]any `json:"parameters"`
	Status    string         `json:"status"`
	Severity  string         `json:"severity"`
	Message   string         `json:"message"`
	Error     *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	Stats *struct {
		InputTokens  int64 `json:"input_tokens"`
		OutputTokens int64 `json:"output_tokens"`
		// Models are the tokens per model that ran: with no -m, Gemini
		// CLI's init names "auto", and its router picks the models.
		Models map[string]struct {
			TotalTokens int64 `json:"total_tokens"`
		} `json:"models"`
	} `json:"stats"`
}

func (s *geminiStream) stdout(line []byte) {
	var ev geminiEvent
	if !decodeEvent(line, &ev, &s.out) {
		return
	}
	switch ev.Type {
	case "init":
		if ev.SessionID != "" {
			s.out.res.SessionID = ev.SessionID
			emit(s.req, "session", ev.SessionID)
		}
		if ev.Model != "" {
			s.out.res.Model = ev.Model
		}
	case "message":
		if ev.Role == "assistant" {
			s.out.retrying = "" // an answer came
			s.text.WriteString(ev.Content)
			emit(s.req, "text", ev.Content)
		}
	case "tool_use":
		s.out.retrying = ""
		s.text.Reset()
		if s.tools == nil {
			s.tools = map[string]string{}
		}
		s.tools[ev.ToolID] = ev.ToolName
		emit(s.req, "tool", toolSummary(ev.ToolName, ev.Params, "command", "file_path", "dir_path", "pattern"))
	case "tool_result":
		s.text.Reset()
		if ev.Status == "error" {
			msg := "failed"
			if ev.Error != nil && ev.Error.Message != "" {
				msg = ev.Error.Message
			}
			s.out.res.addToolError(s.tools[ev.ToolID], msg)
		}
	case "error":
		// Non-fatal conditions (a loop detected, a warning); a fatal one
		// ends in a result with status error.
		msg := ev.Message
		if ev.Error != nil && msg == "" {
			msg = ev.Error.Message
		}
		if msg != "" {
			s.errMsg = msg
			emit(s.req, "error", msg)
		}
	case "result":
		s.out.done = true
		s.out.ok = ev.Status == "success"
		if ev.Error != nil && ev.Error.Message != "" {
			s.errMsg = ev.Error.Message
		}
		if ev.Stats != nil {
			s.out.res.TokensIn, s.out.res.TokensOut = ev.Stats.InputTokens, ev.Stats.OutputTokens
			s.ranModel(&ev)
		}
	}
}

// ranModel makes the result's model one that ran when the init event
// named none of them ("auto", an alias): the one that used the most
// tokens, which is the agent's own model rather than the router's.
func (s *geminiStream) ranModel(ev *geminiEvent) {
	if _, ran := ev.Stats.Models[s.out.res.Model]; ran || len(ev.Stats.Models) == 0 {
		return
	}
	best, most := "", int64(-1)
	for m, u := range ev.Stats.Models {
		if u.TotalTokens > most || u.TotalTokens == most && m < best {
			best, most = m, u.TotalTokens
		}
	}
	s.out.res.Model = best
}

func (s *geminiStream) stderr(line []byte) {
	l := string(line)
	switch {
	case strings.Contains(l, "Error resuming session"):
		s.out.noSession = true
	case strings.HasPrefix(l, "Attempt ") && strings.Contains(l, "failed"):
		s.out.retried = true // Gemini retries on its own: "Attempt 1 failed: ..."
		s.out.retrying = geminiRetrying(l)
	}
	noteStderr(&s.out, line, "Warning:", "YOLO mode", "Ripgrep", "[STARTUP]", "status:", "Loaded cached credentials")
}

// geminiRetrying is the error of a line "Attempt 2 failed with status
// 500. Retrying with backoff... _ApiError: {"error":{...}}": the API's
// error when the line holds it, else what follows the attempt's count,
// with the status the line names.
func geminiRetrying(line string) string {
	_, rest, found := strings.Cut(line, "Retrying with backoff...")
	rest = strings.TrimSpace(rest)
	if !found || rest == "" {
		return oneLine(line)
	}
	if msg, _ := describeAPIError(rest); msg != rest {
		return oneLine(msg)
	}
	if status := statusIn(line); status != 0 {
		return oneLine("HTTP " + strconv.Itoa(status) + ": " + rest)
	}
	return oneLine(rest)
}

func (s *geminiStream) outcome(exitCode int) outcome {
	out := s.out
	out.res.Text = s.text.String()
	if !out.done && out.res.SessionID != "" && geminiRoot(s.env) != "" {
		// Cut off before its result, which alone carries the usage: the
		// session's chat record counts the model's answers so far. The
		// process has exited; nothing of the run writes the record.
		rec := geminiRecords(s.req, s.env, out.res.SessionID, s.start)
		out.res.TokensIn, out.res.TokensOut = rec.TokensIn, rec.TokensOut
	}
	if out.ok {
		return out
	}
	msg, status := describeAPIError(strings.TrimSuffix(strings.TrimPrefix(s.errMsg, "["), "]"))
	if s.errMsg == "" {
		msg = ""
	}
	if status == 0 && exitCode >= 144 && exitCode <= 255 {
		// The HTTP status mod 256: 144..255 are 400..511.
		status = exitCode + 256
	}
	if status == 0 {
		status = statusIn(msg)
	}
	out.msg, out.status = msg, status
	if what, ok := geminiFatalExits[exitCode]; ok {
		out.class, out.classSet = Fatal, true
		if out.msg == "" && out.stderrMsg == "" {
			out.msg = what
		}
	}
	return out
}
