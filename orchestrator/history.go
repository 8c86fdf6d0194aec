package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// LogEntry is one step commit with its provenance trailers.
type LogEntry struct {
	Commit  string `json:"commit"`
	Subject string `json:"subject"`
	Step    string `json:"step"`
	Task    string `json:"task,omitempty"`
	Engine  string `json:"engine,omitempty"`
	Model   string `json:"model,omitempty"`
	Session string `json:"session,omitempty"`
	By      string `json:"by,omitempty"` // who did it (Codemachine-By)
	// Review is the verdict that landed it (its last Codemachine-Review:
	// "approved by reviewer agent NAME", "approved by Alice"); Reviews
	// are all of them, in order (a reviewer agent's that fell to a person
	// first).
	Review    string   `json:"review,omitempty"`
	Reviews   []string `json:"reviews,omitempty"`
	TokensIn  int64    `json:"tokens_in"`
	TokensOut int64    `json:"tokens_out"`
	CostUSD   float64  `json:"cost_usd"`
	CostKnown bool     `json:"cost_known"`
	// ReviewUsage is the reviewer agent's run whose verdict the commit
	// carries (Codemachine-Review-* trailers); nil without one. Its
	// tokens and cost are not in TokensIn, TokensOut and CostUSD.
	ReviewUsage *ReviewUsage `json:"review_usage,omitempty"`
	Duration    string       `json:"duration,omitempty"`
	Attempts    int          `json:"attempts,omitempty"`
	Fingerprint string       `json:"fingerprint,omitempty"`
	Run         string       `json:"run,omitempty"`
	Author      string       `json:"author"`
	Date        time.Time    `json:"date"`
	// Problems name the trailers that do not parse (edited by hand):
	// their fields are left at zero (cost unknown).
	Problems []string `json:"problems,omitempty"`
}

// Log lists the step commits on the first-parent history of HEAD, and
// those a merge on it brought in (a review merged as a pull request) after
// the merge, newest first, at most limit of them (0 = no limit). A
// hand-edited trailer that does not parse leaves its field at zero and is
// named in the entry's Problems: one such commit does not hide the rest.
func (o *Orchestrator) Log(limit int) ([]LogEntry, error) {
	head, err := o.repo.Head()
	if err != nil {
		return nil, err
	}
	if head.Commit == "" {
		return nil, nil
	}
	type walkedCommit struct {
		gitstate.Commit
		merge *gitstate.Commit // the merge that brought it in, or nil
	}
	var commits []walkedCommit
	walked := 0
	err = o.repo.WalkLogMerges(head.Commit, func(c gitstate.Commit, merged []gitstate.Commit) bool {
		commits = append(commits, walkedCommit{Commit: c})
		for _, m := range merged {
			commits = append(commits, walkedCommit{Commit: m, merge: &c})
		}
		walked++
		return walked < logDepth
	})
	if err != nil {
		return nil, err
	}
	var entries []LogEntry
	for _, c := range commits {
		msg, err := gitstate.ParseMessage(c.Message)
		if err != nil || msg.Get(gitstate.TrailerStep) == "" || !isStepCommit(c.Commit) {
			continue
		}
		e := logEntry(c.Commit, msg)
		if e.Reviews = mergedVerdict(e.Reviews, c.merge); len(e.Reviews) > 0 {
			e.Review = e.Reviews[len(e.Reviews)-1]
		}
		entries = append(entries, e)
		if limit > 0 && len(entries) == limit {
			break
		}
	}
	return entries, nil
}

// ReviewUsage is what a reviewer agent's run used, from its trailers.
type ReviewUsage struct {
	Engine    string  `json:"engine"`
	Model     string  `json:"model,omitempty"`
	TokensIn  int64   `json:"tokens_in"`
	TokensOut int64   `json:"tokens_out"`
	CostUSD   float64 `json:"cost_usd"`
	CostKnown bool    `json:"cost_known"`
}

// TokensUnreadable reports whether a token trailer of the commit did not
// parse, so that TokensIn and TokensOut do not tell its tokens.
func (e LogEntry) TokensUnreadable() bool {
	for _, p := range e.Problems {
		if strings.HasPrefix(p, "trailer "+gitstate.TrailerTokensIn+":") ||
			strings.HasPrefix(p, "trailer "+gitstate.TrailerTokensOut+":") {
			return true
		}
	}
	return false
}

// reviewVerdicts are the values of a message's Codemachine-Review
// trailers, in order.
func reviewVerdicts(msg gitstate.Message) []string {
	var out []string
	for _, t := range msg.Trailers {
		if strings.EqualFold(t.Key, gitstate.TrailerReview) {
			out = append(out, t.Value)
		}
	}
	return out
}

// Who says in a few words who did a step commit's work, from its
// Codemachine-By (by) and the verdict that landed it (review): "agent",
// "person in claude's UI", "agent, approved by reviewer agent checker",
// "approved by Alice" (a command under review); "" for a command or a
// replay without review.
func Who(by, review string) string {
	switch {
	case by == "":
		return review
	case review == "":
		return by
	}
	return by + ", " + review
}

// whoDid is Who for a commit ("" when it cannot be read).
func (o *Orchestrator) whoDid(hash string) string {
	if hash == "" {
		return ""
	}
	c, err := o.repo.CommitInfo(hash)
	if err != nil {
		return ""
	}
	return whoOf(c)
}

// whoOf is Who for a commit read.
func whoOf(c gitstate.Commit) string {
	return whoMerged(c, nil)
}

// whoMerged is Who for a commit read, brought in by merge when that is
// not nil.
func whoMerged(c gitstate.Commit, merge *gitstate.Commit) string {
	msg := gitstate.Message{Trailers: c.Trailers}
	verdicts := mergedVerdict(reviewVerdicts(msg), merge)
	review := ""
	if len(verdicts) > 0 {
		review = verdicts[len(verdicts)-1]
	}
	return Who(msg.Get(gitstate.TrailerBy), review)
}

// mergedVerdict adds to the verdicts of a step commit that merge brought
// in the approval that merge was: a review that fell to a person and was
// merged as a pull request was approved by whoever merged it (run takes the
// merge as codemachine approve), and its last trailer, written while it
// waited, must not go on saying that it waits for a person.
func mergedVerdict(verdicts []string, merge *gitstate.Commit) []string {
	if merge == nil || len(verdicts) == 0 || !strings.HasSuffix(verdicts[len(verdicts)-1], personReviews) {
		return verdicts
	}
	by := merge.Author.Name
	if by == "" {
		by = "a person"
	}
	return append(slices.Clip(verdicts), "approved by "+by+" in merge "+short(merge.Hash))
}

func logEntry(c gitstate.Commit, msg gitstate.Message) LogEntry {
	e := LogEntry{
		Commit: c.Hash, Subject: msg.Subject,
		Step: msg.Get(gitstate.TrailerStep), Task: msg.Get(gitstate.TrailerTask),
		Engine: msg.Get(gitstate.TrailerEngine), Model: msg.Get(gitstate.TrailerModel),
		Session: msg.Get(gitstate.TrailerSession), By: msg.Get(gitstate.TrailerBy), Duration: msg.Get(gitstate.TrailerDuration),
		Fingerprint: msg.Get(gitstate.TrailerFingerprint), Run: msg.Get(gitstate.TrailerRun),
		Author: c.Author.Name, Date: c.Author.When,
	}
	e.Reviews = reviewVerdicts(msg)
	if len(e.Reviews) > 0 {
		e.Review = e.Reviews[len(e.Reviews)-1]
	}
	bad := func(key, val, want string) {
		e.Problems = append(e.Problems, fmt.Sprintf("trailer %s: %q is not %s", key, val, want))
	}
	usage := usageTrailers{msg: msg, bad: bad}
	usage.tokens(gitstate.TrailerTokensIn, &e.TokensIn)
	usage.tokens(gitstate.TrailerTokensOut, &e.TokensOut)
	usage.usd(gitstate.TrailerCostUSD, &e.CostUSD, &e.CostKnown)
	e.ReviewUsage = reviewUsageOf(usage)
	if v := msg.Get(gitstate.TrailerAttempts); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			e.Attempts = n
		} else {
			bad(gitstate.TrailerAttempts, v, "a number")
		}
	}
	if v := e.Duration; v != "" {
		if _, err := time.ParseDuration(v); err != nil {
			bad(gitstate.TrailerDuration, v, "a duration")
			e.Duration = ""
		}
	}
	return e
}

// usageTrailers reads a message's token and cost trailers, naming those
// that do not parse with bad (their fields are left at zero).
type usageTrailers struct {
	msg gitstate.Message
	bad func(key, val, want string)
}

// tokens reads the token count of key into to.
func (u usageTrailers) tokens(key string, to *int64) {
	if v := u.msg.Get(key); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			*to = n
		} else {
			u.bad(key, v, "a token count")
		}
	}
}

// usd reads the amount of key into to, and whether it was there.
func (u usageTrailers) usd(key string, to *float64, known *bool) {
	if v := u.msg.Get(key); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && !math.IsInf(f, 0) {
			*to, *known = f, true
		} else {
			u.bad(key, v, "an amount in USD")
		}
	}
}

// reviewUsageOf reads a message's reviewer-run trailers (nil without
// Codemachine-Review-Engine).
func reviewUsageOf(t usageTrailers) *ReviewUsage {
	engine := t.msg.Get(gitstate.TrailerReviewEngine)
	if engine == "" {
		return nil
	}
	u := &ReviewUsage{Engine: engine, Model: t.msg.Get(gitstate.TrailerReviewModel)}
	t.tokens(gitstate.TrailerReviewTokensIn, &u.TokensIn)
	t.tokens(gitstate.TrailerReviewTokensOut, &u.TokensOut)
	t.usd(gitstate.TrailerReviewCostUSD, &u.CostUSD, &u.CostKnown)
	return u
}

// target is what a STEP[/TASK] or REV argument names.
type target struct {
	key    string // step or step/task, "" for a plain revision
	commit string // the landed commit, "" if none
}

// resolveTarget finds the latest commit of a step or task on the branch's
// first-parent history, or resolves arg as a revision.
func (o *Orchestrator) resolveTarget(arg string, tip string) (target, error) {
	if arg == "" {
		return target{}, configErrorf("name a STEP, STEP/TASK or revision")
	}
	commits, err := o.stepCommits(tip, nil)
	if err != nil {
		return target{}, err
	}
	if c, ok := commits[arg]; ok {
		return target{key: arg, commit: c}, nil
	}
	isStep, loadErr := o.stepKey(tip, arg)
	if isStep {
		return target{key: arg}, nil
	}
	// A task deleted from the plan while it ran keeps its work on its
	// failed ref, and the run's output names it by its key.
	if failures, err := o.failures(); err == nil && failures[arg].Commit != "" {
		return target{key: arg}, nil
	}
	rev, err := o.repo.ResolveRev(arg)
	if err != nil {
		if loadErr != nil {
			// Not a revision, and the workflow that would say whether
			// it is a step cannot be read: that is what to fix.
			return target{}, loadErr
		}
		return target{}, configErrorf("%s is neither a step (STEP or STEP/TASK) nor a revision", workflow.ShownName(arg))
	}
	return target{commit: rev}, nil
}

// stepKey reports whether arg names a step (or a task of a foreach step)
// of the workflow at rev. err is the workflow's own problem when it cannot
// be read there (a mistake in workflow.yaml): no step is known then, and
// "not a step of the workflow" would send the user looking for a typo in
// the name.
func (o *Orchestrator) stepKey(rev, arg string) (bool, error) {
	snap, err := o.load(rev, Overrides{})
	if err != nil {
		return false, err
	}
	stepID, taskID, hasTask := strings.Cut(arg, "/")
	step := snap.project.Graph.Step(stepID)
	if step == nil {
		return false, nil
	}
	if !hasTask {
		return true, nil
	}
	plan := snap.project.TaskPlan(step)
	return plan != nil && plan.Task(taskID) != nil, nil
}

// DiffOptions tune Diff's output.
type DiffOptions struct {
	Color bool
	Stat  bool // only the diffstat
}

// Diff writes the change a step or task landed, or its failed, conflicting
// or review work when that is newer, or any revision's change.
func (o *Orchestrator) Diff(ctx context.Context, arg string, w io.Writer, opts DiffOptions) error {
	head, err := o.repo.Head()
	if err != nil {
		return err
	}
	if head.Commit == "" {
		return configErrorf("no commits yet")
	}
	if err := o.checkWorkflow(head.Commit); err != nil {
		return err
	}
	t, err := o.resolveTarget(arg, head.Commit)
	if err != nil {
		return err
	}
	commit, note := t.commit, ""
	if t.key != "" {
		failures, err := o.failures()
		if err != nil {
			return err
		}
		// A failure entry is removed when the step lands, so one that exists
		// is newer than the step's last landing.
		if f, ok := failures[t.key]; ok && f.Commit != "" {
			commit = f.Commit
			kind := "failed"
			if f.Conflict {
				kind = "conflicting"
			}
			note = fmt.Sprintf("# %s work of %s, kept on %s: %s\n", kind, t.key, f.Ref, firstLine(f.Error))
		}
		// A pending review is newer than the step's last landing: the
		// review branch is made from the run after it, and removed when
		// that work lands or is rejected.
		if note == "" {
			if rev, err := o.repo.ResolveRev("refs/heads/" + reviewPrefix + t.key); err == nil {
				commit, note = rev, "# "+t.key+" is waiting for review on "+reviewPrefix+t.key+"\n"
			} else if snap, err := o.load(head.Commit, Overrides{}); err == nil && snap.remoteReviews[t.key] {
				// A worker's review, on the remote as fetched.
				commit, note = snap.reviews[t.key], "# "+t.key+" is waiting for review on "+snap.reviewRef(t.key)+"\n"
			}
		}
		if commit == "" {
			return configErrorf("%s has no commit on %s yet", t.key, head.Branch)
		}
	}
	if note != "" {
		if _, err := io.WriteString(w, note); err != nil {
			return err
		}
	}
	out, err := o.repo.ShowCommit(ctx, commit, gitstate.ShowOptions{StatOnly: opts.Stat, Color: opts.Color})
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, out)
	return err
}

// RollbackResult says what a rollback did.
type RollbackResult struct {
	Branch string   `json:"branch"`
	From   string   `json:"from"`
	To     string   `json:"to"`
	Backup string   `json:"backup"`          // ref holding the old tip
	Saved  string   `json:"saved,omitempty"` // ref holding the user's forced-away changes
	Undone []string `json:"undone"`          // step and task keys whose commits were undone
	Held   []string `json:"held"`
	// Others are the undone commits that are not step commits (the user's
	// own, made after the step), newest first: "<short hash> <subject>".
	Others []string `json:"others,omitempty"`
}

// RollbackOptions tune Rollback.
type RollbackOptions struct {
	// Force rolls back over uncommitted changes (saved first) and over the
	// user's own commits without asking.
	Force bool
	// Confirm, when set, is asked before the user's own commits (those
	// that are not step commits) are undone; false cancels the rollback.
	// Without it, and without Force, such a rollback is refused with a
	// *UserCommitsError.
	Confirm func(commits []string) bool
}

// UserCommitsError refuses a rollback that would undo the user's own
// commits without their consent (exit 2: a usage matter).
type UserCommitsError struct {
	Key     string
	Commits []string // "<short hash> <subject>", newest first
}

// Error names the user's commits a rollback would undo and how to confirm it.
func (e *UserCommitsError) Error() string {
	return fmt.Sprintf("rolling back %s would also undo %d commit(s) of yours, not step commits: %s; run it on a terminal to confirm, or pass --force (the old tip is kept under refs/codemachine/backup/ either way)",
		e.Key, len(e.Commits), strings.Join(e.Commits, "; "))
}

// ErrRollbackCanceled is returned when the user declined to undo their
// own commits.
var ErrRollbackCanceled = errors.New("rollback canceled: nothing changed")

// Rollback resets the branch to just before the commit of a step, task or
// revision, keeping a backup ref, and holds the undone steps so
// that they do not run again with the same inputs. Undoing the user's own
// commits needs their consent (opts.Confirm) or opts.Force.
func (o *Orchestrator) Rollback(ctx context.Context, arg string, opts RollbackOptions) (*RollbackResult, error) {
	head, err := o.checkHead()
	if err != nil {
		return nil, err
	}
	if err := o.checkWorkflow(head.Commit); err != nil {
		return nil, err
	}
	lock, err := o.lock("codemachine rollback")
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	t, err := o.resolveTarget(arg, head.Commit)
	if err != nil {
		return nil, err
	}
	if t.commit == "" {
		return nil, configErrorf("%s has no commit on %s to roll back", t.key, head.Branch)
	}
	undone, target, err := o.commitsToUndo(head.Commit, t.commit)
	if err != nil {
		return nil, err
	}
	if target.Hash == "" {
		return nil, configErrorf("%s is not on the first-parent history of %s", short(t.commit), head.Branch)
	}
	if len(target.Parents) == 0 {
		return nil, configErrorf("%s is the first commit: there is nothing before it to roll back to", short(target.Hash))
	}
	to := target.Parents[0]
	if others := userCommits(undone); len(others) > 0 && !opts.Force {
		if opts.Confirm == nil {
			return nil, &ConfigError{Err: &UserCommitsError{Key: arg, Commits: others}}
		}
		if !opts.Confirm(others) {
			return nil, &ConfigError{Err: ErrRollbackCanceled}
		}
	}
	// A kill from here until the holds are written is finished by the
	// next command (recoverInterrupted): the branch, index and working tree by
	// gitstate's journal, the holds from this intent.
	if err := o.beginRollback(head.Branch, head.Commit, to); err != nil {
		return nil, err
	}
	backup, saved, err := o.repo.ResetBranch(ctx, head.Branch, to, head.Commit, opts.Force)
	if err != nil {
		_ = o.endRollback()
		var dirty *gitstate.DirtyError
		var unmerged *gitstate.UnmergedError
		if errors.As(err, &unmerged) {
			return nil, &ConfigError{Err: err}
		}
		if errors.As(err, &dirty) {
			return nil, configErrorf("uncommitted changes to tracked files (%s): commit or stash them, or use --force (they are then saved under refs/codemachine/backup/)", strings.Join(dirty.Paths, ", "))
		}
		return nil, err
	}
	// Reset: the holds are written whatever signal comes, or the undone
	// steps would run again before the next command finished the rollback.
	ctx = context.WithoutCancel(ctx)
	res := &RollbackResult{Branch: head.Branch, From: head.Commit, To: to, Backup: backup, Saved: saved}
	seen := map[string]bool{}
	var keys []string
	res.Others = userCommits(undone)
	for _, c := range undone {
		msg, err := gitstate.ParseMessage(c.Message)
		if err != nil || msg.Get(gitstate.TrailerStep) == "" || !isStepCommit(c) {
			continue
		}
		key := unitKey(msg.Get(gitstate.TrailerStep), msg.Get(gitstate.TrailerTask))
		if !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	res.Undone = keys
	// No overrides: rollback has no --engine or --model; the environment's
	// apply as they do for every command (see holdUndone).
	res.Held, err = o.holdUndone(ctx, head.Commit, to, Overrides{})
	if err != nil {
		return res, err
	}
	if err := o.noteTip(head.Branch, to, false); err != nil {
		return res, err
	}
	return res, o.endRollback()
}

// commitsToUndo lists the commits from tip back to commit, newest first,
// with what merges among them brought in, and the first-parent commit the
// branch goes back to before: commit itself, or the merge that brought it
// in (a review merged as a pull request). target is zero when commit is
// neither on the first-parent history nor brought in by a merge on it.
func (o *Orchestrator) commitsToUndo(tip, commit string) (undone []gitstate.Commit, target gitstate.Commit, err error) {
	err = o.repo.WalkLogMerges(tip, func(c gitstate.Commit, merged []gitstate.Commit) bool {
		undone = append(undone, c)
		found := c.Hash == commit
		for _, m := range merged {
			undone = append(undone, m)
			found = found || m.Hash == commit
		}
		if found {
			target = c
		}
		return !found
	})
	return undone, target, err
}

// userCommits lists the commits of undone that codemachine did not make
// (no step commit, no review feedback): the user's own, spec and steering
// commits among them, as "<short hash> <subject>".
func userCommits(undone []gitstate.Commit) []string {
	var out []string
	for _, c := range undone {
		msg, err := gitstate.ParseMessage(c.Message)
		if err == nil && (isStepCommit(c) || msg.Get("Codemachine-Rejected") != "") {
			continue
		}
		out = append(out, short(c.Hash)+" "+firstLine(c.Message))
	}
	return out
}

// Retry lifts the hold or failure of a step or task and runs it again.
func (o *Orchestrator) Retry(ctx context.Context, arg string, opts RunOptions) (*Summary, error) {
	if err := o.checkEngine(opts.Overrides); err != nil {
		return nil, err
	}
	head, err := o.checkHead()
	if err != nil {
		return nil, err
	}
	if err := o.checkWorkflow(head.Commit); err != nil {
		return nil, err
	}
	if opts.Command == "" {
		opts.Command = "codemachine retry"
	}
	// The lock comes first: while another run holds it, the holds and
	// failures are that run's to change.
	lock, err := o.lock(opts.Command)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	// A reset made since codemachine last ran holds the steps it undid
	// (as status already shows them): noticed first, so that the retry
	// finds the hold to lift.
	if err := o.followBranch(ctx, head, opts.Overrides); err != nil {
		return nil, err
	}
	ok, err := o.retryable(head.Commit, arg)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, o.nothingToRetry(head.Commit, arg, opts.Overrides)
	}
	var mirrored bool
	if err := o.updateHolds(func(h map[string]Hold) {
		mirrored = h[arg].Remote != ""
		delete(h, arg)
	}); err != nil {
		return nil, err
	}
	if mirrored {
		// The hold is a worker's copy of the fleet's: that worker takes
		// it again at its next look at the remote, where it stays until
		// it is deleted there.
		o.emit(Event{Kind: Note, Message: fmt.Sprintf("%s is held on the workers' remote too: this runs it here; git push REMOTE --delete %s%s lifts it for every worker",
			workflow.ShownName(arg), gitstate.HoldsPrefix, arg)})
	}
	if err := o.updateFailures(func(f map[string]Failure) { liftFailure(f, arg) }); err != nil {
		return nil, err
	}
	opts.Steps = []string{arg}
	opts.Force = !strings.Contains(arg, "/")
	return o.runLocked(ctx, head, opts, lock)
}

// Retryable checks a retry of arg before anything is lifted, as Retry
// does: arg must name a step or task of the workflow at HEAD (a
// *ConfigError otherwise), and ok says whether it is held or failed, that
// is whether there is anything to lift.
func (o *Orchestrator) Retryable(arg string) (ok bool, err error) {
	head, err := o.checkHead()
	if err != nil {
		return false, err
	}
	return o.retryable(head.Commit, arg)
}

func (o *Orchestrator) retryable(tip, arg string) (bool, error) {
	if ok, err := o.stepKey(tip, arg); err != nil || !ok {
		return false, cmp.Or(err, configErrorf("%s is not a step or task of the workflow", workflow.ShownName(arg)))
	}
	holds, err := o.holds()
	if err != nil {
		return false, err
	}
	failures, err := o.failures()
	if err != nil {
		return false, err
	}
	_, held := holds[arg]
	_, failed := failures[arg]
	return held || failed, nil
}
