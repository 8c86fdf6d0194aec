package orchestrator

import (
	"fmt"
	"strings"
	"time"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// Step and task states shown by status.
const (
	StateDone     = "done"
	StateDue      = "due"
	StateRunning  = "running"
	StateFailed   = "failed"
	StateConflict = "conflict"
	StateReview   = "review"
	StateHeld     = "held"
	StateBlocked  = "blocked"
	// StateSkipped: the step's when: is false and it is recorded as
	// skipped.
	StateSkipped = "skipped"
)

// StatusReport is where the workflow stands at the branch tip.
type StatusReport struct {
	Workflow string       `json:"workflow,omitempty"` // the workflow's name
	Branch   string       `json:"branch"`
	Commit   string       `json:"commit"`
	Steps    []StepStatus `json:"steps"`
	// Running is set when another codemachine process holds the lock.
	Running *RunnerInfo `json:"running,omitempty"`
	// Sandbox is the protection the steps run with here.
	Sandbox SandboxReport `json:"sandbox"`
}

// SandboxReport is the protection steps get on this system, and the
// workflow's setting.
type SandboxReport struct {
	// Mode is the workflow's default (auto, required, off); the steps
	// that set their own say so in StepStatus.Sandbox.
	Mode string `json:"mode"`
	// Active describes the protection in one line; Missing what a
	// sandboxed step lacks here (empty when nothing).
	Active  string   `json:"active"`
	Missing []string `json:"missing,omitempty"`
	// System is what the probe found.
	System agents.SandboxStatus `json:"system"`
}

// RunnerInfo describes the process holding the repository lock.
type RunnerInfo struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
}

// StepStatus is one step's line in status.
type StepStatus struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	Engine string `json:"engine,omitempty"`
	Model  string `json:"model,omitempty"`
	Commit string `json:"commit,omitempty"`
	// By says who did the work of its commit (Who): the agent alone, a
	// person in the agent's UI, and who approved it in review.
	By         string       `json:"by,omitempty"`
	FinishedAt *time.Time   `json:"finished_at,omitempty"`
	TokensIn   int64        `json:"tokens_in"`
	TokensOut  int64        `json:"tokens_out"`
	CostUSD    float64      `json:"cost_usd"`
	CostKnown  bool         `json:"cost_known"`
	Ref        string       `json:"ref,omitempty"` // failed ref or conflict branch
	Sandbox    string       `json:"sandbox"`       // the step's mode: auto, required or off
	Tasks      []TaskStatus `json:"tasks,omitempty"`
	TasksDone  int          `json:"tasks_done,omitempty"`
	TasksTotal int          `json:"tasks_total,omitempty"`
}

// TaskStatus is one task of a foreach step.
type TaskStatus struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	State string `json:"state"`
	// Stale marks a done task whose text changed since it ran, or that
	// builds on a task (after:) that ran again since: its work does not
	// match the plan any more (Reason says why and what to do).
	Stale  bool   `json:"stale,omitempty"`
	Reason string `json:"reason,omitempty"`
	Commit string `json:"commit,omitempty"`
	By     string `json:"by,omitempty"` // as StepStatus.By
	Ref    string `json:"ref,omitempty"`
}

// logDepth bounds how far back status and diff look for step commits.
const logDepth = 5000

// Status reports every step's state at the branch tip.
func (o *Orchestrator) Status(ov Overrides) (*StatusReport, error) {
	// Probing the sandbox starts a process (a namespace is tried in a
	// child) unless its answer is remembered: it runs while the
	// repository is read.
	probe := make(chan agents.SandboxStatus, 1)
	go func() { probe <- o.reportProbe() }()
	head, err := o.repo.Head()
	if err != nil {
		return nil, err
	}
	if head.Commit == "" {
		return nil, configErrorf("no commits yet: commit .codemachine/ first")
	}
	snap, err := o.loadSnapshot(head.Commit, ov, true)
	if err != nil {
		return nil, err
	}
	holds, err := o.holdsAt(head, ov)
	if err != nil {
		return nil, err
	}
	failures, err := o.failures()
	if err != nil {
		return nil, err
	}
	commits, by, err := o.stepCommitsBy(head.Commit, snap.state)
	if err != nil {
		return nil, err
	}
	report := &StatusReport{Workflow: snap.project.Workflow.Name, Branch: head.Branch, Commit: head.Commit,
		Sandbox: sandboxReport(snap.project.Workflow, <-probe)}
	running := map[string]bool{}
	if pid, cmd, held := o.repo.LockHolder(); held {
		report.Running = &RunnerInfo{PID: pid, Command: cmd}
		var r Running
		if err := o.readLocal(runningFile, &r); err == nil && r.PID == pid {
			for k := range r.Units {
				running[k] = true
			}
		}
	}
	v := &statusView{o: o, snap: snap, ov: ov, holds: holds, failures: failures, commits: commits, by: by, running: running,
		notDone: map[string]bool{}}
	for _, step := range snap.project.Graph.Order() {
		st := v.step(step)
		st.Sandbox = snap.project.Workflow.SandboxFor(step).Mode
		if st.State != StateDone {
			v.notDone[step.ID] = true
		}
		report.Steps = append(report.Steps, st)
	}
	return report, nil
}

// statusView is what status reads at the tip besides the step records:
// the local holds and failures, each step's and task's latest commit, the
// units the lock holder is running, and the steps not done so far (in
// dependency order), which those after them wait for.
type statusView struct {
	o        *Orchestrator
	snap     *snapshot
	ov       Overrides // the snapshot's, which reviewStale needs
	holds    map[string]Hold
	failures map[string]Failure
	commits  map[string]string
	by       map[string]string // commit hash -> who did its work, when the walk found it
	running  map[string]bool
	notDone  map[string]bool
}

// step is one step's line, with its tasks.
func (v *statusView) step(step *workflow.Step) StepStatus {
	id := step.ID
	set := v.snap.settings[id]
	st := StepStatus{ID: id, Engine: set.engine, Model: set.model, Commit: v.commits[id]}
	if set.replay {
		st.Engine = "replay"
	}
	if rec := v.snap.state.Steps[id]; rec != nil {
		addRecord(&st, rec)
	}
	var waits []string
	for _, up := range v.snap.project.Graph.Upstream(id) {
		if v.notDone[up] {
			waits = append(waits, up)
		}
	}
	if step.FansOut() && !v.snap.project.Skips[id] {
		v.tasks(step, &st)
		if len(waits) > 0 {
			// Nothing of a step that waits for its upstream can run yet.
			for i := range st.Tasks {
				if st.Tasks[i].State == StateDue {
					st.Tasks[i].State, st.Tasks[i].Reason = StateBlocked, "waits for "+strings.Join(waits, ", ")
				}
			}
		}
	}
	v.state(step, &st, waits)
	// A held or blocked entry's last commit is not its work at the tip
	// (a rollback undid the newer one, or it waits to run again): the
	// commit column would show a superseded commit as if it were current.
	if st.State == StateHeld || st.State == StateBlocked {
		st.Commit = ""
	}
	for i := range st.Tasks {
		if t := &st.Tasks[i]; t.State == StateHeld || t.State == StateBlocked {
			t.Commit = ""
		}
		st.Tasks[i].By = v.who(st.Tasks[i].Commit)
	}
	if step.Foreach == "" {
		st.By = v.who(st.Commit)
	}
	return st
}

// who is whoDid, answered from the walk's index when it has the commit.
func (v *statusView) who(hash string) string {
	if by, ok := v.by[hash]; ok {
		return by
	}
	return v.o.whoDid(hash)
}

// addRecord shows a step's last run: when, with what, and what it cost
// (for a foreach step, what all its tasks cost).
func addRecord(st *StepStatus, rec *gitstate.StepRecord) {
	t := rec.FinishedAt
	st.FinishedAt = &t
	st.Engine, st.Model = rec.Engine, rec.Model
	st.TokensIn, st.TokensOut, st.CostUSD, st.CostKnown = rec.TokensIn, rec.TokensOut, rec.CostUSD, rec.CostKnown
	if rec.Tasks != nil {
		st.TokensIn, st.TokensOut, st.CostUSD = 0, 0, 0
		for _, tr := range rec.Tasks {
			st.TokensIn += tr.TokensIn
			st.TokensOut += tr.TokensOut
			st.CostUSD += tr.CostUSD
			st.CostKnown = st.CostKnown || tr.CostKnown
		}
	}
}

// state sets a step's state, with its reason and ref, from the first that
// applies: running, waiting for review, done, waiting for the steps it
// needs (waits), its tasks' state, failed, held, due. A when: condition
// that cannot be evaluated fails the step only once nothing it waits for
// is due: a run evaluates it after they landed (steps.X.output is nil
// until X ran).
func (v *statusView) state(step *workflow.Step, st *StepStatus, waits []string) {
	id, fp := step.ID, v.snap.settings[step.ID].fingerprint
	reason, due := v.snap.due[id]
	h, f := v.holds[id], v.failures[id]
	held := h.Fingerprint == fp && h.Fingerprint != ""
	switch {
	case v.running[id]:
		st.State = StateRunning
	case v.snap.condErrs[id] != "" && len(waits) == 0:
		st.State, st.Reason = StateFailed, v.snap.condErrs[id]
	case !due && loopExhausted(v.snap, step):
		st.State, st.Reason = StateFailed, untilFailure(v.snap, step)
	case v.snap.project.Skips[id] && !due:
		st.State, st.Reason = StateSkipped, "when: "+step.When.Source+" is false"
	case v.snap.reviews[id] != "":
		st.State, st.Reason, st.Ref = StateReview, v.reviewReason(id), v.snap.reviewRef(id)
	case !due:
		st.State = StateDone
		if step.FansOut() && st.TasksTotal > 0 {
			// The progress line reads the same whether tasks remain or not.
			st.Reason = progressText(st)
		} else if step.FansOut() {
			// Done with nothing done: a bare "done" reads as work landed.
			st.Reason = noTasksText(step)
		}
	case len(waits) > 0:
		st.State, st.Reason = StateBlocked, "waits for "+strings.Join(waits, ", ")
		if held {
			st.Reason += ", and is held (rolled back; codemachine retry " + id + " to run it)"
		}
	case step.FansOut():
		st.State, st.Reason = foreachState(v.snap, step, st)
	case f.Fingerprint == fp && f.Error != "":
		st.State, st.Reason, st.Ref = StateFailed, headline(f.Error), f.Ref
		if f.Conflict {
			st.State = StateConflict
		}
	case held:
		st.State, st.Reason = StateHeld, "rolled back; codemachine retry "+id+" to run it"
	case step.Interactive:
		st.State, st.Reason = StateNeedsYou, needsYouMessage(id)
	default:
		st.State, st.Reason = StateDue, string(reason)
		if why := v.rejected(id); why != "" {
			st.Reason = why
		}
	}
}

// rejected says that the step or task key (STEP or STEP/TASK) was rejected
// in review, with the reason its next run gets as feedback, or "" when no
// rejection waits for it.
func (v *statusView) rejected(key string) string {
	fb, err := readFileFS(v.snap.fsys, feedbackPath(key))
	if err != nil || strings.TrimSpace(fb) == "" {
		return ""
	}
	return "rejected in review: " + headline(fb) + " (its next run gets the feedback)"
}

// foreachState summarizes a due foreach step from its tasks.
func foreachState(snap *snapshot, step *workflow.Step, st *StepStatus) (string, string) {
	if errs := snap.project.TaskErrs(step); len(errs) > 0 {
		return StateFailed, step.TaskSource() + " has errors: " + errs[0].Error()
	}
	if snap.project.TaskPlan(step) == nil {
		return StateDue, step.TaskSource() + " not written yet"
	}
	counts := map[string]int{}
	for _, t := range st.Tasks {
		counts[t.State]++
	}
	progress := progressText(st)
	switch {
	case counts[StateRunning] > 0:
		return StateRunning, progress
	case counts[StateDue] > 0:
		return StateDue, progress
	case counts[StateNeedsYou] > 0:
		return StateNeedsYou, progress
	case counts[StateReview] > 0:
		return StateReview, progress
	case counts[StateConflict] > 0:
		return StateConflict, progress
	case counts[StateFailed] > 0:
		return StateFailed, progress
	case counts[StateHeld] > 0:
		return StateHeld, progress
	}
	return StateBlocked, progress
}

// reviewReason says what key's pending review waits for, and whether it
// is stale (reviewStale): made before what it depends on changed, which
// approve refuses and the next run releases, running the unit again.
func (v *statusView) reviewReason(key string) string {
	const waiting = "waiting for approve or reject"
	commit := v.snap.reviews[key]
	c, err := v.o.repo.CommitInfo(commit)
	if err != nil {
		return waiting
	}
	msg, err := gitstate.ParseMessage(c.Message)
	if err != nil {
		return waiting
	}
	reason := waiting
	if by := msg.Get(gitstate.TrailerReview); by != "" {
		// A reviewer agent's review fell to a person: say why.
		reason += "; " + by
	}
	if stale, err := v.o.reviewStale(v.snap, v.ov, key, commit); err == nil && stale {
		reason = "stale: made before what it depends on changed (codemachine run releases it and runs " + key + " again)"
	}
	return reason
}

// noTasksText says why a fan-out step that is done ran no task: what its
// tasks come from gave none.
func noTasksText(step *workflow.Step) string {
	switch {
	case step.Each != nil && step.Each.Glob != "":
		return "no tasks: no file matches " + step.Each.Glob
	case step.Each != nil:
		return "no tasks: " + step.Each.Items + " lists no items"
	}
	return "no tasks: " + step.Foreach + " has none"
}

func progressText(st *StepStatus) string {
	return fmt.Sprintf("%d of %d tasks done", st.TasksDone, st.TasksTotal)
}

// tasks adds a foreach step's tasks, with its progress, to its line.
func (v *statusView) tasks(step *workflow.Step, st *StepStatus) {
	snap := v.snap
	plan := snap.project.TaskPlan(step)
	if plan == nil {
		return
	}
	done := map[string]bool{}
	for _, t := range plan.Tasks {
		done[t.ID] = t.Done
	}
	for _, t := range plan.Tasks {
		key := step.ID + "/" + t.ID
		ts := TaskStatus{ID: t.ID, Title: t.Title, Commit: v.commits[key]}
		fp := taskFingerprint(snap.settings[step.ID].fingerprint, t)
		st.TasksTotal++
		var missing []string
		for _, dep := range t.After {
			if !done[dep] {
				missing = append(missing, dep)
			}
		}
		switch f, h := v.failures[key], v.holds[key]; {
		case snap.reviews[key] != "":
			ts.State, ts.Reason, ts.Ref = StateReview, v.reviewReason(key), snap.reviewRef(key)
		case !t.Done && snap.reviewInTheWay(key) != "":
			other := snap.reviewInTheWay(key)
			ts.State, ts.Reason, ts.Ref = StateBlocked, "waits for the review of "+other+", made before the step changed shape", snap.reviewRef(other)
		case t.Done:
			ts.State = StateDone
			st.TasksDone++
			if why := v.o.staleTask(snap, step, t, v.commits[key]); why != "" {
				ts.Stale, ts.Reason = true, why
			}
		case v.running[key]:
			ts.State = StateRunning
		case f.Error != "" && f.Fingerprint == fp:
			ts.State, ts.Reason, ts.Ref = StateFailed, headline(f.Error), f.Ref
			if f.Conflict {
				ts.State = StateConflict
			}
		case h.Fingerprint != "" && h.Fingerprint == fp:
			ts.State, ts.Reason = StateHeld, "rolled back; codemachine retry "+key+" to run it"
		case len(missing) > 0:
			ts.State, ts.Reason = StateBlocked, "after "+strings.Join(missing, ", ")
		case step.Interactive:
			ts.State, ts.Reason = StateNeedsYou, needsYouMessage(key)
		default:
			ts.State, ts.Reason = StateDue, v.rejected(key)
		}
		st.Tasks = append(st.Tasks, ts)
	}
}
