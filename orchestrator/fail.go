package orchestrator

import (
	"context"
	"fmt"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
)

// failWithoutWork reports a unit that failed before it had a worktree.
func (j *job) failWithoutWork(msg string) {
	o, u := j.o, j.u
	e := Event{Kind: StepFailed, Step: u.step.ID, Task: taskID(u.task), Message: msg}
	j.rs.recordFailure(e)
	o.emit(e)
	_ = o.updateFailures(func(m map[string]Failure) {
		m[u.key()] = Failure{Fingerprint: u.fingerprint(), Error: msg, Run: j.rs.id, At: o.cfg.Now().UTC()}
	})
}

// failCanceled fails a unit whose engine or check was stopped: its task
// was deleted from the plan, or the run was interrupted. The partial work
// is kept whatever stopped the unit, so the save must not be canceled too.
func (j *job) failCanceled(ctx context.Context) execResult {
	cause := context.Cause(ctx)
	ctx = context.WithoutCancel(ctx)
	if cause == errTaskDeleted {
		return j.fail(ctx, fmt.Sprintf("task %s was deleted from %s while it ran", j.u.task.ID, j.u.step.TaskSource()))
	}
	if j.attempts == 0 && j.worktreeUnchanged(ctx) {
		// Interrupted before its engine or command started, with nothing
		// done: no failure to remember, no work to keep, no failed ref.
		j.wt.Discard()
		e := Event{Kind: StepSkipped, Step: j.u.step.ID, Task: taskID(j.u.task), Message: "interrupted before it started"}
		j.rs.recordSkipped(e)
		j.o.emit(e)
		return execResult{interrupted: true}
	}
	why := j.out.failure
	if why == "" {
		why = "interrupted"
	}
	j.out.interrupted = true
	r := j.fail(ctx, why)
	r.interrupted = true
	return r
}

// worktreeUnchanged reports whether the unit's worktree holds exactly its base.
func (j *job) worktreeUnchanged(ctx context.Context) bool {
	tree, err := j.wt.Stage(ctx)
	if err != nil || len(j.wt.LeftOut()) > 0 || len(j.wt.Nested()) > 0 || j.wt.GitAlias() != nil {
		return false
	}
	base, err := j.o.repo.TreeOf(j.snap.commit)
	return err == nil && base == tree
}

// fail keeps the unit's partial work on refs/codemachine/failed/<key>,
// remembers the failure (why) and runs the on_failure hook. Nothing lands.
func (j *job) fail(ctx context.Context, why string) execResult {
	o, u, out := j.o, j.u, &j.out
	if len(out.result.Warnings) > 0 {
		// A replayed recording made for another prompt is the likely
		// cause: the failure says so.
		first, rest, _ := strings.Cut(why, "\n")
		why = strings.TrimRight(first+" ("+out.result.Warnings[0]+")\n"+rest, "\n")
	}
	out.failure = why
	ref, commit, err := j.keepPartialWork(ctx)
	if err != nil {
		out.failure += " (its partial work could not be saved: " + err.Error() + ")"
	}
	// on_failure runs in the worktree before the worktree goes back to the
	// pool: what the hook leaves there must not reach the next step.
	hookErr := j.onFailureHook(ctx, commit)
	if commit == "" || u.step.Hooks.OnFailure != "" || j.wt.Finish(ctx, commit) != nil {
		j.wt.Discard()
	}
	e := Event{Kind: StepFailed, Step: u.step.ID, Task: taskID(u.task), Engine: j.engineName, Model: u.settings.model,
		Duration: o.cfg.Now().Sub(j.start), Message: out.failure, Ref: ref, Commit: commit, Attempt: out.attempts,
		Log:    o.repo.RelPath(j.logPath()),
		Tokens: out.result.TokensIn + out.result.TokensOut, CostUSD: out.result.CostUSD, CostOK: out.result.CostKnown}
	j.rs.recordFailure(e)
	o.emit(e)
	if hookErr != nil {
		o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: hookErr.Error()})
	}
	if err := o.updateFailures(func(m map[string]Failure) {
		f := Failure{Fingerprint: u.fingerprint(), Error: out.failure, Ref: ref, Commit: commit,
			Interrupted: out.interrupted, Run: j.rs.id, At: o.cfg.Now().UTC()}
		if out.session != "" && commit != "" {
			f.Session, f.Engine, f.Slot, f.Home = out.session, j.engineName, u.slot, u.home
		}
		m[u.key()] = f
	}); err != nil {
		return execResult{err: err}
	}
	return execResult{}
}

// keepPartialWork commits what the unit left in its worktree onto its base
// and points the unit's failed ref at that commit. An agent engine's
// failure that left nothing (an API error before the agent did anything),
// or an agent that never ran (a prompt that failed to render), keeps
// nothing: no empty commit, no ref ("", "", nil).
func (j *job) keepPartialWork(ctx context.Context) (ref, commit string, err error) {
	o, key := j.o, j.u.key()
	tree, err := j.wt.Stage(ctx)
	if err != nil {
		return "", "", err
	}
	if (j.out.engineFailed || j.out.noAgent) && j.out.session == "" && j.u.step.Run == "" {
		// The agent's engine failed (an API error, say) and left nothing:
		// no empty commit. (A session to resume keeps its commit, even an
		// empty one: the resumed attempt needs it; a command's failure
		// keeps its output in the commit's message, and other failures
		// theirs, as the record of what happened.)
		if baseTree, err := o.repo.TreeOf(j.snap.commit); err == nil && baseTree == tree {
			return "", "", nil
		}
	}
	msg := gitstate.Message{
		Subject:  fmt.Sprintf("codemachine(%s): failed: %s", key, truncate(firstLine(j.out.failure), 60)),
		Body:     strings.TrimSpace(j.out.failure + "\n\n" + tail(j.out.result.Output, 40)),
		Trailers: j.trailers(),
	}
	commit, err = o.repo.CommitTree(ctx, gitstate.CommitSpec{Tree: tree, Parents: []string{j.snap.commit},
		Message: msg.String(), Author: o.author(j.engineName, j.u.settings.model)})
	if err != nil {
		return "", "", err
	}
	ref, err = o.keepFailedRef(ctx, key, commit, "codemachine: "+key+" failed")
	if err != nil {
		return "", "", err
	}
	return ref, commit, nil
}

// failedRefPrefix holds each unit's latest failed work.
const failedRefPrefix = "refs/codemachine/failed/"

// keepFailedRef points the failed ref of the unit key at commit and
// returns its name (keepRef).
func (o *Orchestrator) keepFailedRef(ctx context.Context, key, commit, msg string) (string, error) {
	return o.keepRef(ctx, failedRefPrefix, key, commit, msg)
}

// keepRef points prefix+key (a failed, rejected or superseded unit's ref)
// at commit and returns its name. A ref of the step from before it changed
// shape (a step that became a foreach, or the reverse) would leave git no
// room for it: that one is moved aside, kept (gitstate.MakeRoomForRef),
// rather than lose this unit's work.
func (o *Orchestrator) keepRef(ctx context.Context, prefix, key, commit, msg string) (string, error) {
	ref := prefix + key
	old, _ := o.repo.ResolveRev(ref)
	if old == "" {
		stamp := o.cfg.Now().UTC().Format("20060102T150405Z")
		if _, err := o.repo.MakeRoomForRef(ctx, prefix, ref, stamp, nil); err != nil {
			return "", err
		}
	}
	if err := o.repo.UpdateRef(ctx, ref, commit, old, msg); err != nil {
		return "", err
	}
	return ref, nil
}
