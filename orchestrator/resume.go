package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// Session resume (issue 3): when a unit is interrupted (Ctrl-C, a timeout,
// or a transient failure that used up its retries) after its engine
// reported a session, the failure record keeps the session and the engine.
// The unit's next attempt with the same engine and inputs, in a later `run`
// or a `retry`, puts the partial work of refs/codemachine/failed/<key> back
// into the fresh worktree (the failed commit's tree, HEAD still at the
// base) and resumes the session with a short continue prompt instead of
// starting over. Within one run, a transient failure's retry resumes the
// session the same way (runEngine), in the worktree the agent left.

// resumableSession returns the session a failed engine run may be resumed
// from: the failure was an interrupt, a timeout or transient, and the
// engine had reported a session ("" otherwise). last is the unit's result
// so far, whose session is the latest any try reported.
func resumableSession(err error, last agents.Result) string {
	var re *agents.RunError
	if !errors.As(err, &re) || !(re.Canceled || re.TimedOut || re.Class == agents.Transient) {
		return ""
	}
	if re.Result.SessionID != "" {
		return re.Result.SessionID
	}
	return last.SessionID
}

// continuePrompt is what a resumed session is told: the agent already has
// the task in its history, so it gets a reminder and the footer (where
// the repository is, what to produce, not to commit).
func continuePrompt(u *unit, dir string) string {
	var b strings.Builder
	b.WriteString("You were interrupted before you finished. Continue the task")
	if u.task != nil {
		fmt.Fprintf(&b, " (%s: %s)", u.task.ID, u.task.Title)
	}
	b.WriteString(" from where you stopped; the changes you made so far are in the working tree.\n")
	b.WriteString(workflow.Footer(dir, u.step.Outputs))
	return b.String()
}

// resumePoint finds the session to resume for u and restores its partial
// work into the worktree, which must be fresh at snap.commit. It returns
// "" (and restores nothing) unless the unit's last failure is resumable
// with this engine and these inputs, and its partial work was based on the
// same commit; an error only when the restore itself failed.
func (o *Orchestrator) resumePoint(ctx context.Context, snap *snapshot, u *unit, wt *gitstate.Worktree, engineName string) (string, error) {
	if engineName == "shell" || engineName == "replay" {
		return "", nil // no sessions: spare the hot path the read
	}
	failures, err := o.failures()
	if err != nil {
		return "", err
	}
	f, ok := failures[u.key()]
	if !ok || f.Session == "" || f.Engine != engineName || f.Fingerprint != u.fingerprint() || f.Commit == "" {
		return "", nil
	}
	c, err := o.repo.CommitInfo(f.Commit)
	if err != nil || len(c.Parents) == 0 || c.Parents[0] != snap.commit {
		// The branch moved on (or the ref is gone): the session's idea of
		// the files no longer holds, so the unit starts over.
		return "", nil
	}
	// The worktree is clean at snap.commit, the failed commit's parent:
	// the partial work becomes uncommitted again, as the agent left it.
	if err := wt.RestoreWork(ctx, f.Commit); err != nil {
		return "", fmt.Errorf("restore the partial work of %s: %w", u.key(), err)
	}
	o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task),
		Message: fmt.Sprintf("resuming %s session %s with the partial work of %s", engineName, f.Session, short(f.Commit))})
	return f.Session, nil
}

// liftFailure drops the failure `retry` lifts, unless the unit can resume
// its session: the next attempt needs that record, and replaces it (by
// landing, or by failing again).
func liftFailure(failures map[string]Failure, key string) {
	if failures[key].Session == "" {
		delete(failures, key)
	}
}
