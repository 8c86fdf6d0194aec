package orchestrator

import "time"

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
)

// Event is one thing worth telling the user during a run.
type Event struct {
	Kind     EventKind
	Step     string
	Task     string
	Title    string // task title, or the commit subject once landed
	Engine   string
	Model    string
	Duration time.Duration
	Tokens   int64
	CostUSD  float64
	CostOK   bool
	Commit   string // landed commit, or the failed ref's commit
	Ref      string // failed ref or conflict branch
	Rebased  bool
	Message  string // failure reason, skip reason, note text
	Attempt  int
}

// Key is "step" or "step/task".
func (e Event) Key() string { return unitKey(e.Step, e.Task) }

func unitKey(step, task string) string {
	if task == "" {
		return step
	}
	return step + "/" + task
}
