package agents

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// opencode (`opencode`), headless:
//
//	opencode run --format json --auto [-m PROVIDER/MODEL] [--variant E] [--session ID] --dir DIR
//	         (prompt on stdin, which also keeps opencode from wrapping it in quotes)
//
// --auto approves the permissions the user's config leaves at "ask" (an
// unattended run has no one to ask); explicit denials stand. Effort maps to
// --variant, the model's reasoning variant. The final text is the text of
// the last step that had any, usage and cost the sums over step_finish
// parts (the cost is known only when the model config prices it: a zero sum
// is reported as unknown), the session id the sessionID every event
// carries.
var opencodeCLI = cliEngine{name: "opencode", bin: "opencode", pkg: "opencode-ai",
	args: opencodeArgs, prepare: opencodePrepare, newStream: newOpencodeStream, takesMCP: true,
	interactive: opencodeInteractive}

func opencodeArgs(req Request, _ []string) []string {
	args := []string{"run", "--format", "json", "--auto"}
	if req.Model != "" {
		args = append(args, "-m", req.Model)
	}
	if req.Effort != "" {
		args = append(args, "--variant", req.Effort)
	}
	if req.Resume != "" {
		args = append(args, "--session", req.Resume)
	}
	if req.Dir != "" {
		args = append(args, "--dir", req.Dir)
	}
	return args
}

// opencodePrepare gives the run private data and state dirs under
// req.Home (XDG_DATA_HOME, XDG_STATE_HOME): opencode keeps its session
// database and its per-project snapshot repositories there, which runs in
// several worktrees of one repository would share. The user's login
// (auth.json, mcp-auth.json) is copied in and the tools opencode
// downloaded (bin/) are linked. Its configuration is read from the user's
// XDG_CONFIG_HOME, and its cache is the user's, unless the run is
// sandboxed: opencode writes both (plugin packages, the models list),
// which the sandbox keeps read-only, so they get private dirs too, the
// config made from the user's afresh before every run and the cache
// emptied.
func opencodePrepare(req Request, env []string) ([]string, error) {
	if err := opencodeModel(req.Model); err != nil {
		return nil, err
	}
	if req.MCP != nil {
		var err error
		if env, err = opencodeMCP(req.MCP, env); err != nil {
			return nil, err
		}
	}
	if req.Home == "" {
		return env, nil
	}
	root := filepath.Join(req.Home, "opencode")
	data := filepath.Join(root, "data")
	if err := seedHome(opencodeDir(env, "XDG_DATA_HOME", filepath.Join(".local", "share")),
		filepath.Join(data, "opencode"), req.Home, opencodeData); err != nil {
		return nil, err
	}
	if req.Sandbox != nil && req.Sandbox.Landlock {
		config, cache := filepath.Join(root, "config"), filepath.Join(root, "cache")
		if err := seedHome(opencodeDir(env, "XDG_CONFIG_HOME", ".config"), filepath.Join(config, "opencode"), req.Home, opencodeConfig); err != nil {
			return nil, err
		}
		if err := seedHome("", cache, req.Home, homeSpec{}); err != nil {
			return nil, err
		}
		env = setEnv(setEnv(env, "XDG_CONFIG_HOME", config), "XDG_CACHE_HOME", cache)
	}
	env = setEnv(env, "XDG_DATA_HOME", data)
	return setEnv(env, "XDG_STATE_HOME", filepath.Join(root, "state")), nil
}

// opencodeModel checks that a model is named as opencode needs it,
// PROVIDER/MODEL: it reads "sonnet" as provider "sonnet" without a model,
// and its run then fails with only "UnknownError: Unexpected server
// error", which names neither the model nor the cause.
func opencodeModel(model string) error {
	if model == "" {
		return nil
	}
	if provider, name, ok := strings.Cut(model, "/"); !ok || provider == "" || name == "" {
		return fmt.Errorf("model %q is not one opencode can run: opencode names models PROVIDER/MODEL "+
			"(anthropic/claude-sonnet-4-5, openai/gpt-5, or a provider of its configuration)", model)
	}
	return nil
}

// opencodeData is how opencode's private data dir is made: its session
// database and per-project snapshots stay for --session.
var opencodeData = homeSpec{
	credentials: []string{"auth.json", "mcp-auth.json"},
	linked:      []string{"bin"},
	kept:        []string{"opencode.db", "opencode.db-wal", "opencode.db-shm", "storage", "snapshot"},
}

// opencodeConfig is how a sandboxed run's opencode config dir is made.
var opencodeConfig = homeSpec{
	config: []string{"opencode.json", "opencode.jsonc", "config.json", "AGENTS.md"},
	linked: []string{"agent", "agents", "command", "commands", "mode", "modes", "plugin", "plugins",
		"tool", "tools", "themes"},
}

// opencodeDir is the user's opencode dir under the XDG base dir key
// (default $HOME/rel), "" when neither is set.
func opencodeDir(env []string, key, rel string) string {
	base := homeDir(env, key, rel)
	if base == "" {
		return ""
	}
	return filepath.Join(base, "opencode")
}

// opencodeMCP adds a local MCP server to the configuration opencode reads
// from OPENCODE_CONFIG_CONTENT (merged over its config files), keeping
// what the variable already held.
func opencodeMCP(m *MCPServer, env []string) ([]string, error) {
	cfg := map[string]any{}
	if content := envValue(env, "OPENCODE_CONFIG_CONTENT"); strings.TrimSpace(content) != "" {
		if err := json.Unmarshal([]byte(content), &cfg); err != nil {
			return nil, fmt.Errorf("OPENCODE_CONFIG_CONTENT is not a JSON object, so the MCP server of mcp: true cannot be added to it: %w", err)
		}
	}
	servers, _ := cfg["mcp"].(map[string]any)
	if servers == nil {
		servers = map[string]any{}
	}
	servers[m.Name] = map[string]any{"type": "local", "command": append([]string{m.Command}, m.Args...), "enabled": true}
	cfg["mcp"] = servers
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("opencode MCP configuration: %w", err)
	}
	return setEnv(env, "OPENCODE_CONFIG_CONTENT", string(data)), nil
}

// opencodeStream parses `opencode run --format json`.
type opencodeStream struct {
	req        Request
	out        outcome
	step       strings.Builder // text parts of the current step
	lastText   string          // text of the last step that had any
	finished   bool            // a step_finish was seen
	lastReason string          // its reason
	failed     bool
	cost       float64
}

func newOpencodeStream(req Request, env []string) stream {
	s := &opencodeStream{req: req}
	if req.Model == "" {
		// opencode's events do not name the model; without -m it runs
		// the configuration's.
		s.out.res.Model = opencodeInlineModel(env)
	}
	return s
}

// opencodeInlineModel is the model of the configuration opencode reads from
// OPENCODE_CONFIG_CONTENT, which overrides its config files ("" when it
// names none). The files themselves are merged from several places
// (global, project, .opencode dirs): a model they give stays unknown.
func opencodeInlineModel(env []string) string {
	var cfg struct {
		Model string `json:"model"`
	}
	if json.Unmarshal([]byte(envValue(env, "OPENCODE_CONFIG_CONTENT")), &cfg) != nil {
		return ""
	}
	if err := opencodeModel(cfg.Model); err != nil {
		return ""
	}
	return cfg.Model
}

type opencodeEvent struct {
	Type      string         `json:"type"`
	SessionID string         `json:"sessionID"`
	Part      *opencodePart  `json:"part"`
	Error     *opencodeError `json:"error"`
}

// opencodePart is the part of a text, tool_use or step_finish event.
type opencodePart struct {
	Type   string `json:"type"`
	Text   string `json:"text"`
	Tool   string `json:"tool"`
	Reason string `json:"reason"`
	State  *struct {
		Status string         `json:"status"`
		Input  map[string]any `json:"input"`
		Error  string         `json:"error"` // a failed call's (status error)
	} `json:"state"`
	Tokens *struct {
		Input     int64 `json:"input"`
		Output    int64 `json:"output"`
		Reasoning int64 `json:"reasoning"`
		Cache     struct {
			Read  int64 `json:"read"`
			Write int64 `json:"write"`
		} `json:"cache"`
	} `json:"tokens"`
	Cost float64 `json:"cost"`
}

// opencodeError is the error of an error event.
type opencodeError struct {
	Name string `json:"name"`
	Data struct {
		Message         string            `json:"message"`
		StatusCode      int               `json:"statusCode"`
		IsRetryable     bool              `json:"isRetryable"`
		ResponseHeaders map[string]string `json:"responseHeaders"`
		ResponseBody    string            `json:"responseBody"`
	} `json:"data"`
}

func (s *opencodeStream) stdout(line []byte) {
	var ev opencodeEvent
	if !decodeEvent(line, &ev, &s.out) {
		return
	}
	if ev.SessionID != "" && s.out.res.SessionID == "" {
		s.out.res.SessionID = ev.SessionID
		emit(s.req, "session", ev.SessionID)
	}
	p := ev.Part
	switch ev.Type {
	case "step_start":
		s.step.Reset()
	case "text":
		if p != nil && p.Text != "" {
			s.text(p.Text)
		}
	case "tool_use":
		if p != nil && p.State != nil {
			emit(s.req, "tool", toolSummary(p.Tool, p.State.Input, "command", "filePath", "path", "pattern"))
			if p.State.Status == "error" {
				s.out.res.addToolError(p.Tool, p.State.Error)
			}
		}
	case "step_finish":
		if p != nil {
			s.stepFinish(p)
		}
	case "error":
		s.errorEvent(ev.Error)
	}
}

// text adds a text part to the current step's text.
func (s *opencodeStream) text(text string) {
	if s.step.Len() > 0 {
		s.step.WriteString("\n")
	}
	s.step.WriteString(text)
	s.lastText = s.step.String()
	emit(s.req, "text", text)
}

// stepFinish adds up a finished step's tokens and cost.
func (s *opencodeStream) stepFinish(p *opencodePart) {
	s.finished, s.lastReason = true, p.Reason
	if t := p.Tokens; t != nil {
		s.out.res.TokensIn += t.Input + t.Cache.Read + t.Cache.Write
		s.out.res.TokensOut += t.Output + t.Reasoning
	}
	s.cost += p.Cost
}

// errorEvent takes what an error event says of the failure: a message with the
// HTTP status and the API's error type when known, whether opencode would
// retry, and the delay the API asked for.
func (s *opencodeStream) errorEvent(e *opencodeError) {
	s.failed = true
	if e == nil {
		s.out.msg = "error event without details"
		return
	}
	msg := e.Data.Message
	if msg == "" {
		msg = e.Name
	}
	switch ae, ok := parseAPIError(e.Data.ResponseBody); {
	case ok:
		// The body names the API's error type (invalid_request_error,
		// rate_limit_error), which the message alone does not.
		msg = apiErrorLine(e.Data.StatusCode, ae.kind, ae.msg)
	case e.Data.StatusCode != 0:
		msg = apiErrorLine(e.Data.StatusCode, "", msg)
	case e.Name != "" && e.Name != msg:
		msg = e.Name + ": " + msg
	}
	s.out.msg = msg
	s.out.status = e.Data.StatusCode
	s.out.retried = e.Data.IsRetryable
	s.out.retryAfter = headerRetryAfter(e.Data.ResponseHeaders)
	emit(s.req, "error", msg)
}

// headerRetryAfter reads retry-after-ms or retry-after (seconds) from
// response headers; 0 when neither is there.
func headerRetryAfter(h map[string]string) time.Duration {
	if v, err := strconv.ParseFloat(h["retry-after-ms"], 64); err == nil && v > 0 {
		return time.Duration(v * float64(time.Millisecond))
	}
	if v, err := strconv.ParseFloat(h["retry-after"], 64); err == nil && v > 0 {
		return time.Duration(v * float64(time.Second))
	}
	return 0
}

func (s *opencodeStream) stderr(line []byte) {
	if strings.Contains(string(line), "Session not found") {
		s.out.noSession = true
	}
	noteStderr(&s.out, line)
}

func (s *opencodeStream) outcome(exitCode int) outcome {
	out := s.out
	out.res.Text = s.lastText
	if s.cost != 0 {
		out.res.CostUSD, out.res.CostKnown = s.cost, true
	}
	// A run that stopped right after asking for tools did not finish.
	complete := s.finished && s.lastReason != "tool-calls"
	out.done = s.failed || complete
	out.ok = !s.failed && complete && exitCode == 0
	if complete && !s.failed && exitCode != 0 {
		out.done = false // it reported an answer, then failed: let the exit status tell
	}
	return out
}
