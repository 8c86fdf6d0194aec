package orchestrator

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
)

// maxUndone bounds how many of the commits a reset took away are looked
// at: the newest ones, where the steps just undone are. A reset further
// back than that is a new start rather than an undo of steps.
const maxUndone = 1000

// holdUndone holds the steps and tasks whose commits a move of the branch
// from tip from to tip to took away (a rollback, a `git reset`, a rewrite)
// and which that move made due again: they do not run
// again with the same inputs until the user asks (retry, run STEP) or the
// inputs change. Each hold records the newest undone commit of its unit.
// It returns the held keys, newest undone first. A workflow that is broken
// or absent at to holds nothing.
//
// Two choices, where rollback and watch mode used to differ:
//
//   - Fingerprints are computed with the caller's overrides (ov, and the
//     environment's CODEMACHINE_ENGINE/MODEL, which settingsFor applies
//     everywhere): a hold lifts as soon as the unit's fingerprint differs
//     from it, and the runs that follow compute theirs with the same
//     overrides. A watcher started with --model must hold with that model,
//     or its next pass would lift the hold at once and run the step again.
//     Rollback has no overrides of its own and passes none.
//   - Only what is due at to is held: a step that is due (never ran there,
//     changed, or waits for one that is), a task that is still in its plan
//     and unchecked. A step whose work is still there (an amend of its
//     commit keeps the work and state.yaml's record) or a task whose box is
//     still ticked would not run anyway; a hold on it would call done work
//     held, and would stop a legitimate run later, when its inputs come
//     back to these values.
func (o *Orchestrator) holdUndone(ctx context.Context, from, to string, ov Overrides) ([]string, error) {
	holds, keys, err := o.undoneHolds(ctx, from, to, ov)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	err = o.updateHolds(func(h map[string]Hold) {
		for _, key := range keys {
			h[key] = holds[key]
		}
	})
	return keys, err
}

// UndoneHolds are the holds a move of the branch from tip from to tip to
// makes (as holdUndone computes them, without writing them): by key, and
// the keys newest undone first. The workers' integrator publishes them
// when a person rewinds the remote's branch.
func (o *Orchestrator) UndoneHolds(ctx context.Context, from, to string, ov Overrides) (map[string]Hold, []string, error) {
	return o.undoneHolds(ctx, from, to, ov)
}

// MirrorHolds makes this clone's holds follow remote, the holds on the
// workers' remote (by key, Remote naming the hold commit): a remote hold
// this clone lacks is added, and a hold added so whose remote hold is gone
// (lifted there) is removed. Holds made here (a rollback or reset in this
// clone) are left as they are. It returns the keys it added.
func (o *Orchestrator) MirrorHolds(remote map[string]Hold) ([]string, error) {
	cur, err := o.holds()
	if err != nil {
		return nil, err
	}
	// Most looks change nothing: the file is written only when they do.
	if _, changed := mirrorInto(maps.Clone(cur), remote); !changed {
		return nil, nil
	}
	var added []string
	err = o.updateHolds(func(h map[string]Hold) { added, _ = mirrorInto(h, remote) })
	return added, err
}

// mirrorInto applies MirrorHolds' rule to h, and says which keys it added
// and whether it changed anything.
func mirrorInto(h, remote map[string]Hold) ([]string, bool) {
	changed := false
	for key, l := range h {
		if r, ok := remote[key]; l.Remote != "" && (!ok || r.Remote != l.Remote) {
			delete(h, key)
			changed = true
		}
	}
	var added []string
	for key, r := range remote {
		if l, ok := h[key]; ok && (l.Remote == r.Remote || l.Remote == "" && l.Fingerprint == r.Fingerprint) {
			continue
		}
		h[key] = r
		added = append(added, key)
		changed = true
	}
	slices.Sort(added)
	return added, changed
}

// undoneHolds computes the holds holdUndone writes, without writing them:
// by key, and the keys newest undone first.
func (o *Orchestrator) undoneHolds(ctx context.Context, from, to string, ov Overrides) (map[string]Hold, []string, error) {
	commits, err := o.repo.CommitsBetween(ctx, to, from, maxUndone)
	if err != nil {
		return nil, nil, err
	}
	snap, err := o.load(to, ov)
	if err != nil {
		var cfg *ConfigError
		if errors.As(err, &cfg) {
			return nil, nil, nil // no workflow to hold steps of
		}
		return nil, nil, err
	}
	now := o.cfg.Now().UTC()
	holds := map[string]Hold{}
	var keys []string
	seen := map[string]bool{}
	for _, c := range commits {
		msg := gitstate.Message{Trailers: c.Trailers}
		stepID := msg.Get(gitstate.TrailerStep)
		if stepID == "" {
			continue
		}
		key := unitKey(stepID, msg.Get(gitstate.TrailerTask))
		if seen[key] {
			continue
		}
		seen[key] = true
		// A commit rewritten (rebased) rather than taken away left its
		// landing's record in to's state: nothing of it was undone.
		if fp, due := dueFingerprint(snap, key); due && !o.landingKept(snap.state, key, c.Hash) {
			holds[key] = Hold{Fingerprint: fp, Commit: c.Hash, At: now}
			keys = append(keys, key)
		}
	}
	return holds, keys, nil
}

// dueFingerprint returns the fingerprint of a step or task key at snap and
// whether it is due there: a step when DueSteps says so, a task when its
// plan has it unchecked.
func dueFingerprint(snap *snapshot, key string) (string, bool) {
	stepID, taskID, _ := strings.Cut(key, "/")
	step := snap.project.Graph.Step(stepID)
	if step == nil {
		return "", false
	}
	fp := snap.settings[stepID].fingerprint
	if taskID == "" {
		_, due := snap.due[stepID]
		return fp, due
	}
	plan := snap.project.TaskPlan(step)
	if plan == nil {
		return "", false
	}
	task := plan.Task(taskID)
	if task == nil || task.Done {
		return "", false
	}
	return taskFingerprint(fp, task), true
}
