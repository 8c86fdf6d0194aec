package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
)

// Exit codes (README.md lists them). The CLI maps errors to them with ExitCode.
const (
	ExitOK          = 0
	ExitStepFailed  = 1
	ExitUsage       = 2
	ExitReview      = 3
	ExitBudget      = 4
	ExitInterrupted = 130
)

// ConfigError is a usage, configuration or validation problem (exit 2). Its
// message is already formatted for the user, one problem per line.
type ConfigError struct {
	Err error
}

// Error gives the wrapped configuration error's message unchanged.
func (e *ConfigError) Error() string { return e.Err.Error() }

// Unwrap returns the configuration error for errors.Is and errors.As.
func (e *ConfigError) Unwrap() error { return e.Err }

// configErrorf returns a ConfigError with a formatted message.
func configErrorf(format string, args ...any) error {
	return &ConfigError{Err: fmt.Errorf(format, args...)}
}

// StepFailedError reports that at least one step failed during a run (exit 1).
type StepFailedError struct {
	Failed []string // step or step/task keys
}

// Error names the failed units, counted as what they are: a foreach
// step's tasks are its tasks, not so many steps ("20 tasks of step conv
// failed: conv/a, ...").
func (e *StepFailedError) Error() string {
	if len(e.Failed) == 1 && !strings.Contains(e.Failed[0], "/") {
		return fmt.Sprintf("step %s failed", e.Failed[0])
	}
	steps := 0
	var fanouts []string // in the order their first task failed
	tasks := map[string]int{}
	for _, key := range e.Failed {
		step, _, isTask := strings.Cut(key, "/")
		if !isTask {
			steps++
			continue
		}
		if tasks[step] == 0 {
			fanouts = append(fanouts, step)
		}
		tasks[step]++
	}
	var parts []string
	if steps > 0 {
		parts = append(parts, plural(steps, "step"))
	}
	for _, step := range fanouts {
		parts = append(parts, plural(tasks[step], "task")+" of step "+step)
	}
	what := strings.Join(parts, ", ")
	if len(parts) > 1 {
		what = strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
	}
	return fmt.Sprintf("%s failed: %s", what, strings.Join(e.Failed, ", "))
}

// plural is n with its noun: "1 task", "2 tasks".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// BudgetError reports that the run stopped because the workflow's budget was
// exceeded (exit 4).
type BudgetError struct {
	What  string // "tokens" or "cost"
	Spent string
	Limit string
}

// Error names the budget that ran out, what was spent and the limit.
func (e *BudgetError) Error() string {
	return fmt.Sprintf("budget exceeded: %s %s of %s; the run stopped", e.What, e.Spent, e.Limit)
}

// ReviewPendingError reports that steps wait for a review decision (exit 3).
type ReviewPendingError struct {
	Steps []string
}

// Error names the steps awaiting review and the commands that decide them.
func (e *ReviewPendingError) Error() string {
	return fmt.Sprintf("waiting for review: %s (codemachine approve STEP, or reject STEP -m WHY)", strings.Join(e.Steps, ", "))
}

// NeedsYouError reports that interactive steps wait for a person at a
// terminal (exit 3, like a review).
type NeedsYouError struct {
	Steps []string
	// Hint says what to do ("" = the interactive steps' hint).
	Hint string
}

// Error says what needs the user and, when known, what to do.
func (e *NeedsYouError) Error() string {
	if e.Hint != "" {
		return fmt.Sprintf("needs you: %s (%s)", strings.Join(e.Steps, ", "), e.Hint)
	}
	return fmt.Sprintf("needs you: %s (interactive: codemachine run in a terminal, or codemachine open STEP)", strings.Join(e.Steps, ", "))
}

// ErrInterrupted is returned when a run was stopped by a signal (exit 130).
var ErrInterrupted = errors.New("interrupted")

// ExitCode maps an error returned by this package to the documented exit code
// (README.md).
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var cfg *ConfigError
	var failed *StepFailedError
	var budget *BudgetError
	var review *ReviewPendingError
	var needsYou *NeedsYouError
	var damaged *gitstate.DamagedFileError
	var unmerged *gitstate.UnmergedError
	switch {
	case errors.Is(err, ErrInterrupted), errors.Is(err, context.Canceled):
		// A command other than run stopped by a signal fails with the
		// cancellation of its git commands.
		return ExitInterrupted
	case errors.As(err, &cfg), errors.As(err, &damaged), errors.As(err, &unmerged), errors.Is(err, gitstate.ErrObjectFormat):
		// A damaged file of codemachine's own is for the user to fix
		// or remove, as a broken workflow is, and so are the conflicts
		// of a merge in the checkout; a repository it cannot read
		// (SHA-256) is the set-up's: nothing failed.
		return ExitUsage
	case errors.As(err, &budget):
		return ExitBudget
	case errors.As(err, &review), errors.As(err, &needsYou):
		return ExitReview
	case errors.As(err, &failed):
		return ExitStepFailed
	}
	return ExitStepFailed
}
