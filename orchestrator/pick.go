package orchestrator

import (
	"fmt"
	"strings"

	"github.com/codemachine/codemachine/workflow"
)

// resolveTargets checks the named steps and collects them with everything
// they need.
func (o *Orchestrator) resolveTargets(snap *snapshot, rs *runState) error {
	if len(rs.opts.Steps) == 0 {
		return nil
	}
	g := snap.project.Graph
	rs.targets = map[string]bool{}
	var unknown []string
	for _, name := range rs.opts.Steps {
		stepID, taskID, _ := strings.Cut(name, "/")
		step := g.Step(stepID)
		if step == nil {
			unknown = append(unknown, stepID)
			continue
		}
		if taskID != "" {
			if step.Foreach == "" {
				return configErrorf("step %s has no tasks (it is not a foreach step)", stepID)
			}
			plan := snap.project.Plans[step.Foreach]
			if plan == nil || plan.Task(taskID) == nil {
				return configErrorf("no task %s in %s", taskID, step.Foreach)
			}
			rs.tasks[stepID+"/"+taskID] = true
		}
		rs.named[stepID] = true
		rs.targets[stepID] = true
		for _, up := range g.AllUpstream(stepID) {
			rs.targets[up] = true
		}
	}
	if len(unknown) > 0 {
		var ids []string
		for _, s := range snap.project.Workflow.Steps {
			ids = append(ids, s.ID)
		}
		return configErrorf("unknown step %s (steps: %s)", strings.Join(unknown, ", "), strings.Join(ids, ", "))
	}
	return nil
}

// liftNamedHolds lifts the holds of the steps (or tasks) named on the
// command line: naming a step is the user's way to run it again (DESIGN 7).
func (o *Orchestrator) liftNamedHolds(rs *runState) error {
	if len(rs.named) == 0 {
		return nil
	}
	return o.updateHolds(func(h map[string]Hold) {
		for key := range h {
			stepID, _, _ := strings.Cut(key, "/")
			if rs.named[stepID] && (len(rs.tasks) == 0 || rs.tasks[key] || !strings.Contains(key, "/")) {
				delete(h, key)
			}
		}
	})
}

// next picks the first runnable unit in dependency order, or nil when
// nothing more can run.
func (o *Orchestrator) next(snap *snapshot, rs *runState) (*unit, error) {
	holds, err := o.holds()
	if err != nil {
		return nil, err
	}
	failures, err := o.failures()
	if err != nil {
		return nil, err
	}
	g := snap.project.Graph
	for _, step := range g.Order() {
		id := step.ID
		if rs.targets != nil && !rs.targets[id] {
			continue
		}
		reason, due := snap.due[id]
		forced := rs.opts.Force && rs.named[id] && step.Foreach == ""
		// A failed task stops only itself and the tasks after it; a failed
		// step stops itself.
		if (!due && !forced) || (step.Foreach == "" && rs.stepFailed(id)) {
			continue
		}
		if o.upstreamBlocked(snap, rs, step) {
			continue
		}
		base := &unit{step: step, agent: snap.project.Agents[step.Agent], settings: snap.settings[id], reason: string(reason)}
		if step.Foreach != "" {
			u, err := o.nextTask(snap, rs, base, holds, failures)
			if err != nil || u != nil {
				return u, err
			}
			continue
		}
		if rs.attempted[id] {
			continue
		}
		if o.skipForHoldOrFailure(snap, rs, base, holds, failures) {
			continue
		}
		return base, nil
	}
	return nil, nil
}

// upstreamBlocked reports whether a step must wait: a step it needs is still
// due or failed in this run.
func (o *Orchestrator) upstreamBlocked(snap *snapshot, rs *runState, step *workflow.Step) bool {
	for _, up := range snap.project.Graph.Upstream(step.ID) {
		if _, due := snap.due[up]; due || rs.stepFailed(up) {
			return true
		}
	}
	return false
}

// nextTask picks the next runnable task of a foreach step.
func (o *Orchestrator) nextTask(snap *snapshot, rs *runState, base *unit, holds map[string]Hold, failures map[string]Failure) (*unit, error) {
	step := base.step
	if errs := snap.project.PlanErrs[step.Foreach]; len(errs) > 0 {
		// One problem per line, each with its position: the run table
		// shows the first line, so it must be a problem, not a heading.
		o.failUnplannable(rs, step, errs.Error())
		return nil, nil
	}
	plan := snap.project.Plans[step.Foreach]
	if plan == nil {
		o.failUnplannable(rs, step, fmt.Sprintf("%s does not exist: no step wrote it and it is not committed", step.Foreach))
		return nil, nil
	}
	onlyNamed := false
	for key := range rs.tasks {
		if strings.HasPrefix(key, step.ID+"/") {
			onlyNamed = true
		}
	}
	for _, t := range plan.Runnable() {
		u := *base
		u.task = t
		key := u.key()
		if rs.attempted[key] || (onlyNamed && !rs.tasks[key]) {
			continue
		}
		if o.skipForHoldOrFailure(snap, rs, &u, holds, failures) {
			continue
		}
		u.reason = "task to do"
		return &u, nil
	}
	return nil, nil
}

// failUnplannable reports a foreach step that cannot start; only that step
// (and what needs it) stops, other steps continue. The scheduler asks for
// work again after every landing, so it is reported once per run.
func (o *Orchestrator) failUnplannable(rs *runState, step *workflow.Step, msg string) {
	key := step.ID + " (plan)"
	if rs.reported[key] {
		return
	}
	rs.reported[key] = true
	e := Event{Kind: StepFailed, Step: step.ID, Message: msg}
	rs.recordFailure(e)
	o.emit(e)
}

// skipForHoldOrFailure applies holds (lifted when the fingerprint changed)
// and, in watch mode, remembered failures.
func (o *Orchestrator) skipForHoldOrFailure(snap *snapshot, rs *runState, u *unit, holds map[string]Hold, failures map[string]Failure) bool {
	if commit, ok := snap.reviews[u.key()]; ok {
		if !rs.reported[u.key()] {
			rs.reported[u.key()] = true
			e := Event{Kind: StepReview, Step: u.step.ID, Task: taskID(u.task), Commit: commit, Ref: reviewPrefix + u.key(),
				Message: "waiting for review (codemachine approve " + u.key() + " | reject " + u.key() + " -m WHY)"}
			rs.recordReview(e)
			o.emit(e)
		}
		return true
	}
	key, fp := u.key(), u.fingerprint()
	if h, ok := holds[key]; ok {
		if h.Fingerprint == fp {
			if !rs.reported[key] {
				rs.reported[key] = true
				e := Event{Kind: StepSkipped, Step: u.step.ID, Task: taskID(u.task),
					Message: "held after a rollback (codemachine retry " + key + " to run it)"}
				rs.recordSkipped(e)
				o.emit(e)
			}
			return true
		}
		_ = o.updateHolds(func(m map[string]Hold) { delete(m, key) })
	}
	if f, ok := failures[key]; ok && rs.opts.SkipFailed && f.Fingerprint == fp {
		if !rs.reported[key] {
			rs.reported[key] = true
			e := Event{Kind: StepSkipped, Step: u.step.ID, Task: taskID(u.task),
				Message: "failed before with the same inputs (codemachine retry " + key + " to run it)"}
			rs.recordSkipped(e)
			o.emit(e)
		}
		return true
	}
	return false
}
