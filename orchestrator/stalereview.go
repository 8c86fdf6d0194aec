package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
)

// A pending review goes stale when the branch no longer holds the commit
// it was made on (a reset, a rewrite; issue 11): approving it could not
// land, and the step would wait for it for ever. At the start of every run
// each stale review is either
//
//   - released, when the step's fingerprint at the tip is not the one the
//     review was made with (its upstream re-landed with other results, or
//     its inputs changed): its work is kept under
//     refs/codemachine/superseded/<key>, the review branch is deleted, and
//     the step runs again like any due step; or
//   - rebased onto the tip, when it was made from the same inputs: the
//     review branch moves to the copy (the reviewer sees the same change,
//     now applicable); or, when that does not apply cleanly, left waiting
//     with a note that says what to do.
const supersededRefPrefix = "refs/codemachine/superseded/"

// refreshReviews releases or rebases the pending reviews whose base is no
// longer on the branch at tip, and says what it did.
func (o *Orchestrator) refreshReviews(ctx context.Context, head gitstate.Head, ov Overrides) error {
	pending, err := o.reviewPending()
	if err != nil || len(pending) == 0 {
		return err
	}
	var snap *snapshot
	for _, key := range sortedKeys(pending) {
		commit := pending[key]
		info, err := o.repo.CommitInfo(commit)
		if err != nil || len(info.Parents) != 1 {
			continue
		}
		base := info.Parents[0]
		if ok, err := o.repo.IsAncestor(base, head.Commit); err != nil || ok {
			continue
		}
		if snap == nil {
			if snap, err = o.load(head.Commit, ov); err != nil {
				var cfg *ConfigError
				if errors.As(err, &cfg) {
					return nil // a broken workflow runs nothing anyway
				}
				return err
			}
		}
		if err := o.refreshReview(ctx, snap, head, key, info); err != nil {
			return err
		}
	}
	return nil
}

// refreshReview releases or rebases one stale review (see refreshReviews).
func (o *Orchestrator) refreshReview(ctx context.Context, snap *snapshot, head gitstate.Head, key string, info gitstate.Commit) error {
	stepID, taskID, _ := strings.Cut(key, "/")
	made := gitstate.Message{Trailers: info.Trailers}.Get(gitstate.TrailerFingerprint)
	fp, exists := unitFingerprint(snap, key)
	base := info.Parents[0]
	moved, err := o.upstreamMovedSince(snap, base, key)
	if err != nil {
		return err
	}
	if !exists || made == "" || fp != made || moved != "" {
		kept, err := o.releaseReview(ctx, key, info.Hash)
		if err != nil {
			return err
		}
		from := "from inputs that changed since"
		if exists && made != "" && fp == made {
			from = "from a landing of " + moved + " that it no longer holds either"
		}
		o.emit(Event{Kind: Note, Step: stepID, Task: taskID, Message: fmt.Sprintf(
			"the work under review was made on %s, which %s no longer holds, %s: released (kept on %s); %s runs again",
			short(base), head.Branch, from, kept, key)})
		return nil
	}
	rebased, conflicts, err := o.rebaseReview(ctx, head.Commit, key, info)
	if err != nil {
		return err
	}
	if len(conflicts) > 0 {
		o.emit(Event{Kind: Note, Step: stepID, Task: taskID, Message: fmt.Sprintf(
			"the work under review was made on %s, which %s no longer holds, and does not apply to its tip (conflicts in %s): codemachine reject %s -m WHY runs it again there",
			short(base), head.Branch, strings.Join(conflicts, ", "), key)})
		return nil
	}
	o.emit(Event{Kind: Note, Step: stepID, Task: taskID, Message: fmt.Sprintf(
		"the work under review was made on %s, which %s no longer holds: rebased onto %s as %s (codemachine diff %s)",
		short(base), head.Branch, short(head.Commit), short(rebased), key)})
	return nil
}

// upstreamMovedSince is upstreamMoved for a review made on base, which
// the branch no longer holds: a reset that undid a landing of a step the
// unit needs leaves work made from outputs the tip does not have, which a
// rebase would carry over. A base whose workflow does not load is left to
// the fingerprint the review was made with.
func (o *Orchestrator) upstreamMovedSince(snap *snapshot, base, key string) (string, error) {
	then, err := o.load(base, Overrides{})
	if err != nil {
		var cfg *ConfigError
		if errors.As(err, &cfg) {
			return "", nil
		}
		return "", fmt.Errorf("load the workflow the review of %s was made from: %w", key, err)
	}
	return upstreamMoved(then, snap, key), nil
}

// unitFingerprint is the fingerprint of a step or task key at snap, and
// whether the key is (still) in the workflow and its plan.
func unitFingerprint(snap *snapshot, key string) (string, bool) {
	stepID, taskID, _ := strings.Cut(key, "/")
	step := snap.project.Graph.Step(stepID)
	if step == nil {
		return "", false
	}
	fp := snap.settings[stepID].fingerprint
	if taskID == "" {
		return fp, true
	}
	plan := snap.project.TaskPlan(step)
	if plan == nil || plan.Task(taskID) == nil {
		return "", false
	}
	return taskFingerprint(fp, plan.Task(taskID)), true
}

// releaseReview keeps a review commit under refs/codemachine/superseded/
// and deletes its branch; the unit is then due like any other.
func (o *Orchestrator) releaseReview(ctx context.Context, key, commit string) (string, error) {
	kept, err := o.keepRef(ctx, supersededRefPrefix, key, commit, "codemachine: "+key+" superseded in review")
	if err != nil {
		return "", err
	}
	if err := o.repo.DeleteRef(ctx, "refs/heads/"+reviewPrefix+key, commit); err != nil {
		return "", err
	}
	return kept, nil
}

// rebaseReview re-applies a review commit onto tip (its state record and
// ticked box rebuilt from the tip's, as a landing does) and moves the
// review branch there. It returns the paths that conflict instead when it
// does not apply cleanly; the review branch is then left alone.
func (o *Orchestrator) rebaseReview(ctx context.Context, tip, key string, info gitstate.Commit) (string, []string, error) {
	base := info.Parents[0]
	u, c, err := o.reviewedUnit(tip, base, info.Hash, key)
	if err != nil {
		var cfg *ConfigError
		if errors.As(err, &cfg) {
			return "", []string{err.Error()}, nil
		}
		return "", nil, err
	}
	tree, conflicts, err := o.repo.MergeTree(ctx, base, tip, info.Hash)
	if err != nil {
		return "", nil, err
	}
	paths := c.overlayPaths(u)
	conflicts = slices.DeleteFunc(conflicts, func(p string) bool { return slices.Contains(paths, p) })
	if len(conflicts) > 0 {
		return "", conflicts, nil
	}
	tree, err = o.overlay(ctx, u, c, tip, tree)
	var ce *gitstate.ConflictError
	if errors.As(err, &ce) {
		return "", ce.Paths, nil
	}
	if err != nil {
		return "", nil, err
	}
	rebased, err := o.repo.CommitTree(ctx, gitstate.CommitSpec{Tree: tree, Parents: []string{tip},
		Message: info.Message, Author: info.Author})
	if err != nil {
		return "", nil, err
	}
	ref := "refs/heads/" + reviewPrefix + key
	if err := o.repo.UpdateRef(ctx, ref, rebased, info.Hash, "codemachine: "+key+" rebased for review"); err != nil {
		return "", nil, err
	}
	return rebased, nil, nil
}

// reviewStale reports whether the review commit of key was made from
// other inputs than the unit has at snap: what it needs landed anew, or
// its inputs or definition changed since. Approving such work would land
// results made from the old inputs. The unit's fingerprint at snap is
// compared with its fingerprint at the commit's base, both worked out
// with ov, so a review made by a run with --engine or --model is not
// stale for a command without them. A unit no longer in the workflow or
// its plan, or a step's review now that the step is a foreach, is not
// (reviewInTheWay and NoReviewError see to those).
func (o *Orchestrator) reviewStale(snap *snapshot, ov Overrides, key, commit string) (bool, error) {
	fp, exists := unitFingerprint(snap, key)
	if !exists {
		return false, nil
	}
	if step := snap.project.Graph.Step(key); step != nil && step.FansOut() {
		return false, nil
	}
	info, err := o.repo.CommitInfo(commit)
	if err != nil {
		return false, fmt.Errorf("read the review commit of %s: %w", key, err)
	}
	made := gitstate.Message{Trailers: info.Trailers}.Get(gitstate.TrailerFingerprint)
	if len(info.Parents) != 1 || made == "" || info.Parents[0] == snap.commit {
		return false, nil
	}
	then, err := o.load(info.Parents[0], ov)
	if err != nil {
		var cfg *ConfigError
		if errors.As(err, &cfg) {
			// The workflow it was made from does not load here (an
			// older version): the fingerprint it was made with is all
			// there is to go by.
			return made != fp, nil
		}
		return false, fmt.Errorf("load the workflow the review of %s was made from: %w", key, err)
	}
	was, existed := unitFingerprint(then, key)
	return !existed || was != fp || upstreamMoved(then, snap, key) != "", nil
}

// upstreamMoved names the first step that key's step comes after
// (needs:, the steps a condition reads, the step that outputs one of its
// inputs) that has another record at snap than at then: it landed anew
// since, or was undone by a reset; "" when there is none. The fingerprint
// alone misses that for a step that declares no inputs (only needs:),
// whose fingerprint stays the same whatever its upstream wrote.
func upstreamMoved(then, snap *snapshot, key string) string {
	stepID, _, _ := strings.Cut(key, "/")
	seq := func(s *snapshot, id string) int64 {
		if s.state == nil || s.state.Steps[id] == nil {
			return 0
		}
		return s.state.Steps[id].Seq
	}
	for _, u := range snap.project.Graph.Upstream(stepID) {
		if seq(then, u) != seq(snap, u) {
			return u
		}
	}
	return ""
}

// staleReviewError is approve's refusal of a stale review (reviewStale).
func staleReviewError(key, commit string) error {
	return configErrorf("cannot approve %s: the work under review (%s) was made before what it depends on changed (a step it needs landed anew, or its inputs or definition changed); the review branch is kept: codemachine run releases it (kept on %s%s) and runs %s again for a new review",
		key, short(commit), supersededRefPrefix, key, key)
}

// releaseStale releases the pending reviews of the run's targets that are
// stale at the tip (reviewStale), once per tip: the unit is then due like
// any other and runs again in this run. A review on a remote's branch only
// (a worker's) is the integrator's to settle.
func (s *scheduler) releaseStale(ctx context.Context) error {
	if s.snap == nil || s.staleChecked == s.tip {
		return nil
	}
	s.staleChecked = s.tip
	for _, key := range sortedKeys(s.snap.reviews) {
		stepID, taskID, _ := strings.Cut(key, "/")
		if s.snap.remoteReviews[key] || s.rs.opensReview(key) || (s.targets != nil && !s.targets[stepID]) {
			continue
		}
		commit := s.snap.reviews[key]
		stale, err := s.o.reviewStale(s.snap, s.rs.opts.Overrides, key, commit)
		if err != nil || !stale {
			if err != nil {
				return err
			}
			continue
		}
		kept, err := s.o.releaseReview(ctx, key, commit)
		if err != nil {
			return err
		}
		delete(s.snap.reviews, key)
		s.rs.unrecordReview(key)
		delete(s.reported, key)
		s.o.emit(Event{Kind: Note, Step: stepID, Task: taskID, Message: fmt.Sprintf(
			"the work under review (%s) was made before what it depends on changed: released (kept on %s); %s runs again",
			short(commit), kept, key)})
	}
	return nil
}
