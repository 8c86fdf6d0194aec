// Package agents runs coding agents: the Engine interface, one engine per
// CLI (shell for run: steps, replay for recordings, and the real coding
// CLIs), process control (process groups, timeouts, output limits), the
// environment allow-list and the recording format. It imports nothing else
// of codemachine but the leaf internal/yamlnode. Its registry is the one
// list of engine names.
package agents

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// Engine runs one agent (or command) to completion.
type Engine interface {
	// Name is the engine's name as written in workflow.yaml ("claude", "shell").
	Name() string
	// Run runs the request and returns its result. A failure is a *RunError
	// whose Class tells the caller whether a retry may help.
	Run(ctx context.Context, req Request) (Result, error)
}

// Request is one agent run.
type Request struct {
	Run  string // run id, for logs
	Step string
	Task string // task id in foreach steps

	Prompt  string // the rendered prompt (agent engines)
	Command string // the shell command (shell engine), run with sh -c
	Model   string // "" = the engine's default
	Effort  string
	// Fingerprint identifies what the step (or task) is asked: its
	// definition, agent, model and inputs. Replay compares it with the
	// recording's.
	Fingerprint string

	// Recording is the replay engine's recording to apply, relative to
	// Dir; "" = the step's (or task's) own (RecordingPath). A reviewer
	// agent's run names its own (ReviewRecordingPath).
	Recording string
	// Recordings, when set, is where the replay engine reads Recording
	// (the repository's tree at the commit the step started from),
	// instead of Dir: what the step, or an earlier one in its worktree,
	// left there (an ignored file, say) is not taken as a recording.
	Recordings fs.FS

	Dir     string   // working directory: the step's worktree
	Env     []string // the allow-listed environment, KEY=VALUE (see Environ)
	Timeout time.Duration
	Grace   time.Duration // between SIGTERM and SIGKILL on timeout or cancel; 0 = 5s

	Resume string // session id to resume; "" starts a new session
	// Continue is the message sent into the resumed session (Resume set):
	// a short "continue" prompt. "" sends Prompt. When the CLI no longer
	// knows the session, the engine starts a new one with Prompt instead,
	// so Prompt must always hold the whole task.
	Continue string
	// Home is a private directory for this run's engine state ("" = the
	// user's own configuration). Engines that keep lock files or session
	// state in their config dir use a config dir under it, seeded from the
	// user's settings and credentials, so parallel agents do not contend.
	Home string

	// MCP, when set, is an MCP server the agent gets besides those of its
	// own configuration (a step's mcp: true: codemachine's). Engines that
	// cannot take one fail the run (Fatal) rather than run without it.
	MCP *MCPServer

	// Log receives the full event stream as JSON lines; nil discards it.
	Log io.Writer
	// OnEvent, when set, is called for each parsed event (progress display).
	OnEvent func(Event)
	// OnStart, when set, is called with the agent's process id, which is
	// also its process group id, once it started: a caller records it so
	// that the group can be found and stopped after the caller was killed.
	OnStart func(pid int)

	// Sandbox, when set, runs the process under the sandbox launcher
	// with this policy (package sandbox): writes only to its writable
	// paths when it sets Landlock, other programs' sockets out of reach,
	// and no process of the run left once it ends. nil runs the process
	// directly, in a process group of its own. Engines that keep their
	// state in a config dir need Home set with it: the user's own config
	// dirs are not writable in the sandbox.
	Sandbox *Sandbox

	// Terminal, when set, runs the engine's own interactive UI on this
	// terminal instead of its headless mode, in the terminal's
	// foreground, with Prompt (or, resuming, Continue) as the first
	// message, until the person leaves it: no timeout, no retries. Its
	// Result comes from the CLI's session records. Engines without a UI
	// fail the run (Fatal).
	Terminal *os.File
}

// MCPServer is an MCP server the agent's CLI starts and talks to over
// stdio.
type MCPServer struct {
	// Name is what the CLI calls it: Claude Code names its tools
	// mcp__<Name>__<tool>, opencode <Name>_<tool>.
	Name    string
	Command string
	Args    []string
}

// Event is one parsed item of an engine's stream.
type Event struct {
	Time time.Time
	Kind string // "text", "tool", "usage", "stdout", "stderr", "error", "session"
	Text string
}

// Result is what an engine reports about a finished run.
type Result struct {
	Text      string // the agent's final message
	TokensIn  int64
	TokensOut int64
	CostUSD   float64
	CostKnown bool // whether the engine reported a cost
	SessionID string
	Model     string // the model that ran, when the engine reports it
	ExitCode  int
	Duration  time.Duration
	// Output is the tail of the process's combined output (shell engine;
	// also useful when an agent fails).
	Output string
	// Warnings are what the run's output should say besides (replay: the
	// recording was made for another prompt).
	Warnings []string
	// ToolErrors are the tool calls the CLI reported as failed (Claude's
	// tool results with is_error, Codex's commands that exited non-zero and
	// the calls its tool router refused, Gemini's tool results and
	// opencode's tool parts with status error),
	// one line each ("Bash: ..."), at most MaxToolErrors.
	ToolErrors []string
}

// MaxToolErrors bounds Result.ToolErrors: the first ones say what went
// wrong, and a looping agent must not make the list grow without end.
const MaxToolErrors = 20

// addToolError appends one tool error to r, as one line of at most 200
// bytes.
func (r *Result) addToolError(tool, msg string) {
	if len(r.ToolErrors) >= MaxToolErrors {
		return
	}
	line := oneLine(msg)
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	if tool != "" {
		line = tool + ": " + line
	}
	r.ToolErrors = append(r.ToolErrors, line)
}

// Class says whether a failure is worth retrying.
type Class int

const (
	// Fatal failures (bad request, auth, bad configuration, a failing
	// command) are reported at once.
	Fatal Class = iota
	// Transient failures (rate limit, 5xx, network, crash) are retried with
	// back-off.
	Transient
)

// String names the class as logs and commit trailers print it.
func (c Class) String() string {
	if c == Transient {
		return "transient"
	}
	return "fatal"
}

// RunError is the error an Engine returns for a failed run.
type RunError struct {
	Class      Class
	Engine     string
	Msg        string
	ExitCode   int
	TimedOut   bool
	Canceled   bool          // the context was canceled (interrupt)
	RetryAfter time.Duration // reported by the engine, 0 if none
	Result     Result        // whatever was known when the run failed
	NotFound   bool          // the engine's CLI is not installed (errors.Is ErrNoAgentCLI)
}

// Error names the engine and what went wrong with its run.
func (e *RunError) Error() string {
	return fmt.Sprintf("%s: %s", e.Engine, e.Msg)
}

// Is makes a run whose CLI is missing match ErrNoAgentCLI: a problem of
// the machine's setup, not of the step.
func (e *RunError) Is(target error) bool {
	return e.NotFound && target == ErrNoAgentCLI
}
