package fakellm

import (
	"fmt"
	"time"
)

// Default token counts reported for a turn whose Usage is zero. Fixed
// numbers (not estimates from the request size) so that tests can assert the
// sums the CLIs report.
const (
	DefaultInputTokens  = 100
	DefaultOutputTokens = 20
)

// Script is what a Server answers: one Turn per tool-bearing model request,
// in order. Requests that offer no tools (session titles, Gemini's model
// router) are helper requests answered outside the script.
type Script struct {
	// Dir is the directory that relative paths in calls are resolved
	// against for CLIs whose tools want absolute paths (Claude, Gemini,
	// opencode). Empty means the working directory the CLI reports in its
	// system prompt.
	Dir string
	// Turns are served to successive tool-bearing requests. Once they are
	// used up, every further request gets ExhaustedText as a final answer,
	// and its log entry says Exhausted.
	Turns []Turn
}

// ExhaustedText is the final answer given when a script has no turn left,
// so that a CLI that asks more than the script foresaw ends instead of
// looping; the Request log marks those answers.
const ExhaustedText = "fakellm: script exhausted"

// Turn is one model answer. With Calls it asks the CLI to run tools (Text,
// when set, comes first in the same message); without Calls its Text is the
// final answer.
type Turn struct {
	Text  string
	Calls []Call
	// Usage is the token usage reported for this answer; zero fields get
	// DefaultInputTokens and DefaultOutputTokens.
	Usage Usage
	// Delay is slept before each answer to a request at this turn (a failure
	// included), to test timeouts and slow models. A client that goes away
	// ends the wait, and the turn (or failure) it did not get goes to the
	// next request.
	Delay time.Duration
	// Fail makes requests at this turn fail before the turn is served.
	Fail *Failure
}

// Usage is a token count reported by the fake model.
type Usage struct {
	Input  int64
	Output int64
}

func (u Usage) withDefaults() Usage {
	if u.Input == 0 {
		u.Input = DefaultInputTokens
	}
	if u.Output == 0 {
		u.Output = DefaultOutputTokens
	}
	return u
}

// FailureKind says how a request fails.
type FailureKind string

// The kinds of failure a turn can inject.
const (
	// FailStatus answers with an HTTP error status and a body in the API's
	// own error format (the default kind).
	FailStatus FailureKind = "status"
	// FailMalformed answers 200 and starts a valid stream, then sends a
	// line of garbage and ends the stream without its closing events.
	FailMalformed FailureKind = "malformed"
	// FailHang never answers: the request is held until the client goes
	// away or the server is closed.
	FailHang FailureKind = "hang"
)

// Failure describes an injected failure. The first Times requests at the
// turn fail; the next one gets the turn. Times 0 means every request fails,
// so the turn is never served (what a test of a fatal error wants).
type Failure struct {
	Kind FailureKind // "" = FailStatus
	// Status is the HTTP status for FailStatus; 0 = 500.
	Status int
	// Message is the error message; "" = "fakellm: scripted error <status>".
	Message string
	// Type overrides the error type (Anthropic error.type, OpenAI
	// error.type, Gemini error.status); "" = the API's usual type for Status.
	Type string
	// RetryAfter, when set, is announced in the retry-after and
	// retry-after-ms headers and, for Gemini, as a google.rpc.RetryInfo
	// detail in the body; for OpenAI APIs the message also says "Please try
	// again in Ns", which is where Codex looks for it.
	RetryAfter time.Duration
	Times      int
}

func (f *Failure) kind() FailureKind {
	if f.Kind == "" {
		return FailStatus
	}
	return f.Kind
}

func (f *Failure) status() int {
	if f.Status == 0 {
		return 500
	}
	return f.Status
}

func (f *Failure) message() string {
	if f.Message != "" {
		return f.Message
	}
	return fmt.Sprintf("fakellm: scripted error %d", f.status())
}

// Call is a tool call in a neutral form. The server translates it into the
// tool the requesting CLI offers (see README.md for the table). The
// implementations are WriteFile, EditFile, ReadFile, Shell and ToolCall.
type Call interface {
	// neutral is the kind's name in script files and in errors.
	neutral() string
}

// WriteFile creates or overwrites a file. Path may be relative to the
// working directory. Claude refuses to overwrite an existing file the
// session has not read (see EditFile).
type WriteFile struct {
	Path    string
	Content string
}

// EditFile replaces Old by New in an existing file. Claude refuses to edit
// a file the session has not read (the tool call fails, yet the run exits
// 0): put a ReadFile in an earlier turn. For Codex (apply_patch) Old must
// be whole lines.
type EditFile struct {
	Path string
	Old  string
	New  string
}

// ReadFile reads a file (with the CLI's read tool, or cat through its shell).
type ReadFile struct {
	Path string
}

// Shell runs a command with the CLI's shell tool.
type Shell struct {
	Command string
}

// ToolCall calls a tool by its CLI-specific name, unchanged: Args for
// function tools (JSON object arguments), Text for freeform custom tools
// such as Codex's apply_patch. It is the escape hatch for tools the neutral
// calls do not cover.
type ToolCall struct {
	Name string
	Args map[string]any
	Text string
}

func (WriteFile) neutral() string { return "write" }
func (EditFile) neutral() string  { return "edit" }
func (ReadFile) neutral() string  { return "read" }
func (Shell) neutral() string     { return "shell" }
func (ToolCall) neutral() string  { return "tool" }
