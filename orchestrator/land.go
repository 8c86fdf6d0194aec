package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// land lands a unit's verified candidate commit on the branch, or puts it
// up for review; the scheduler calls it, one unit at a time. It returns an
// error only when codemachine itself failed; a conflict is reported and
// kept on a branch.
func (j *job) land(ctx context.Context) error {
	if j.u.step.Review {
		return j.submitForReview(ctx)
	}
	o, rs, u, c := j.o, j.rs, j.u, j.cand
	c.keepReworded = true
	res, err := o.repo.Land(ctx, rs.branch, j.snap.commit, c.commit, gitstate.LandOptions{
		ConflictBranch:  "codemachine/conflict/" + u.key(),
		Overlay:         func(tip, merged string) (string, error) { return o.overlay(ctx, u, c, tip, merged) },
		OverlayPaths:    c.overlayPaths(u),
		OverlayReplaces: func(tip string) []string { return o.overlayReplaces(u, c, tip) },
		Protect:         j.wt.Protect,
	})
	var conflict *gitstate.ConflictError
	errors.As(err, &conflict)
	if err == nil {
		// A conflict kept from an earlier run is settled by this landing.
		if _, derr := o.repo.DeleteBranches(ctx, "codemachine/conflict/"+u.key()); derr != nil {
			o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: derr.Error()})
		}
	}
	if err := j.wt.Finish(ctx, c.commit); err != nil {
		j.wt.Discard()
	}
	if err != nil {
		if conflict == nil {
			j.landFailed(ctx, err)
			return fmt.Errorf("land %s: %w", u.key(), err)
		}
		j.conflicted(conflict, err)
		return nil
	}
	e := j.landedEvent(res.Commit, res.Rebased)
	// A task is done by its ticked box, whatever its inputs: only a step
	// can land stale (and only a rebased one: the branch moved).
	if res.Rebased && u.task == nil && o.staleAt(res.Commit, u, rs.opts.Overrides) {
		e.Stale = true
		e.Message = "its inputs changed while it ran: landed, and due again"
	}
	if res.Rebased && c.unticked {
		e.Stale = true
		e.Message = "reworded while it ran: landed with its box unchecked, and due again as it now reads"
	}
	rs.recordLanded(e)
	o.emit(e)
	if err := o.forget(u.key()); err != nil {
		return err
	}
	if err := j.afterHook(ctx, res.Commit); err != nil {
		o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: err.Error()})
	}
	return nil
}

// landedEvent is the StepLanded event of the unit's commit, landed as
// commit.
func (j *job) landedEvent(commit string, rebased bool) Event {
	u, c, out := j.u, j.cand, j.out
	return Event{Kind: StepLanded, Step: u.step.ID, Task: taskID(u.task), Title: c.msg.Subject, Engine: j.engineName,
		Model: c.model, Duration: c.duration, Tokens: out.result.TokensIn + out.result.TokensOut,
		CostUSD: out.result.CostUSD, CostOK: out.result.CostKnown, Commit: commit, Rebased: rebased,
		Attempt: out.attempts}
}

// staleAt reports whether u, landed as commit after a rebase, is due there
// with other inputs than those it ran with: an input (or its definition)
// was committed while it ran, so its result is not current.
func (o *Orchestrator) staleAt(commit string, u *unit, ov Overrides) bool {
	snap, err := o.load(commit, ov)
	if err != nil {
		return false
	}
	fp, due := dueFingerprint(snap, u.key())
	return due && fp != u.fingerprint()
}

// submitForReview puts the unit's commit on its review branch instead of
// landing it (review: true), and applies a reviewer agent's verdict
// (review: AGENT; see reviewer.go).
func (j *job) submitForReview(ctx context.Context) error {
	o, rs, u, c, out := j.o, j.rs, j.u, j.cand, j.out
	if j.review != nil {
		// Until the verdict is applied, a kill leaves a review no
		// reviewer will give: the journal lets the next command release it.
		if err := o.beginVerdict(u.key(), c.commit); err != nil {
			j.wt.Discard()
			return err
		}
	}
	branch, err := o.keepForReview(ctx, u.key(), c.commit)
	if err != nil {
		j.wt.Discard()
		return errors.Join(err, o.endVerdict())
	}
	if err := j.wt.Finish(ctx, c.commit); err != nil {
		j.wt.Discard()
	}
	if j.review != nil {
		if err := o.forget(u.key()); err != nil {
			return err
		}
		j.again, err = j.applyReview(ctx)
		return errors.Join(err, o.endVerdict())
	}
	e := Event{Kind: StepReview, Step: u.step.ID, Task: taskID(u.task), Title: c.msg.Subject, Engine: j.engineName,
		Model: c.model, Duration: c.duration, Tokens: out.result.TokensIn + out.result.TokensOut,
		CostUSD: out.result.CostUSD, CostOK: out.result.CostKnown, Commit: c.commit, Ref: branch}
	rs.recordReview(e)
	o.emit(e)
	return o.forget(u.key())
}

// landFailed reports a unit whose landing failed for another reason than
// a conflict (the user's files could not be written, say): the run stops,
// but the unit's commit, which cost an agent's work, is kept on its failed
// ref and the failure remembered, as for a unit that failed itself, so that
// status, diff and retry know of it.
func (j *job) landFailed(ctx context.Context, err error) {
	o, u, c := j.o, j.u, j.cand
	msg := "not landed: " + err.Error()
	ref, uerr := o.keepFailedRef(context.WithoutCancel(ctx), u.key(), c.commit, "codemachine: "+u.key()+" not landed")
	if uerr != nil {
		ref = ""
		msg += " (its commit could not be kept: " + uerr.Error() + ")"
	}
	e := Event{Kind: StepFailed, Step: u.step.ID, Task: taskID(u.task), Engine: j.engineName, Model: c.model,
		Duration: c.duration, Ref: ref, Commit: c.commit, Message: msg}
	j.rs.recordFailure(e)
	o.emit(e)
	_ = o.updateFailures(func(m map[string]Failure) {
		m[u.key()] = Failure{Fingerprint: u.fingerprint(), Error: msg, Ref: ref, Commit: c.commit,
			Run: j.rs.id, At: o.cfg.Now().UTC()}
	})
}

// conflicted reports a unit whose commit could not be rebased onto the
// branch: it stays on its conflict branch, and counts as a failure.
func (j *job) conflicted(conflict *gitstate.ConflictError, err error) {
	o, u, c := j.o, j.u, j.cand
	e := Event{Kind: StepConflict, Step: u.step.ID, Task: taskID(u.task), Engine: j.engineName, Model: c.model,
		Duration: c.duration, Ref: conflict.Branch, Commit: c.commit, Message: err.Error()}
	j.rs.recordFailure(e)
	o.emit(e)
	_ = o.updateFailures(func(m map[string]Failure) {
		m[u.key()] = Failure{Fingerprint: u.fingerprint(), Error: err.Error(), Ref: "refs/heads/" + conflict.Branch,
			Commit: c.commit, Conflict: true, Run: j.rs.id, At: o.cfg.Now().UTC()}
	})
}

// keepDeleted keeps the work of a task that finished but was deleted from
// the plan before its turn to land: like a running task deleted, it does
// not land, and its work goes to its failed ref.
func (j *job) keepDeleted(ctx context.Context) error {
	if err := j.cand.undoOverlays(j.wt.Path()); err != nil {
		j.wt.Discard()
		return err
	}
	return j.fail(ctx, fmt.Sprintf("task %s was deleted from %s before it landed", j.u.task.ID, j.u.step.TaskSource())).err
}

// overlay re-applies the unit's state record and ticked box on top of a
// tree rebased onto tip (the branch moved while the unit ran: another task
// landed, or the user committed). state.yaml is rebuilt from the tip's; the
// plan is the tip's with the box ticked, unless the agent edited the plan
// itself, in which case its edit is merged into the tip's plan with the
// boxes left out of the line merge (mergePlans); where that cannot be
// done, the merged plan (which merged cleanly) is ticked.
func (o *Orchestrator) overlay(ctx context.Context, u *unit, c *candidate, tip, merged string) (string, error) {
	c.unticked = false
	tipState, err := o.loadState(tip)
	if err != nil {
		return "", err
	}
	files := map[string]gitstate.Blob{}
	hash, err := o.repo.HashObject(ctx, o.marshalState(applyRecord(tipState, u, c.rec, c.taskFP)))
	if err != nil {
		return "", err
	}
	files[workflow.StateFile] = gitstate.Blob{Hash: hash, Mode: "100644"}
	if u.step.Foreach == "" || u.task == nil {
		// A fan-out over files or items has no plan to tick.
		return o.repo.OverlayTree(ctx, merged, files)
	}
	data, ok, err := o.overlayPlan(ctx, u, c, tip, merged)
	if err != nil {
		return "", err
	}
	if ok {
		h, err := o.repo.HashObject(ctx, data)
		if err != nil {
			return "", err
		}
		files[u.step.Foreach] = gitstate.Blob{Hash: h, Mode: "100644"}
	}
	return o.repo.OverlayTree(ctx, merged, files)
}

// overlayPlan is the plan overlay writes for u's task on top of tip (see
// overlay); ok is false to leave the merged tree's as it is.
func (o *Orchestrator) overlayPlan(ctx context.Context, u *unit, c *candidate, tip, merged string) (data []byte, ok bool, err error) {
	file := u.step.Foreach
	if c.agentEditedPlan && c.mergesPlan() {
		tipPlan, err := o.repo.ReadFile(tip, file)
		if err != nil {
			// The tip has no plan: the agent's edit meets a deletion.
			return nil, false, &gitstate.ConflictError{Reason: "the branch moved", Paths: []string{file}}
		}
		data, err := o.mergePlans(ctx, file, u.task.ID, c.planBase, tipPlan, c.planCand)
		if errors.Is(err, errPlanConflict) {
			return nil, false, &gitstate.ConflictError{Reason: "the branch moved", Paths: []string{file}}
		}
		if err != nil {
			return nil, false, err
		}
		if c.keepReworded && o.reworded(u, tipPlan) {
			// As below: the agent's own edit lands, the box unchecked.
			if data, err = untick(file, data, u.task.ID); err != nil {
				return nil, false, err
			}
			c.unticked = true
		}
		return data, true, nil
	}
	from := merged
	if !c.agentEditedPlan {
		from = tip
	}
	planData, err := o.repo.ReadFile(from, file)
	if err != nil {
		return nil, false, nil
	}
	if c.keepReworded && !c.agentEditedPlan && o.reworded(u, planData) {
		// Ticked, the task would be done as it now reads with the work
		// of its old wording (a step whose input changed while it ran
		// lands and runs again; so does the task).
		c.unticked = true
		return planData, true, nil
	}
	if ticked, ok := o.tick(file, planData, u.task.ID); ok {
		return ticked, true, nil
	}
	return planData, !c.agentEditedPlan, nil
}

// untick unchecks the task id's box in the plan data.
func untick(file string, data []byte, id string) ([]byte, error) {
	p, err := workflow.ParsePlan(file, data)
	if p.Task(id) == nil {
		return nil, fmt.Errorf("untick %s in %s: %w", id, file, cmp.Or(err, errors.New("no such task")))
	}
	return p.SetDone(id, false)
}

// reworded reports whether u's task reads otherwise in the plan data (the
// branch tip's) than it did when it started: its title, body or after:.
func (o *Orchestrator) reworded(u *unit, data []byte) bool {
	plan, ok := o.plans.get(u.step.Foreach, data)
	if !ok {
		var err error
		if plan, err = workflow.ParsePlan(u.step.Foreach, data); err != nil {
			return false
		}
		o.plans.put(u.step.Foreach, data, plan)
	}
	t := plan.Task(u.task.ID)
	return t != nil && !t.Done && (t.Title != u.task.Title || t.Body != u.task.Body || !slices.Equal(t.After, u.task.After))
}

// overlayReplaces are the paths whose content in the merged tree overlay
// replaces, whatever it is, for a rebase onto tip: state.yaml, rebuilt
// from the tip's, and the plan when overlay takes it from the tip (the
// agent did not edit it, and the tip has it) or merges the agent's edit
// itself. A merge may take the tip's version of these (gitstate's
// disjoint merge), since overlay writes them anew.
func (o *Orchestrator) overlayReplaces(u *unit, c *candidate, tip string) []string {
	paths := []string{workflow.StateFile}
	if u.task == nil {
		return paths
	}
	if c.agentEditedPlan && c.mergesPlan() {
		return append(paths, u.step.Foreach)
	}
	if !c.agentEditedPlan {
		if _, err := o.repo.ReadFile(tip, u.step.Foreach); err == nil {
			return append(paths, u.step.Foreach)
		}
	}
	return paths
}

// overlayPaths are the paths whose merge conflicts overlay resolves.
func (c *candidate) overlayPaths(u *unit) []string {
	paths := []string{workflow.StateFile}
	if u.task != nil && u.step.Foreach != "" && (!c.agentEditedPlan || c.mergesPlan()) {
		paths = append(paths, u.step.Foreach)
	}
	return paths
}

// mergesPlan reports whether a rebase can merge the agent's plan edit
// itself (mergePlans): the plan existed at the base and still does.
func (c *candidate) mergesPlan() bool {
	return c.planBase != nil && c.planCand != nil
}
