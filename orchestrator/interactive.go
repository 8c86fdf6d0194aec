package orchestrator

import (
	"context"
	"slices"

	"github.com/codemachine/codemachine/agents"
)

// StateNeedsYou is the state of a due interactive step (or task): it runs
// only with a person at a terminal (codemachine run in one, or
// codemachine open).
const StateNeedsYou = "needs-you"

// needsYouMessage is what a waiting interactive unit says.
func needsYouMessage(key string) string {
	return "interactive: needs you at a terminal (codemachine run in one, or codemachine open " + key + ")"
}

// needsYouWatching is what it says in a watcher's pass: the watcher holds
// the repository, so run and open refuse until it is stopped.
func needsYouWatching(key string) string {
	return "interactive: needs you at a terminal (stop the watcher, then codemachine run in one, or codemachine open " + key + ")"
}

// watchingHint is a watcher's NeedsYouError hint.
const watchingHint = "interactive: stop the watcher, then codemachine run in a terminal, or codemachine open STEP"

// interactive reports whether the step's agent runs in its own UI in this
// run: interactive: true, interactive: auto with a terminal, or named by
// run --interactive. Commands never
// do; nor does a replay.
func (rs *runState) interactive(u *unit) bool {
	if u.step.Run != "" || u.settings.replay {
		return false
	}
	if u.step.InteractiveAuto && rs.opts.Terminal != nil {
		// interactive: auto: the UI when there is a terminal, else the
		// agent alone (never needs-you).
		return true
	}
	return u.step.Interactive || rs.opts.InteractiveAll || slices.Contains(rs.opts.Interactive, u.step.ID)
}

// needsYou skips an interactive unit when the run has no terminal: it
// waits as needs-you (reported once per run, like a review) while the
// rest of the workflow goes on.
func (s *scheduler) needsYou(u *unit) bool {
	if s.rs.opts.Terminal != nil || !s.rs.interactive(u) {
		return false
	}
	key := u.key()
	msg := needsYouMessage(key)
	if s.rs.opts.Watching {
		msg = needsYouWatching(key)
	}
	s.reportOnce(key, Event{Kind: StepNeedsYou, Step: u.step.ID, Task: taskID(u.task), Message: msg},
		s.rs.recordNeedsYou)
	return true
}

// attemptInteractive runs the unit's agent in its own UI on the run's
// terminal, once: the person drives it, so there are no retries and no
// timeout, and a failing check fails the unit (codemachine open takes it
// up again). One unit at a time has the terminal. The tree the worktree
// held before is compared with the one after: a person who changed
// nothing lands nothing (unchanged is set). Failed work that open took up
// counts as a change: the tree after is compared with the base's.
func (j *job) attemptInteractive(ctx context.Context, eng agents.Engine) (out attemptOutcome, unchanged bool) {
	out.attempts = 1
	req, err := j.request(1, "", "")
	if err != nil {
		out.failure, out.noAgent = err.Error(), true
		return out, false
	}
	req.Terminal, req.Timeout = j.rs.opts.Terminal, 0
	if j.open && req.Resume != "" {
		req.Continue = ""
	}
	j.rs.terminal.Lock()
	defer j.rs.terminal.Unlock()
	before, err := j.wt.Stage(ctx)
	if err != nil {
		out.failure = err.Error()
		return out, false
	}
	if t := j.taken; j.open && t != nil && t.From == "failed" {
		// The failed work open took up never landed (a check failed, or
		// the user's uncommitted files were in its way): it is the
		// unit's change too, and lands when the person leaves, changed
		// or not.
		if before, err = j.o.repo.TreeOf(j.snap.commit); err != nil {
			out.failure = err.Error()
			return out, false
		}
	}
	if j.cliFound() {
		// (A CLI that is not installed fails the run with its own
		// message: there is no turn to take.)
		j.o.emit(Event{Kind: Note, Step: j.u.step.ID, Task: taskID(j.u.task),
			Message: "your turn in " + j.engineName + "'s UI; leave it (/exit) to land the step"})
	}
	started := j.o.cfg.Now()
	if f := j.rs.opts.OnTerminal; f != nil {
		f(true)
		defer f(false)
	}
	res, err := eng.Run(ctx, req)
	j.attemptEnded(req, started, res, err)
	out.result = res
	j.rs.addUsage(res.TokensIn, res.TokensOut, res.CostUSD)
	if err != nil {
		return engineFailed(ctx, out, err), false
	}
	after, err := j.wt.Stage(ctx)
	if err != nil {
		out.failure = err.Error()
		return out, false
	}
	if after == before {
		return out, true
	}
	if j.u.step.Check != "" {
		if checkRes, err := j.runCheck(ctx); err != nil {
			out.failure = checkFailure(1, err, checkRes.Output)
		}
	}
	return out, false
}

// landNothing ends an interactive unit whose person changed nothing: it is
// reported as skipped and nothing is recorded, so it stays due.
func (j *job) landNothing() execResult {
	j.wt.Discard()
	u := j.u
	e := Event{Kind: StepSkipped, Step: u.step.ID, Task: taskID(u.task), Engine: j.engineName,
		Message: "nothing changed in " + j.engineName + "'s UI; nothing landed"}
	j.rs.recordSkipped(e)
	j.o.emit(e)
	return execResult{}
}

// cliFound reports whether the unit's engine, when it is a coding CLI, is
// on PATH.
func (j *job) cliFound() bool {
	if !slices.Contains(agents.CodingCLIs(), j.engineName) {
		return true
	}
	_, err := j.o.cfg.LookPath(j.engineName)
	return err == nil
}
