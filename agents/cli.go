package agents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// cliEngine drives one coding CLI headlessly: the prompt goes
// to the CLI's standard input, which is then closed (no argument length
// limit, no quoting by the CLI); the CLI runs in its own process group in
// the step's worktree with the request's environment; its event stream is
// parsed line by line into a Result and logged whole.
type cliEngine struct {
	name string // engine name, as in workflow.yaml
	bin  string // program, looked up in the request's PATH
	pkg  string // npm package, for install hints
	// args is the headless command line for req (prompt on stdin). env is
	// the final environment, for engines whose flags depend on it.
	args func(req Request, env []string) []string
	// prepare adapts the environment before the run: a private config dir
	// seeded from the user's when req.Home is set, stale locks removed.
	prepare func(req Request, env []string) ([]string, error)
	// newStream returns a parser for one run's output.
	newStream func(req Request, env []string) stream
	// takesMCP: the engine passes Request.MCP to the CLI (in its args or
	// prepare).
	takesMCP bool
	// interactive is the CLI's own UI for req (Request.Terminal set),
	// with its dialogs seeded away; nil when codemachine cannot start it.
	interactive func(req Request, env []string) (termRun, error)
	// records reads what an interactive run's session records say (the
	// session id when the CLI chose it, usage, model) since started.
	records func(req Request, env []string, session string, started time.Time) Result
}

// stream parses one run's output, one line at a time.
type stream interface {
	// stdout handles one line of standard output (an event, normally).
	stdout(line []byte)
	// stderr handles one line of standard error.
	stderr(line []byte)
	// outcome is what the stream said, once the process has exited with
	// exitCode (the CLI's exit status tells more for some CLIs).
	outcome(exitCode int) outcome
}

// outcome is what a CLI's stream reported about its run.
type outcome struct {
	res Result // text, usage, cost, session id, model
	// done is set when the stream carried its final event (a result, a
	// completed or failed turn); ok when that event reported success.
	done, ok bool
	// msg is the engine's own error message, status the HTTP status of the
	// failed model request when known, retryAfter a delay it asked for.
	msg        string
	status     int
	retryAfter time.Duration
	// retried is set when the CLI itself retried the request before giving
	// up, which it does only for errors it considers transient.
	retried bool
	// retrying is the error of the model request the CLI was retrying
	// when the stream last said anything about it ("" once an answer came
	// after it): what a run stopped by its timeout was stuck on.
	retrying string
	// class overrides the classification when the engine knows better
	// (Gemini's own exit codes); classSet tells it is set.
	class    Class
	classSet bool
	// bad counts stdout lines that were not JSON events; badLine is the
	// first of them.
	bad     int
	badLine string
	// stderrMsg is the last meaningful line of standard error.
	stderrMsg string
	// noSession is set when the CLI said the session to resume does not
	// exist.
	noSession bool
}

func (e *cliEngine) Name() string { return e.name }

// Run runs the CLI for req and returns its result. Failures are *RunError:
// Canceled on ctx cancellation, TimedOut (Fatal) past req.Timeout,
// Transient for rate limits, server errors, network errors, broken streams
// and crashes, Fatal for everything a retry would repeat. A resumed session
// (req.Resume) that the CLI no longer knows is started afresh with
// req.Prompt.
func (e *cliEngine) Run(ctx context.Context, req Request) (Result, error) {
	if strings.TrimSpace(req.Prompt) == "" {
		return Result{}, &RunError{Class: Fatal, Engine: e.name, Msg: "no prompt to send"}
	}
	if _, err := lookPath(e.bin, req.Env); err != nil {
		// Said first: nothing else matters while the CLI is missing.
		return Result{}, e.notFound()
	}
	if req.MCP != nil && !e.takesMCP {
		return Result{}, &RunError{Class: Fatal, Engine: e.name,
			Msg: e.name + " cannot be given an MCP server by codemachine yet (mcp: true); use claude, codex or opencode for this step"}
	}
	env := append([]string(nil), req.Env...)
	if req.Terminal != nil {
		return e.runInteractive(ctx, req, env)
	}
	if e.prepare != nil {
		var err error
		if env, err = e.prepare(req, env); err != nil {
			return Result{}, &RunError{Class: Fatal, Engine: e.name, Msg: err.Error()}
		}
	}
	res, out, err := e.runOnce(ctx, req, env)
	if err == nil || req.Resume == "" || !out.noSession {
		return res, err
	}
	// The session is gone (another machine, a cleaned config dir, a
	// different worktree): the partial work is still in the worktree, so
	// a new session with the whole task picks it up from there.
	emit(req, "session", "session "+req.Resume+" not found; starting a new one")
	first := res.Duration
	fresh := req
	fresh.Resume, fresh.Continue = "", ""
	res, _, err = e.runOnce(ctx, fresh, env)
	res.Duration += first
	if rerr, ok := err.(*RunError); ok {
		rerr.Result.Duration = res.Duration
	}
	return res, err
}

// runOnce starts the CLI once and concludes its run.
func (e *cliEngine) runOnce(ctx context.Context, req Request, env []string) (Result, outcome, error) {
	st := e.newStream(req, env)
	prompt := req.Prompt
	if req.Resume != "" && req.Continue != "" {
		prompt = req.Continue
	}
	p := &proc{
		path:       e.bin,
		args:       e.args(req, env),
		dir:        req.Dir,
		env:        env,
		stdin:      []byte(prompt),
		timeout:    req.Timeout,
		grace:      req.Grace,
		log:        req.Log,
		jsonStdout: true,
		onStart:    req.OnStart,
		sandbox:    req.Sandbox,
		onLine: func(name string, line []byte) {
			if name == "stdout" {
				st.stdout(line)
			} else {
				st.stderr(line)
			}
		},
	}
	pr, err := p.run(ctx)
	if errors.Is(err, exec.ErrNotFound) {
		return Result{}, outcome{}, e.notFound()
	}
	if err != nil {
		return Result{}, outcome{}, &RunError{Class: Fatal, Engine: e.name, Msg: err.Error()}
	}
	out := st.outcome(pr.exitCode)
	res, err := e.finish(req, out, pr)
	if err != nil {
		var rerr *RunError
		if errors.As(err, &rerr) && (rerr.Canceled || rerr.TimedOut) {
			out.noSession = false // an interrupted run says nothing about the session
		}
	}
	return res, out, err
}

// notFound is the failure of a run whose CLI is not on the PATH.
func (e *cliEngine) notFound() *RunError {
	return &RunError{Class: Fatal, Engine: e.name, NotFound: true,
		Msg: fmt.Sprintf("%s not found on PATH (install it with npm install -g %s, or check PATH)", e.bin, e.pkg)}
}

// finish turns what the stream said and how the process ended into the
// run's Result and error.
func (e *cliEngine) finish(req Request, out outcome, pr procResult) (Result, error) {
	res := out.res
	res.ExitCode = pr.exitCode
	res.Duration = pr.duration
	res.Output = pr.output
	if res.Model == "" {
		res.Model = req.Model
	}
	if rerr := pr.interrupted(e.name, req.Timeout, res); rerr != nil {
		if rerr.TimedOut && out.retrying != "" {
			// The CLI spent its time retrying a failing model API
			// (a server error, a rate limit): say so, or the timeout
			// reads like a slow agent.
			rerr.Msg = oneLine(rerr.Msg + " while retrying a failed model request (" + out.retrying + ")")
		}
		return res, rerr
	}
	if out.done && out.ok {
		// The CLI reported success; its exit status after that (a crash
		// while tearing down) does not undo the work.
		if pr.logErr != nil {
			return res, &RunError{Class: Fatal, Engine: e.name, Msg: pr.logErr.Error(), ExitCode: pr.exitCode, Result: res}
		}
		return res, nil
	}
	rerr := &RunError{Engine: e.name, ExitCode: pr.exitCode, Result: res}
	switch {
	case out.done:
		// The CLI reported a failure of its own.
		rerr.Msg = out.msg
		if rerr.Msg == "" {
			rerr.Msg = out.stderrMsg
		}
		if rerr.Msg == "" {
			rerr.Msg = fmt.Sprintf("failed (exit status %d)", pr.exitCode)
		}
		def := Fatal
		if out.retried {
			def = Transient
		}
		rerr.Class = classify(out.status, rerr.Msg, def)
	case pr.signal != 0:
		rerr.Class = Transient
		rerr.Msg = fmt.Sprintf("killed by signal %d (%s) before it finished", int(pr.signal), pr.signal)
	case pr.exitCode == 0:
		rerr.Class = Transient
		rerr.Msg = "exited without reporting a result (crashed or cut off)"
		if out.bad > 0 {
			rerr.Msg = fmt.Sprintf("exited without reporting a result; %d malformed output line(s), the first: %s", out.bad, out.badLine)
		}
	default:
		// A non-zero exit before any result: a bad command line or
		// configuration, an unknown session, or a crash.
		msg := out.msg
		if msg == "" {
			msg = out.stderrMsg
		}
		if msg == "" {
			// Its output is events, none of which explains the exit.
			rerr.Class = Transient
			rerr.Msg = fmt.Sprintf("exited with status %d before reporting a result", pr.exitCode)
			break
		}
		status := out.status
		if status == 0 {
			status = statusIn(msg)
		}
		rerr.Class = classify(status, msg, Transient)
		rerr.Msg = fmt.Sprintf("exit status %d: %s", pr.exitCode, msg)
	}
	if out.classSet {
		rerr.Class = out.class
	}
	rerr.Msg = oneLine(rerr.Msg)
	if rerr.Class == Transient {
		rerr.RetryAfter = out.retryAfter
		if rerr.RetryAfter == 0 {
			rerr.RetryAfter = parseRetryAfter(rerr.Msg)
		}
	}
	return res, rerr
}

// decodeEvent decodes one stdout line into v. Lines that are not a JSON
// object are counted as malformed in out and false is returned: a CLI may
// print a stray line, and a broken line must never stop the parse.
func decodeEvent(line []byte, v any, out *outcome) bool {
	b := bytes.TrimSpace(line)
	if len(b) == 0 {
		return false
	}
	if b[0] != '{' || json.Unmarshal(b, v) != nil {
		if out.bad == 0 {
			out.badLine = oneLine(string(b))
			if len(out.badLine) > 120 {
				out.badLine = out.badLine[:120] + "…"
			}
		}
		out.bad++
		return false
	}
	return true
}

// noteStderr keeps the last stderr line worth quoting in an error message
// (not a stack frame, not a known harmless notice) and any retry delay the
// CLI printed there.
func noteStderr(out *outcome, line []byte, ignore ...string) {
	s := strings.TrimSpace(stripANSI(string(line)))
	if s == "" || strings.HasPrefix(s, "at ") || s == "}" || s == "{" {
		return
	}
	for _, p := range ignore {
		if strings.Contains(s, p) {
			return
		}
	}
	if d := parseRetryAfter(s); d > 0 {
		out.retryAfter = d
	}
	out.stderrMsg = s
}

// stripANSI removes terminal color sequences, which some CLIs print even
// when their output is not a terminal.
func stripANSI(s string) string {
	if !strings.Contains(s, "\x1b[") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// emit records a note of codemachine's own about a run: in the run's log,
// as a line of stream "codemachine" (so that it is on record when nobody
// watches), and as a progress event when the request wants them. It is
// only called while no CLI process writes to the log (before a run starts,
// or between two runs).
func emit(req Request, kind, text string) {
	if text == "" {
		return
	}
	if req.Log != nil {
		line := append([]byte(`{"t":"`), time.Now().UTC().Format(time.RFC3339Nano)...)
		line = append(line, `","stream":"codemachine","line":`...)
		line = appendJSONString(line, []byte(kind+": "+text))
		_, _ = req.Log.Write(append(line, "}\n"...))
	}
	if req.OnEvent != nil {
		req.OnEvent(Event{Time: time.Now(), Kind: kind, Text: text})
	}
}

// setEnv returns env with key set to value (replacing every earlier
// assignment of key).
func setEnv(env []string, key, value string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

// toolSummary is a one-line description of a tool call for progress
// events: the tool's name and the first of keys its input has.
func toolSummary(name string, input map[string]any, keys ...string) string {
	for _, k := range keys {
		if v, ok := input[k].(string); ok && v != "" {
			return oneLine(name + " " + v)
		}
	}
	return name
}
