package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

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

// active is a unit the scheduler started: running, or finished and waiting
// for its turn to land.
type active struct {
	job    *job
	cancel context.CancelCauseFunc
	done   bool
}

// runLoop is the scheduler. It starts due units in dependency order, tasks
// of a foreach step up to its parallelism at once (each in its own pooled
// worktree), and lands finished units one at a time in the order they
// started, which is plan order for tasks; a unit whose base is no longer
// the tip is rebased by the landing. It reloads the workflow whenever the
// tip moves, so steering edits take effect at once: new and reworded tasks
// are picked up, and a running task deleted from the plan is stopped.
func (o *Orchestrator) runLoop(ctx context.Context, rs *runState) error {
	results := make(chan execResult)
	var (
		order       []*active // started and not yet landed, in start order
		ready       = map[*active]execResult{}
		free        []int // worktree slots not in use
		slots       int
		snap        *snapshot
		tip         string
		first       = true
		fatal       error
		interrupted bool
		lastRunning string
	)
	done := ctx.Done()
	ticker := time.NewTicker(watchInterval)
	defer ticker.Stop()
	for {
		if !interrupted && ctx.Err() != nil {
			interrupted = true
		}
		cur, err := o.repo.ResolveRev("refs/heads/" + rs.branch)
		if err != nil && fatal == nil {
			fatal = fmt.Errorf("resolve branch %s: %w", rs.branch, err)
		}
		if err == nil && (snap == nil || cur != tip) {
			s, err := o.load(cur, rs.opts.Overrides)
			switch {
			case err != nil && len(order) == 0:
				return err
			case err != nil:
				// A broken workflow committed while units run: let them
				// finish, start nothing more.
				if fatal == nil {
					fatal = err
				}
			default:
				snap, tip = s, cur
				if first {
					first = false
					if err := o.resolveTargets(snap, rs); err != nil {
						return err
					}
					if err := o.liftNamedHolds(rs); err != nil {
						return err
					}
				}
				o.cancelDeleted(snap, order)
			}
		}

		// Land finished units in start order.
		if len(order) > 0 {
			if _, ok := ready[order[0]]; ok {
				a := order[0]
				order = order[1:]
				delete(ready, a)
				free = append(free, a.job.u.slot)
				var err error
				if taskGone(snap, a.job.u) {
					err = a.job.keepDeleted(context.WithoutCancel(ctx))
				} else {
					err = a.job.land(context.WithoutCancel(ctx))
				}
				if err != nil && fatal == nil {
					fatal = err
				}
				continue
			}
		}

		// Start what may run now.
		for fatal == nil && !interrupted && snap != nil {
			u, err := o.next(snap, rs)
			if err != nil {
				fatal = err
				break
			}
			if u == nil || !o.canStart(rs, u, order) {
				break
			}
			if err := o.checkBudget(snap.project.Workflow.Budget, rs.totals()); err != nil {
				fatal = err
				break
			}
			if len(free) == 0 {
				free = append(free, slots)
				slots++
			}
			u.slot, free = free[len(free)-1], free[:len(free)-1]
			if o.parallelism(rs, u) > 1 {
				u.home = filepath.Join(o.repo.LocalDir(), "homes", fmt.Sprintf("slot-%d", u.slot))
			}
			rs.attempted[u.key()] = true
			uctx, cancel := context.WithCancelCause(ctx)
			a := &active{job: &job{o: o, rs: rs, snap: snap, u: u}, cancel: cancel}
			order = append(order, a)
			go func() {
				r := a.job.execute(uctx)
				r.a = a
				results <- r
			}()
		}

		if len(order) == 0 {
			break
		}
		if sig := runningSignature(order); sig != lastRunning {
			lastRunning = sig
			o.markRunning(rs, order)
		}
		select {
		case r := <-results:
			r.a.done = true
			r.a.cancel(nil)
			if r.err != nil && fatal == nil {
				fatal = r.err
			}
			if r.interrupted {
				interrupted = true
			}
			if r.a.job.cand == nil {
				// Failed (and reported): nothing to land, so it need not
				// wait for its turn, and its slot is free for the next
				// task now rather than once the units before it land.
				order = slices.DeleteFunc(order, func(x *active) bool { return x == r.a })
				free = append(free, r.a.job.u.slot)
				continue
			}
			ready[r.a] = r
		case <-ticker.C:
		case <-done:
			done = nil
			interrupted = true
		}
	}
	switch {
	case interrupted:
		return ErrInterrupted
	case fatal != nil:
		return fatal
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.summary.Failed) > 0 {
		keys := make([]string, 0, len(rs.summary.Failed))
		for _, e := range rs.summary.Failed {
			keys = append(keys, e.Key())
		}
		return &StepFailedError{Failed: keys}
	}
	if len(rs.summary.Review) > 0 {
		keys := make([]string, 0, len(rs.summary.Review))
		for _, e := range rs.summary.Review {
			keys = append(keys, e.Key())
		}
		return &ReviewPendingError{Steps: keys}
	}
	return nil
}

// checkBudget stops the run when its tokens or cost exceed the workflow's
// budget (checked before each step, DESIGN 9).
func (o *Orchestrator) checkBudget(b workflow.Budget, s Summary) error {
	if b.Tokens > 0 && s.TokensIn+s.TokensOut > b.Tokens {
		return &BudgetError{What: "tokens", Spent: FormatTokens(s.TokensIn + s.TokensOut), Limit: FormatTokens(b.Tokens)}
	}
	if b.USD > 0 && s.CostUSD > b.USD {
		return &BudgetError{What: "cost", Spent: fmt.Sprintf("$%.2f", s.CostUSD), Limit: fmt.Sprintf("$%.2f", b.USD)}
	}
	return nil
}

// parallelism is how many tasks of u's step may run at once: --parallel,
// else the step's parallel, else 1.
func (o *Orchestrator) parallelism(rs *runState, u *unit) int {
	if u.task == nil {
		return 1
	}
	if rs.opts.Parallel > 0 {
		return rs.opts.Parallel
	}
	return max(u.step.Parallel, 1)
}

// canStart reports whether u may start beside the units already started:
// a plain step runs alone; tasks run together with tasks of the same step,
// up to its parallelism.
func (o *Orchestrator) canStart(rs *runState, u *unit, order []*active) bool {
	if len(order) == 0 {
		return true
	}
	if u.task == nil {
		return false
	}
	for _, a := range order {
		if a.job.u.task == nil || a.job.u.step.ID != u.step.ID {
			return false
		}
	}
	return len(order) < o.parallelism(rs, u)
}

// cancelDeleted stops running tasks that are gone from the plan at the new
// tip (finished ones are kept instead of landing, see keepDeleted).
func (o *Orchestrator) cancelDeleted(snap *snapshot, order []*active) {
	for _, a := range order {
		if !a.done && taskGone(snap, a.job.u) {
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
	file := u.step.Foreach
	if len(snap.project.PlanErrs[file]) > 0 {
		return false
	}
	plan := snap.project.Plans[file]
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
