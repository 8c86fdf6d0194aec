package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// Review: a step with `review: true` lands on branch
// codemachine/review/<step>[/<task>] instead of the working branch, and the
// workflow waits there until `approve` merges it or `reject` deletes it and
// commits the reason as feedback for the next attempt.

const reviewPrefix = "codemachine/review/"

// rejectedRefPrefix keeps rejected work: reject deletes the review branch,
// but nothing an agent produced is ever lost.
const rejectedRefPrefix = "refs/codemachine/rejected/"

// feedbackPath is where a rejection's reason waits for the next attempt.
func feedbackPath(key string) string {
	return path.Join(workflow.FeedbackDir, key+".md")
}

// feedbackPlace refuses a rejection whose feedback file cannot be written
// without replacing something committed: a directory, symbolic link or
// submodule at its path, or a file where one of its directories goes.
// Writing it would delete that from the branch in the feedback commit.
func (o *Orchestrator) feedbackPlace(head gitstate.Head, key string) error {
	fsys, err := o.repo.TreeFS(head.Commit)
	if err != nil {
		return err
	}
	p := feedbackPath(key)
	parts := strings.Split(p, "/")
	for i := range parts {
		at := strings.Join(parts[:i+1], "/")
		info, err := fs.Stat(fsys, at)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reject %s: read %s: %w", key, at, err)
		}
		switch last := i == len(parts)-1; {
		case !last && !info.IsDir():
			return configErrorf("reject %s: %s is committed on %s as a %s, where the directory of the feedback (%s) goes: move it away, commit, and reject again", key, at, head.Branch, kindOf(info.Mode()), p)
		case last && !info.Mode().IsRegular():
			return configErrorf("reject %s: %s is committed on %s as a %s, where the feedback file goes: move it away, commit, and reject again", key, at, head.Branch, kindOf(info.Mode()))
		}
	}
	return nil
}

// kindOf names what a tree entry is, for messages.
func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	}
	return "file"
}

// keepForReview puts a verified step commit on its review branch.
func (o *Orchestrator) keepForReview(ctx context.Context, key, commit string) (string, error) {
	ref := "refs/heads/" + reviewPrefix + key
	old, err := o.repo.ResolveRev(ref)
	if err != nil && !errors.Is(err, gitstate.ErrUnknownRev) {
		return "", err
	}
	if err := o.repo.UpdateRef(ctx, ref, commit, old, "codemachine: "+key+" waits for review"); err != nil {
		return "", fmt.Errorf("keep %s for review: %w", key, err)
	}
	return reviewPrefix + key, nil
}

// reviewPending lists the keys with a review branch.
func (o *Orchestrator) reviewPending() (map[string]string, error) {
	refs, err := o.repo.RefsWithPrefix("refs/heads/" + reviewPrefix)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for ref, hash := range refs {
		m[strings.TrimPrefix(ref, "refs/heads/"+reviewPrefix)] = hash
	}
	return m, nil
}

// NoReviewError is the error of approve or reject for a key that has no
// review branch. For a foreach step whose tasks wait for review, it names
// them: approve and reject take one task at a time. A key that is no step
// or task of the workflow at HEAD (a typo) is said to be one; otherwise
// the reviews that are pending, if any, are named.
func (o *Orchestrator) NoReviewError(key string) error {
	pending, _ := o.reviewPending()
	var tasks, others []string
	for k := range pending {
		if strings.HasPrefix(k, key+"/") {
			tasks = append(tasks, k)
		}
		others = append(others, k)
	}
	if len(tasks) == 0 {
		if head, err := o.checkHead(); err == nil {
			if ok, err := o.stepKey(head.Commit, key); err != nil || !ok {
				return cmp.Or(err, configErrorf("%s is not a step or task of the workflow", workflow.ShownName(key)))
			}
		}
		if len(others) == 0 {
			return configErrorf("no review is pending for %s", key)
		}
		sort.Strings(others)
		return configErrorf("no review is pending for %s (pending: %s)", key, strings.Join(others, ", "))
	}
	sort.Strings(tasks)
	return configErrorf("no review is pending for %s itself: its tasks wait for review one by one (%s); name one as STEP/TASK",
		key, strings.Join(tasks, ", "))
}

// ReviewResult says what approve or reject did.
type ReviewResult struct {
	Key     string `json:"key"`
	Commit  string `json:"commit"` // the landed step commit, or the feedback commit
	Rebased bool   `json:"rebased,omitempty"`
	Kept    string `json:"kept,omitempty"` // where rejected work is kept
}

// Approve lands a step's (or task's) review branch on the working branch:
// a fast-forward when the branch has not moved, else rebased like any
// landing. The review branch is deleted once the commit landed.
func (o *Orchestrator) Approve(ctx context.Context, key string) (*ReviewResult, error) {
	head, lock, err := o.lockForReview(ctx, "codemachine approve")
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if err := o.fetchedReview(ctx, head, key); err != nil {
		return nil, err
	}
	if err := o.alreadyLanded(ctx, head, key, "nothing to approve"); err != nil {
		return nil, err
	}
	if err := o.refuseStale(head, key); err != nil {
		return nil, err
	}
	return o.approveLocked(ctx, head, key, o.person(ctx))
}

// refuseStale returns staleReviewError when key's pending review was made
// before what it depends on changed (reviewStale): approved, it would land
// results made from the old inputs. A workflow that does not load at the
// tip is left to approveLocked to report.
func (o *Orchestrator) refuseStale(head gitstate.Head, key string) error {
	commit, err := o.repo.ResolveRev("refs/heads/" + reviewPrefix + key)
	if err != nil {
		return nil // no review: approveLocked says so
	}
	snap, err := o.load(head.Commit, Overrides{})
	if err != nil {
		var cfg *ConfigError
		if errors.As(err, &cfg) {
			return nil
		}
		return err
	}
	stale, err := o.reviewStale(snap, Overrides{}, key, commit)
	if err != nil {
		return err
	}
	if stale {
		return staleReviewError(key, commit)
	}
	return nil
}

// fetchedReview makes the local review branch of key from the remote's,
// as the last fetch saw it (refs/remotes/<remote>/codemachine/review/<key>,
// the branch's remote, else origin), when there is no local one: a
// review: true unit that workers ran waits on the remote's review branch
// (docs/workers.md), so approve and reject work in any clone after a
// fetch.
func (o *Orchestrator) fetchedReview(ctx context.Context, head gitstate.Head, key string) error {
	ref := "refs/heads/" + reviewPrefix + key
	if _, err := o.repo.ResolveRev(ref); err == nil {
		return nil
	}
	remote, err := o.repo.BranchRemote(ctx, head.Branch)
	if err != nil || remote == "" {
		return nil // no remote: no review there either
	}
	commit, err := o.repo.ResolveRev("refs/remotes/" + remote + "/" + reviewPrefix + key)
	if err != nil {
		return nil // the remote has none: "no review is pending" follows
	}
	if err := o.repo.UpdateRef(ctx, ref, commit, "", "codemachine: "+key+" waits for review on "+remote); err != nil {
		return fmt.Errorf("take the review of %s from %s: %w", key, remote, err)
	}
	return nil
}

// alreadyLanded settles the pending reviews the branch already holds
// (mergedReviews: merged, or approved in another clone and pulled) and
// returns a *ConfigError saying so, and then what (next), when key's is
// one of them: approving it again would land its change a second time,
// rejecting it would leave it landed.
func (o *Orchestrator) alreadyLanded(ctx context.Context, head gitstate.Head, key, next string) error {
	settled, err := o.mergedReviews(ctx, head.Commit)
	if err != nil {
		return err
	}
	for _, r := range settled {
		if r.key == key {
			return configErrorf("%s is no longer under review: %s; %s", key, r.note(head.Branch), next)
		}
	}
	return nil
}

// person names the user in a review's trailer: the committer git records
// (the environment's GIT_COMMITTER_NAME, else the configuration), else
// "a person".
func (o *Orchestrator) person(ctx context.Context) string {
	if name := o.repo.CommitterName(ctx); name != "" {
		return name
	}
	return "a person"
}

// personVerdict is the trailer of a person's verdict ("approved" or
// "rejected").
func (o *Orchestrator) personVerdict(ctx context.Context, what string) []gitstate.Trailer {
	return []gitstate.Trailer{{Key: gitstate.TrailerReview, Value: what + " by " + o.person(ctx)}}
}

// ReviewPending reports whether key (STEP or STEP/TASK) has a review
// branch: what approve and reject need.
func (o *Orchestrator) ReviewPending(key string) bool {
	_, err := o.repo.ResolveRev("refs/heads/" + reviewPrefix + key)
	return err == nil
}

// CheckReviewPending returns NoReviewError's error unless key has a review
// branch here or on the current branch's remote as last fetched (which
// approve and reject take from there: a worker's review). It takes no
// lock and fetches nothing: a check before asking a person for a
// rejection's reason, which Reject makes again under the lock.
func (o *Orchestrator) CheckReviewPending(ctx context.Context, key string) error {
	if o.ReviewPending(key) {
		return nil
	}
	if head, err := o.checkHead(); err == nil {
		if remote, err := o.repo.BranchRemote(ctx, head.Branch); err == nil && remote != "" {
			if _, err := o.repo.ResolveRev("refs/remotes/" + remote + "/" + reviewPrefix + key); err == nil {
				return nil
			}
		}
	}
	return o.NoReviewError(key)
}

// approveLocked is Approve for a caller that holds the lock; by names who
// approved (a person's name, or "reviewer agent NAME"), which the landed
// commit's Codemachine-Review trailer records, followed by usage (a
// reviewer agent's run).
func (o *Orchestrator) approveLocked(ctx context.Context, head gitstate.Head, key, by string, usage ...gitstate.Trailer) (*ReviewResult, error) {
	ref := "refs/heads/" + reviewPrefix + key
	commit, err := o.repo.ResolveRev(ref)
	if err != nil {
		return nil, o.NoReviewError(key)
	}
	info, err := o.repo.CommitInfo(commit)
	if err != nil {
		return nil, err
	}
	if len(info.Parents) != 1 {
		return nil, configErrorf("%s on %s is not a step commit", short(commit), reviewPrefix+key)
	}
	base := info.Parents[0]
	if ok, err := o.repo.IsAncestor(base, head.Commit); err != nil {
		return nil, err
	} else if !ok {
		// Stale: made on a commit the branch no longer holds. Rebased
		// onto the tip first, it lands like any review.
		rebased, conflicts, err := o.rebaseReview(ctx, head.Commit, key, info)
		if err != nil {
			return nil, err
		}
		if len(conflicts) > 0 {
			return nil, configErrorf("cannot approve %s: the work under review was made on %s, which %s no longer holds, and does not apply to its tip (conflicts in %s); the review branch is kept: codemachine reject %s -m WHY runs the step again on the tip",
				key, short(base), head.Branch, strings.Join(conflicts, ", "), key)
		}
		commit, base = rebased, head.Commit
	}
	reviewed := commit
	verdict := append([]gitstate.Trailer{{Key: gitstate.TrailerReview, Value: "approved by " + by}}, usage...)
	if commit, err = o.rewriteMessage(ctx, commit, "", verdict...); err != nil {
		return nil, err
	}
	u, c, err := o.reviewedUnit(head.Commit, base, commit, key)
	if err != nil {
		return nil, err
	}
	if err := o.beginApprove(approveIntent{Key: key, Branch: head.Branch, Tip: head.Commit, Reviewed: reviewed, Commit: commit}); err != nil {
		return nil, err
	}
	res, err := o.repo.Land(ctx, head.Branch, base, commit, gitstate.LandOptions{
		ConflictBranch:  "codemachine/conflict/" + key,
		Overlay:         func(tip, merged string) (string, error) { return o.overlay(ctx, u, c, tip, merged) },
		OverlayPaths:    c.overlayPaths(u),
		OverlayReplaces: func(tip string) []string { return o.overlayReplaces(u, c, tip) },
	})
	if err != nil {
		if eerr := o.endApprove(); eerr != nil {
			return nil, errors.Join(err, eerr)
		}
		var conflict *gitstate.ConflictError
		if errors.As(err, &conflict) {
			// The review branch keeps the work: a conflict branch beside
			// it would be one more thing to clean up.
			if kept, rerr := o.repo.ResolveRev("refs/heads/" + conflict.Branch); rerr == nil {
				_ = o.repo.DeleteRef(ctx, "refs/heads/"+conflict.Branch, kept)
			}
			if conflict.Reason == gitstate.ReasonUncommitted {
				return nil, fmt.Errorf("cannot approve %s: it would overwrite your uncommitted changes to %[3]s in the checkout of %[2]s: commit, stash or move them, then approve again; the review branch is kept",
					key, head.Branch, strings.Join(conflict.Paths, ", "))
			}
			what := conflict.Reason
			if len(conflict.Paths) > 0 {
				what += " (conflicts in " + strings.Join(conflict.Paths, ", ") + ")"
			}
			return nil, fmt.Errorf("cannot approve %s: it does not apply to %s: %s; the review branch is kept: codemachine reject %s -m WHY runs the step again on the tip",
				key, head.Branch, what, key)
		}
		return nil, err
	}
	// Landed: a signal from here on must not leave the review both landed
	// and pending (the journal would make the next command finish it, but
	// this command would fail saying it was cancelled).
	ctx = context.WithoutCancel(ctx)
	if err := o.finishApprove(ctx, key, reviewed); err != nil {
		return nil, err
	}
	if err := o.endApprove(); err != nil {
		return nil, err
	}
	o.noteBranchTip(head.Branch)
	return &ReviewResult{Key: key, Commit: res.Commit, Rebased: res.Rebased}, nil
}

// Reject deletes a review branch (keeping its commit under
// refs/codemachine/rejected/) and commits the reason to
// .codemachine/feedback/<key>.md on the working branch, which the next
// attempt receives as .Feedback.
func (o *Orchestrator) Reject(ctx context.Context, key, reason string) (*ReviewResult, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, configErrorf("reject needs a reason: why the work is rejected, for the next attempt")
	}
	head, lock, err := o.lockForReview(ctx, "codemachine reject")
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if err := o.fetchedReview(ctx, head, key); err != nil {
		return nil, err
	}
	if err := o.alreadyLanded(ctx, head, key, "codemachine rollback "+key+" undoes it"); err != nil {
		return nil, err
	}
	return o.rejectLocked(ctx, head, key, reason, o.personVerdict(ctx, "rejected"))
}

// rejectLocked is Reject for a caller that holds the lock; the feedback
// commit carries the given trailers (who rejected it) after
// Codemachine-Rejected.
func (o *Orchestrator) rejectLocked(ctx context.Context, head gitstate.Head, key, reason string, trailers []gitstate.Trailer) (*ReviewResult, error) {
	ref := "refs/heads/" + reviewPrefix + key
	commit, err := o.repo.ResolveRev(ref)
	if err != nil {
		return nil, o.NoReviewError(key)
	}
	if err := o.feedbackPlace(head, key); err != nil {
		return nil, err
	}
	blob, err := o.repo.HashObject(ctx, []byte(reason+"\n"))
	if err != nil {
		return nil, err
	}
	tree, err := o.repo.OverlayTree(ctx, head.Commit, map[string]gitstate.Blob{feedbackPath(key): {Hash: blob, Mode: "100644"}})
	if err != nil {
		return nil, err
	}
	msg := gitstate.Message{
		Subject:  fmt.Sprintf("codemachine(%s): rejected in review", key),
		Body:     reason,
		Trailers: append([]gitstate.Trailer{{Key: "Codemachine-Rejected", Value: key}}, trailers...),
	}
	feedback, err := o.repo.CommitTree(ctx, gitstate.CommitSpec{Tree: tree, Parents: []string{head.Commit}, Message: msg.String()})
	if err != nil {
		return nil, err
	}
	if err := o.beginReject(approveIntent{Key: key, Branch: head.Branch, Tip: head.Commit, Reviewed: commit, Commit: feedback}); err != nil {
		return nil, err
	}
	res, err := o.repo.Land(ctx, head.Branch, head.Commit, feedback, gitstate.LandOptions{ConflictBranch: "codemachine/conflict/feedback/" + key})
	if err != nil {
		if eerr := o.endReject(); eerr != nil {
			return nil, errors.Join(err, eerr)
		}
		return nil, fmt.Errorf("commit the feedback for %s: %w", key, err)
	}
	// The feedback landed: the review branch goes whatever signal comes,
	// its commit kept under refs/codemachine/rejected/ first. Kept only
	// now, so that a rejection whose feedback does not land (a refused
	// landing, a kill rolled back) leaves no rejected ref beside the
	// review that is still pending.
	kept, err := o.keepRef(context.WithoutCancel(ctx), rejectedRefPrefix, key, commit, "codemachine: "+key+" rejected")
	if err != nil {
		return nil, err
	}
	if err := o.repo.DeleteRef(context.WithoutCancel(ctx), ref, commit); err != nil {
		return nil, err
	}
	if err := o.endReject(); err != nil {
		return nil, err
	}
	o.noteBranchTip(head.Branch)
	return &ReviewResult{Key: key, Commit: res.Commit, Kept: kept}, nil
}

// lockForReview takes the lock and checks HEAD for approve and reject.
func (o *Orchestrator) lockForReview(ctx context.Context, command string) (gitstate.Head, *gitstate.Lock, error) {
	head, err := o.checkHead()
	if err != nil {
		return head, nil, err
	}
	if err := o.checkWorkflow(head.Commit); err != nil {
		return head, nil, err
	}
	lock, err := o.lock(command)
	if err != nil {
		return head, nil, err
	}
	return head, lock, nil
}

// reviewedUnit rebuilds what overlay needs to rebase a reviewed commit: the
// unit (step and task at the tip) and its record as the review commit's
// state.yaml holds it.
func (o *Orchestrator) reviewedUnit(tip, base, commit, key string) (*unit, *candidate, error) {
	stepID, taskID, _ := strings.Cut(key, "/")
	snap, err := o.load(tip, Overrides{})
	if err != nil {
		return nil, nil, err
	}
	step := snap.project.Graph.Step(stepID)
	if step == nil {
		return nil, nil, configErrorf("step %s is no longer in the workflow; delete the branch %s%s", stepID, reviewPrefix, key)
	}
	u := &unit{step: step, settings: snap.settings[stepID]}
	reviewed, err := o.loadState(commit)
	if err != nil {
		return nil, nil, err
	}
	sr := reviewed.Steps[stepID]
	if sr == nil {
		return nil, nil, fmt.Errorf("%s: the review commit records no run of %s", short(commit), stepID)
	}
	c := &candidate{rec: sr.RunRecord}
	if taskID != "" {
		if tr := sr.Tasks[taskID]; tr != nil {
			c.rec = *tr
			c.rec.Fingerprint = sr.Fingerprint
		}
		if plan := snap.project.TaskPlan(step); plan != nil && plan.Task(taskID) != nil {
			u.task = plan.Task(taskID)
		} else {
			u.task = &workflow.Task{ID: taskID}
		}
		if step.Foreach == "" {
			return u, c, nil
		}
		basePlan, err1 := o.repo.ReadFile(base, step.Foreach)
		ownPlan, err2 := o.repo.ReadFile(commit, step.Foreach)
		if err1 == nil && err2 == nil {
			ticked, ok := o.tick(step.Foreach, basePlan, taskID)
			c.agentEditedPlan = !ok || string(ticked) != string(ownPlan)
			c.planBase, c.planCand = basePlan, ownPlan
		} else if !errors.Is(err1, fs.ErrNotExist) || !errors.Is(err2, fs.ErrNotExist) {
			c.agentEditedPlan = true
		}
	}
	return u, c, nil
}

// remoteReviews are the reviews that wait on the current branch's remote
// as the last fetch saw them (refs/remotes/<remote>/codemachine/review/
// <key>): a review: true unit that workers ran waits there
// (docs/workers.md), and a clone that only fetched has no review branch
// of its own for it. Only those that still wait count: of units with no
// local review branch (local), due at snap with the fingerprint the
// review was made with, and not rejected on the branch since its base (a
// Codemachine-Rejected: <key> commit), nor held here. A remote-tracking
// branch that a fetch left behind after the remote settled its review
// (approved: the unit is done; rejected; superseded: its inputs changed)
// is none. It
// returns them by key, and the remote's name.
func (o *Orchestrator) remoteReviews(ctx context.Context, snap *snapshot, local map[string]string) (map[string]string, string, error) {
	refs, err := o.repo.RefsWithPrefix("refs/remotes/")
	if err != nil {
		return nil, "", err
	}
	found := false
	for ref := range refs {
		if _, key, ok := strings.Cut(ref, "/"+reviewPrefix); ok && local[key] == "" {
			found = true
			break
		}
	}
	if !found {
		// The common case (no such branch, or a local one for each, as
		// in a worker's clone): no git process at all.
		return nil, "", nil
	}
	head, err := o.repo.Head()
	if err != nil || head.Branch == "" {
		return nil, "", err
	}
	remote, err := o.repo.BranchRemote(ctx, head.Branch)
	if err != nil || remote == "" {
		return nil, "", err
	}
	holds, err := o.holds()
	if err != nil {
		return nil, "", err
	}
	prefix := "refs/remotes/" + remote + "/" + reviewPrefix
	out := map[string]string{}
	for ref, commit := range refs {
		key, ok := strings.CutPrefix(ref, prefix)
		if !ok || local[key] != "" {
			continue
		}
		waits, err := o.remoteReviewWaits(ctx, snap, key, commit, holds[key])
		if err != nil {
			return nil, "", err
		}
		if waits {
			out[key] = commit
		}
	}
	return out, remote, nil
}

// remoteReviewWaits says whether the remote's review of key (commit) still
// waits for a decision at snap (see remoteReviews).
func (o *Orchestrator) remoteReviewWaits(ctx context.Context, snap *snapshot, key, commit string, hold Hold) (bool, error) {
	fp, due := dueFingerprint(snap, key)
	if !due || hold.Fingerprint == fp {
		// Done, or held: a rollback or reset undid it here (a review
		// pushed for a pull request, merged, then rolled back).
		return false, nil
	}
	info, err := o.repo.CommitInfo(commit)
	if err != nil || len(info.Parents) != 1 || (gitstate.Message{Trailers: info.Trailers}).Get(gitstate.TrailerFingerprint) != fp {
		return false, nil // not a review commit of this unit: none
	}
	// A review the branch holds already (its pull request merged and
	// pulled) or approved in another clone was settled, though nobody
	// deleted its branch on the remote: the unit due again (a step it
	// needs ran since) runs again rather than wait for it for ever.
	if merged, err := o.repo.IsAncestor(commit, snap.commit); err != nil || merged {
		return false, err
	}
	landed, err := o.landedAt(snap.commit)
	if err != nil {
		return false, err
	}
	if o.landedElsewhere(commit, landed[key]) {
		return false, nil
	}
	since, err := o.repo.CommitsBetween(ctx, info.Parents[0], snap.commit, 0)
	if err != nil {
		return false, err
	}
	for _, c := range since {
		if (gitstate.Message{Trailers: c.Trailers}).Get("Codemachine-Rejected") == key {
			return false, nil
		}
	}
	return true, nil
}

// reviewRef is the branch key's pending review is on, as status shows it:
// codemachine/review/<key>, or <remote>/codemachine/review/<key> for one
// that waits on the remote (remoteReviews).
// reviewInTheWay is the pending review of key's step in another shape:
// the step's own review for a task's key (made before the step became a
// foreach), or one of its tasks' for the step's key (made before it was
// one step again); "" when there is none. git keeps no branch
// codemachine/review/build/T1 beside codemachine/review/build, so the unit
// waits until that review is approved or rejected rather than run and then
// fail to keep its result.
func (s *snapshot) reviewInTheWay(key string) string {
	if step, _, isTask := strings.Cut(key, "/"); isTask {
		if _, ok := s.reviews[step]; ok {
			return step
		}
		return ""
	}
	var tasks []string
	for k := range s.reviews {
		if strings.HasPrefix(k, key+"/") {
			tasks = append(tasks, k)
		}
	}
	if len(tasks) == 0 {
		return ""
	}
	sort.Strings(tasks)
	return tasks[0]
}

func (s *snapshot) reviewRef(key string) string {
	if s.remoteReviews[key] {
		return s.reviewRemote + "/" + reviewPrefix + key
	}
	return reviewPrefix + key
}
