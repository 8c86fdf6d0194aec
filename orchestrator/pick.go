package orchestrator

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/codemachine/codemachine/workflow"
)

// resolveTargets checks the steps (and tasks) named on the command line
// and collects them with everything they need.
func (s *scheduler) resolveTargets() error {
	if len(s.rs.opts.Steps) == 0 {
		return nil
	}
	project := s.snap.project
	g := project.Graph
	s.targets = map[string]bool{}
	var unknown []string
	for _, name := range s.rs.opts.Steps {
		stepID, taskID, slash := strings.Cut(name, "/")
		step := g.Step(stepID)
		if step == nil {
			unknown = append(unknown, workflow.ShownName(cmp.Or(stepID, name)))
			continue
		}
		if slash && taskID == "" {
			return configErrorf("%s names no task: write %s, or %s/TASK", workflow.ShownName(name), stepID, stepID)
		}
		if step.Run != "" && slices.Contains(s.rs.opts.Interactive, stepID) {
			return configErrorf("%s runs a command: run --interactive takes agent steps only", stepID)
		}
		if taskID != "" {
			if !step.FansOut() {
				return configErrorf("step %s has no tasks (it is not a foreach step)", stepID)
			}
			plan := project.TaskPlan(step)
			if plan == nil || plan.Task(taskID) == nil {
				return configErrorf("no task %s in %s", taskID, step.TaskSource())
			}
			s.tasks[stepID+"/"+taskID] = true
		}
		s.named[stepID] = true
		s.targets[stepID] = true
		for _, up := range g.AllUpstream(stepID) {
			s.targets[up] = true
		}
	}
	if len(unknown) > 0 {
		var ids []string
		for _, st := range project.Workflow.Steps {
			ids = append(ids, st.ID)
		}
		return configErrorf("unknown step %s (steps: %s)", strings.Join(unknown, ", "), strings.Join(ids, ", "))
	}
	// A named task runs with the tasks it comes after.
	for key := range s.tasksNeeded() {
		s.tasks[key] = true
	}
	return nil
}

// liftNamedHolds lifts the holds of the steps (or tasks) named on the
// command line (with the tasks they come after, see resolveTargets), and
// of the steps they need: naming a step is the user's way to run it
// again, with what it needs (a held step or task it needs would leave it
// blocked).
func (s *scheduler) liftNamedHolds() error {
	if len(s.named) == 0 {
		return nil
	}
	return s.o.updateHolds(func(h map[string]Hold) {
		for key := range h {
			stepID, _, _ := strings.Cut(key, "/")
			named := s.named[stepID] && (len(s.tasks) == 0 || s.tasks[key] || !strings.Contains(key, "/"))
			if named || (!s.named[stepID] && s.targets[stepID]) {
				delete(h, key)
			}
		}
	})
}

// tasksNeeded is the STEP/TASK keys of the tasks that the named tasks come
// after (after:), transitively: a named task runs only once they are done.
func (s *scheduler) tasksNeeded() map[string]bool {
	out := map[string]bool{}
	for key := range s.tasks {
		stepID, taskID, _ := strings.Cut(key, "/")
		step := s.snap.project.Graph.Step(stepID)
		if step == nil {
			continue
		}
		plan := s.snap.project.TaskPlan(step)
		if plan == nil {
			continue
		}
		for queue := []string{taskID}; len(queue) > 0; queue = queue[1:] {
			t := plan.Task(queue[0])
			if t == nil {
				continue
			}
			for _, dep := range t.After {
				if k := stepID + "/" + dep; !out[k] {
					out[k] = true
					queue = append(queue, dep)
				}
			}
		}
	}
	return out
}

// next picks the first runnable unit in dependency order, or nil when
// nothing more can run.
func (s *scheduler) next() (*unit, error) {
	holds, err := s.o.holds()
	if err != nil {
		return nil, err
	}
	failures, err := s.o.failures()
	if err != nil {
		return nil, err
	}
	snap := s.snap
	for _, step := range snap.project.Graph.Order() {
		id := step.ID
		if s.targets != nil && !s.targets[id] {
			continue
		}
		reason, due := snap.due[id]
		forced := s.forced(step)
		if msg := loopFailure(snap, step); !due && !forced && msg != "" && !s.started(id) {
			s.reportOnce(id+" (until)", Event{Kind: StepFailed, Step: id, Message: msg}, s.rs.recordFailure)
			continue
		}
		// A failed task stops only itself and the tasks after it; a failed
		// step stops itself.
		if (!due && !forced) || (!step.FansOut() && s.rs.stepFailed(id)) {
			continue
		}
		if s.upstreamBlocked(step) {
			continue
		}
		base := &unit{step: step, agent: snap.project.AgentFor(step, step.Agent), settings: snap.settings[id], reason: string(reason)}
		if msg, bad := snap.condErrs[id]; bad {
			s.reportOnce(id+" (when)", Event{Kind: StepFailed, Step: id, Message: msg}, s.rs.recordFailure)
			continue
		}
		if snap.project.Skips[id] {
			if s.toSkip(base, due, holds) {
				base.skip = true
				return base, nil
			}
			continue
		}
		if step.FansOut() {
			s.warnPlan(step)
			u, err := s.nextTask(base, holds, failures)
			if err != nil || u != nil {
				return u, err
			}
			continue
		}
		if s.ranWith(base) {
			continue
		}
		if s.skipForHoldOrFailure(base, holds, failures) {
			continue
		}
		return base, nil
	}
	return nil, nil
}

// toSkip reports whether u, a step whose when: is false, is to be
// recorded as skipped now.
func (s *scheduler) toSkip(u *unit, due bool, holds map[string]Hold) bool {
	if !due {
		// Forced, but its condition still skips it, as recorded:
		// another skip commit would say nothing new.
		s.reportOnce(u.step.ID+" (forced)", Event{Kind: Note, Step: u.step.ID, Message: "when: " + u.step.When.Source +
			" is false: it stays skipped (--force does not run a step its condition skips)"}, func(Event) {})
		return false
	}
	// A held skip is left alone like any held step: its commit was
	// undone on purpose, and the same skip again would undo the rollback.
	return !s.ranWith(u) && !s.held(u, holds)
}

// forced reports whether step, named with run --force, runs although it
// is not due: a plain step once, an until: loop for one more iteration,
// once per run (each iteration is a unit of its own, so a loop whose
// condition holds, or that ran out of iterations, would otherwise run for
// ever).
func (s *scheduler) forced(step *workflow.Step) bool {
	if !s.rs.opts.Force || !s.named[step.ID] || step.FansOut() {
		return false
	}
	return step.Until == nil || s.runs[step.ID] == 0
}

// maxRuns bounds how often one unit runs in one run when its inputs keep
// changing while it runs.
const maxRuns = 3

// ranWith reports whether u ran in this run already with the inputs it
// has now, or ran maxRuns times (which is reported once).
func (s *scheduler) ranWith(u *unit) bool {
	key := s.attemptKey(u)
	fp, ok := s.attempted[key]
	switch {
	case !ok:
		return false
	case fp == u.fingerprint():
		return true
	case s.runs[key] >= maxRuns:
		s.reportOnce(key+" (runs)", Event{Kind: StepSkipped, Step: u.step.ID, Task: taskID(u.task),
			Message: fmt.Sprintf("its inputs changed while each of its %d runs ran: still due", s.runs[key])}, s.rs.recordSkipped)
		return true
	}
	return false
}

// upstreamBlocked reports whether a step must wait: a step it needs is still
// due or failed in this run.
func (s *scheduler) upstreamBlocked(step *workflow.Step) bool {
	for _, up := range s.snap.project.Graph.Upstream(step.ID) {
		if _, due := s.snap.due[up]; due || s.rs.stepFailed(up) {
			return true
		}
	}
	return false
}

// nextTask picks the next runnable task of a foreach step.
func (s *scheduler) nextTask(base *unit, holds map[string]Hold, failures map[string]Failure) (*unit, error) {
	step := base.step
	if errs := s.snap.project.TaskErrs(step); len(errs) > 0 {
		// One problem per line, each with its position: the run table
		// shows the first line, so it must be a problem, not a heading.
		s.failUnplannable(step, errs.Error())
		return nil, nil
	}
	plan := s.snap.project.TaskPlan(step)
	if plan == nil {
		s.failUnplannable(step, fmt.Sprintf("%s does not exist: no step wrote it and it is not committed", step.TaskSource()))
		return nil, nil
	}
	onlyNamed := false
	for key := range s.tasks {
		if strings.HasPrefix(key, step.ID+"/") {
			onlyNamed = true
		}
	}
	pass := s.firstPick()
	var picks []*unit
	for _, t := range plan.Runnable() {
		u := *base
		u.task = t
		key := u.key()
		if s.ranWith(&u) || (onlyNamed && !s.tasks[key]) {
			continue
		}
		if s.skipForHoldOrFailure(&u, holds, failures) {
			continue
		}
		u.reason = "task to do"
		picks = append(picks, &u)
		if len(picks) > pass {
			return &u, nil
		}
	}
	if len(picks) > 0 {
		return picks[pass%len(picks)], nil
	}
	return nil, nil
}

// firstPick is how many due tasks the run's first pick of a task passes
// over: what the run's Remote says (Spreader), asked once; 0 after.
func (s *scheduler) firstPick() int {
	sp, ok := s.rs.opts.Remote.(Spreader)
	if !ok || s.spread {
		return 0
	}
	s.spread = true
	return max(sp.FirstPick(), 0)
}

// failUnplannable reports a foreach step that cannot start; only that step
// (and what needs it) stops, other steps continue. The scheduler asks for
// work again after every landing, so it is reported once per run.
func (s *scheduler) failUnplannable(step *workflow.Step, msg string) {
	s.reportOnce(step.ID+" (plan)", Event{Kind: StepFailed, Step: step.ID, Message: msg}, s.rs.recordFailure)
}

// skipForHoldOrFailure applies pending reviews, holds (lifted when the
// fingerprint changed) and, in watch mode, remembered failures; each
// skipped unit is reported once per run.
func (s *scheduler) skipForHoldOrFailure(u *unit, holds map[string]Hold, failures map[string]Failure) bool {
	key, fp := u.key(), u.fingerprint()
	if commit, ok := s.snap.reviews[key]; ok && !s.rs.opensReview(key) {
		s.reportOnce(key, Event{Kind: StepReview, Step: u.step.ID, Task: taskID(u.task), Commit: commit, Ref: reviewPrefix + key,
			Message: "waiting for review (codemachine approve " + key + " | reject " + key + " -m WHY)"}, s.rs.recordReview)
		return true
	}
	if other := s.snap.reviewInTheWay(key); other != "" {
		s.reportOnce(key, Event{Kind: StepReview, Step: u.step.ID, Task: taskID(u.task), Commit: s.snap.reviews[other], Ref: reviewPrefix + other,
			Message: "waits for the review of " + other + ", made before the step changed shape (codemachine approve " + other + " | reject " + other + " -m WHY)"}, s.rs.recordReview)
		return true
	}
	if s.held(u, holds) {
		return true
	}
	if f, ok := failures[key]; ok && s.rs.opts.SkipFailed && f.Fingerprint == fp && !f.Interrupted {
		s.reportOnce(key, Event{Kind: StepSkipped, Step: u.step.ID, Task: taskID(u.task),
			Message: "failed before with the same inputs (codemachine retry " + key + " to run it)"}, s.rs.recordSkipped)
		return true
	}
	return s.needsYou(u)
}

// held reports (once per run) a unit that a rollback or reset holds with
// the fingerprint it has now, and lifts a hold whose fingerprint changed.
func (s *scheduler) held(u *unit, holds map[string]Hold) bool {
	key := u.key()
	h, ok := holds[key]
	if !ok {
		return false
	}
	if h.Fingerprint == u.fingerprint() {
		s.reportOnce(key, Event{Kind: StepSkipped, Step: u.step.ID, Task: taskID(u.task),
			Message: "held after a rollback or reset (codemachine retry " + key + " to run it)"}, s.rs.recordSkipped)
		return true
	}
	_ = s.o.updateHolds(func(m map[string]Hold) { delete(m, key) })
	return false
}

// reportOnce records and emits e unless key was reported before in this
// run: the scheduler asks for work again after every landing.
// warnPlan tells, once per run, the lines of a fan-out step's plan that
// look like tasks but are not (validate warns about them too): the task
// the user meant does not run, and without this nothing would say so.
func (s *scheduler) warnPlan(step *workflow.Step) {
	plan := s.snap.project.TaskPlan(step)
	if plan == nil {
		return
	}
	for _, w := range plan.Warnings {
		s.reportOnce("plan: "+w.Error(), Event{Kind: Note, Step: step.ID, Message: "warning: " + w.Error()}, func(Event) {})
	}
}

func (s *scheduler) reportOnce(key string, e Event, record func(Event)) {
	if s.reported[key] {
		return
	}
	s.reported[key] = true
	record(e)
	s.o.emit(e)
}

// attemptKey is what attempted remembers a unit by: its key, and for an
// until: loop the iteration, since each iteration runs with the same
// fingerprint.
func (s *scheduler) attemptKey(u *unit) string {
	if u.step.Until != nil {
		return fmt.Sprintf("%s#%d", u.key(), iteration(s.snap, u))
	}
	return u.key()
}

// loopFailure says why the until: loop of a step that landed failed: it
// ran out of iterations, or its condition cannot be evaluated (reading a
// field of an output that is not there, say), which ends the loop; "" when
// neither.
func loopFailure(snap *snapshot, step *workflow.Step) string {
	switch {
	case step.Until == nil || snap.state.Steps[step.ID] == nil:
		return ""
	case loopExhausted(snap, step):
		return untilFailure(snap, step)
	case strings.HasPrefix(snap.condErrs[step.ID], "until: "):
		return snap.condErrs[step.ID]
	}
	return ""
}

// untilFailure says that a loop ran out of iterations: its
// max_iterations, or more when run --force ran more.
func untilFailure(snap *snapshot, step *workflow.Step) string {
	n := step.MaxIters()
	if rec := snap.state.Steps[step.ID]; rec != nil {
		n = max(n, rec.Iteration)
	}
	return fmt.Sprintf("until: %s is still false after %d iterations (max_iterations); change what it reads, or codemachine run %s --force",
		step.Until.Source, n, step.ID)
}

// started reports whether a unit of step id was started in this run and
// has not landed yet: a loop run --force runs once more says nothing of
// its old failure while that iteration runs.
func (s *scheduler) started(id string) bool {
	for _, a := range s.order {
		if a.job.u.step.ID == id {
			return true
		}
	}
	return false
}
