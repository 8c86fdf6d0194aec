package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

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

// attemptOutcome is the outcome of running the engine (and check) until the
// step succeeds or gives up.
type attemptOutcome struct {
	result   agents.Result
	attempts int
	failure  string // "" on success
	canceled bool
	session  string // the engine session the next attempt may resume ("" = start over)
	missing  error  // the engine's CLI is not installed: a setup problem, not the step's failure
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

// checkTailLines is how much of a failed check's output its failure
// message keeps.
const checkTailLines = 20

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

// attempt runs the engine, retrying transient failures with back-off, and
// the check, re-running the agent with the check's output while attempts
// remain.
func (o *Orchestrator) attempt(ctx context.Context, rs *runState, snap *snapshot, u *unit, dir, engineName string, env []string, log *os.File, resume string) attemptOutcome {
	wf := snap.project.Workflow
	eng, err := o.cfg.NewEngine(engineName)
	if err != nil {
		return attemptOutcome{failure: err.Error()}
	}
	timeout := u.step.Timeout
	if timeout == 0 {
		timeout = wf.Defaults.Timeout
	}
	attempts := u.step.Attempts
	if attempts < 1 || u.step.Check == "" {
		attempts = 1
	}
	var out attemptOutcome
	checkOutput := ""
	for attempt := 1; attempt <= attempts; attempt++ {
		out.attempts = attempt
		// A failed check of an earlier attempt must not fail this one.
		out.failure = ""
		req := agents.Request{
			Run: rs.id, Step: u.step.ID, Task: taskID(u.task),
			Model: u.settings.model, Effort: u.settings.effort,
			Dir: dir, Env: env, Timeout: timeout, Log: log, Home: u.home,
			OnStart: func(pid int) { o.agentStarted(rs, u.key(), pid) },
		}
		if u.step.Run != "" {
			req.Command = u.step.Run
		} else {
			prompt, err := o.renderPrompt(snap, u, dir, attempt, checkOutput)
			if err != nil {
				out.failure = err.Error()
				return out
			}
			req.Prompt = prompt
			if attempt == 1 && resume != "" {
				req.Resume, req.Continue = resume, continuePrompt(u, dir)
			}
		}
		res, err := o.runEngine(ctx, eng, req, wf.Defaults.Retries, u)
		out.result = addUsage(out.result, res)
		rs.addUsage(res.TokensIn, res.TokensOut, res.CostUSD)
		if err != nil {
			out.session = resumableSession(err, out.result)
			var re *agents.RunError
			if errors.As(err, &re) && re.Canceled || ctx.Err() != nil {
				out.canceled = true
				out.failure = "interrupted"
				return out
			}
			out.failure = err.Error()
			if errors.Is(err, agents.ErrNoAgentCLI) {
				out.missing = err
			}
			return out
		}
		if u.step.Check == "" {
			return out
		}
		checkRes, err := o.runCheck(ctx, rs, u, dir, env, timeout, log)
		if err == nil {
			return out
		}
		if ctx.Err() != nil {
			out.canceled = true
			out.failure = "interrupted"
			return out
		}
		checkOutput = tail(checkRes.Output, 60)
		// The first line is the verdict; the lines after it are the end of
		// the check's output, which says why (shown by run, kept in the
		// failed commit's message).
		out.failure = fmt.Sprintf("check failed after %d attempt(s): %s", attempt, err.Error())
		if t := strings.TrimSpace(tail(checkRes.Output, checkTailLines)); t != "" {
			out.failure += "\n" + t
		}
		if attempt < attempts {
			o.emit(Event{Kind: StepRetrying, Step: u.step.ID, Task: taskID(u.task), Attempt: attempt + 1,
				Message: "check failed: " + lastLine(checkRes.Output)})
		}
	}
	return out
}

// runEngine runs the engine once, retrying transient failures up to retries
// times with exponential back-off and jitter, honouring a reported
// retry-after.
func (o *Orchestrator) runEngine(ctx context.Context, eng agents.Engine, req agents.Request, retries int, u *unit) (agents.Result, error) {
	var total agents.Result
	for try := 0; ; try++ {
		res, err := eng.Run(ctx, req)
		total = addUsage(total, res)
		if err == nil {
			return total, nil
		}
		var re *agents.RunError
		if !errors.As(err, &re) || re.Class != agents.Transient || try >= retries || ctx.Err() != nil {
			return total, err
		}
		delay := o.cfg.RetryBase << try
		delay += time.Duration(rand.Int64N(int64(delay)/2 + 1))
		if re.RetryAfter > delay {
			delay = re.RetryAfter
		}
		o.emit(Event{Kind: StepRetrying, Step: u.step.ID, Task: taskID(u.task), Attempt: try + 2,
			Message: fmt.Sprintf("%s; retrying in %s", re.Msg, FormatDuration(delay))})
		select {
		case <-ctx.Done():
			return total, err
		case <-time.After(delay):
		}
		if re.Result.SessionID != "" {
			req.Resume, req.Continue = re.Result.SessionID, continuePrompt(u, req.Dir)
		}
	}
}

// addUsage accumulates usage over attempts; the latest text, session and
// model win.
func addUsage(acc, r agents.Result) agents.Result {
	acc.TokensIn += r.TokensIn
	acc.TokensOut += r.TokensOut
	acc.CostUSD += r.CostUSD
	acc.CostKnown = acc.CostKnown || r.CostKnown
	acc.Duration += r.Duration
	if r.Text != "" {
		acc.Text = r.Text
	}
	if r.SessionID != "" {
		acc.SessionID = r.SessionID
	}
	if r.Model != "" {
		acc.Model = r.Model
	}
	acc.Output = r.Output
	acc.ExitCode = r.ExitCode
	return acc
}

// runCheck runs the step's check command in the worktree.
func (o *Orchestrator) runCheck(ctx context.Context, rs *runState, u *unit, dir string, env []string, timeout time.Duration, log *os.File) (agents.Result, error) {
	sh, err := o.cfg.NewEngine("shell")
	if err != nil {
		return agents.Result{}, err
	}
	return sh.Run(ctx, agents.Request{Step: u.step.ID, Task: taskID(u.task), Command: u.step.Check,
		Dir: dir, Env: env, Timeout: timeout, Log: log,
		OnStart: func(pid int) { o.agentStarted(rs, u.key(), pid) }})
}

// renderPrompt renders the agent's template against the worktree, then the
// step's extra prompt and the fixed footer.
func (o *Orchestrator) renderPrompt(snap *snapshot, u *unit, repoDir string, attempt int, checkOutput string) (string, error) {
	fsys := os.DirFS(repoDir)
	feedback, _ := readFileFS(fsys, feedbackPath(u.key()))
	data := workflow.PromptData{
		Step:        workflow.StepInfo{ID: u.step.ID, Inputs: u.step.Inputs, Outputs: u.step.Outputs},
		Feedback:    feedback,
		CheckOutput: checkOutput,
		Attempt:     attempt,
		Repo:        repoDir,
	}
	if u.task != nil {
		data.Task = &workflow.TaskInfo{ID: u.task.ID, Title: u.task.Title, Body: u.task.Body}
	}
	body, err := u.agent.Render(fsys, data)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(body, "\n"))
	b.WriteString("\n")
	if u.step.Prompt != "" {
		b.WriteString("\n")
		b.WriteString(strings.TrimRight(u.step.Prompt, "\n"))
		b.WriteString("\n")
	}
	b.WriteString("\n")
	b.WriteString(workflow.Footer(repoDir, u.step.Outputs))
	return b.String(), nil
}

// failWithoutWork reports a unit that failed before it had a worktree.
func (o *Orchestrator) failWithoutWork(rs *runState, u *unit, msg string) {
	e := Event{Kind: StepFailed, Step: u.step.ID, Task: taskID(u.task), Message: msg}
	rs.recordFailure(e)
	o.emit(e)
	_ = o.updateFailures(func(m map[string]Failure) {
		m[u.key()] = Failure{Fingerprint: u.fingerprint(), Error: msg, Run: rs.id, At: o.cfg.Now().UTC()}
	})
}

// fail keeps the unit's partial work on refs/codemachine/failed/<key>,
// remembers the failure and runs the on_failure hook. Nothing lands.
func (o *Orchestrator) fail(ctx context.Context, rs *runState, snap *snapshot, u *unit, wt *gitstate.Worktree, engineName string, out attemptOutcome, start time.Time) execResult {
	key := u.key()
	ref := "refs/codemachine/failed/" + key
	var commit string
	tree, err := wt.Stage(ctx)
	if err == nil {
		msg := gitstate.Message{
			Subject:  fmt.Sprintf("codemachine(%s): failed: %s", key, truncate(firstLine(out.failure), 60)),
			Body:     strings.TrimSpace(out.failure + "\n\n" + tail(out.result.Output, 40)),
			Trailers: o.trailers(rs, u, engineName, out, start),
		}
		commit, err = o.repo.CommitTree(ctx, gitstate.CommitSpec{Tree: tree, Parents: []string{snap.commit},
			Message: msg.String(), Author: o.author(engineName, u.settings.model)})
		if err == nil {
			old, _ := o.repo.ResolveRev(ref)
			err = o.repo.UpdateRef(ctx, ref, commit, old, "codemachine: "+key+" failed")
		}
	}
	if err != nil {
		ref, commit = "", ""
		out.failure += " (its partial work could not be saved: " + err.Error() + ")"
	}
	// on_failure runs in the worktree before the worktree goes back to the
	// pool: what the hook leaves there must not reach the next step.
	hookEnv := append(o.unitEnv(rs, u, wt.Path()), "CODEMACHINE_WORKTREE="+wt.Path(), "CODEMACHINE_COMMIT="+commit)
	hookErr := o.runHook(ctx, "on_failure", u.step.Hooks.OnFailure, wt.Path(), hookEnv)
	if commit == "" || u.step.Hooks.OnFailure != "" || wt.Finish(ctx, commit) != nil {
		wt.Discard()
	}
	e := Event{Kind: StepFailed, Step: u.step.ID, Task: taskID(u.task), Engine: engineName, Model: u.settings.model,
		Duration: o.cfg.Now().Sub(start), Message: out.failure, Ref: ref, Commit: commit, Attempt: out.attempts,
		Log:    o.repo.RelPath(o.logPath(rs, u)),
		Tokens: out.result.TokensIn + out.result.TokensOut, CostUSD: out.result.CostUSD, CostOK: out.result.CostKnown}
	rs.recordFailure(e)
	o.emit(e)
	if hookErr != nil {
		o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: hookErr.Error()})
	}
	if err := o.updateFailures(func(m map[string]Failure) {
		f := Failure{Fingerprint: u.fingerprint(), Error: out.failure, Ref: ref, Commit: commit,
			Run: rs.id, At: o.cfg.Now().UTC()}
		if out.session != "" && commit != "" {
			f.Session, f.Engine = out.session, engineName
		}
		m[key] = f
	}); err != nil {
		return execResult{err: err}
	}
	return execResult{}
}

// readFileFS reads a file as a string; a missing file reads as "".
func readFileFS(fsys fs.FS, name string) (string, error) {
	data, err := fs.ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return string(data), err
}
