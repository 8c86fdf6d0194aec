package orchestrator

import (
	"fmt"
	"strings"
	"time"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// Step and task states shown by status (DESIGN 12).
const (
	StateDone     = "done"
	StateDue      = "due"
	StateRunning  = "running"
	StateFailed   = "failed"
	StateConflict = "conflict"
	StateReview   = "review"
	StateHeld     = "held"
	StateBlocked  = "blocked"
)

// StatusReport is where the workflow stands at the branch tip.
type StatusReport struct {
	Workflow string       `json:"workflow,omitempty"` // the workflow's name
	Branch   string       `json:"branch"`
	Commit   string       `json:"commit"`
	Steps    []StepStatus `json:"steps"`
	// Running is set when another codemachine process holds the lock.
	Running *RunnerInfo `json:"running,omitempty"`
}

// RunnerInfo describes the process holding the repository lock.
type RunnerInfo struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
}

// StepStatus is one step's line in status.
type StepStatus struct {
	ID         string       `json:"id"`
	State      string       `json:"state"`
	Reason     string       `json:"reason,omitempty"`
	Engine     string       `json:"engine,omitempty"`
	Model      string       `json:"model,omitempty"`
	Commit     string       `json:"commit,omitempty"`
	FinishedAt *time.Time   `json:"finished_at,omitempty"`
	TokensIn   int64        `json:"tokens_in"`
	TokensOut  int64        `json:"tokens_out"`
	CostUSD    float64      `json:"cost_usd"`
	CostKnown  bool         `json:"cost_known"`
	Ref        string       `json:"ref,omitempty"` // failed ref or conflict branch
	Tasks      []TaskStatus `json:"tasks,omitempty"`
	TasksDone  int          `json:"tasks_done,omitempty"`
	TasksTotal int          `json:"tasks_total,omitempty"`
}

// TaskStatus is one task of a foreach step.
type TaskStatus struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	Commit string `json:"commit,omitempty"`
	Ref    string `json:"ref,omitempty"`
}

// logDepth bounds how far back status and diff look for step commits.
const logDepth = 5000

// Status reports every step's state at the branch tip.
func (o *Orchestrator) Status(ov Overrides) (*StatusReport, error) {
	head, err := o.repo.Head()
	if err != nil {
		return nil, err
	}
	if head.Commit == "" {
		return nil, configErrorf("no commits yet: commit .codemachine/ first")
	}
	snap, err := o.load(head.Commit, ov)
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
	commits, err := o.stepCommits(head.Commit, snap.state)
	if err != nil {
		return nil, err
	}
	report := &StatusReport{Workflow: snap.project.Workflow.Name, Branch: head.Branch, Commit: head.Commit}
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
	reviews := snap.reviews
	blockedBy := map[string]bool{}
	for _, step := range snap.project.Graph.Order() {
		st := o.stepStatus(snap, step, holds, failures, commits, running, reviews, blockedBy)
		if st.State != StateDone {
			blockedBy[step.ID] = true
		}
		report.Steps = append(report.Steps, st)
	}
	return report, nil
}

func (o *Orchestrator) stepStatus(snap *snapshot, step *workflow.Step, holds map[string]Hold, failures map[string]Failure,
	commits map[string]string, running map[string]bool, reviews map[string]string, blockedBy map[string]bool) StepStatus {
	id := step.ID
	set := snap.settings[id]
	st := StepStatus{ID: id, Engine: set.engine, Model: set.model, Commit: commits[id]}
	if set.replay {
		st.Engine = "replay"
	}
	if rec := snap.state.Steps[id]; rec != nil {
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
	reason, due := snap.due[id]
	var waits []string
	for _, up := range snap.project.Graph.Upstream(id) {
		if blockedBy[up] {
			waits = append(waits, up)
		}
	}
	if step.Foreach != "" {
		o.taskStatuses(snap, step, &st, holds, failures, commits, running)
		if len(waits) > 0 {
			// Nothing of a step that waits for its upstream can run yet.
			for i := range st.Tasks {
				if st.Tasks[i].State == StateDue {
					st.Tasks[i].State, st.Tasks[i].Reason = StateBlocked, "waits for "+strings.Join(waits, ", ")
				}
			}
		}
	}
	fp := set.fingerprint
	switch {
	case running[id]:
		st.State = StateRunning
	case reviews[id] != "":
		st.State, st.Reason, st.Ref = StateReview, o.reviewReason(reviews[id], fp), reviewPrefix+id
	case !due:
		st.State = StateDone
		if step.Foreach != "" && st.TasksTotal > 0 {
			// The progress line reads the same whether tasks remain or not.
			st.Reason = progressText(&st)
		}
	case len(waits) > 0:
		st.State, st.Reason = StateBlocked, "waits for "+strings.Join(waits, ", ")
		if holds[id].Fingerprint == fp && holds[id].Fingerprint != "" {
			st.Reason += ", and is held (rolled back; codemachine retry " + id + " to run it)"
		}
	case step.Foreach != "":
		st.State, st.Reason = foreachState(snap, step, &st)
	case failures[id].Fingerprint == fp && failures[id].Error != "":
		f := failures[id]
		st.State, st.Reason, st.Ref = StateFailed, firstLine(f.Error), f.Ref
		if f.Conflict {
			st.State = StateConflict
		}
	case holds[id].Fingerprint == fp && holds[id].Fingerprint != "":
		st.State, st.Reason = StateHeld, "rolled back; codemachine retry "+id+" to run it"
	default:
		st.State, st.Reason = StateDue, string(reason)
	}
	return st
}

// foreachState summarizes a due foreach step from its tasks.
func foreachState(snap *snapshot, step *workflow.Step, st *StepStatus) (string, string) {
	if errs := snap.project.PlanErrs[step.Foreach]; len(errs) > 0 {
		return StateFailed, step.Foreach + " has errors: " + errs[0].Error()
	}
	if snap.project.Plans[step.Foreach] == nil {
		return StateDue, step.Foreach + " not written yet"
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

// reviewReason says what a pending review waits for, and whether the work
// under review was made from inputs that have changed since: approving it
// still lands it, and then the step (or task) is due again.
func (o *Orchestrator) reviewReason(commit, fingerprint string) string {
	const waiting = "waiting for approve or reject"
	c, err := o.repo.CommitInfo(commit)
	if err != nil {
		return waiting
	}
	msg, err := gitstate.ParseMessage(c.Message)
	if err != nil {
		return waiting
	}
	if made := msg.Get(gitstate.TrailerFingerprint); made != "" && made != fingerprint {
		return waiting + "; made before its inputs changed (once approved it runs again)"
	}
	return waiting
}

func progressText(st *StepStatus) string {
	return fmt.Sprintf("%d of %d tasks done", st.TasksDone, st.TasksTotal)
}

func (o *Orchestrator) taskStatuses(snap *snapshot, step *workflow.Step, st *StepStatus, holds map[string]Hold,
	failures map[string]Failure, commits map[string]string, running map[string]bool) {
	plan := snap.project.Plans[step.Foreach]
	if plan == nil {
		return
	}
	done := map[string]bool{}
	for _, t := range plan.Tasks {
		done[t.ID] = t.Done
	}
	for _, t := range plan.Tasks {
		key := step.ID + "/" + t.ID
		ts := TaskStatus{ID: t.ID, Title: t.Title, Commit: commits[key]}
		fp := taskFingerprint(snap.settings[step.ID].fingerprint, t)
		st.TasksTotal++
		var missing []string
		for _, dep := range t.After {
			if !done[dep] {
				missing = append(missing, dep)
			}
		}
		switch f, h := failures[key], holds[key]; {
		case snap.reviews[key] != "":
			ts.State, ts.Reason, ts.Ref = StateReview, o.reviewReason(snap.reviews[key], fp), reviewPrefix+key
		case t.Done:
			ts.State = StateDone
			st.TasksDone++
		case running[key]:
			ts.State = StateRunning
		case f.Error != "" && f.Fingerprint == fp:
			ts.State, ts.Reason, ts.Ref = StateFailed, firstLine(f.Error), f.Ref
			if f.Conflict {
				ts.State = StateConflict
			}
		case h.Fingerprint != "" && h.Fingerprint == fp:
			ts.State, ts.Reason = StateHeld, "rolled back; codemachine retry "+key+" to run it"
		case len(missing) > 0:
			ts.State, ts.Reason = StateBlocked, "after "+strings.Join(missing, ", ")
		default:
			ts.State = StateDue
		}
		st.Tasks = append(st.Tasks, ts)
	}
}

// stepCommits maps step and step/task keys to their latest commit on the
// first-parent history of rev. The walk stops once every step and task that
// state.yaml records as landed has been found (when state is given), so its
// cost follows how far back the oldest step landed, not the history's
// length; without state it reads up to logDepth commits.
func (o *Orchestrator) stepCommits(rev string, state *gitstate.State) (map[string]string, error) {
	missing := -1
	want := map[string]bool{}
	if state != nil {
		for id, sr := range state.Steps {
			want[id] = true
			for tid := range sr.Tasks {
				want[id+"/"+tid] = true
			}
		}
		missing = len(want)
	}
	m := map[string]string{}
	found := func(key, hash string) {
		if _, seen := m[key]; !seen {
			m[key] = hash
			if want[key] {
				missing--
			}
		}
	}
	n := 0
	err := o.repo.WalkLog(rev, func(c gitstate.Commit) bool {
		n++
		msg := gitstate.Message{Trailers: c.Trailers}
		if step := msg.Get(gitstate.TrailerStep); step != "" {
			found(unitKey(step, msg.Get(gitstate.TrailerTask)), c.Hash)
			found(step, c.Hash)
		}
		return missing != 0 && n < logDepth
	})
	return m, err
}
