package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// errPlanConflict: the agent's edit of the plan and the edits that landed
// meanwhile change the same lines.
var errPlanConflict = errors.New("the plan edits do not merge")

// mergePlans rebases a task agent's edit of its plan (cand, made on base)
// onto the branch tip's plan, and ticks the task's box.
//
// Boxes are left out of the line merge: parallel tasks tick boxes on
// neighbouring lines, and git's merge takes changes to adjacent lines for
// a conflict, so an agent that added a note under its own task would
// conflict with the task above it landing first. The text is merged with
// every box blank; then each box takes the tip's state, unless the agent
// changed that box itself (its state wins) or the task is new in cand.
func (o *Orchestrator) mergePlans(ctx context.Context, file, id string, base, tip, cand []byte) ([]byte, error) {
	bp, err := workflow.ParsePlan(file, base)
	if err != nil {
		return nil, errPlanConflict
	}
	tp, err := workflow.ParsePlan(file, tip)
	if err != nil {
		return nil, errPlanConflict
	}
	cp, err := workflow.ParsePlan(file, cand)
	if err != nil {
		return nil, errPlanConflict
	}
	merged, err := o.mergeText(ctx, blankBoxes(bp), blankBoxes(tp), blankBoxes(cp))
	if err != nil {
		return nil, err
	}
	mp, err := workflow.ParsePlan(file, merged)
	if err != nil {
		return nil, errPlanConflict
	}
	for _, t := range mp.Tasks {
		box := byte(' ')
		bt, tt, ct := bp.Task(t.ID), tp.Task(t.ID), cp.Task(t.ID)
		switch {
		case t.ID == id:
			box = 'x'
		case ct != nil && bt != nil && cand[ct.Box] != base[bt.Box]:
			box = cand[ct.Box]
		case tt != nil:
			box = tip[tt.Box]
		case ct != nil:
			box = cand[ct.Box]
		}
		merged[t.Box] = box
	}
	return merged, nil
}

// blankBoxes returns the plan's text with every task's box unchecked.
func blankBoxes(p *workflow.Plan) []byte {
	out := append([]byte(nil), p.Data...)
	for _, t := range p.Tasks {
		out[t.Box] = ' '
	}
	return out
}

// mergeText is a three-way merge of texts: the changes from base to
// theirs applied to ours. It returns errPlanConflict when they overlap.
func (o *Orchestrator) mergeText(ctx context.Context, base, ours, theirs []byte) ([]byte, error) {
	merged, err := o.repo.MergeText(ctx, base, ours, theirs)
	if errors.Is(err, gitstate.ErrTextConflict) {
		return nil, errPlanConflict
	}
	if err != nil {
		return nil, fmt.Errorf("merge plans: %w", err)
	}
	return merged, nil
}
