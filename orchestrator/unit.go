package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// unit is one thing to run: a step, or one task of a foreach step.
type unit struct {
	step     *workflow.Step
	task     *workflow.Task
	agent    *workflow.Agent
	settings *stepSettings
	reason   string
	// skip: the step's when: is false; it is recorded as skipped instead
	// of run.
	skip bool
	slot int    // the worktree slot it runs in
	home string // a private HOME/config dir when tasks run in parallel
}

func (u *unit) key() string {
	if u.task == nil {
		return u.step.ID
	}
	return u.step.ID + "/" + u.task.ID
}

// fingerprint is the step's, or for a task the task's (see taskFingerprint).
func (u *unit) fingerprint() string {
	if u.task == nil {
		return u.settings.fingerprint
	}
	return taskFingerprint(u.settings.fingerprint, u.task)
}

func taskID(t *workflow.Task) string {
	if t == nil {
		return ""
	}
	return t.ID
}

func taskTitle(t *workflow.Task) string {
	if t == nil {
		return ""
	}
	return t.Title
}

// job is one unit's execution in a run, from its start to its landing or
// failure. Its phases are its methods: prepare (engine, worktree, log),
// the before hook, attempt (engine and check), stage, verify, commit, and
// then land (or keepDeleted) at the unit's turn, or fail at any point. The
// scheduler makes a job when it starts a unit; the unit's goroutine fills
// it in while it executes and hands it back (execResult) to be landed.
type job struct {
	o    *Orchestrator
	rs   *runState
	snap *snapshot // the tip the unit started from: its base
	u    *unit
	// start is when the unit started: its duration and trailers count
	// from it.
	start time.Time
	// took is the unit's duration as the run table and state.yaml show
	// it, fixed when its work is staged; the commit's trailer says the
	// same (0 until then: a failure's trailer measures up to now).
	took time.Duration
	// engineName is the engine that runs the unit (engineFor).
	engineName string
	wt         *gitstate.Worktree // its pooled worktree, once prepared
	env        []string           // its engine's, check's and before hook's environment
	log        *os.File           // its event log, open while it executes
	// resume is the engine session the first attempt resumes ("" =
	// start afresh; see resumePoint).
	resume string
	// sandbox is the unit's sandbox policy (sandboxFor); each process
	// gets it through unitPolicy.
	sandbox *agents.Sandbox
	// gitBefore is what an unsandboxed agent must leave alone in .git
	// (nothing is taken in the sandbox, where .git is read-only), taken before
	// it ran.
	gitBefore gitstate.GitSnapshot
	out       attemptOutcome // the engine's and check's outcome
	// attempts counts the unit's engine runs (StepAttempt events).
	attempts int
	// unchanged: an interactive unit whose person changed nothing.
	unchanged bool
	// open: the unit codemachine open takes up (its session, if any, is
	// resumed without a first message: the person speaks first).
	open bool
	// taken is the work the unit takes up in its UI (open's target, or
	// the work an interactive unit's conflict kept); nil for others.
	taken *OpenTarget
	// prompt is what the agent was asked in its first attempt: what a
	// reviewer agent is told the step asked.
	prompt string
	// review is a reviewer agent's outcome (review: AGENT), set once the
	// unit committed; nil for other steps.
	review *reviewOutcome
	// again: the reviewer agent rejected the unit's change and another
	// round is due; the scheduler runs the unit again in this run.
	again bool
	// cand is the verified change to land: set once the unit committed,
	// nil when it failed (then reported and kept on its failed ref).
	cand *candidate
}

// model is the model the unit ran with: the one its engine reported, else
// the configured one.
func (j *job) model() string {
	if j.out.result.Model != "" {
		return j.out.result.Model
	}
	return j.u.settings.model
}

// execResult is how a unit's execution ended, handed back to the
// scheduler with the unit (a): its job holds a verified candidate to land,
// or none (the unit failed and was reported and kept on its failed ref).
// err is reserved for failures of codemachine itself (git broken, disk
// full), which stop the run.
type execResult struct {
	a *active
	// interrupted: the run's context was canceled while the unit ran.
	interrupted bool
	err         error
}

// execute runs one step or task in its worktree slot up to a verified
// candidate commit (j.cand), or keeps its partial work on the failed ref.
// ctx is the unit's own context: canceled with errTaskDeleted when its task
// leaves the plan, or with the run's when the run is interrupted.
func (j *job) execute(ctx context.Context) execResult {
	if r, ok := j.prepare(ctx); !ok {
		return r
	}
	defer j.log.Close()
	if err := j.beforeHook(ctx); err != nil {
		if ctx.Err() != nil {
			return j.failCanceled(ctx)
		}
		return j.fail(ctx, err.Error())
	}
	j.out = j.attempt(ctx)
	switch {
	case j.out.canceled:
		return j.failCanceled(ctx)
	case j.out.missing != nil:
		return j.abort(&ConfigError{Err: j.out.missing})
	case j.out.failure != "":
		return j.fail(ctx, j.out.failure)
	case j.unchanged:
		return j.landNothing()
	}
	j.reportOutcome()
	c, err := j.stage(ctx)
	if err != nil {
		return j.abort(err)
	}
	if c.problem == "" {
		// The commit is made (and the slot's ref pointed at it) before
		// the verification, which may read every changed file: the
		// staged tree, which the hot path leaves unprotected from a
		// user's git gc --prune=now (StageUnprotected), is covered from
		// here on, and the ref is written once. A change the
		// verification refuses leaves the commit unreferenced.
		if err := j.commit(ctx, c); err != nil {
			return j.abort(err)
		}
		c.problem = j.verify(c)
	}
	if c.problem != "" {
		if err := c.undoOverlays(j.wt.Path()); err != nil {
			return j.abort(err)
		}
		return j.fail(ctx, c.problem)
	}
	j.cand = c
	if j.u.step.Reviewer != "" {
		err := j.runReviewer(ctx, c)
		if errors.Is(err, errReviewInterrupted) {
			// No verdict to act on; the change goes back to the
			// worktree as the agent left it, to be kept as the
			// interrupted unit's work.
			j.review, j.cand = nil, nil
			if err := c.undoOverlays(j.wt.Path()); err != nil {
				return j.abort(err)
			}
			// Its session resumes with the work in the next attempt.
			j.out.failure, j.out.session = err.Error(), j.out.result.SessionID
			return j.failCanceled(ctx)
		}
		if err != nil {
			return j.abort(err)
		}
	}
	return execResult{}
}

// prepare resolves the engine, announces the unit, and readies its
// worktree (with the partial work of a session to resume), environment,
// log and the snapshot of .git that verify compares with. When it returns
// false the unit ends here, as r says.
func (j *job) prepare(ctx context.Context) (r execResult, ok bool) {
	o, u := j.o, j.u
	j.start = o.cfg.Now()
	engineName, err := o.engineFor(u)
	if err != nil {
		if errors.Is(err, agents.ErrNoAgentCLI) {
			// The machine's setup, not the step: nothing is recorded
			// against the step, so installing a CLI is all it takes.
			return execResult{err: &ConfigError{Err: err}}, false
		}
		j.failWithoutWork(err.Error())
		return execResult{}, false
	}
	j.engineName = engineName
	if j.sandbox, err = j.sandboxFor(); err != nil {
		return execResult{err: err}, false
	}
	if (j.sandbox.Landlock || j.rs.interactive(u)) && u.home == "" {
		// The user's own config dirs are read-only in the sandbox: the
		// engine gets private ones, made afresh from them. An agent's UI
		// gets one too, seeded so that its first-run dialogs stay away.
		u.home = filepath.Join(o.repo.LocalDir(), "homes", fmt.Sprintf("slot-%d", u.slot))
	}
	if u.home != "" {
		if err := os.MkdirAll(u.home, 0o700); err != nil {
			return execResult{err: fmt.Errorf("engine config dir: %w", err)}, false
		}
		// What an earlier step of the slot left there (the CLIs'
		// session stores are kept) must not reach a step allowed more.
		if err := gitstate.ClaimDir(u.home, u.home+".policy", j.poolPolicy()); err != nil {
			return execResult{err: fmt.Errorf("engine config dir: %w", err)}, false
		}
	}
	o.emit(Event{Kind: StepStarted, Step: u.step.ID, Task: taskID(u.task), Title: taskTitle(u.task),
		Engine: engineName, Model: u.settings.model})

	wt, err := o.repo.Worktree(ctx, u.slot, j.snap.commit, j.poolPolicy())
	if err != nil {
		if ctx.Err() != nil {
			return execResult{interrupted: context.Cause(ctx) != errTaskDeleted}, false
		}
		return execResult{err: fmt.Errorf("prepare worktree for %s: %w", u.key(), err)}, false
	}
	j.wt = wt
	limit := j.snap.project.Workflow.MaxFileSizeFor(u.step)
	wt.LimitFiles(limit.Refuses)
	scripts, err := o.configuredScripts(ctx)
	if err != nil {
		return j.abort(err), false
	}
	wt.GuardFiles(scripts)
	if j.taken, err = j.takeUp(); err != nil {
		return j.abort(err), false
	}
	if j.taken != nil {
		j.resume, err = j.openPoint(ctx, j.taken)
	} else {
		j.resume, err = o.resumePoint(ctx, j.snap, u, wt, engineName)
	}
	if err != nil {
		return j.abort(err), false
	}
	j.env = j.environ(wt.Path())
	if j.log, err = j.openLog(); err != nil {
		return j.abort(err), false
	}
	if !j.sandboxed() {
		if j.gitBefore, err = o.repo.SnapshotGitDir(); err != nil {
			j.log.Close()
			return j.abort(err), false
		}
	}
	return execResult{}, true
}

// abort ends the unit on a failure of codemachine itself: nothing is
// recorded against the unit, and its worktree is not reused as it is.
func (j *job) abort(err error) execResult {
	j.wt.Discard()
	return execResult{err: err}
}

// commit makes the step commit on the unit's base. It is made here, beside
// the units still running, and not at the unit's turn to land: the
// scheduler lands one unit at a time, so what it need not do there is
// throughput. Its duration is then the unit's own, without the wait for
// its turn.
func (j *job) commit(ctx context.Context, c *candidate) error {
	c.msg = j.message()
	var err error
	c.commit, err = j.o.repo.CommitTree(context.WithoutCancel(ctx), gitstate.CommitSpec{Tree: c.tree,
		Parents: []string{j.snap.commit}, Message: c.msg.String(), Author: j.o.author(j.engineName, c.model)})
	if err != nil {
		return fmt.Errorf("commit %s: %w", j.u.key(), err)
	}
	// The commit waits for its turn to land: a user's git gc must not
	// prune it meanwhile.
	return j.wt.Protect(context.WithoutCancel(ctx), c.commit)
}

// engineFor is the engine that actually runs the unit: shell for run steps,
// replay when replaying, else the configured engine with auto resolved
// through PATH.
func (o *Orchestrator) engineFor(u *unit) (string, error) {
	switch {
	case u.step.Run != "":
		return "shell", nil
	case u.settings.replay:
		return "replay", nil
	case u.settings.engine == "auto":
		return agents.Auto(o.cfg.LookPath)
	}
	return u.settings.engine, nil
}

// environ is the environment of the unit's engine, check and hooks, with
// dir as its repository: the allow-list, the step's env, and codemachine's
// own variables.
func (j *job) environ(dir string) []string {
	return j.environFor(j.engineName, dir)
}

// environFor is environ for a process that engine runs (a reviewer agent's
// engine may not be the step's): of the model providers' credentials it
// gets only that engine's (agents.EnvironFor).
func (j *job) environFor(engine, dir string) []string {
	o, u := j.o, j.u
	extra := map[string]string{}
	for k, v := range u.step.Env {
		extra[k] = v
	}
	extra["CODEMACHINE_STEP"] = u.step.ID
	extra["CODEMACHINE_RUN"] = j.rs.id
	extra["CODEMACHINE_REPO"] = dir
	if u.step.Until != nil {
		extra["CODEMACHINE_ITERATION"] = strconv.Itoa(iteration(j.snap, u))
	}
	if u.task != nil {
		extra["CODEMACHINE_TASK"] = u.task.ID
		extra["CODEMACHINE_TASK_ID"] = u.task.ID
		extra["CODEMACHINE_TASK_TITLE"] = u.task.Title
		extra["CODEMACHINE_TASK_BODY"] = u.task.Body
		if u.task.Item != nil {
			extra["CODEMACHINE_ITEM"] = u.task.Item.EnvValue()
		}
	}
	tmp := j.tmpDir()
	if err := os.MkdirAll(tmp, 0o755); err == nil {
		extra["TMPDIR"] = tmp
	}
	return agents.EnvironFor(engine, o.cfg.Environ, extra)
}

// logPath is the unit's event log, .git/codemachine/logs/<run>/<key>.jsonl.
func (j *job) logPath() string {
	name := j.u.step.ID
	if j.u.task != nil {
		name += "-" + j.u.task.ID
	}
	return filepath.Join(j.o.repo.LocalDir(), "logs", j.rs.id, name+".jsonl")
}

// openLog creates the unit's event log (logPath).
func (j *job) openLog() (*os.File, error) {
	p := j.logPath()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	f, err := os.Create(p)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	return f, nil
}

// agentStarted records the process group of the unit's agent, command or
// check in the running file.
func (j *job) agentStarted(pid int) { j.rs.agentStarted(j.u.key(), pid) }

// reportOutcome tells what the run's output should show about an agent
// run that succeeded but may not have done its job: outputs it left as
// they were (after its last attempt), tool calls the CLI reported failed.
func (j *job) reportOutcome() {
	u := j.u
	switch {
	case j.out.unchanged != "" && j.engineName == "replay":
		j.o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: fmt.Sprintf(
			"the agent %s (its recording replays the same: not tried again)", j.out.unchanged)})
	case j.out.unchanged != "":
		j.o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: fmt.Sprintf(
			"the agent %s, after %d attempt(s)", j.out.unchanged, j.out.attempts)})
	}
	for _, w := range j.out.result.Warnings {
		j.o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: w})
	}
	if errs := j.out.result.ToolErrors; len(errs) > 0 {
		j.o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: fmt.Sprintf(
			"%d tool call(s) failed (listed in the commit message), the first: %s", len(errs), errs[0])})
	}
}
