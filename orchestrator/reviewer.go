package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// Agent reviewers (review: AGENT). Once a unit committed its change, the
// reviewer agent runs in the unit's worktree (which holds the change; under
// the sandbox it is read-only to the reviewer) with the step's prompt and
// the change's diff, and answers with a verdict (verdict.go). At the unit's
// turn to land, the commit goes to its review branch as with review: true,
// and the verdict is applied as a person's would be:
//
//   - approve: approve (the commit lands, with the trailer
//     Codemachine-Review: approved by reviewer agent NAME);
//   - reject, while the step's attempts allow another round: reject -m
//     REASONS (the feedback commit carries Codemachine-Review: rejected by
//     reviewer agent NAME and Codemachine-Review-Round: N), and the unit
//     runs again in the same run, its agent given the reasons as .Feedback;
//   - reject in the last round, or no verdict (the reviewer failed, or its
//     answer is not a verdict): the review falls to a person. The review
//     commit is rewritten with the reviewer's verdict in its message (body
//     and Codemachine-Review trailer), and waits on its branch for approve
//     or reject like review: true.

// reviewOutcome is what a reviewer agent said about a unit's change.
type reviewOutcome struct {
	agent string
	round int // 1 for the first review of the unit's change since a landing or a person's verdict
	// rounds is the most the reviewer gets: the step's attempts.
	rounds  int
	verdict verdict
	failure string // the reviewer failed or gave no verdict: a person reviews
	// usage is the reviewer agent's run (engine, model, tokens, cost):
	// recorded in trailers on the commit that carries the verdict; nil
	// when no reviewer process ran.
	usage *reviewUsage
}

// reviewUsage is what a reviewer agent's run used.
type reviewUsage struct {
	engine, model       string
	tokensIn, tokensOut int64
	costUSD             float64
	costKnown           bool
}

// usageTrailers are the trailers of the reviewer's run, nil when none ran.
func (r *reviewOutcome) usageTrailers() []gitstate.Trailer {
	u := r.usage
	if u == nil {
		return nil
	}
	t := []gitstate.Trailer{{Key: gitstate.TrailerReviewEngine, Value: u.engine}}
	if u.model != "" {
		t = append(t, gitstate.Trailer{Key: gitstate.TrailerReviewModel, Value: u.model})
	}
	t = append(t, gitstate.Trailer{Key: gitstate.TrailerReviewTokensIn, Value: strconv.FormatInt(u.tokensIn, 10)},
		gitstate.Trailer{Key: gitstate.TrailerReviewTokensOut, Value: strconv.FormatInt(u.tokensOut, 10)})
	if u.costKnown {
		t = append(t, gitstate.Trailer{Key: gitstate.TrailerReviewCostUSD, Value: strconv.FormatFloat(u.costUSD, 'f', 4, 64)})
	}
	return t
}

// by names the reviewer in trailers and messages.
func (r *reviewOutcome) by() string { return "reviewer agent " + r.agent }

// reviewRoundsLeft reports whether a reject starts another round.
func (r *reviewOutcome) roundsLeft() bool { return r.round < r.rounds }

// runReviewer runs the step's reviewer agent on the unit's committed
// change c and keeps its outcome in j.review. It returns an error only when
// codemachine itself failed.
func (j *job) runReviewer(ctx context.Context, c *candidate) error {
	o, u := j.o, j.u
	out := &reviewOutcome{agent: u.step.Reviewer, rounds: max(u.step.Attempts, 1)}
	j.review = out
	var err error
	if out.round, err = o.reviewRound(j.snap.commit, u.key()); err != nil {
		return err
	}
	o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: fmt.Sprintf(
		"%s reviews the change (round %d of %d)", out.by(), out.round, out.rounds)})
	text, err := j.askReviewer(ctx, c, out)
	// The reviewer may have written to the worktree (without the sandbox
	// nothing stops it): staging again lets the landing put the worktree
	// back to the commit's tree.
	if _, serr := j.wt.Stage(context.WithoutCancel(ctx)); serr != nil {
		return serr
	}
	if err != nil && ctx.Err() != nil {
		// Stopped (Ctrl-C, SIGTERM): no verdict was given, and the
		// review does not fall to a person for it; the unit is
		// interrupted, as a kill at this point leaves it.
		return errReviewInterrupted
	}
	if err != nil {
		out.failure = err.Error()
		return nil
	}
	if out.verdict, err = parseVerdict(text); err != nil {
		// Said after "gave no verdict: ": the reason alone.
		out.failure = strings.TrimPrefix(err.Error(), errNoVerdict.Error()+": ")
	}
	return nil
}

// errReviewInterrupted is runReviewer's when the run was stopped while
// the reviewer agent ran.
var errReviewInterrupted = errors.New("interrupted while the reviewer agent reviewed the change")

// askReviewer runs the reviewer agent once and returns its final message.
func (j *job) askReviewer(ctx context.Context, c *candidate, out *reviewOutcome) (string, error) {
	o, u := j.o, j.u
	agent := j.snap.project.AgentFor(u.step, out.agent)
	if agent == nil {
		return "", fmt.Errorf("no agent %s", out.agent)
	}
	engineName, model, err := o.reviewerEngine(j.snap, j.rs.opts.Overrides, agent)
	if err != nil {
		return "", err
	}
	eng, err := o.cfg.NewEngine(engineName)
	if err != nil {
		return "", err
	}
	prompt, err := j.reviewPrompt(ctx, c, agent, out)
	if err != nil {
		return "", err
	}
	req := agents.Request{
		Run: j.rs.id, Step: u.step.ID, Task: taskID(u.task), Prompt: prompt, Model: model, Effort: agent.Effort,
		Dir: j.wt.Path(), Env: j.environFor(engineName, j.wt.Path()), Timeout: j.timeout(), Log: j.log, Home: u.home,
		OnStart: j.agentStarted, Sandbox: j.unitPolicy(false),
		Recording:  agents.ReviewRecordingPath(u.step.ID, taskID(u.task), out.round),
		Recordings: j.recordings(engineName),
	}
	started := o.cfg.Now()
	res, err := eng.Run(ctx, req)
	j.rs.addUsage(res.TokensIn, res.TokensOut, res.CostUSD)
	out.usage = &reviewUsage{engine: engineName, model: cmp.Or(res.Model, req.Model), tokensIn: res.TokensIn,
		tokensOut: res.TokensOut, costUSD: res.CostUSD, costKnown: res.CostKnown}
	j.reviewerEnded(req, engineName, out, started, res, err)
	if err != nil {
		return "", fmt.Errorf("%s failed: %w", engineName, err)
	}
	return res.Text, nil
}

// reviewerEnded reports the reviewer agent's run (a StepAttempt with
// Reviewer set): traces make a span of it, with its usage, under the
// unit's. It is not one of the unit's own attempts.
func (j *job) reviewerEnded(req agents.Request, engineName string, out *reviewOutcome, started time.Time, res agents.Result, err error) {
	e := Event{Kind: StepAttempt, Step: j.u.step.ID, Task: taskID(j.u.task), Engine: engineName,
		Model: cmp.Or(res.Model, req.Model), Attempt: out.round, Reviewer: out.agent, Duration: j.o.cfg.Now().Sub(started),
		Tokens: res.TokensIn + res.TokensOut, TokensIn: res.TokensIn, TokensOut: res.TokensOut,
		CostUSD: res.CostUSD, CostOK: res.CostKnown, RequestModel: req.Model}
	if err != nil {
		e.Message = err.Error()
	}
	j.o.emit(e)
}

// reviewerEngine is the engine and model the reviewer agent runs with:
// --engine/--model, then the environment, then the agent's front matter,
// then the workflow's defaults (auto resolved through PATH); replay when
// the run replays.
func (o *Orchestrator) reviewerEngine(snap *snapshot, ov Overrides, agent *workflow.Agent) (string, string, error) {
	wf := snap.project.Workflow
	model := cmp.Or(ov.Model, o.getenv("CODEMACHINE_MODEL"), agent.Model, wf.Defaults.Model)
	engine := cmp.Or(ov.Engine, o.getenv("CODEMACHINE_ENGINE"), agent.Engine, wf.Defaults.Engine, "auto")
	if engine == "auto" {
		name, err := agents.Auto(o.cfg.LookPath)
		return name, model, err
	}
	return engine, model, nil
}

// reviewPrompt is the reviewer agent's body rendered for the unit, then
// what the step asked, the change's diff and the verdict's format.
func (j *job) reviewPrompt(ctx context.Context, c *candidate, agent *workflow.Agent, out *reviewOutcome) (string, error) {
	u, dir := j.u, j.wt.Path()
	data := workflow.PromptData{
		Step:    workflow.StepInfo{ID: u.step.ID, Inputs: u.step.Inputs, Outputs: u.step.Outputs},
		Attempt: out.round,
		Repo:    dir,
	}
	if u.task != nil {
		data.Task = &workflow.TaskInfo{ID: u.task.ID, Title: u.task.Title, Body: u.task.Body}
	}
	fsys, done, err := promptFS(dir)
	if err != nil {
		return "", err
	}
	body, err := agent.Render(fsys, data)
	done()
	if err != nil {
		return "", err
	}
	diff, err := j.o.repo.DiffPatch(ctx, j.snap.commit, c.commit, workflow.StateFile, feedbackPath(u.key()))
	if err != nil {
		return "", err
	}
	return reviewBrief(reviewBriefData{
		Body: body, Key: u.key(), Asked: j.asked(), Diff: diff, Round: out.round, Rounds: out.rounds,
	}), nil
}

// asked is what the unit's agent (or command) was asked.
func (j *job) asked() string {
	if j.u.step.Run != "" {
		return "The step ran the command:\n\n    " + j.u.step.Run + "\n"
	}
	return j.prompt
}

// reviewBriefData is what a reviewer's prompt is made of.
type reviewBriefData struct {
	Body, Key, Asked, Diff string
	Round, Rounds          int
}

// reviewBrief lays out the reviewer's prompt.
func reviewBrief(d reviewBriefData) string {
	var b strings.Builder
	b.WriteString(strings.TrimRight(d.Body, "\n"))
	fmt.Fprintf(&b, "\n\nYou review the change that step %s made (review round %d of %d). "+
		"Read it, and the repository in the current directory if you need to; change nothing.\n", d.Key, d.Round, d.Rounds)
	b.WriteString("\n## What the step was asked\n\n")
	b.WriteString(strings.TrimRight(d.Asked, "\n"))
	b.WriteString("\n\n## The change\n\n")
	if strings.TrimSpace(d.Diff) == "" {
		b.WriteString("(no file changed)\n")
	} else {
		b.WriteString("```diff\n")
		b.WriteString(strings.TrimRight(d.Diff, "\n"))
		b.WriteString("\n```\n")
	}
	b.WriteString("\n## Your verdict\n\n")
	b.WriteString(verdictFormat)
	return b.String()
}

// reviewRound is the round a reviewer agent's review of key starts at
// commit: one more than the rounds of the reviewer rejections whose
// feedback commit is still the last word there (its feedback file is at
// commit), else 1 (after a landing or a person's verdict).
func (o *Orchestrator) reviewRound(commit, key string) (int, error) {
	if _, err := o.repo.ReadFile(commit, feedbackPath(key)); err != nil {
		return 1, nil
	}
	round := 1
	err := o.repo.WalkLog(commit, func(c gitstate.Commit) bool {
		msg := gitstate.Message{Trailers: c.Trailers}
		if msg.Get("Codemachine-Rejected") != key {
			return true
		}
		if n, err := strconv.Atoi(msg.Get(gitstate.TrailerReviewRound)); err == nil && n > 0 {
			round = n + 1
		}
		return false
	})
	return round, err
}

// applyReview acts on the reviewer's outcome once the unit's commit is on
// its review branch: approve, reject for another round, or leave the
// review to a person. It says whether the unit runs again in this run.
func (j *job) applyReview(ctx context.Context) (again bool, err error) {
	o, rs, u, r := j.o, j.rs, j.u, j.review
	head := gitstate.Head{Branch: rs.branch}
	if head.Commit, err = o.repo.ResolveRev("refs/heads/" + rs.branch); err != nil {
		return false, err
	}
	key := u.key()
	switch {
	case r.failure == "" && r.verdict.Approve:
		res, err := o.approveLocked(ctx, head, key, r.by(), r.usageTrailers()...)
		if err != nil {
			// It could not land (a conflict): a person takes it from here.
			return false, j.fallToPerson(ctx, "approved by "+r.by()+", but "+err.Error()+personReviews, "")
		}
		e := j.landedEvent(res.Commit, res.Rebased)
		e.Message = "approved by " + r.by()
		rs.recordLanded(e)
		o.emit(e)
		if err := j.afterHook(ctx, res.Commit); err != nil {
			o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: err.Error()})
		}
		return false, nil
	case r.failure == "" && r.roundsLeft():
		trailers := append([]gitstate.Trailer{{Key: gitstate.TrailerReview, Value: "rejected by " + r.by()},
			{Key: gitstate.TrailerReviewRound, Value: strconv.Itoa(r.round)}}, r.usageTrailers()...)
		if _, err := o.rejectLocked(ctx, head, key, r.verdict.Reasons, trailers); err != nil {
			return false, err
		}
		o.emit(Event{Kind: StepRetrying, Step: u.step.ID, Task: taskID(u.task), Attempt: r.round + 1,
			Message: fmt.Sprintf("rejected by %s (round %d of %d): %s", r.by(), r.round, r.rounds, firstLine(r.verdict.Reasons))})
		return true, nil
	case r.failure == "":
		why := fmt.Sprintf("rejected by %s in its last round (%d of %d)", r.by(), r.round, r.rounds) + personReviews
		return false, j.fallToPerson(ctx, why, r.verdict.Reasons)
	}
	return false, j.fallToPerson(ctx, r.by()+" gave no verdict: "+r.failure+personReviews, "")
}

// personReviews ends the Codemachine-Review trailer of a review that fell
// to a person: it says why, and that no verdict settled it yet (see
// mergedVerdict).
const personReviews = "; a person reviews it"

// fallToPerson leaves the unit's review to a person: its review commit is
// rewritten with why (and the reviewer's reasons) in its message, and it
// waits on its branch like review: true.
func (j *job) fallToPerson(ctx context.Context, why, reasons string) error {
	o, u := j.o, j.u
	key := u.key()
	ref := "refs/heads/" + reviewPrefix + key
	commit, err := o.repo.ResolveRev(ref)
	if err != nil {
		return err
	}
	note := "Review: " + why + "."
	if reasons != "" {
		note += "\n\n" + reasons
	}
	trailers := append([]gitstate.Trailer{{Key: gitstate.TrailerReview, Value: firstLine(why)}}, j.review.usageTrailers()...)
	rewritten, err := o.rewriteMessage(ctx, commit, note, trailers...)
	if err != nil {
		return err
	}
	if err := o.repo.UpdateRef(ctx, ref, rewritten, commit, "codemachine: "+key+" falls to a person's review"); err != nil {
		return err
	}
	e := Event{Kind: StepReview, Step: u.step.ID, Task: taskID(u.task), Title: j.cand.msg.Subject, Engine: j.engineName,
		Model: j.cand.model, Commit: rewritten, Ref: reviewPrefix + key, Message: why}
	j.rs.recordReview(e)
	o.emit(e)
	return nil
}

// rewriteMessage makes a copy of commit (same tree, parents and author)
// whose message has note added to its body and the given trailers added.
func (o *Orchestrator) rewriteMessage(ctx context.Context, commit, note string, trailers ...gitstate.Trailer) (string, error) {
	info, err := o.repo.CommitInfo(commit)
	if err != nil {
		return "", err
	}
	msg, err := gitstate.ParseMessage(info.Message)
	if err != nil {
		return "", fmt.Errorf("%s: %w", short(commit), err)
	}
	if note != "" {
		msg.Body = strings.TrimSpace(strings.TrimSpace(msg.Body) + "\n\n" + note)
	}
	msg.Trailers = append(msg.Trailers, trailers...)
	tree, err := o.repo.TreeOf(commit)
	if err != nil {
		return "", err
	}
	return o.repo.CommitTree(ctx, gitstate.CommitSpec{Tree: tree, Parents: info.Parents, Message: msg.String(), Author: info.Author})
}
