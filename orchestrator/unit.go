package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	slot     int    // the worktree slot it runs in
	home     string // a private HOME/config dir when tasks run in parallel
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

// execResult is what a unit's execution hands back to the scheduler: a
// verified candidate to land, or nothing (the unit failed and was reported
// and kept on its failed ref). err is reserved for failures of codemachine
// itself (git broken, disk full), which stop the run.
type execResult struct {
	a          *active
	wt         *gitstate.Worktree
	cand       *candidate
	out        attemptOutcome
	engineName string
	start      time.Time
	// interrupted: the run's context was canceled while the unit ran.
	interrupted bool
	err         error
}

// execute runs one step or task in its worktree slot up to a verified
// candidate commit, or keeps its partial work on the failed ref. ctx is the
// unit's own context: canceled with errTaskDeleted when its task leaves the
// plan, or with the run's when the run is interrupted.
func (o *Orchestrator) execute(ctx context.Context, rs *runState, snap *snapshot, u *unit) execResult {
	start := o.cfg.Now()
	engineName, err := o.engineFor(u)
	if err != nil {
		if errors.Is(err, agents.ErrNoAgentCLI) {
			// The machine's setup, not the step: nothing is recorded
			// against the step, so installing a CLI is all it takes.
			return execResult{err: &ConfigError{Err: err}}
		}
		o.failWithoutWork(rs, u, err.Error())
		return execResult{}
	}
	o.emit(Event{Kind: StepStarted, Step: u.step.ID, Task: taskID(u.task), Title: taskTitle(u.task),
		Engine: engineName, Model: u.settings.model})

	wt, err := o.repo.Worktree(ctx, u.slot, snap.commit)
	if err != nil {
		if ctx.Err() != nil {
			return execResult{interrupted: context.Cause(ctx) != errTaskDeleted}
		}
		return execResult{err: fmt.Errorf("prepare worktree for %s: %w", u.key(), err)}
	}
	res := execResult{wt: wt, engineName: engineName, start: start}
	resume, err := o.resumePoint(ctx, snap, u, wt, engineName)
	if err != nil {
		wt.Discard()
		return execResult{err: err}
	}
	env := o.unitEnv(rs, u, wt.Path())
	logFile, err := o.openLog(rs, u)
	if err != nil {
		wt.Discard()
		return execResult{err: err}
	}
	defer logFile.Close()

	gitBefore, _, err := rs.snapshotGit(wt)
	if err != nil {
		wt.Discard()
		return execResult{err: err}
	}
	hookEnv := append(env, "CODEMACHINE_WORKTREE="+wt.Path())
	if err := o.runHook(ctx, "before", u.step.Hooks.Before, wt.Path(), hookEnv); err != nil {
		return o.fail(ctx, rs, snap, u, wt, engineName, attemptOutcome{failure: err.Error()}, start)
	}

	out := o.attempt(ctx, rs, snap, u, wt.Path(), engineName, env, logFile, resume)
	if out.canceled {
		// Keep the partial work whatever stopped the unit; the save must
		// not be canceled too.
		if context.Cause(ctx) == errTaskDeleted {
			out.failure = fmt.Sprintf("task %s was deleted from %s while it ran", u.task.ID, u.step.Foreach)
			return o.fail(context.WithoutCancel(ctx), rs, snap, u, wt, engineName, out, start)
		}
		r := o.fail(context.WithoutCancel(ctx), rs, snap, u, wt, engineName, out, start)
		r.interrupted = true
		return r
	}
	if out.missing != nil {
		wt.Discard()
		return execResult{err: &ConfigError{Err: out.missing}}
	}
	if out.failure != "" {
		return o.fail(ctx, rs, snap, u, wt, engineName, out, start)
	}

	c, err := o.stageUnit(ctx, rs, snap, u, wt, engineName, out, start)
	if err != nil {
		wt.Discard()
		return execResult{err: err}
	}
	if c.problem == "" {
		gitAfter, ours, err := rs.snapshotGit(wt)
		if err != nil {
			c.problem = "the agent damaged its worktree's .git: " + err.Error()
		} else {
			c.problem = o.verify(rs, snap, u, wt.Path(), c, gitBefore, gitAfter, ours)
		}
	}
	if c.problem != "" {
		if err := c.undoOverlays(wt.Path()); err != nil {
			wt.Discard()
			return execResult{err: err}
		}
		out.failure = c.problem
		return o.fail(ctx, rs, snap, u, wt, engineName, out, start)
	}
	// The step commit is made here, beside the units still running, and
	// not at the unit's turn to land: the scheduler lands one unit at a
	// time, so what it need not do there is throughput. Its duration is
	// then the unit's own, without the wait for its turn.
	c.msg = o.message(rs, u, engineName, c.model, out, start)
	c.commit, err = o.repo.CommitTree(context.WithoutCancel(ctx), gitstate.CommitSpec{Tree: c.tree,
		Parents: []string{snap.commit}, Message: c.msg.String(), Author: o.author(engineName, c.model)})
	if err != nil {
		wt.Discard()
		return execResult{err: fmt.Errorf("commit %s: %w", u.key(), err)}
	}
	res.cand, res.out = c, out
	return res
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

// unitEnv is the agent's environment: the allow-list, the step's env, and
// codemachine's own variables.
func (o *Orchestrator) unitEnv(rs *runState, u *unit, dir string) []string {
	extra := map[string]string{}
	for k, v := range u.step.Env {
		extra[k] = v
	}
	extra["CODEMACHINE_STEP"] = u.step.ID
	extra["CODEMACHINE_RUN"] = rs.id
	extra["CODEMACHINE_REPO"] = dir
	if u.task != nil {
		extra["CODEMACHINE_TASK"] = u.task.ID
		extra["CODEMACHINE_TASK_ID"] = u.task.ID
		extra["CODEMACHINE_TASK_TITLE"] = u.task.Title
		extra["CODEMACHINE_TASK_BODY"] = u.task.Body
	}
	tmp := filepath.Join(o.repo.LocalDir(), "tmp", rs.id)
	if err := os.MkdirAll(tmp, 0o755); err == nil {
		extra["TMPDIR"] = tmp
	}
	return agents.Environ(o.cfg.Environ, extra)
}

// logPath is the unit's event log, .git/codemachine/logs/<run>/<key>.jsonl.
func (o *Orchestrator) logPath(rs *runState, u *unit) string {
	name := u.step.ID
	if u.task != nil {
		name += "-" + u.task.ID
	}
	return filepath.Join(o.repo.LocalDir(), "logs", rs.id, name+".jsonl")
}

// openLog creates the unit's event log (logPath).
func (o *Orchestrator) openLog(rs *runState, u *unit) (*os.File, error) {
	p := o.logPath(rs, u)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	f, err := os.Create(p)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	return f, nil
}
