package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
)

// Review branches as pull requests: `review push` puts the pending review
// branches on a remote, each commit's message rewritten into a description
// a reviewer can read there (what the step was asked, its trailers, its
// diff stat; forges take a one-commit branch's message as the pull
// request's). A merge of such a branch that comes back with a pull is
// picked up by the next run as an approval (mergedReviews).

// descriptionMarker starts the description's own part of a message, so
// that a second push does not describe it twice.
const descriptionMarker = "## What the step was asked"

// PushedReview is one review branch review push put on the remote.
type PushedReview struct {
	Key    string `json:"key"`
	Branch string `json:"branch"`
	Commit string `json:"commit"` // the commit pushed (its message is the description)
	Remote string `json:"remote"`
	Title  string `json:"title"`
	Body   string `json:"body"` // the description, for a forge's pull request
	// UpToDate: the remote had this commit on the branch already, so
	// nothing was pushed for it.
	UpToDate bool `json:"up_to_date"`
}

// PushReviews pushes the review branches of step (a step, or STEP/TASK; ""
// = all pending reviews) to remote ("" = the branch's upstream remote, or
// origin), with pushOptions passed on. It takes the repository lock: it
// rewrites the review branches' messages. With no step and no review
// pending it pushes nothing and says why in nothing, as run says that
// nothing is due: that is no error; a step named with no review pending
// is a *ConfigError.
func (o *Orchestrator) PushReviews(ctx context.Context, step, remote string, pushOptions []string) (pushed []PushedReview, nothing string, err error) {
	head, lock, err := o.lockForReview(ctx, "codemachine review push")
	if err != nil {
		return nil, "", err
	}
	defer lock.Release()
	if remote == "" {
		if remote, err = o.repo.BranchRemote(ctx, head.Branch); err != nil {
			return nil, "", err
		}
		if remote == "" {
			return nil, "", configErrorf("%s has no upstream remote and there is no origin: name one with --remote", head.Branch)
		}
	}
	// A review merged (a pull request pulled) or approved elsewhere is
	// settled first, as a run does: pushed again, it would be rebased onto
	// the tip that holds it already.
	merged, err := o.mergedReviews(ctx, head.Commit)
	for _, m := range merged {
		stepID, taskID, _ := strings.Cut(m.key, "/")
		o.emit(Event{Kind: Note, Step: stepID, Task: taskID, Message: m.note(head.Branch)})
	}
	if err != nil {
		return nil, "", err
	}
	pending, err := o.reviewPending()
	if err != nil {
		return nil, "", err
	}
	var keys []string
	for key := range pending {
		if step == "" || key == step || strings.HasPrefix(key, step+"/") {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	snap, err := o.load(head.Commit, Overrides{})
	if len(keys) == 0 {
		msg := noReviewToPush(snap, err, step)
		if step != "" {
			return nil, "", &ConfigError{Err: errors.New(msg)}
		}
		return nil, "nothing to push: " + msg, nil
	}
	if err != nil {
		return nil, "", err
	}
	var out []PushedReview
	var refs []gitstate.PushRef
	for _, key := range keys {
		commit, err := o.reviewOnTip(ctx, head.Commit, key, pending[key])
		if err != nil {
			return nil, "", err
		}
		p, err := o.describeReview(ctx, snap, key, commit)
		if err != nil {
			return nil, "", err
		}
		p.Remote = remote
		ref := "refs/heads/" + p.Branch
		expect, err := o.repo.RemoteRef(ctx, remote, ref)
		if err != nil {
			return nil, "", err
		}
		// A branch the remote has as it is here is not pushed again, and
		// is reported as such: "pushed" would claim a change that was none.
		if p.UpToDate = expect == p.Commit; !p.UpToDate {
			refs = append(refs, gitstate.PushRef{Local: ref, Remote: ref, Expect: expect})
		}
		out = append(out, p)
	}
	if len(refs) > 0 {
		if err := o.repo.Push(ctx, remote, refs, pushOptions); err != nil {
			return nil, "", err
		}
	}
	return out, "", nil
}

// reviewOnTip rebases a review made on an earlier commit of the branch
// onto its tip before it is pushed: reviews made side by side each record
// their step in state.yaml, so that merged as pull requests one after the
// other, every one after the first would conflict there. Pushed again
// after a merge, the others follow the new tip. A review that does not
// apply to the tip, or whose base the branch no longer holds (a run
// releases or rebases those), is pushed as it is.
func (o *Orchestrator) reviewOnTip(ctx context.Context, tip, key, commit string) (string, error) {
	info, err := o.repo.CommitInfo(commit)
	if err != nil || len(info.Parents) != 1 || info.Parents[0] == tip {
		return commit, err
	}
	if ok, err := o.repo.IsAncestor(info.Parents[0], tip); err != nil || !ok {
		return commit, err
	}
	rebased, conflicts, err := o.rebaseReview(ctx, tip, key, info)
	if err != nil || len(conflicts) > 0 {
		return commit, err
	}
	return rebased, nil
}

// describeReview rewrites a review commit's message into its description
// (same tree, parent and author; the branch moves to it) unless it is
// described already.
func (o *Orchestrator) describeReview(ctx context.Context, snap *snapshot, key, commit string) (PushedReview, error) {
	branch := reviewPrefix + key
	info, err := o.repo.CommitInfo(commit)
	if err != nil {
		return PushedReview{}, err
	}
	msg, err := gitstate.ParseMessage(info.Message)
	if err != nil {
		return PushedReview{}, fmt.Errorf("%s on %s: %w", short(commit), branch, err)
	}
	if !strings.Contains(msg.Body, descriptionMarker) && len(info.Parents) == 1 {
		stat, err := o.repo.DiffStat(ctx, info.Parents[0], commit)
		if err != nil {
			return PushedReview{}, err
		}
		msg.Body = strings.TrimSpace(msg.Body + "\n\n" + describe(snap, key, stat))
		tree, err := o.repo.TreeOf(commit)
		if err != nil {
			return PushedReview{}, err
		}
		described, err := o.repo.CommitTree(ctx, gitstate.CommitSpec{Tree: tree, Parents: info.Parents,
			Message: msg.String(), Author: info.Author})
		if err != nil {
			return PushedReview{}, err
		}
		if err := o.repo.UpdateRef(ctx, "refs/heads/"+branch, described, commit, "codemachine: describe "+key+" for review"); err != nil {
			return PushedReview{}, err
		}
		commit = described
	}
	return PushedReview{Key: key, Branch: branch, Commit: commit, Title: msg.Subject, Body: msg.Body}, nil
}

// describe is the description's own part: what the step was asked (its
// agent's description and its prompt, the task), and its diff stat. The
// trailers follow it in the message.
func describe(snap *snapshot, key, stat string) string {
	stepID, taskID, _ := strings.Cut(key, "/")
	var b strings.Builder
	b.WriteString(descriptionMarker + "\n\n")
	step := snap.project.Graph.Step(stepID)
	switch {
	case step == nil:
		b.WriteString("(step " + stepID + " is no longer in the workflow)\n")
	case step.Run != "":
		b.WriteString("Command: `" + step.Run + "`\n")
	default:
		agent := snap.project.AgentFor(step, step.Agent)
		fmt.Fprintf(&b, "Agent %s", step.Agent)
		if agent != nil && agent.Description != "" {
			b.WriteString(": " + agent.Description)
		}
		b.WriteString("\n")
		if step.Prompt != "" {
			b.WriteString("\n" + quote(step.Prompt))
		}
	}
	if taskID != "" && step != nil {
		if plan := snap.project.TaskPlan(step); plan != nil && plan.Task(taskID) != nil {
			t := plan.Task(taskID)
			fmt.Fprintf(&b, "\nTask %s: %s\n", t.ID, t.Title)
			if t.Body != "" {
				b.WriteString("\n" + quote(t.Body))
			}
		}
	}
	b.WriteString("\n## Changes\n\n")
	for _, line := range strings.Split(strings.TrimRight(stat, "\n"), "\n") {
		b.WriteString("    " + strings.TrimSpace(line) + "\n")
	}
	b.WriteString("\nApprove by merging this branch; the next codemachine run after a pull takes the merge as `codemachine approve " + key + "`.")
	return b.String()
}

// quote quotes text as a Markdown block quote.
func quote(text string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		b.WriteString(strings.TrimRight("> "+line, " ") + "\n")
	}
	return b.String()
}

// mergedReviews settles the reviews whose commit the branch's history
// holds (a review branch merged on a remote and pulled, or merged by
// hand), or whose change it holds as approved in another clone and pulled
// (landedElsewhere): like approve, the review branch goes and the unit's
// failure and hold are forgotten. It returns the keys it settled. The
// caller holds the lock.
func (o *Orchestrator) mergedReviews(ctx context.Context, tip string) ([]settledReview, error) {
	pending, err := o.reviewPending()
	if err != nil {
		return nil, err
	}
	var merged []settledReview
	var landed map[string]string // the step commits at tip, read once
	for _, key := range sortedKeys(pending) {
		commit := pending[key]
		ok, err := o.repo.IsAncestor(commit, tip)
		if err != nil {
			continue
		}
		if !ok {
			if landed == nil {
				if landed, err = o.landedAt(tip); err != nil {
					return merged, err
				}
			}
			if !o.landedElsewhere(commit, landed[key]) {
				continue
			}
		}
		settled := settledReview{key: key}
		if !ok {
			settled.landed = landed[key]
		}
		if err := o.repo.DeleteRef(ctx, "refs/heads/"+reviewPrefix+key, commit); err != nil {
			if errors.Is(err, gitstate.ErrRefMoved) {
				continue
			}
			return merged, err
		}
		if err := o.forget(key); err != nil {
			return merged, err
		}
		merged = append(merged, settled)
	}
	return merged, nil
}

// settledReview is a review mergedReviews settled.
type settledReview struct {
	key string
	// landed is the step commit that landed its change when that was
	// approved in another clone; "" when its review branch was merged.
	landed string
}

// note says how the review was settled on branch.
func (r settledReview) note(branch string) string {
	if r.landed != "" {
		return "its change landed on " + branch + " as " + short(r.landed) + " (approved in another clone): review settled"
	}
	return "its review branch was merged into " + branch + ": approved"
}

// landedAt maps the step and task keys to their latest step commit on the
// branch at tip (none for a tip whose state.yaml cannot be read: nothing
// is taken as landed then).
func (o *Orchestrator) landedAt(tip string) (map[string]string, error) {
	state, err := o.loadState(tip)
	if err != nil {
		var cfg *ConfigError
		if errors.As(err, &cfg) {
			return map[string]string{}, nil
		}
		return nil, err
	}
	commits, err := o.stepCommits(tip, state)
	if err != nil {
		return nil, err
	}
	if commits == nil {
		commits = map[string]string{}
	}
	return commits, nil
}

// landedElsewhere reports whether landed, the key's latest step commit on
// the branch, is the review commit's change approved in another clone
// (approve there rewrites the commit: a trailer, maybe a rebase) and
// pulled: it was made by the same run, with the same fingerprint and
// session. A later attempt under review (a reject, another run) is made
// by another run or session.
func (o *Orchestrator) landedElsewhere(review, landed string) bool {
	if landed == "" || landed == review {
		return false
	}
	r, err := o.repo.CommitInfo(review)
	if err != nil {
		return false
	}
	l, err := o.repo.CommitInfo(landed)
	if err != nil {
		return false
	}
	rm, lm := gitstate.Message{Trailers: r.Trailers}, gitstate.Message{Trailers: l.Trailers}
	for _, k := range []string{gitstate.TrailerRun, gitstate.TrailerFingerprint, gitstate.TrailerSession} {
		if rm.Get(k) != lm.Get(k) {
			return false
		}
	}
	return rm.Get(gitstate.TrailerRun) != "" && rm.Get(gitstate.TrailerFingerprint) != ""
}

// noReviewToPush says why review push has nothing to push when no review
// branch of step ("" = any) is here: one that waits on the remote already
// (a worker's, as last fetched: see remoteReviews) is named, with where it
// is.
func noReviewToPush(snap *snapshot, loadErr error, step string) string {
	var there []string
	if loadErr == nil {
		for key := range snap.remoteReviews {
			if step == "" || key == step || strings.HasPrefix(key, step+"/") {
				there = append(there, snap.reviewRef(key))
			}
		}
	}
	if len(there) > 0 {
		sort.Strings(there)
		verb, it := "waits", "it"
		if len(there) > 1 {
			verb, it = "wait", "them"
		}
		return fmt.Sprintf("no review is pending here: %s %s on the remote already (pushed by a worker; approve or reject %s here, or open a pull request from %s)",
			strings.Join(there, ", "), verb, it, it)
	}
	if step != "" {
		return fmt.Sprintf("no review is pending for %s", step)
	}
	return "no review is pending"
}
