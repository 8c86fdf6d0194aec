package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// land lands a unit's verified candidate commit on the branch; the
// scheduler calls it, one unit at a time. It returns an error only when
// codemachine itself failed; a conflict is reported and kept on a branch.
func (o *Orchestrator) land(ctx context.Context, rs *runState, snap *snapshot, u *unit, r execResult) error {
	wt, engineName, out, c := r.wt, r.engineName, r.out, r.cand
	model, duration, dir := c.model, c.duration, wt.Path()
	msg, commit := c.msg, c.commit
	key := u.key()
	if u.step.Review {
		rs.landing.Lock()
		branch, err := o.keepForReview(ctx, key, commit)
		if err == nil {
			rs.noteRef("refs/heads/"+branch, commit)
		}
		rs.landing.Unlock()
		if err != nil {
			wt.Discard()
			return err
		}
		if err := wt.Finish(ctx, commit); err != nil {
			wt.Discard()
		}
		e := Event{Kind: StepReview, Step: u.step.ID, Task: taskID(u.task), Title: msg.Subject, Engine: engineName,
			Model: model, Duration: duration, Tokens: out.result.TokensIn + out.result.TokensOut,
			CostUSD: out.result.CostUSD, CostOK: out.result.CostKnown, Commit: commit, Ref: branch}
		rs.recordReview(e)
		o.emit(e)
		return o.forget(key)
	}
	rs.landing.Lock()
	res, err := o.repo.Land(ctx, rs.branch, snap.commit, commit, gitstate.LandOptions{
		ConflictBranch: "codemachine/conflict/" + key,
		Overlay:        func(tip, merged string) (string, error) { return o.overlay(ctx, u, c, tip, merged) },
		OverlayPaths:   c.overlayPaths(u),
		Worktree:       wt,
	})
	var conflict *gitstate.ConflictError
	if errors.As(err, &conflict) {
		if kept, err := o.repo.ResolveRev("refs/heads/" + conflict.Branch); err == nil {
			rs.noteRef("refs/heads/"+conflict.Branch, kept)
		}
	}
	rs.landing.Unlock()
	if err := wt.Finish(ctx, commit); err != nil {
		wt.Discard()
	}
	if err != nil {
		if conflict == nil {
			return fmt.Errorf("land %s: %w", key, err)
		}
		e := Event{Kind: StepConflict, Step: u.step.ID, Task: taskID(u.task), Engine: engineName, Model: model,
			Duration: duration, Ref: conflict.Branch, Commit: commit, Message: err.Error()}
		rs.recordFailure(e)
		o.emit(e)
		_ = o.updateFailures(func(m map[string]Failure) {
			m[key] = Failure{Fingerprint: u.fingerprint(), Error: err.Error(), Ref: "refs/heads/" + conflict.Branch,
				Commit: commit, Conflict: true, Run: rs.id, At: o.cfg.Now().UTC()}
		})
		return nil
	}
	e := Event{Kind: StepLanded, Step: u.step.ID, Task: taskID(u.task), Title: msg.Subject, Engine: engineName,
		Model: model, Duration: duration, Tokens: out.result.TokensIn + out.result.TokensOut,
		CostUSD: out.result.CostUSD, CostOK: out.result.CostKnown, Commit: res.Commit, Rebased: res.Rebased,
		Attempt: out.attempts}
	rs.recordLanded(e)
	o.emit(e)
	if err := o.forget(key); err != nil {
		return err
	}
	hookEnv := append(o.unitEnv(rs, u, o.repo.Root()), "CODEMACHINE_WORKTREE="+dir, "CODEMACHINE_COMMIT="+res.Commit)
	if err := o.runHook(ctx, "after", u.step.Hooks.After, o.repo.Root(), hookEnv); err != nil {
		o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: err.Error()})
	}
	return nil
}

// keepDeleted keeps the work of a task that finished but was deleted from
// the plan before its turn to land: like a running task deleted, it does
// not land, and its work goes to its failed ref.
func (o *Orchestrator) keepDeleted(ctx context.Context, rs *runState, a *active, r execResult) error {
	u := a.u
	if err := r.cand.undoOverlays(r.wt.Path()); err != nil {
		r.wt.Discard()
		return err
	}
	out := r.out
	out.failure = fmt.Sprintf("task %s was deleted from %s before it landed", u.task.ID, u.step.Foreach)
	return o.fail(ctx, rs, a.snap, u, r.wt, r.engineName, out, r.start).err
}

// overlay re-applies the unit's state record and ticked box on top of a
// tree rebased onto tip (the branch moved while the unit ran: another task
// landed, or the user committed). state.yaml is rebuilt from the tip's; the
// plan is the tip's with the box ticked, unless the agent edited the plan
// itself, in which case its edit is merged into the tip's plan with the
// boxes left out of the line merge (mergePlans); where that cannot be
// done, the merged plan (which merged cleanly) is ticked.
func (o *Orchestrator) overlay(ctx context.Context, u *unit, c *candidate, tip, merged string) (string, error) {
	tipState, err := o.loadState(tip)
	if err != nil {
		return "", err
	}
	files := map[string]gitstate.Blob{}
	hash, err := o.repo.HashObject(ctx, o.marshalState(applyRecord(tipState, u, c.rec)))
	if err != nil {
		return "", err
	}
	files[workflow.StateFile] = gitstate.Blob{Hash: hash, Mode: "100644"}
	if u.task != nil && c.agentEditedPlan && c.mergesPlan() {
		tipPlan, err := o.repo.ReadFile(tip, u.step.Foreach)
		if err != nil {
			// The tip has no plan: the agent's edit meets a deletion.
			return "", &gitstate.ConflictError{Reason: "the branch moved", Paths: []string{u.step.Foreach}}
		}
		data, err := o.mergePlans(ctx, u.step.Foreach, u.task.ID, c.planBase, tipPlan, c.planCand)
		if errors.Is(err, errPlanConflict) {
			return "", &gitstate.ConflictError{Reason: "the branch moved", Paths: []string{u.step.Foreach}}
		}
		if err != nil {
			return "", err
		}
		h, err := o.repo.HashObject(ctx, data)
		if err != nil {
			return "", err
		}
		files[u.step.Foreach] = gitstate.Blob{Hash: h, Mode: "100644"}
	} else if u.task != nil {
		from := merged
		if !c.agentEditedPlan {
			from = tip
		}
		if planData, err := o.repo.ReadFile(from, u.step.Foreach); err == nil {
			if ticked, ok := o.tick(u.step.Foreach, planData, u.task.ID); ok {
				h, err := o.repo.HashObject(ctx, ticked)
				if err != nil {
					return "", err
				}
				files[u.step.Foreach] = gitstate.Blob{Hash: h, Mode: "100644"}
			} else if !c.agentEditedPlan {
				h, err := o.repo.HashObject(ctx, planData)
				if err != nil {
					return "", err
				}
				files[u.step.Foreach] = gitstate.Blob{Hash: h, Mode: "100644"}
			}
		}
	}
	return o.repo.OverlayTree(ctx, merged, files)
}

// overlayPaths are the paths whose merge conflicts overlay resolves.
func (c *candidate) overlayPaths(u *unit) []string {
	paths := []string{workflow.StateFile}
	if u.task != nil && (!c.agentEditedPlan || c.mergesPlan()) {
		paths = append(paths, u.step.Foreach)
	}
	return paths
}

// mergesPlan reports whether a rebase can merge the agent's plan edit
// itself (mergePlans): the plan existed at the base and still does.
func (c *candidate) mergesPlan() bool {
	return c.planBase != nil && c.planCand != nil
}
