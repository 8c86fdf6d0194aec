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
// with this engine and these inputs; an error only when the restore itself
// failed. Partial work based on an older commit (a sibling task landed
// meanwhile, the usual case with parallel tasks, or the user committed) is
// brought onto snap.commit with a three-way merge; when that conflicts, or
// the engine or the inputs changed, the unit starts over and the run says
// why.
func (o *Orchestrator) resumePoint(ctx context.Context, snap *snapshot, u *unit, wt *gitstate.Worktree, engineName string) (string, error) {
	if engineName == "shell" || engineName == "replay" {
		return "", nil // no sessions: spare the hot path the read
	}
	failures, err := o.failures()
	if err != nil {
		return "", err
	}
	f, ok := failures[u.key()]
	if !ok || f.Session == "" || f.Commit == "" {
		return "", nil
	}
	startOver := func(why string) (string, error) {
		o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: fmt.Sprintf(
			"not resuming %s session %s: %s; starting over (the partial work stays on %s)", f.Engine, f.Session, why, f.Ref)})
		return "", nil
	}
	switch {
	case f.Engine != engineName:
		return startOver("it was " + f.Engine + "'s, this attempt runs " + engineName)
	case f.Fingerprint != u.fingerprint():
		return startOver("the step or its inputs changed since")
	}
	c, err := o.repo.CommitInfo(f.Commit)
	if err != nil || len(c.Parents) == 0 {
		return startOver("its partial work " + short(f.Commit) + " is gone")
	}
	work, moved := f.Commit, c.Parents[0] != snap.commit
	if moved {
		tree, conflicts, err := o.repo.MergeTree(ctx, c.Parents[0], snap.commit, f.Commit)
		if err != nil {
			return "", fmt.Errorf("bring the partial work of %s onto %s: %w", u.key(), short(snap.commit), err)
		}
		if len(conflicts) > 0 {
			return startOver(fmt.Sprintf("its partial work conflicts with what landed since (%s)", strings.Join(conflicts, ", ")))
		}
		work = tree
	}
	// The worktree is clean at snap.commit: the partial work becomes
	// uncommitted again, as the agent left it (on the new base when the
	// branch moved).
	if err := wt.RestoreWork(ctx, work); err != nil {
		return "", fmt.Errorf("restore the partial work of %s: %w", u.key(), err)
	}
	msg := fmt.Sprintf("resuming %s session %s with the partial work of %s", engineName, f.Session, short(f.Commit))
	if moved {
		msg += fmt.Sprintf(", brought onto %s (the branch moved since %s)", short(snap.commit), short(c.Parents[0]))
	}
	o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: msg})
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
