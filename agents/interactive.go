package agents

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// termRun is how a CLI's own UI is started for one interactive run.
type termRun struct {
	args []string // the command line after the program name
	env  []string // the final environment
	// session is the session id when the CLI takes it from us (Claude's
	// --session-id); "" when it is found in its records afterwards.
	session string
}

// maxArgPrompt is the longest first message an interactive run takes:
// the UIs take it as an argument, and Linux limits one to 128 KiB.
const maxArgPrompt = 120 << 10

// checkFirstMessage says why msg cannot be an interactive run's first
// message, "" when it can: it is a command-line argument, which is at
// most maxArgPrompt long and cannot hold a NUL byte (a file read into the
// prompt may bring one).
func checkFirstMessage(msg string) string {
	switch {
	case len(msg) > maxArgPrompt:
		return fmt.Sprintf("the prompt is %d KiB; an interactive run takes at most %d KiB as its first message", len(msg)>>10, maxArgPrompt>>10)
	case strings.IndexByte(msg, 0) >= 0:
		return fmt.Sprintf("the prompt holds a NUL byte (at byte %d); an interactive run passes it as a command-line argument, which cannot hold one", strings.IndexByte(msg, 0))
	}
	return ""
}

// firstMessage is what an interactive run types in first: the whole task
// for a new session, the continue message for a resumed one (nothing
// when resuming without one: the person speaks first).
func firstMessage(req Request) string {
	if req.Resume != "" {
		return req.Continue
	}
	return req.Prompt
}

// runInteractive runs the CLI's own UI on req.Terminal until the person
// leaves it. The Result comes from the CLI's session records: the session
// id, and the usage and model where the records give them. A run whose
// process fails is reported like a headless one's crash, a Fatal error.
func (e *cliEngine) runInteractive(ctx context.Context, req Request, env []string) (Result, error) {
	if e.interactive == nil {
		return Result{}, &RunError{Class: Fatal, Engine: e.name, Msg: e.name + " " + errNoInteractive.Error() + " yet"}
	}
	if msg := checkFirstMessage(firstMessage(req)); msg != "" {
		return Result{}, &RunError{Class: Fatal, Engine: e.name, Msg: msg}
	}
	tr, err := e.interactive(req, env)
	if err != nil {
		return Result{}, &RunError{Class: Fatal, Engine: e.name, Msg: err.Error()}
	}
	emit(req, "session", e.name+" "+strings.Join(redactPrompt(tr.args, firstMessage(req)), " "))
	started := time.Now()
	p := &proc{path: e.bin, args: tr.args, dir: req.Dir, env: tr.env, grace: req.Grace,
		onStart: req.OnStart, sandbox: req.Sandbox}
	pr, err := p.runTerminal(ctx, req.Terminal)
	if errors.Is(err, exec.ErrNotFound) {
		return Result{}, e.notFound()
	}
	if err != nil {
		return Result{}, &RunError{Class: Fatal, Engine: e.name, Msg: err.Error()}
	}
	res := Result{SessionID: tr.session, Model: req.Model, ExitCode: pr.exitCode, Duration: pr.duration}
	if e.records != nil {
		rec := e.records(req, tr.env, tr.session, started)
		res.SessionID, res.TokensIn, res.TokensOut = firstNonEmpty(rec.SessionID, res.SessionID), rec.TokensIn, rec.TokensOut
		res.CostUSD, res.CostKnown = rec.CostUSD, rec.CostKnown
		res.Model = firstNonEmpty(rec.Model, res.Model)
	}
	if res.SessionID != "" {
		emit(req, "session", "session "+res.SessionID)
	}
	if rerr := pr.interrupted(e.name, 0, res); rerr != nil {
		return res, rerr
	}
	if pr.exitCode != 0 {
		return res, &RunError{Class: Fatal, Engine: e.name, ExitCode: pr.exitCode, Result: res,
			Msg: uiEndedMsg(e.bin, pr.exitCode, pr.signal)}
	}
	return res, nil
}

// uiEndedMsg says how a UI ended that did not exit cleanly: killed by a
// signal (its status 128+signal is a shell's way of saying so), or with
// its exit status.
func uiEndedMsg(bin string, code int, sig syscall.Signal) string {
	if sig != 0 {
		return fmt.Sprintf("%s's UI was killed by signal %d (%s)", bin, int(sig), sig)
	}
	return fmt.Sprintf("%s's UI exited with status %d", bin, code)
}

// redactPrompt is args for the log, with the prompt shortened.
func redactPrompt(args []string, prompt string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == prompt && prompt != "" {
			a = fmt.Sprintf("<prompt: %d bytes>", len(prompt))
		}
		out[i] = a
	}
	return out
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// updateJSON reads the JSON object in path (none: an empty one), lets
// edit change it, and writes it back.
func updateJSON(path string, edit func(m map[string]any)) error {
	m := map[string]any{}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &m); err != nil || m == nil {
			return fmt.Errorf("%s: not a JSON object", path)
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	edit(m)
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(out, '\n'), 0o600)
}

// object is m[key] as an object, made when missing.
func object(m map[string]any, key string) map[string]any {
	if o, ok := m[key].(map[string]any); ok {
		return o
	}
	o := map[string]any{}
	m[key] = o
	return o
}

// Claude Code's UI:
//
//	claude --permission-mode bypassPermissions [--model M] [--effort E]
//	       (--session-id NEW | --resume ID) [-- PROMPT]
//
// in its private config dir (req.Home is required), seeded so that no
// first-run dialog stops it: onboarding done, a theme, the API key
// approved, the worktree trusted, and the bypass-permissions warning
// acknowledged (codemachine's sandbox confines the run).
func claudeInteractive(req Request, env []string) (termRun, error) {
	if req.Home == "" {
		return termRun{}, errors.New("an interactive Claude Code run needs a private config dir")
	}
	env, err := claudePrepare(req, env)
	if err != nil {
		return termRun{}, err
	}
	dir := envValue(env, "CLAUDE_CONFIG_DIR")
	key := envValue(env, "ANTHROPIC_API_KEY")
	err = updateJSON(filepath.Join(dir, ".claude.json"), func(m map[string]any) {
		m["hasCompletedOnboarding"] = true
		if _, ok := m["theme"]; !ok {
			m["theme"] = "dark"
		}
		if key != "" {
			r := object(m, "customApiKeyResponses")
			approved, _ := r["approved"].([]any)
			r["approved"] = append(approved, key[max(0, len(key)-20):])
		}
		p := object(object(m, "projects"), req.Dir)
		p["hasTrustDialogAccepted"] = true
		p["hasCompletedProjectOnboarding"] = true
	})
	if err == nil {
		err = updateJSON(filepath.Join(dir, "settings.json"), func(m map[string]any) {
			object(m, "permissions")["defaultMode"] = "bypassPermissions"
			m["skipDangerousModePermissionPrompt"] = true
		})
	}
	if err != nil {
		return termRun{}, fmt.Errorf("seed Claude's config for its UI: %w", err)
	}
	env = setEnv(env, "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL", "1")
	env = setEnv(env, "DISABLE_INSTALLATION_CHECKS", "1")
	args := []string{"--permission-mode", "bypassPermissions"}
	if req.Model != "" {
		args = append(args, "--model", req.Model)
	}
	if req.Effort != "" {
		args = append(args, "--effort", req.Effort)
	}
	if req.MCP != nil {
		args = append(args, "--mcp-config", claudeMCPConfig(req.MCP))
	}
	tr := termRun{env: env}
	if req.Resume != "" {
		args = append(args, "--resume", req.Resume)
		tr.session = req.Resume
	} else {
		tr.session = newUUID()
		args = append(args, "--session-id", tr.session)
	}
	if msg := firstMessage(req); msg != "" {
		args = append(args, "--", msg)
	}
	tr.args = args
	return tr, nil
}

// claudeRecords reads the usage of the session's API messages made since
// started from its transcript ($CLAUDE_CONFIG_DIR/projects/*/<id>.jsonl).
// Transcripts carry no cost.
func claudeRecords(_ Request, env []string, session string, started time.Time) Result {
	res := Result{SessionID: session}
	files, _ := filepath.Glob(filepath.Join(envValue(env, "CLAUDE_CONFIG_DIR"), "projects", "*", session+".jsonl"))
	seen := map[string]bool{}
	for _, f := range files {
		forEachLine(f, func(line []byte) {
			var ev struct {
				Type      string        `json:"type"`
				Timestamp time.Time     `json:"timestamp"`
				Message   claudeMessage `json:"message"`
			}
			if json.Unmarshal(line, &ev) != nil || ev.Type != "assistant" || ev.Timestamp.Before(started) {
				return
			}
			if ev.Message.Model != "" && ev.Message.Model != "<synthetic>" {
				res.Model = ev.Message.Model
			}
			if ev.Message.ID == "" || seen[ev.Message.ID] {
				return
			}
			seen[ev.Message.ID] = true
			res.TokensIn += ev.Message.Usage.in()
			res.TokensOut += ev.Message.Usage.OutputTokens
		})
	}
	return res
}

// forEachLine calls fn with each line of the file (nothing when it cannot
// be read: see readRecord).
func forEachLine(path string, fn func(line []byte)) {
	data, err := readRecord(path)
	if err != nil {
		return
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if line != "" {
			fn([]byte(line))
		}
	}
}

// maxRecordSize is the largest session record read: a CLI's transcript of
// a long session is megabytes.
const maxRecordSize = 256 << 20

// readRecord reads a session record the CLI wrote in its private config
// dir, which the step's processes may write too: codemachine reads it
// unconfined once they ended, so anything but a regular file of at most
// maxRecordSize is refused unread. Followed, a symbolic link to /dev/zero
// would fill codemachine's memory, a named pipe block it forever in
// open(2), and a sparse file of a terabyte be allocated whole.
func readRecord(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxRecordSize {
		return nil, fmt.Errorf("%s: not a session record (a regular file of at most %d bytes)", path, maxRecordSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxRecordSize))
}

// Codex's UI:
//
//	codex [resume] --no-daemon --dangerously-bypass-approvals-and-sandbox -C DIR
//	      [-m M] [-c model_reasoning_effort="E"] [-c notice.*=true] [ID] [PROMPT]
//
// --no-daemon, or the UI leaves a background server running after it
// exits. Its private CODEX_HOME (req.Home is required) trusts the worktree
// and acknowledges the notices that would stop it.
func codexInteractive(req Request, env []string) (termRun, error) {
	if req.Home == "" {
		return termRun{}, errors.New("an interactive Codex run needs a private config dir")
	}
	env, err := codexPrepare(req, env)
	if err != nil {
		return termRun{}, err
	}
	cfg := filepath.Join(codexHome(env), "config.toml")
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = fmt.Fprintf(f, "\n[projects.%s]\ntrust_level = \"trusted\"\n", strconvQuote(req.Dir))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return termRun{}, fmt.Errorf("seed Codex's config for its UI: %w", err)
	}
	var args []string
	if req.Resume != "" {
		args = append(args, "resume")
	}
	args = append(args, "--no-daemon", "--dangerously-bypass-approvals-and-sandbox")
	if req.Dir != "" {
		args = append(args, "-C", req.Dir)
	}
	if req.Model != "" {
		args = append(args, "-m", req.Model)
	}
	for _, n := range codexNotices {
		args = append(args, "-c", "notice."+n+"=true")
	}
	model := req.Model
	if model == "" {
		model = codexConfigModel(cfg)
	}
	if to, ok := codexUpgrades[model]; ok {
		// The "try the new model" screen is acknowledged per pair.
		args = append(args, "-c", "notice.model_migrations={"+strconvQuote(model)+"="+strconvQuote(to)+"}")
	}
	if req.Effort != "" {
		args = append(args, "-c", "model_reasoning_effort="+strconvQuote(req.Effort))
	}
	if m := req.MCP; m != nil {
		command, _ := json.Marshal(m.Command)
		list, _ := json.Marshal(append([]string{}, m.Args...))
		args = append(args, "-c", "mcp_servers."+m.Name+".command="+string(command),
			"-c", "mcp_servers."+m.Name+".args="+string(list))
	}
	if req.Resume != "" {
		args = append(args, req.Resume)
	}
	if msg := firstMessage(req); msg != "" {
		args = append(args, "--", msg)
	}
	return termRun{args: args, env: env, session: req.Resume}, nil
}

// codexNotices are the notices of Codex's UI that wait for a key.
var codexNotices = []string{"hide_full_access_warning", "hide_world_writable_warning", "hide_rate_limit_model_nudge",
	"hide_gpt5_1_migration_prompt", `"hide_gpt-5.1-codex-max_migration_prompt"`}

// codexUpgrades are the models Codex's catalog (0.169) offers an upgrade
// from, with that upgrade: its UI stops on a "Meet <model>" screen until
// the pair is acknowledged in notice.model_migrations.
var codexUpgrades = map[string]string{"gpt-5.5": "gpt-6-sol", "gpt-5.6-sol": "gpt-6-sol",
	"gpt-5.6-terra": "gpt-6-sol", "gpt-5.6-luna": "gpt-6-luna"}

// strconvQuote is s as a TOML (and JSON) basic string.
func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// codexRecords finds the session the UI ran in the worktree (the newest
// rollout under $CODEX_HOME/sessions whose session_meta has req.Dir as
// its cwd, or the resumed one) and the tokens its token_count events
// counted since started. Codex records no cost.
func codexRecords(req Request, env []string, session string, started time.Time) Result {
	var best string
	var bestAt time.Time
	_ = filepath.WalkDir(filepath.Join(codexHome(env), "sessions"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".jsonl") {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.ModTime().Before(started) {
			return nil
		}
		if session != "" && !strings.Contains(filepath.Base(p), session) {
			return nil
		}
		if fi.ModTime().After(bestAt) && (session != "" || codexRolloutCwd(p) == req.Dir) {
			best, bestAt = p, fi.ModTime()
		}
		return nil
	})
	res := Result{SessionID: session}
	if best == "" {
		return res
	}
	var before, after codexTokens
	forEachLine(best, func(line []byte) {
		var ev struct {
			Timestamp time.Time `json:"timestamp"`
			Type      string    `json:"type"`
			Payload   struct {
				Type  string `json:"type"`
				ID    string `json:"id"`
				Model string `json:"model"`
				Info  *struct {
					Total codexTokens `json:"total_token_usage"`
				} `json:"info"`
			} `json:"payload"`
		}
		if json.Unmarshal(line, &ev) != nil {
			return
		}
		switch {
		case ev.Type == "session_meta" && ev.Payload.ID != "":
			res.SessionID = ev.Payload.ID
		case ev.Type == "turn_context" && ev.Payload.Model != "":
			res.Model = ev.Payload.Model
		case ev.Payload.Type == "token_count" && ev.Payload.Info != nil:
			if ev.Timestamp.Before(started) {
				before = ev.Payload.Info.Total
			}
			after = ev.Payload.Info.Total
		}
	})
	res.TokensIn = after.Input - before.Input
	res.TokensOut = after.Output - before.Output
	return res
}

// codexTokens is a rollout's total_token_usage (input counts cached input).
type codexTokens struct {
	Input  int64 `json:"input_tokens"`
	Output int64 `json:"output_tokens"`
}

// codexRolloutCwd is the cwd of a rollout's session_meta (its first line).
func codexRolloutCwd(path string) string {
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	n, _ := f.Read(buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	var ev struct {
		Payload struct {
			Cwd string `json:"cwd"`
		} `json:"payload"`
	}
	_ = json.Unmarshal([]byte(line), &ev)
	return ev.Payload.Cwd
}

// Gemini CLI's UI:
//
//	gemini --yolo --skip-trust [-m M] (--session-id NEW | --resume ID) [-i PROMPT]
//
// --skip-trust trusts the worktree (YOLO is downgraded to asking in an
// untrusted folder); no other dialog stops it.
func geminiInteractive(req Request, env []string) (termRun, error) {
	env, err := geminiPrepare(req, env)
	if err != nil {
		return termRun{}, err
	}
	args := []string{"--yolo", "--skip-trust"}
	if req.Model != "" {
		args = append(args, "-m", req.Model)
	}
	tr := termRun{env: env}
	if req.Resume != "" {
		args = append(args, "--resume", req.Resume)
		tr.session = req.Resume
	} else {
		tr.session = newUUID()
		args = append(args, "--session-id", tr.session)
	}
	if msg := firstMessage(req); msg != "" {
		args = append(args, "-i", msg)
	}
	tr.args = args
	return tr, nil
}

// opencode's UI:
//
//	opencode [-m P/M] [--variant E] [-s ID] [--prompt PROMPT] DIR
//
// opencode chooses its session id and keeps it in its database: an
// interactive opencode run records no session (open starts a new one).
func opencodeInteractive(req Request, env []string) (termRun, error) {
	env, err := opencodePrepare(req, env)
	if err != nil {
		return termRun{}, err
	}
	var args []string
	if req.Model != "" {
		args = append(args, "-m", req.Model)
	}
	if req.Effort != "" {
		args = append(args, "--variant", req.Effort)
	}
	if req.Resume != "" {
		args = append(args, "-s", req.Resume)
	}
	if msg := firstMessage(req); msg != "" {
		args = append(args, "--prompt", msg)
	}
	if req.Dir != "" {
		args = append(args, req.Dir)
	}
	return termRun{args: args, env: env, session: req.Resume}, nil
}

// geminiRecords reads the tokens of the session's model messages made
// since started from its chat record ($GEMINI_CLI_HOME/.gemini/tmp/*/
// chats/session-*.jsonl, one JSON line per message update, the last one
// of a message counting). Gemini records no cost.
func geminiRecords(_ Request, env []string, session string, started time.Time) Result {
	res := Result{SessionID: session}
	files, _ := filepath.Glob(filepath.Join(geminiRoot(env), ".gemini", "tmp", "*", "chats", "*.jsonl"))
	type msg struct {
		ID        string    `json:"id"`
		SessionID string    `json:"sessionId"`
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
		Model     string    `json:"model"`
		Tokens    *struct {
			Input  int64 `json:"input"`
			Output int64 `json:"output"`
		} `json:"tokens"`
	}
	for _, f := range files {
		data, err := readRecord(f)
		if err != nil || !strings.Contains(string(data), session) {
			continue
		}
		last := map[string]msg{}
		var order []string
		forEachLine(f, func(line []byte) {
			var m msg
			if json.Unmarshal(line, &m) != nil || m.Type != "gemini" || m.ID == "" || m.Timestamp.Before(started) {
				return
			}
			if _, ok := last[m.ID]; !ok {
				order = append(order, m.ID)
			}
			last[m.ID] = m
		})
		for _, id := range order {
			m := last[id]
			if m.Model != "" {
				res.Model = m.Model
			}
			if m.Tokens != nil {
				res.TokensIn += m.Tokens.Input
				res.TokensOut += m.Tokens.Output
			}
		}
	}
	return res
}
