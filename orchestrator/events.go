package orchestrator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// EventKind says what happened.
type EventKind int

const (
	// StepStarted: a step (or task) began running.
	StepStarted EventKind = iota
	// StepLanded: a step's commit reached the branch.
	StepLanded
	// StepFailed: a step failed; its work is on a failed ref.
	StepFailed
	// StepConflict: a step's commit could not land and is kept on a branch.
	StepConflict
	// StepSkipped: a due step was not run (held, blocked by a failure).
	StepSkipped
	// StepRetrying: a transient engine failure or a failing check; the step
	// runs again.
	StepRetrying
	// Note: anything else worth one line (a stale lock taken over).
	Note
	// StepReview: a step's commit waits on its review branch for approve or
	// reject.
	StepReview
	// StepActivity: what a running unit's agent (or command) does now, from
	// its engine's parsed stream: Activity says what kind of thing (tool,
	// text, error, stdout, stderr), Message the thing on one line. Emitted
	// only when Config.Activity asks for it.
	StepActivity
	// StepAttempt: one engine run of a unit ended (each transient retry and
	// each check attempt is one), with its usage, its wall time as Duration
	// (At is its end) and, when it failed, Message. A reviewer agent's run
	// (review: AGENT) is one too, with Reviewer set and Attempt its round.
	StepAttempt
	// RunStarted: a run (or a pass of watch) took the lock and starts; Run
	// is its id.
	RunStarted
	// RunFinished: the run ended; Tokens and CostUSD are its totals and
	// Message says why it stopped early, if it did.
	RunFinished
	// StepNeedsYou: an interactive step (or task) waits for a person at a
	// terminal (the run has none).
	StepNeedsYou
	// StepDelivered: a worker finished a unit and handed its commit to
	// the remote's integrator (RunOptions.Remote) instead of landing it.
	StepDelivered
)

var kindNames = [...]string{
	StepStarted: "started", StepLanded: "landed", StepFailed: "failed", StepConflict: "conflict",
	StepSkipped: "skipped", StepRetrying: "retrying", Note: "note", StepReview: "review",
	StepActivity: "activity", StepAttempt: "attempt", RunStarted: "run_started", RunFinished: "run_finished",
	StepNeedsYou: "needs_you", StepDelivered: "delivered",
}

// String is the kind's name in JSON output ("landed", "failed", ...).
func (k EventKind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// MarshalText writes the kind by name, so JSON output does not depend on
// the order of the constants.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a kind by name (an unknown name is an error, so
// that a newer writer's kinds are not taken for an older one's).
func (k *EventKind) UnmarshalText(b []byte) error {
	for i, name := range kindNames {
		if name == string(b) {
			*k = EventKind(i)
			return nil
		}
	}
	return fmt.Errorf("unknown event kind %q", b)
}

// Event is one thing worth telling the user during a run. Its JSON form
// (run --json) uses the snake_case names of status and log.
type Event struct {
	Kind     EventKind     `json:"kind"`
	Step     string        `json:"step"`
	Task     string        `json:"task,omitempty"`
	Title    string        `json:"title,omitempty"` // task title, or the commit subject once landed
	Engine   string        `json:"engine,omitempty"`
	Model    string        `json:"model,omitempty"`
	Duration time.Duration `json:"-"` // written as text by MarshalJSON
	Tokens   int64         `json:"tokens"`
	// TokensIn and TokensOut split Tokens (StepAttempt only).
	TokensIn  int64 `json:"tokens_in,omitempty"`
	TokensOut int64 `json:"tokens_out,omitempty"`
	// RequestModel is the model the engine was asked for (StepAttempt;
	// Model is the one it reported, else the same).
	RequestModel string  `json:"request_model,omitempty"`
	CostUSD      float64 `json:"cost_usd"`
	CostOK       bool    `json:"cost_known"`
	Commit       string  `json:"commit,omitempty"` // landed commit, or the failed ref's commit
	Ref          string  `json:"ref,omitempty"`    // failed ref or conflict branch
	Rebased      bool    `json:"rebased,omitempty"`
	// Stale (StepLanded): an input was committed while the unit ran, so
	// what landed is not current and the unit is due again.
	Stale   bool   `json:"stale,omitempty"`
	Message string `json:"message,omitempty"` // failure reason, skip reason, note text
	Attempt int    `json:"attempt,omitempty"`
	// Reviewer is the reviewer agent whose run a StepAttempt is ("" for
	// the unit's own engine runs).
	Reviewer string `json:"reviewer,omitempty"`
	Log      string `json:"log,omitempty"` // a failed unit's event log, relative to the repository
	// Activity is the kind of a StepActivity: "tool", "text", "error",
	// "stdout" or "stderr".
	Activity string `json:"activity,omitempty"`
	// At is when it happened (set by the orchestrator when it emits it).
	At  time.Time `json:"at"`
	Run string    `json:"run,omitempty"` // the run's id (RunStarted, RunFinished)
}

// MarshalJSON writes the duration as text ("1.2s"), as the
// Codemachine-Duration trailer and log --json do.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event // without this method
	out := struct {
		plain
		Duration string `json:"duration,omitempty"`
	}{plain: plain(e)}
	if e.Duration > 0 {
		out.Duration = e.Duration.Round(time.Millisecond).String()
	}
	// <, > and & as they are, as the CLI's other JSON writes them: an
	// encoder that does not escape HTML keeps what a Marshaler escaped.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON reads what MarshalJSON writes, the duration included
// (to the millisecond it was written with), so that events can cross a
// process boundary (see the follow package).
func (e *Event) UnmarshalJSON(data []byte) error {
	type plain Event
	var in struct {
		plain
		Duration string `json:"duration"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	*e = Event(in.plain)
	if in.Duration != "" {
		d, err := time.ParseDuration(in.Duration)
		if err != nil {
			return fmt.Errorf("event duration: %w", err)
		}
		e.Duration = d
	}
	return nil
}

// Key is "step" or "step/task".
func (e Event) Key() string { return unitKey(e.Step, e.Task) }

func unitKey(step, task string) string {
	if task == "" {
		return step
	}
	return step + "/" + task
}
