package orchestrator

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
)

// A plain `git reset` undoes steps in every mode (issue 11), not only while
// a watcher looks: codemachine remembers, per branch, the tip it last saw
// (tips.yaml, local). When a command finds the branch at a commit that does
// not descend from that tip, the branch was reset or rewritten meanwhile:
// the step commits it took away are held as rollback holds them, computed
// at the point the branch went back to (the merge base of the two tips),
// so that commits the user made after the reset (a spec edited, a box
// unticked) change the fingerprints and lift the holds they should.
const tipsFile = "tips.yaml"

// branchReset is a move of a branch that took commits away: from the tip
// codemachine last saw to the commit the branch went back to.
type branchReset struct {
	branch   string
	from, to string
}

// lastTips reads the tips codemachine last saw, by branch.
func (o *Orchestrator) lastTips() (map[string]string, error) {
	m := map[string]string{}
	err := o.readLocal(tipsFile, &m)
	if m == nil {
		m = map[string]string{}
	}
	return m, err
}

// resetSince reports how the branch moved since codemachine last saw it:
// nil when it did not move back (never seen, unchanged, only new commits,
// or the old tip is gone from the repository).
func (o *Orchestrator) resetSince(head gitstate.Head) (*branchReset, error) {
	tips, err := o.lastTips()
	if err != nil {
		return nil, err
	}
	last := tips[head.Branch]
	if last == "" || last == head.Commit {
		return nil, nil
	}
	if _, err := o.repo.CommitInfo(last); err != nil {
		return nil, nil // pruned: nothing left to compare with
	}
	forward, err := o.repo.IsAncestor(last, head.Commit)
	if err != nil || forward {
		return nil, err
	}
	base, err := o.repo.MergeBase(last, head.Commit)
	if err != nil || base == "" {
		return nil, err
	}
	return &branchReset{branch: head.Branch, from: last, to: base}, nil
}

// pendingHolds are the holds a reset since codemachine last saw the branch
// calls for and that no command has written yet: status and dry runs show
// them as the next run will see them.
func (o *Orchestrator) pendingHolds(ctx context.Context, head gitstate.Head, ov Overrides) (map[string]Hold, error) {
	r, err := o.resetSince(head)
	if err != nil || r == nil {
		return nil, err
	}
	holds, _, err := o.undoneHeldAt(ctx, r, head.Commit, ov)
	return holds, err
}

// undoneHeldAt computes the holds of a reset, keeping only the units that
// are due at the branch's tip too, with the same fingerprint, and whose
// landing the tip does not still hold (a rebase keeps the work of commits
// it rewrote: they are done at the tip, or due there only because a step
// before them is, and a hold on them would stop a legitimate run later).
func (o *Orchestrator) undoneHeldAt(ctx context.Context, r *branchReset, tip string, ov Overrides) (map[string]Hold, []string, error) {
	holds, keys, err := o.undoneHolds(ctx, r.from, r.to, ov)
	if err != nil || len(keys) == 0 || r.to == tip {
		return holds, keys, err
	}
	snap, err := o.load(tip, ov)
	if err != nil {
		return nil, nil, nil // a broken workflow at the tip runs nothing anyway
	}
	var kept []string
	for _, key := range keys {
		// Commits after the reset that changed the unit's definition or
		// inputs lift its hold at once: it is not held at the tip.
		if fp, due := dueFingerprint(snap, key); due && fp == holds[key].Fingerprint &&
			!o.landingKept(snap.state, key, holds[key].Commit) {
			kept = append(kept, key)
		} else {
			delete(holds, key)
		}
	}
	return holds, kept, nil
}

// landingKept reports whether state, a branch tip's, still holds the
// record that the step commit commit wrote for key: the branch was
// rewritten (rebased, a commit before the step's amended), not rewound, so
// the step's work is still on it. A rewritten step commit keeps its
// state.yaml, whose records carry the sequence number and time of the
// landing that made them.
func (o *Orchestrator) landingKept(state *gitstate.State, key, commit string) bool {
	at, err := o.loadState(commit)
	if err != nil || state == nil {
		return false
	}
	was, now := stateRecord(at, key), stateRecord(state, key)
	return was != nil && now != nil && was.Seq == now.Seq &&
		was.Fingerprint == now.Fingerprint && was.FinishedAt.Equal(now.FinishedAt)
}

// stateRecord is the record state holds for a step or step/task key, nil
// when it has none.
func stateRecord(state *gitstate.State, key string) *gitstate.RunRecord {
	stepID, taskID, _ := strings.Cut(key, "/")
	sr := state.Steps[stepID]
	if sr == nil {
		return nil
	}
	if taskID == "" {
		return &sr.RunRecord
	}
	return sr.Tasks[taskID]
}

// followBranch holds what a reset since codemachine last saw the branch
// took away, says so, and remembers the tip. The caller holds the lock.
func (o *Orchestrator) followBranch(ctx context.Context, head gitstate.Head, ov Overrides) error {
	r, err := o.resetSince(head)
	if err != nil {
		return err
	}
	if r != nil {
		holds, keys, err := o.undoneHeldAt(ctx, r, head.Commit, ov)
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := o.updateHolds(func(h map[string]Hold) {
				for _, key := range keys {
					h[key] = holds[key]
				}
			}); err != nil {
				return err
			}
			sorted := append([]string(nil), keys...)
			sort.Strings(sorted)
			o.emit(Event{Kind: Note, Message: fmt.Sprintf(
				"%s was reset from %s to %s since codemachine last ran: held %s, undone there (codemachine retry %s runs it again; changing its inputs lifts the hold)",
				head.Branch, short(r.from), short(r.to), strings.Join(sorted, ", "), sorted[0])})
		}
	}
	return o.noteTip(head.Branch, head.Commit, false)
}

// noteTip remembers commit as the branch's tip codemachine last saw. With
// onlyForward, a tip that does not descend from the remembered one is left
// for the next command to notice (a reset made while a run ran).
func (o *Orchestrator) noteTip(branch, commit string, onlyForward bool) error {
	if branch == "" || commit == "" {
		return nil
	}
	o.localMu.Lock()
	defer o.localMu.Unlock()
	tips, err := o.lastTips()
	if err != nil {
		return err
	}
	last := tips[branch]
	if last == commit {
		return nil
	}
	if onlyForward && last != "" {
		if ok, err := o.repo.IsAncestor(last, commit); err != nil || !ok {
			return err
		}
	}
	tips[branch] = commit
	return o.repo.WriteLocal(tipsFile, tips)
}

// noteBranchTip remembers where the branch is now, when it moved forward
// from what codemachine last saw (after a run, approve or reject).
func (o *Orchestrator) noteBranchTip(branch string) {
	if tip, err := o.repo.ResolveRev("refs/heads/" + branch); err == nil {
		_ = o.noteTip(branch, tip, true)
	}
}

// holdsAt is the holds file with the holds a reset since codemachine last
// saw the branch calls for and no run has written yet: what the next run
// will find, for the commands that only look (status, dry runs).
func (o *Orchestrator) holdsAt(head gitstate.Head, ov Overrides) (map[string]Hold, error) {
	holds, err := o.holds()
	if err != nil {
		return nil, err
	}
	pending, err := o.pendingHolds(context.Background(), head, ov)
	if err != nil {
		return nil, err
	}
	for key, h := range pending {
		if _, ok := holds[key]; !ok {
			holds[key] = h
		}
	}
	return holds, nil
}
