package orchestrator

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// Steering a done task (issue 11): rewording a checked task re-runs
// nothing, and a task that re-runs leaves the done tasks built on it
// (after:) as they were. Both are made visible: status marks such a done
// task stale and says how to re-run it, a run that leaves some stale says
// so, and `run --cascade` re-runs them: it unchecks every stale done task,
// and every done task that builds (transitively) on one that is to run, in
// one commit, before the run.

// staleTask says why a done task's work no longer matches the plan, or ""
// when it does: its text changed since it ran, or a task it comes after
// ran again since. The task's record holds its fingerprint when it ran,
// made of the step's fingerprint then and its text: the text changed when
// neither the step's fingerprint now, nor the step's last recorded one,
// nor (read only when those two differ from it) the one of the commit
// that landed the task gives that fingerprint with the text now.
func (o *Orchestrator) staleTask(snap *snapshot, step *workflow.Step, t *workflow.Task, commit string) string {
	sr := snap.state.Steps[step.ID]
	if sr == nil || sr.Tasks[t.ID] == nil {
		return "" // ticked by hand: nothing ran to compare with
	}
	rec := sr.Tasks[t.ID]
	same := func(stepFP string) bool { return stepFP != "" && taskFingerprint(stepFP, t) == rec.Fingerprint }
	if !same(snap.settings[step.ID].fingerprint) && !same(sr.Fingerprint) && !same(o.stepFingerprintAt(commit, step.ID)) {
		return "reworded since it ran; its work is the old wording's (uncheck it to run it again)"
	}
	var newer []string
	for _, dep := range t.After {
		if d := sr.Tasks[dep]; d != nil && d.Seq > rec.Seq {
			newer = append(newer, dep)
		}
	}
	if len(newer) > 0 {
		return fmt.Sprintf("%s ran again since it ran, so its work builds on the old one (codemachine run --cascade re-runs it)",
			strings.Join(newer, ", "))
	}
	return ""
}

// stepFingerprintAt is the step's fingerprint recorded in state.yaml at
// commit ("" when unknown): at a task's landing, the step's fingerprint
// the task ran with.
func (o *Orchestrator) stepFingerprintAt(commit, stepID string) string {
	if commit == "" {
		return ""
	}
	st, err := o.loadState(commit)
	if err != nil || st.Steps[stepID] == nil {
		return ""
	}
	return st.Steps[stepID].Fingerprint
}

// staleTasks lists the stale done tasks of every foreach step at snap, by
// step, with why; commits are the tasks' landing commits by key.
func (o *Orchestrator) staleTasks(snap *snapshot, commits map[string]string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, step := range snap.project.Graph.Order() {
		plan := snap.project.Plans[step.Foreach]
		if step.Foreach == "" || plan == nil {
			continue
		}
		for _, t := range plan.Tasks {
			if !t.Done {
				continue
			}
			if why := o.staleTask(snap, step, t, commits[step.ID+"/"+t.ID]); why != "" {
				if out[step.ID] == nil {
					out[step.ID] = map[string]string{}
				}
				out[step.ID][t.ID] = why
			}
		}
	}
	return out
}

// hasDoneTasks reports whether a foreach step's plan at snap has a done
// task: the only ones staleTasks can find stale.
func hasDoneTasks(snap *snapshot) bool {
	for _, step := range snap.project.Graph.Order() {
		plan := snap.project.Plans[step.Foreach]
		if step.Foreach == "" || plan == nil {
			continue
		}
		for _, t := range plan.Tasks {
			if t.Done {
				return true
			}
		}
	}
	return false
}

// cascadeSet is what --cascade unchecks in a plan: the stale done tasks,
// and the done tasks that come after (transitively) one that is to run
// (unchecked, or stale), in plan order.
func cascadeSet(plan *workflow.Plan, stale map[string]string) []string {
	rerun := map[string]bool{}
	for _, t := range plan.Tasks {
		if !t.Done || stale[t.ID] != "" {
			rerun[t.ID] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for _, t := range plan.Tasks {
			if rerun[t.ID] {
				continue
			}
			for _, dep := range t.After {
				if rerun[dep] {
					rerun[t.ID], changed = true, true
					break
				}
			}
		}
	}
	var ids []string
	for _, t := range plan.Tasks {
		if t.Done && rerun[t.ID] {
			ids = append(ids, t.ID)
		}
	}
	return ids
}

// cascade unchecks, in one commit on the branch, what --cascade re-runs
// (cascadeSet of every foreach plan), and says so. The caller holds the
// lock.
func (o *Orchestrator) cascade(ctx context.Context, head gitstate.Head, ov Overrides) error {
	commit, undone, err := o.cascadeCommit(ctx, head, ov)
	if err != nil || commit == "" {
		return err
	}
	if _, err := o.repo.Land(ctx, head.Branch, head.Commit, commit, gitstate.LandOptions{ConflictBranch: "codemachine/conflict/cascade"}); err != nil {
		return fmt.Errorf("commit the cascade: %w", err)
	}
	o.emit(Event{Kind: Note, Message: "cascade: unchecked " + strings.Join(undone, ", ") + " " + cascadeWhy(undone)})
	return nil
}

// cascadeWhy says what becomes of the tasks a cascade unchecks, in the
// singular for one task.
func cascadeWhy(undone []string) string {
	if len(undone) == 1 {
		return "(it runs again, after what it builds on)"
	}
	return "(they run again, after what they build on)"
}

// cascadeCommit makes, on top of head, the commit that unchecks what
// --cascade re-runs, without landing it: its hash and the STEP/TASK keys it
// unchecks, sorted, or "" when nothing is to re-run. A dry run reads what
// is due at that commit.
func (o *Orchestrator) cascadeCommit(ctx context.Context, head gitstate.Head, ov Overrides) (string, []string, error) {
	snap, err := o.load(head.Commit, ov)
	if err != nil {
		return "", nil, err
	}
	commits, err := o.stepCommits(head.Commit, snap.state)
	if err != nil {
		return "", nil, err
	}
	stale := o.staleTasks(snap, commits)
	files := map[string]gitstate.Blob{}
	var undone []string
	for _, step := range snap.project.Graph.Order() {
		plan := snap.project.Plans[step.Foreach]
		if step.Foreach == "" || plan == nil || files[step.Foreach].Hash != "" {
			continue
		}
		ids := cascadeSet(plan, stale[step.ID])
		if len(ids) == 0 {
			continue
		}
		data := plan.Data
		for _, id := range ids {
			p, err := workflow.ParsePlan(plan.File, data)
			if err != nil {
				return "", nil, err
			}
			if data, err = p.SetDone(id, false); err != nil {
				return "", nil, err
			}
			undone = append(undone, step.ID+"/"+id)
		}
		h, err := o.repo.HashObject(ctx, data)
		if err != nil {
			return "", nil, err
		}
		files[step.Foreach] = gitstate.Blob{Hash: h, Mode: "100644"}
	}
	if len(undone) == 0 {
		return "", nil, nil
	}
	tree, err := o.repo.OverlayTree(ctx, head.Commit, files)
	if err != nil {
		return "", nil, err
	}
	sort.Strings(undone)
	msg := gitstate.Message{
		Subject: "steer: cascade: uncheck " + strings.Join(undone, ", "),
		Body:    "codemachine run --cascade: these done tasks were reworded, or build on tasks that ran or run again.",
	}
	commit, err := o.repo.CommitTree(ctx, gitstate.CommitSpec{Tree: tree, Parents: []string{head.Commit}, Message: msg.String()})
	if err != nil {
		return "", nil, err
	}
	return commit, undone, nil
}

// noteStale says, at the end of a run, which done tasks are stale at the
// branch's tip now (see staleTask), so that a run that re-ran a task does
// not leave the tasks built on it silently behind.
func (o *Orchestrator) noteStale(branch string, ov Overrides) {
	tip, err := o.repo.ResolveRev("refs/heads/" + branch)
	if err != nil {
		return
	}
	snap, err := o.load(tip, ov)
	if err != nil || !hasDoneTasks(snap) {
		// Without a done task nothing can be stale: the history walk (and
		// the rewrite of its local index, a new file per run) is spared.
		return
	}
	commits, err := o.stepCommits(tip, snap.state)
	if err != nil {
		return
	}
	stale := o.staleTasks(snap, commits)
	for _, step := range snap.project.Graph.Order() {
		for _, id := range sortedKeys(stale[step.ID]) {
			o.emit(Event{Kind: Note, Step: step.ID, Task: id, Message: "done, but " + stale[step.ID][id]})
		}
	}
}
