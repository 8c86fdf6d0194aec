package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// errTaskDeleted is the cause with which a running task is canceled when
// the user deletes it from the plan (issue 5: its work is kept on the
// failed ref).
var errTaskDeleted = errors.New("task deleted from the plan")

// watchInterval is how often the scheduler looks at the branch tip while
// units run, to see steering edits (a deleted task) and newly runnable
// tasks committed by the user.
const watchInterval = 250 * time.Millisecond

// active is a unit the scheduler started: running, or finished with a
// commit and waiting for its turn to land.
type active struct {
	job    *job
	cancel context.CancelCauseFunc
	done   bool
}

// scheduler is one run's loop (runLoop) and what only it needs: what the
// command line asked for, what it started and reported, the tip it works
// from, and the units in progress. Units share the run's state with it
// through rs.
type scheduler struct {
	o  *Orchestrator
	rs *runState

	// targets are the named steps and everything they need (nil = every
	// step); named are the step ids named on the command line, tasks the
	// step/task keys named there (see resolveTargets).
	targets map[string]bool
	named   map[string]bool
	tasks   map[string]bool
	// attempted holds the keys of units started in this run with the
	// fingerprint they started with: nothing runs twice in one run with
	// the same inputs, but a step whose input was committed while it ran
	// runs again (issue 10, D3), up to maxRuns times.
	attempted map[string]string
	runs      map[string]int
	// reported holds the keys of what was reported as skipped, waiting for
	// review or unplannable: once per run.
	reported map[string]bool

	snap *snapshot // the workflow at tip
	tip  string    // the branch tip last loaded
	// order holds the units started and not yet landed, in start order.
	order   []*active
	results chan execResult
	free    []int // worktree slots not in use
	slots   int   // worktree slots handed out so far
	// fatal, once set, starts nothing more: the units running finish and
	// the run returns it.
	fatal       error
	interrupted bool
	done        <-chan struct{} // the run's context's; nil once it fired
	running     string          // the units in the running file (runningSignature)
	// behind: a worker's claim found the branch behind the remote's; no
	// more starts until the tip moves (RunOptions.Remote).
	behind bool
	// spread: the Remote's first pick was asked for (Spreader).
	spread bool
	// startChecked: checkFirstStart ran (once a run).
	startChecked bool
	// staleChecked is the tip at which releaseStale last looked.
	staleChecked string
}

func (o *Orchestrator) newScheduler(rs *runState) *scheduler {
	return &scheduler{o: o, rs: rs, named: map[string]bool{}, tasks: map[string]bool{},
		attempted: map[string]string{}, runs: map[string]int{}, reported: map[string]bool{}, results: make(chan execResult)}
}

// runLoop is the scheduler. It starts due units in dependency order, tasks
// of a foreach step up to its parallelism at once (each in its own pooled
// worktree), and lands finished units one at a time in the order they
// started, which is plan order for tasks; a unit whose base is no longer
// the tip is rebased by the landing. It reloads the workflow whenever the
// tip moves, so steering edits take effect at once: new and reworded tasks
// are picked up, and a running task deleted from the plan is stopped.
func (o *Orchestrator) runLoop(ctx context.Context, rs *runState) error {
	s := o.newScheduler(rs)
	s.done = ctx.Done()
	ticker := time.NewTicker(watchInterval)
	defer ticker.Stop()
	for {
		if ctx.Err() != nil {
			s.interrupted = true
		}
		if err := s.reload(); err != nil {
			return err
		}
		if s.landNext(context.WithoutCancel(ctx)) {
			continue
		}
		s.startDue(ctx)
		if len(s.order) == 0 {
			return s.result()
		}
		s.markRunning()
		s.wait(ticker.C)
		s.rs.flushRunning()
	}
}

// stop records the first error that stops the run (nil: none).
func (s *scheduler) stop(err error) {
	if s.fatal == nil {
		s.fatal = err
	}
}

// reload loads the workflow at the branch tip when the tip moved; the
// first load also resolves the named targets and lifts their holds. It
// returns an error only when the run must end at once: nothing is running
// and the workflow is broken, or the command line names what is not there.
func (s *scheduler) reload() error {
	cur, err := s.o.repo.ResolveRev("refs/heads/" + s.rs.branch)
	if err != nil {
		s.stop(fmt.Errorf("resolve branch %s: %w", s.rs.branch, err))
		return nil
	}
	if s.snap != nil && cur == s.tip {
		return nil
	}
	snap, err := s.o.load(cur, s.rs.opts.Overrides)
	if err != nil {
		if len(s.order) == 0 {
			return err
		}
		// A broken workflow committed while units run: let them finish,
		// start nothing more.
		s.stop(err)
		return nil
	}
	first := s.snap == nil
	s.snap, s.tip = snap, cur
	if first {
		if err := s.resolveTargets(); err != nil {
			return err
		}
		if err := s.liftNamedHolds(); err != nil {
			return err
		}
	}
	s.cancelDeleted()
	return nil
}

// landNext lands the first unit started if it has finished: units land in
// start order. It reports whether it landed (or kept) one.
func (s *scheduler) landNext(ctx context.Context) bool {
	if len(s.order) == 0 || !s.order[0].done {
		return false
	}
	a := s.order[0]
	s.order = s.order[1:]
	s.free = append(s.free, a.job.u.slot)
	switch {
	case taskGone(s.snap, a.job.u):
		s.stop(a.job.keepDeleted(ctx))
		s.release(ctx, a.job.u)
	case s.rs.opts.Remote != nil:
		s.stop(a.job.deliver(ctx))
	default:
		s.stop(a.job.land(ctx))
	}
	if a.job.again {
		// A reviewer agent rejected it: its next round is due now, with
		// the reviewer's reasons as feedback.
		delete(s.attempted, a.job.u.key())
	}
	s.markRunning()
	return true
}

// startDue starts what may run now, until nothing more may start beside
// the units running, the budget is spent, or the run stops.
func (s *scheduler) startDue(ctx context.Context) {
	s.behind = false
	for s.fatal == nil && !s.interrupted && s.snap != nil {
		if err := s.releaseStale(ctx); err != nil {
			s.stop(err)
			return
		}
		u, err := s.next()
		if err != nil {
			s.stop(err)
			return
		}
		if u == nil || !s.canStart(u) {
			return
		}
		if err := s.checkFirstStart(ctx); err != nil {
			s.stop(err)
			return
		}
		if err := s.checkNoOperation(); err != nil {
			s.stop(err)
			return
		}
		if !s.claim(ctx, u) {
			if s.behind && !s.caughtUp() {
				return
			}
			// Refused (another worker won it): on to the next due unit.
			continue
		}
		if u.skip {
			// The tip moved: what is due after the skipped step is
			// decided anew.
			s.skip(context.WithoutCancel(ctx), u)
			if err := s.reload(); err != nil {
				s.stop(err)
			}
			continue
		}
		if err := s.o.checkBudget(s.snap.project.Workflow.Budget, s.rs.totals()); err != nil {
			s.stop(err)
			return
		}
		s.start(ctx, u)
	}
}

// checkFirstStart makes sure, once a run and before its first unit
// starts, that its work could land: that the branch's checkout is not in
// the middle of a conflicted merge, which git refuses to move forward, and
// that git can sign the commits when commit.gpgSign asks for signed ones.
// Either is said before an agent works, not when its work cannot land. A
// run with nothing due checks nothing.
func (s *scheduler) checkFirstStart(ctx context.Context) error {
	if s.startChecked {
		return nil
	}
	s.startChecked = true
	err := s.o.repo.CheckUnmerged(ctx, s.rs.branch)
	if err == nil {
		err = s.o.repo.CheckSigning(ctx, s.tip)
	}
	var se *gitstate.SigningError
	var ue *gitstate.UnmergedError
	if errors.As(err, &se) || errors.As(err, &ue) {
		return &ConfigError{Err: err}
	}
	return err
}

// checkNoOperation stops the run before a unit starts while the user's
// checkout of the branch is in the middle of a merge, rebase or the like
// (checkFirstStart looked for conflicts):
// the unit's commit would land into the user's unfinished operation (or,
// with its conflicts, not land at all), after its agent had done the work.
func (s *scheduler) checkNoOperation() error {
	err := s.o.repo.OperationInProgress(s.rs.branch)
	var oe *gitstate.OperationError
	if errors.As(err, &oe) {
		return &ConfigError{Err: err}
	}
	return err
}

// caughtUp is what a run does when a worker's claim found the branch
// behind the remote's: the worker brings the branch up to the remote's
// tip, and the run decides what is due anew from there. It reports
// whether the tip moved (false: nothing more starts in this run).
func (s *scheduler) caughtUp() bool {
	old := s.tip
	if err := s.reload(); err != nil {
		s.stop(err)
		return false
	}
	if s.tip == old {
		return false
	}
	s.behind = false
	return true
}

// start runs u in a free worktree slot (with an engine config dir of its
// own when tasks run in parallel), in a goroutine that hands its result to
// wait.
func (s *scheduler) start(ctx context.Context, u *unit) {
	slot, home := s.resumeSlot(u)
	if slot >= 0 {
		for s.slots <= slot {
			s.free = append(s.free, s.slots)
			s.slots++
		}
		s.free = slices.DeleteFunc(s.free, func(n int) bool { return n == slot })
		u.slot, u.home = slot, home
	} else {
		if len(s.free) == 0 {
			s.free = append(s.free, s.slots)
			s.slots++
		}
		u.slot, s.free = s.free[len(s.free)-1], s.free[:len(s.free)-1]
	}
	if u.home == "" && s.parallelism(u) > 1 {
		u.home = filepath.Join(s.o.repo.LocalDir(), "homes", fmt.Sprintf("slot-%d", u.slot))
	}
	s.attempted[s.attemptKey(u)] = u.fingerprint()
	s.runs[u.key()]++
	uctx, cancel := context.WithCancelCause(ctx)
	a := &active{job: &job{o: s.o, rs: s.rs, snap: s.snap, u: u}, cancel: cancel}
	s.order = append(s.order, a)
	go func() {
		r := a.job.execute(uctx)
		r.a = a
		s.results <- r
	}()
}

// wait waits for a unit to finish, the next look at the tip, or the run's
// interruption.
func (s *scheduler) wait(tick <-chan time.Time) {
	select {
	case r := <-s.results:
		s.finished(r)
	case <-tick:
	case <-s.done:
		s.done = nil
		s.interrupted = true
	}
}

// finished takes a unit's result. A unit that failed (and was reported)
// has nothing to land, so it need not wait for its turn, and its slot is
// free for the next task now rather than once the units before it land.
func (s *scheduler) finished(r execResult) {
	a := r.a
	a.done = true
	a.cancel(nil)
	s.stop(r.err)
	if r.interrupted {
		s.interrupted = true
	}
	if a.job.cand == nil {
		s.order = slices.DeleteFunc(s.order, func(x *active) bool { return x == a })
		s.free = append(s.free, a.job.u.slot)
		s.release(context.Background(), a.job.u)
		s.markRunning()
	}
}

// release gives up a worker's claim of a unit that ends without a result.
func (s *scheduler) release(ctx context.Context, u *unit) {
	if r := s.rs.opts.Remote; r != nil {
		r.Release(ctx, u.key())
	}
}

// resumeSlot is the worktree slot and engine config dir of u's last
// failure, when it left a session to resume and that slot is free: the
// CLIs keep a session under the config dir it ran with, and Claude Code
// finds one only from the working directory it ran in. slot is -1 when
// any slot will do.
func (s *scheduler) resumeSlot(u *unit) (slot int, home string) {
	failures, err := s.o.failures()
	if err != nil {
		return -1, ""
	}
	f, ok := failures[u.key()]
	if !ok || f.Session == "" {
		return -1, ""
	}
	if f.Slot < s.slots && !slices.Contains(s.free, f.Slot) {
		return -1, "" // another unit of this run works there now
	}
	return f.Slot, f.Home
}

// result is what the run returns once nothing runs any more.
func (s *scheduler) result() error {
	switch {
	case s.interrupted:
		return ErrInterrupted
	case s.fatal != nil:
		return s.fatal
	}
	return s.rs.unfinished()
}

// markRunning writes the units in progress to the running file when they
// changed: after a round of starts, and as soon as a unit lands or ends
// without a result (status must not show it running after that).
func (s *scheduler) markRunning() {
	sig := runningSignature(s.order)
	if sig == s.running {
		return
	}
	s.running = sig
	keys := make([]string, 0, len(s.order))
	for _, a := range s.order {
		keys = append(keys, a.job.u.key())
	}
	s.rs.setRunning(keys, s.o.cfg.Now().UTC().Format(time.RFC3339))
}

// checkBudget stops the run when its tokens or cost exceed the workflow's
// budget (checked before each step).
func (o *Orchestrator) checkBudget(b workflow.Budget, s Summary) error {
	if b.Tokens > 0 && s.TokensIn+s.TokensOut > b.Tokens {
		spent, limit := FormatTokens(s.TokensIn+s.TokensOut), FormatTokens(b.Tokens)
		if spent == limit {
			// Rounded alike (1.2k of 1.2k), they would not say which is
			// over: the exact counts do.
			spent, limit = strconv.FormatInt(s.TokensIn+s.TokensOut, 10), strconv.FormatInt(b.Tokens, 10)
		}
		return &BudgetError{What: "tokens", Spent: spent, Limit: limit}
	}
	if b.USD > 0 && s.CostUSD > b.USD {
		spent, limit := budgetUSD(s.CostUSD, b.USD)
		return &BudgetError{What: "cost", Spent: spent, Limit: limit}
	}
	return nil
}

// budgetUSD renders the cost spent and the limit it went over with as many
// decimals (2 to 6) as the limit needs to be shown as it was written
// ($0.015, not $0.01) and the two to differ.
func budgetUSD(spent, limit float64) (string, string) {
	for d := 2; ; d++ {
		s, l := fmt.Sprintf("$%.*f", d, spent), fmt.Sprintf("$%.*f", d, limit)
		exact, _ := strconv.ParseFloat(l[1:], 64)
		if d == 6 || (s != l && exact == limit) {
			return s, l
		}
	}
}

// parallelism is how many tasks of u's step may run at once: --parallel,
// else the step's parallel, else 1.
func (s *scheduler) parallelism(u *unit) int {
	if u.task == nil {
		return 1
	}
	if s.rs.opts.Parallel > 0 {
		return s.rs.opts.Parallel
	}
	return max(u.step.Parallel, 1)
}

// canStart reports whether u may start beside the units already started:
// a plain step runs alone; tasks run together with tasks of the same step,
// up to its parallelism.
func (s *scheduler) canStart(u *unit) bool {
	if len(s.order) == 0 {
		return true
	}
	if u.task == nil {
		return false
	}
	for _, a := range s.order {
		if a.job.u.task == nil || a.job.u.step.ID != u.step.ID {
			return false
		}
	}
	return len(s.order) < s.parallelism(u)
}

// cancelDeleted stops running tasks that are gone from the plan at the new
// tip (finished ones are kept instead of landing, see keepDeleted).
func (s *scheduler) cancelDeleted() {
	for _, a := range s.order {
		if !a.done && taskGone(s.snap, a.job.u) {
			a.cancel(errTaskDeleted)
		}
	}
}

// taskGone reports whether u is a task that the plan at snap no longer
// has. A plan that does not parse has lost nothing: the user is mid-edit.
func taskGone(snap *snapshot, u *unit) bool {
	if u.task == nil || snap == nil {
		return false
	}
	if len(snap.project.TaskErrs(u.step)) > 0 {
		return false
	}
	plan := snap.project.TaskPlan(u.step)
	return plan == nil || plan.Task(u.task.ID) == nil
}

// runningSignature identifies the set of units in progress, so that the
// running file is rewritten only when it changes.
func runningSignature(order []*active) string {
	var keys []string
	for _, a := range order {
		keys = append(keys, a.job.u.key())
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}
