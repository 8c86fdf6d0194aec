package orchestrator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// Remote shares a run's units with other workers through a shared git
// remote (the worker package implements it, docs/workers.md). With
// RunOptions.Remote set, a run picks what is due exactly as always, but
// claims each unit before it starts it, and delivers each finished unit's
// commit instead of landing it: the integrator lands it (LandResult).
type Remote interface {
	// Claim takes the unit for this worker before it starts: false when
	// another worker holds it or its result waits to land. base is the
	// branch tip the run picked the unit at: ErrBehind when the remote's
	// tip is another.
	Claim(ctx context.Context, key, fingerprint, base string) (bool, error)
	// Deliver hands a claimed unit's finished commit over (its parent is
	// base) and gives its claim up with it.
	Deliver(ctx context.Context, d Delivery) error
	// Release gives up the claim of a unit that ended without a result
	// (it failed, or the run stopped).
	Release(ctx context.Context, key string)
}

// Spreader is implemented by a Remote that spreads the first picks of
// workers that start together, so that they do not all claim the first
// due task and all but one be refused.
type Spreader interface {
	// FirstPick is how many of the due tasks a run's first pick passes
	// over (0: it takes the first, as a local run does). Landing stays in
	// plan order whatever is picked.
	FirstPick() int
}

// Delivery is a finished unit's commit handed to a Remote.
type Delivery struct {
	Key, Fingerprint string
	Base, Commit     string
}

// ErrClaimLost is a Remote's answer to a delivery whose claim lapsed and
// went to another worker: the result is discarded, never landed.
var ErrClaimLost = errors.New("the claim lapsed and another worker took the unit over: result discarded")

// ErrBehind is a Remote's answer to a claim while the branch is behind the
// remote's (the integrator landed meanwhile): the run starts nothing more
// until its branch has caught up, so that it claims in plan order from the
// tip and never skips ahead of units it merely looked at too early.
var ErrBehind = errors.New("the branch is behind the remote's")

// workerUnsupported says why a worker does not run u, "" when it does:
// what must happen where the unit lands or where a person sits (a reviewer
// agent's verdict is applied where its unit lands, an after: hook runs
// in the landing clone, an interactive agent needs a terminal) needs a
// local run (codemachine run in a clone).
func workerUnsupported(u *unit) string {
	switch {
	case u.step.Reviewer != "":
		return "not run by workers: review: " + u.step.Reviewer + " (a reviewer agent) decides where the unit lands; run it with codemachine run in a clone"
	case u.step.Interactive:
		return "not run by workers: an interactive step needs a person at a terminal; run it with codemachine run in a clone"
	case u.step.Hooks.After != "":
		return "not run by workers: its after: hook runs where the unit lands, and the integrator lands results it did not run; run it with codemachine run in a clone"
	}
	return ""
}

// claim claims u on the run's remote; false: another worker has it, so
// this run leaves it alone (it counts as attempted).
func (s *scheduler) claim(ctx context.Context, u *unit) bool {
	r := s.rs.opts.Remote
	if r == nil {
		return true
	}
	if why := workerUnsupported(u); why != "" {
		s.attempted[s.attemptKey(u)] = u.fingerprint()
		s.reportOnce(u.key()+" (worker)", Event{Kind: StepNeedsYou, Step: u.step.ID, Task: taskID(u.task),
			Message: why}, s.rs.recordNeedsYou)
		return false
	}
	// The unit was picked from the tip last loaded: a branch that moved
	// since (the worker followed the remote) decides anew.
	if cur, err := s.o.repo.ResolveRev("refs/heads/" + s.rs.branch); err == nil && cur != s.tip {
		s.behind = true
		return false
	}
	ok, err := r.Claim(ctx, u.key(), u.fingerprint(), s.tip)
	if errors.Is(err, ErrBehind) {
		s.behind = true
		return false
	}
	if err != nil {
		s.stop(fmt.Errorf("claim %s: %w", u.key(), err))
		return false
	}
	if !ok {
		s.attempted[s.attemptKey(u)] = u.fingerprint()
	}
	return ok
}

// deliver hands the unit's verified commit to the run's remote instead of
// landing it.
func (j *job) deliver(ctx context.Context) error {
	o, u, c := j.o, j.u, j.cand
	err := j.rs.opts.Remote.Deliver(ctx, Delivery{Key: u.key(), Fingerprint: u.fingerprint(), Base: j.snap.commit, Commit: c.commit})
	if ferr := j.wt.Finish(ctx, c.commit); ferr != nil {
		j.wt.Discard()
	}
	if errors.Is(err, ErrClaimLost) {
		e := Event{Kind: StepSkipped, Step: u.step.ID, Task: taskID(u.task), Commit: c.commit, Message: err.Error()}
		j.rs.recordSkipped(e)
		o.emit(e)
		return nil
	}
	if err != nil {
		return fmt.Errorf("deliver %s: %w", u.key(), err)
	}
	e := j.landedEvent(c.commit, false)
	e.Kind = StepDelivered
	j.rs.recordDelivered(e)
	o.emit(e)
	return o.forget(u.key())
}

// ResultOutcome is what LandResult did with a result.
type ResultOutcome int

const (
	// ResultLanded: the result is on the branch (Commit).
	ResultLanded ResultOutcome = iota
	// ResultStale: the unit is no longer due with the fingerprint it ran
	// with at the branch (it landed already, or its inputs changed):
	// nothing landed, and the result is to be dropped.
	ResultStale
	// ResultConflict: the result does not apply to the branch; it is kept
	// on its conflict branch (Ref).
	ResultConflict
	// ResultReview: the unit's step has review: true: nothing landed, and
	// the result goes to its review branch (Ref), as a local run keeps it.
	ResultReview
)

// LandedResult is LandResult's answer.
type LandedResult struct {
	Outcome ResultOutcome
	Commit  string // the commit on the branch (ResultLanded)
	Ref     string // the conflict branch (ResultConflict)
	// Event is what to report once the landing is pushed (none for
	// ResultStale).
	Event Event
}

// LandResult lands a worker's result (a unit's commit on base, delivered
// through a Remote) on branch exactly as a run lands its own units:
// rebased onto the tip where the branch moved, state.yaml rebuilt and the
// box ticked from the tip's, a conflict kept on codemachine/conflict/<key>.
// A result whose unit is not due at the tip with the fingerprint it ran
// with is not landed (ResultStale): it landed before, or the unit must run
// again. The caller holds whatever makes it the only integrator.
//
// It emits no event: branch is a scratch branch until the caller has
// pushed it, so the caller reports the result's Event (with Emit) once it
// has, and drops it when the push did not go through.
func (o *Orchestrator) LandResult(ctx context.Context, branch, key, commit string, ov Overrides) (*LandedResult, error) {
	info, err := o.repo.CommitInfo(commit)
	if err != nil {
		return nil, err
	}
	if len(info.Parents) != 1 {
		return nil, fmt.Errorf("result %s: %s has %d parents, want 1", key, short(commit), len(info.Parents))
	}
	base := info.Parents[0]
	tip, err := o.repo.ResolveRev("refs/heads/" + branch)
	if err != nil {
		return nil, err
	}
	msg := gitstate.Message{Trailers: info.Trailers}
	fp := msg.Get(gitstate.TrailerFingerprint)
	tipSnap, err := o.load(tip, ov)
	if err != nil {
		return nil, err
	}
	if due, ok := dueFingerprint(tipSnap, key); !ok || due != fp {
		return &LandedResult{Outcome: ResultStale}, nil
	}
	if step := tipSnap.project.Graph.Step(strings.SplitN(key, "/", 2)[0]); step != nil && step.Review && step.Reviewer == "" {
		msg, _ := gitstate.ParseMessage(info.Message)
		stepID, task, _ := strings.Cut(key, "/")
		e := Event{Kind: StepReview, Step: stepID, Task: task, Title: msg.Subject, Commit: commit, Ref: reviewPrefix + key,
			Message: "waiting for review (codemachine approve " + key + " | reject " + key + " -m WHY)"}
		return &LandedResult{Outcome: ResultReview, Ref: reviewPrefix + key, Event: e}, nil
	}
	snap, err := o.load(base, ov)
	if err != nil {
		return nil, err
	}
	u, err := unitAt(snap, key)
	if err != nil {
		return nil, err
	}
	c, err := o.resultCandidate(u, base, commit, info)
	if err != nil {
		return nil, err
	}
	return o.landCandidate(ctx, branch, base, u, c)
}

// unitAt is the unit key names in snap.
func unitAt(snap *snapshot, key string) (*unit, error) {
	stepID, taskID, _ := strings.Cut(key, "/")
	step := snap.project.Graph.Step(stepID)
	if step == nil {
		return nil, fmt.Errorf("result %s: no step %s at its base", key, stepID)
	}
	u := &unit{step: step, agent: snap.project.Agents[step.Agent], settings: snap.settings[stepID]}
	if taskID != "" {
		plan := snap.project.TaskPlan(step)
		if plan == nil || plan.Task(taskID) == nil {
			return nil, fmt.Errorf("result %s: no task %s at its base", key, taskID)
		}
		u.task = plan.Task(taskID)
	}
	return u, nil
}

// resultCandidate rebuilds, from the commits, what a run knows of its own
// unit's commit when it lands it: the state record it wrote and whether
// the agent edited the plan beyond its box.
func (o *Orchestrator) resultCandidate(u *unit, base, commit string, info gitstate.Commit) (*candidate, error) {
	st, err := o.loadState(commit)
	if err != nil {
		return nil, err
	}
	sr := st.Steps[u.step.ID]
	if sr == nil {
		return nil, fmt.Errorf("result %s: its state.yaml has no record of %s", u.key(), u.step.ID)
	}
	msg, _ := gitstate.ParseMessage(info.Message)
	c := &candidate{commit: commit, msg: msg, rec: sr.RunRecord, model: sr.Model, duration: sr.Duration}
	if u.task != nil && u.step.Foreach != "" {
		planBase, berr := o.repo.ReadFile(base, u.step.Foreach)
		planCand, cerr := o.repo.ReadFile(commit, u.step.Foreach)
		if berr == nil && cerr == nil {
			c.planBase, c.planCand = planBase, planCand
			ticked, ok := o.tick(u.step.Foreach, planBase, u.task.ID)
			c.agentEditedPlan = !ok || !bytes.Equal(ticked, planCand)
		} else {
			c.agentEditedPlan = berr != nil || cerr != nil
		}
	}
	return c, nil
}

// landCandidate lands c (u's commit on base) on branch the way job.land
// does, for a unit that ran elsewhere.
func (o *Orchestrator) landCandidate(ctx context.Context, branch, base string, u *unit, c *candidate) (*LandedResult, error) {
	res, err := o.repo.Land(ctx, branch, base, c.commit, gitstate.LandOptions{
		ConflictBranch:  "codemachine/conflict/" + u.key(),
		Overlay:         func(tip, merged string) (string, error) { return o.overlay(ctx, u, c, tip, merged) },
		OverlayPaths:    c.overlayPaths(u),
		OverlayReplaces: func(tip string) []string { return o.overlayReplaces(u, c, tip) },
	})
	var conflict *gitstate.ConflictError
	if errors.As(err, &conflict) {
		e := Event{Kind: StepConflict, Step: u.step.ID, Task: taskID(u.task), Engine: c.rec.Engine, Model: c.model,
			Duration: c.duration, Ref: conflict.Branch, Commit: c.commit, Message: err.Error()}
		return &LandedResult{Outcome: ResultConflict, Ref: conflict.Branch, Event: e}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("land %s: %w", u.key(), err)
	}
	e := Event{Kind: StepLanded, Step: u.step.ID, Task: taskID(u.task), Title: c.msg.Subject, Engine: c.rec.Engine,
		Model: c.model, Duration: c.duration, Tokens: c.rec.TokensIn + c.rec.TokensOut, CostUSD: c.rec.CostUSD,
		CostOK: c.rec.CostKnown, Commit: res.Commit, Rebased: res.Rebased, Attempt: c.rec.Attempts}
	return &LandedResult{Outcome: ResultLanded, Commit: res.Commit, Event: e}, nil
}

// DueUnits are the keys of the units due at commit, in the order a run
// lands them: steps in dependency order, each foreach step's tasks in plan
// order (every unchecked task, runnable now or not).
func (o *Orchestrator) DueUnits(commit string, ov Overrides) ([]string, error) {
	snap, err := o.load(commit, ov)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, step := range snap.project.Graph.Order() {
		if _, due := snap.due[step.ID]; !due {
			continue
		}
		if !step.FansOut() {
			keys = append(keys, step.ID)
			continue
		}
		plan := snap.project.TaskPlan(step)
		if plan == nil {
			continue
		}
		for _, t := range plan.Tasks {
			if !t.Done {
				keys = append(keys, step.ID+"/"+t.ID)
			}
		}
	}
	return keys, nil
}

// AfterDue are, by key, the due tasks at commit that wait for tasks they
// come after (after:) to be checked again, with the keys of those tasks: a
// run does not start such a task until they landed, and a worker's
// result of one, made before they were unchecked (a normal push of the
// plan), is dropped rather than landed on work that is being redone.
func (o *Orchestrator) AfterDue(commit string, ov Overrides) (map[string][]string, error) {
	snap, err := o.load(commit, ov)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, step := range snap.project.Graph.Order() {
		if _, due := snap.due[step.ID]; !due || !step.FansOut() {
			continue
		}
		plan := snap.project.TaskPlan(step)
		if plan == nil {
			continue
		}
		for _, t := range plan.Tasks {
			if t.Done || plan.Task(t.ID) != t {
				continue
			}
			for _, dep := range t.After {
				if d := plan.Task(dep); d != nil && d != t && !d.Done {
					out[step.ID+"/"+t.ID] = append(out[step.ID+"/"+t.ID], step.ID+"/"+d.ID)
				}
			}
		}
	}
	return out, nil
}

// DueFingerprints are the fingerprints of the units due at commit, by key (what a claim carries).
func (o *Orchestrator) DueFingerprints(commit string, ov Overrides) (map[string]string, error) {
	snap, err := o.load(commit, ov)
	if err != nil {
		return nil, err
	}
	keys, err := o.DueUnits(commit, ov)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, k := range keys {
		if fp, ok := dueFingerprint(snap, k); ok {
			out[k] = fp
		}
	}
	return out, nil
}

// Awaited are the keys of the units due at commit that a worker of this
// clone would start now if nobody held them: runnable (a foreach step's
// tasks whose dependencies are done), run by workers (see
// workerUnsupported), and neither held nor failed here with the
// fingerprint they have at commit. The integrator lets a later result wait
// behind such a unit while nobody has claimed it yet (plan order), knowing
// that a worker will claim it: its own passes, if no other's.
func (o *Orchestrator) Awaited(commit string, ov Overrides) (map[string]bool, error) {
	snap, err := o.load(commit, ov)
	if err != nil {
		return nil, err
	}
	holds, err := o.holds()
	if err != nil {
		return nil, err
	}
	failures, err := o.failures()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, step := range snap.project.Graph.Order() {
		if !awaitedStep(snap, step) {
			continue
		}
		keys := []string{step.ID}
		if step.FansOut() {
			keys = nil
			if plan := snap.project.TaskPlan(step); plan != nil && len(snap.project.TaskErrs(step)) == 0 {
				for _, t := range plan.Runnable() {
					keys = append(keys, step.ID+"/"+t.ID)
				}
			}
		}
		for _, k := range keys {
			fp, ok := dueFingerprint(snap, k)
			if !ok || holds[k].Fingerprint == fp || failures[k].Fingerprint == fp {
				continue
			}
			out[k] = true
		}
	}
	return out, nil
}

// HeldUnits are the keys of the units due at commit that are held in this
// clone (a rollback or reset undid them: see holdUndone) with the
// fingerprint they have at commit: a run leaves them alone, as a worker's
// pass does, until they are retried or their inputs change.
func (o *Orchestrator) HeldUnits(commit string, ov Overrides) (map[string]bool, error) {
	holds, err := o.holds()
	if err != nil || len(holds) == 0 {
		return nil, err
	}
	snap, err := o.load(commit, ov)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for key, h := range holds {
		if fp, due := dueFingerprint(snap, key); due && h.Fingerprint == fp {
			out[key] = true
		}
	}
	return out, nil
}

// awaitedStep says whether a worker would start units of step now: it is
// due, run by workers, its when: condition evaluates, and no step it
// needs is due (a run starts it only after they landed; one that failed
// stays due and holds it up for good).
func awaitedStep(snap *snapshot, step *workflow.Step) bool {
	if _, due := snap.due[step.ID]; !due || workerUnsupported(&unit{step: step}) != "" {
		return false
	}
	if _, bad := snap.condErrs[step.ID]; bad {
		return false
	}
	for _, up := range snap.project.Graph.Upstream(step.ID) {
		if _, due := snap.due[up]; due {
			return false
		}
	}
	return true
}
