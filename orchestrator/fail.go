package orchestrator

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/codemachine/codemachine/gitstate"
)

// failWithoutWork reports a unit that failed before it had a worktree.
func (o *Orchestrator) failWithoutWork(rs *runState, u *unit, msg string) {
	e := Event{Kind: StepFailed, Step: u.step.ID, Task: taskID(u.task), Message: msg}
	rs.recordFailure(e)
	o.emit(e)
	_ = o.updateFailures(func(m map[string]Failure) {
		m[u.key()] = Failure{Fingerprint: u.fingerprint(), Error: msg, Run: rs.id, At: o.cfg.Now().UTC()}
	})
}

// fail keeps the unit's partial work on refs/codemachine/failed/<key>,
// remembers the failure and runs the on_failure hook. Nothing lands.
func (o *Orchestrator) fail(ctx context.Context, rs *runState, snap *snapshot, u *unit, wt *gitstate.Worktree, engineName string, out attemptOutcome, start time.Time) execResult {
	key := u.key()
	ref := "refs/codemachine/failed/" + key
	var commit string
	tree, err := wt.Stage(ctx)
	if err == nil {
		msg := gitstate.Message{
			Subject:  fmt.Sprintf("codemachine(%s): failed: %s", key, truncate(firstLine(out.failure), 60)),
			Body:     strings.TrimSpace(out.failure + "\n\n" + tail(out.result.Output, 40)),
			Trailers: o.trailers(rs, u, engineName, out, start),
		}
		commit, err = o.repo.CommitTree(ctx, gitstate.CommitSpec{Tree: tree, Parents: []string{snap.commit},
			Message: msg.String(), Author: o.author(engineName, u.settings.model)})
		if err == nil {
			old, _ := o.repo.ResolveRev(ref)
			err = o.repo.UpdateRef(ctx, ref, commit, old, "codemachine: "+key+" failed")
		}
	}
	if err != nil {
		ref, commit = "", ""
		out.failure += " (its partial work could not be saved: " + err.Error() + ")"
	}
	// on_failure runs in the worktree before the worktree goes back to the
	// pool: what the hook leaves there must not reach the next step.
	hookEnv := append(o.unitEnv(rs, u, wt.Path()), "CODEMACHINE_WORKTREE="+wt.Path(), "CODEMACHINE_COMMIT="+commit)
	hookErr := o.runHook(ctx, "on_failure", u.step.Hooks.OnFailure, wt.Path(), hookEnv)
	if commit == "" || u.step.Hooks.OnFailure != "" || wt.Finish(ctx, commit) != nil {
		wt.Discard()
	}
	e := Event{Kind: StepFailed, Step: u.step.ID, Task: taskID(u.task), Engine: engineName, Model: u.settings.model,
		Duration: o.cfg.Now().Sub(start), Message: out.failure, Ref: ref, Commit: commit, Attempt: out.attempts,
		Log:    o.repo.RelPath(o.logPath(rs, u)),
		Tokens: out.result.TokensIn + out.result.TokensOut, CostUSD: out.result.CostUSD, CostOK: out.result.CostKnown}
	rs.recordFailure(e)
	o.emit(e)
	if hookErr != nil {
		o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: hookErr.Error()})
	}
	if err := o.updateFailures(func(m map[string]Failure) {
		f := Failure{Fingerprint: u.fingerprint(), Error: out.failure, Ref: ref, Commit: commit,
			Run: rs.id, At: o.cfg.Now().UTC()}
		if out.session != "" && commit != "" {
			f.Session, f.Engine = out.session, engineName
		}
		m[key] = f
	}); err != nil {
		return execResult{err: err}
	}
	return execResult{}
}
