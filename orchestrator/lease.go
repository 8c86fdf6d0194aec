package orchestrator

import (
	"context"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
)

// A Lease is the repository lock held by a caller that runs the workflow
// more than once under it: watch mode holds the lock for its whole
// session, so that other commands and the git hooks know it is running,
// and runs a pass whenever something changed. It is the one way in for
// such a caller: run a pass, hold what a reset undid, lift a hold or
// failure, release. Its methods may be called from different goroutines,
// but Run not twice at once.
type Lease struct {
	o       *Orchestrator
	lock    *gitstate.Lock
	command string
	head    gitstate.Head
}

// Lease takes the repository lock for command (what the lock file says
// while it is held, e.g. "codemachine watch") after the checks every run
// makes first: HEAD on a branch with commits, and a workflow at its tip.
// Another live holder is a *ConfigError naming it (exit 2).
func (o *Orchestrator) Lease(command string) (*Lease, error) {
	head, err := o.checkHead()
	if err != nil {
		return nil, err
	}
	if err := o.checkWorkflow(head.Commit); err != nil {
		return nil, err
	}
	lock, err := o.lock(command)
	if err != nil {
		return nil, err
	}
	return &Lease{o: o, lock: lock, command: command, head: head}, nil
}

// Head is HEAD as it was when the lease was taken.
func (l *Lease) Head() gitstate.Head { return l.head }

// Run runs what is due on the branch HEAD is on now, as Run does, under
// the lease's lock (opts.Command is the lease's command; a dry run needs
// no lock, so DryRun is ignored). A stale lock the lease took over is told,
// and the agents its holder left running are stopped, at the first Run
// only.
func (l *Lease) Run(ctx context.Context, opts RunOptions) (*Summary, error) {
	head, err := l.o.checkHead()
	if err != nil {
		return nil, err
	}
	opts.Command, opts.DryRun = l.command, false
	sum, err := l.o.runLocked(ctx, head, opts, l.lock)
	l.lock.TookOverFrom = 0
	return sum, err
}

// HoldUndone holds the steps and tasks whose commits a move of the branch
// from tip from to tip to took away and which are due again at to, with
// the fingerprints that runs with the overrides ov compute. It returns the
// held keys, newest undone first (see holdUndone).
func (l *Lease) HoldUndone(ctx context.Context, from, to string, ov Overrides) ([]string, error) {
	held, err := l.o.holdUndone(ctx, from, to, ov)
	if err != nil {
		return held, err
	}
	// The watcher saw this reset itself: the pass it triggers must not
	// report it again (followBranch).
	if head, err := l.o.repo.Head(); err == nil && head.Commit == to {
		err = l.o.noteTip(head.Branch, to, false)
		return held, err
	}
	return held, nil
}

// Lift lifts the hold and the failure of a step or task (STEP or
// STEP/TASK), so that the next Run runs it if it is due. Unlike Retry it
// drops a failure that could resume its session too: a watcher's passes
// run with SkipFailed and would skip the unit again while they find its
// failure with the same fingerprint.
func (l *Lease) Lift(key string) error {
	if err := l.o.updateHolds(func(h map[string]Hold) { delete(h, key) }); err != nil {
		return err
	}
	return l.o.updateFailures(func(f map[string]Failure) { delete(f, key) })
}

// Approve approves a pending review under the lease's lock, as
// Orchestrator.Approve does (a request `codemachine approve` handed over).
func (l *Lease) Approve(ctx context.Context, key string) (*ReviewResult, error) {
	head, err := l.o.checkHead()
	if err != nil {
		return nil, err
	}
	return l.o.approveLocked(ctx, head, key, l.o.person(ctx))
}

// Reject rejects a pending review under the lease's lock, as
// Orchestrator.Reject does.
func (l *Lease) Reject(ctx context.Context, key, reason string) (*ReviewResult, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, configErrorf("reject needs a reason: why the work is rejected, for the next attempt")
	}
	head, err := l.o.checkHead()
	if err != nil {
		return nil, err
	}
	return l.o.rejectLocked(ctx, head, key, reason, l.o.personVerdict(ctx, "rejected"))
}

// Release releases the lock. The lease is of no use afterwards.
func (l *Lease) Release() { l.lock.Release() }
