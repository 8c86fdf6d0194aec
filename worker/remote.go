package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/orchestrator"
)

// retry runs fn until it succeeds, fails for good, or ctx ends: a
// transient remote failure (no connection, a server error) is tried again
// after an exponential back-off with jitter (200 ms doubling to 10 s).
// The first failure and the recovery are told once each (see answered).
func (w *worker) retry(ctx context.Context, what string, fn func() error) error {
	delay := 200 * time.Millisecond
	for {
		start := time.Now()
		err := fn()
		var re *gitstate.RemoteError
		switch {
		case !gitstate.IsTransientRemote(err):
			w.answered(start, true, "", nil)
			return err
		case errors.As(err, &re) && re.Local:
			// The remote answered; a local ref was busy (a push
			// updating the remote-tracking branch under a fetch):
			// tried again without saying the remote went away.
			w.answered(start, true, "", nil)
		default:
			w.answered(start, false, what, err)
		}
		d := delay/2 + rand.N(delay/2+1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// answered records how a command to the remote that started at start
// ended: the remote answered it (ok; a refusal is an answer too), or it
// could not reach the remote (what failed, with err). The worker says once
// that the remote went away and once that it is back, whichever of its
// commands (fetches, claims, renewals, deliveries run side by side) find
// it out first. A command that started before the last change was seen
// tells nothing new: one the remote answered just before it went away
// (its answer arriving after another command found it gone) does not make
// the worker say it is back, and one that set out before the remote came
// back and failed does not make it say it went away again.
func (w *worker) answered(start time.Time, ok bool, what string, err error) {
	w.mu.Lock()
	now := time.Now()
	var msg string
	switch {
	case ok && w.down && !start.Before(w.downAt):
		w.down, w.upAt = false, now
		// Said once, whichever of the waiting commands got there first.
		msg = fmt.Sprintf("the remote %s answers again", w.opts.Remote)
	case !ok && !w.down && !start.Before(w.upAt):
		w.down, w.downAt = true, now
		msg = fmt.Sprintf("%s: %v; trying again with back-off", what, err)
	}
	w.mu.Unlock()
	if msg != "" {
		w.note("%s", msg)
	}
}

// fetch looks at the remote (retrying while it is unreachable).
func (w *worker) fetch(ctx context.Context) (gitstate.RemoteWork, error) {
	w.fetchMu.Lock()
	defer w.fetchMu.Unlock()
	var view gitstate.RemoteWork
	err := w.retry(ctx, "fetch", func() error {
		w.trips.fetch.Add(1)
		var err error
		view, err = w.repo.FetchWork(ctx, w.opts.Remote, w.branch)
		return err
	})
	if err != nil {
		return view, err
	}
	w.mu.Lock()
	old := w.view
	w.view, w.viewAt = view, time.Now()
	w.twins = w.twinsLocked(view)
	changed := viewChanged(old, view)
	if changed {
		w.fast = w.fastPoll()
	}
	w.mu.Unlock()
	if changed {
		signal(w.changed)
	}
	return view, nil
}

// viewChanged says whether the remote moved on from a to b: its tip, a
// claim (taken, renewed, delivered, released), a result, a review branch
// or the integrator's role.
func viewChanged(a, b gitstate.RemoteWork) bool {
	return a.Tip != b.Tip || a.Integrator.Commit != b.Integrator.Commit ||
		!maps.EqualFunc(a.Claims, b.Claims, func(x, y gitstate.Claim) bool { return x.Commit == y.Commit }) ||
		!maps.Equal(a.Results, b.Results) || !maps.Equal(a.Reviews, b.Reviews)
}

// tick is one look at the remote: fetch, take or keep the integrator's
// role (and land what waits), and bring the local branch to the remote's
// tip.
func (w *worker) tick(ctx context.Context) error {
	w.tickMu.Lock()
	defer w.tickMu.Unlock()
	view, err := w.fetch(ctx)
	if err != nil {
		return err
	}
	if view.Tip == "" {
		return w.noBranch()
	}
	if err := w.otherBranch(view); err != nil {
		return err
	}
	if err := w.mirrorReviews(ctx, view); err != nil {
		return err
	}
	if err := w.mirrorHolds(view); err != nil {
		return err
	}
	if wait, err := w.twinWaits(); err != nil {
		// It stops once its units delivered (stopOn): meanwhile the
		// twin may act as the integrator, not both.
		w.dropRole(ctx)
		return err
	} else if wait {
		w.dropRole(ctx)
		return w.follow(ctx, view.Tip)
	}
	if w.integrator(ctx, view) {
		landed, err := w.integrate(ctx, view)
		if err != nil {
			return err
		}
		if landed {
			if view, err = w.fetch(ctx); err != nil {
				return err
			}
			// The push may have held units (rewound): the next pass
			// leaves them alone.
			if err := w.mirrorHolds(view); err != nil {
				return err
			}
		}
	}
	return w.follow(ctx, view.Tip)
}

// otherBranch refuses to work beside the workers of another branch of
// the same remote (a *orchestrator.ConfigError): claims and results are
// named by step and task alone, so the workers of a remote work on one
// branch at a time, the integrator's. Each would take the other's units
// for its own: run them again, drop their results or land them on the
// wrong branch.
func (w *worker) otherBranch(view gitstate.RemoteWork) error {
	c := view.Integrator
	if c.Ref == "" || c.Branch == "" || c.Branch == w.branch || c.Expired(time.Now()) {
		return nil
	}
	return &orchestrator.ConfigError{Err: fmt.Errorf("the workers on %s work on branch %s now (integrator: %s), not on %s: a remote's workers work on one branch at a time (its claims and results are named by step and task alone); start this branch's once they are done",
		w.opts.Remote, c.Branch, c.Worker, w.branch)}
}

// mirrorReviews makes the clone's review branches the remote's: a
// review: true unit whose result waits for review there is not due here
// either, exactly as after a local run kept it for review. A worker's
// clone follows the remote; review branches it has alone are removed.
func (w *worker) mirrorReviews(ctx context.Context, view gitstate.RemoteWork) error {
	local, err := w.repo.RefsWithPrefix(gitstate.ReviewPrefix)
	if err != nil {
		return err
	}
	for ref, commit := range local {
		if _, ok := view.Reviews[strings.TrimPrefix(ref, gitstate.ReviewPrefix)]; !ok {
			if err := w.repo.DeleteRef(ctx, ref, commit); err != nil && !errors.Is(err, gitstate.ErrRefMoved) {
				return err
			}
		}
	}
	for key, commit := range view.Reviews {
		if local[gitstate.ReviewPrefix+key] != commit {
			if err := w.repo.SetRef(ctx, gitstate.ReviewPrefix+key, commit); err != nil {
				return err
			}
		}
	}
	return nil
}

// rewindPending says whether view's branch no longer contains the tip the
// integrators last pushed, and the holds of that rewind are not published
// yet (see rewound).
func (w *worker) rewindPending(view gitstate.RemoteWork) (bool, error) {
	if view.Landed == "" || view.Landed == view.Tip {
		return false, nil
	}
	kept, err := w.repo.IsAncestor(view.Landed, view.Tip)
	return !kept, err
}

// mirrorHolds makes the clone's holds follow the remote's: a unit that a
// person's rollback or reset of the remote's branch undid is held on
// every worker, as it is in a clone where the rollback was made, until
// the remote's hold goes (lifted there, or its unit landed again) or its
// inputs change.
func (w *worker) mirrorHolds(view gitstate.RemoteWork) error {
	remote := make(map[string]orchestrator.Hold, len(view.Holds))
	for key, h := range view.Holds {
		remote[key] = orchestrator.Hold{Fingerprint: h.Fingerprint, Commit: h.Undone, At: time.Now().UTC(), Remote: h.Commit}
	}
	added, err := w.o.MirrorHolds(remote)
	if err != nil {
		return err
	}
	if len(added) > 0 {
		w.note("held on %s after a rollback or reset of %s: %s (not run again with the same inputs; git push %s --delete %sKEY lifts one)",
			w.opts.Remote, w.branch, strings.Join(added, ", "), w.opts.Remote, gitstate.HoldsPrefix)
	}
	return nil
}

// follow moves the local branch to the remote's tip when the remote moved
// on from it. A local branch that is not behind the remote's is left
// alone (and said once): a worker's clone follows the remote, it does not
// lead it.
func (w *worker) follow(ctx context.Context, remoteTip string) error {
	w.followMu.Lock()
	defer w.followMu.Unlock()
	head, err := w.repo.Head()
	if err != nil {
		return err
	}
	if head.Branch != w.branch {
		return &orchestrator.ConfigError{Err: &localError{fmt.Sprintf("the checkout moved from %s to %q while the worker ran", w.branch, head.Branch)}}
	}
	if head.Commit == remoteTip {
		return nil
	}
	behind, err := w.repo.IsAncestor(head.Commit, remoteTip)
	if err != nil {
		return err
	}
	if !behind {
		return w.ahead(head.Commit)
	}
	err = w.repo.FollowBranch(ctx, w.branch, head.Commit, remoteTip)
	if errors.Is(err, gitstate.ErrRefMoved) {
		return nil // moved meanwhile: the next tick looks again
	}
	return err
}

// ahead is what follow makes of a branch at head that is not behind the
// tip it was asked to follow. Looks at the remote run side by side, so
// that tip may be an older look's while the branch already followed a
// newer one: nothing to do. A branch that is not behind the latest look
// either has commits the remote lacks (made in this clone, or taken off
// the remote's branch by a force-push): an *orchestrator.ConfigError.
func (w *worker) ahead(head string) error {
	w.mu.Lock()
	latest := w.view.Tip
	w.mu.Unlock()
	if latest != "" {
		if ok, err := w.repo.IsAncestor(head, latest); err != nil || ok {
			return err
		}
	}
	return &orchestrator.ConfigError{Err: &localError{fmt.Sprintf("%s has commits that %s/%s lacks (made here, or taken off it by a force-push): a worker's branch follows the remote's; push commits of yours (git pull --rebase %s %s && git push %s %s), or keep them on another branch, then reset %s to %s/%s and start the worker again",
		w.branch, w.opts.Remote, w.branch, w.opts.Remote, w.branch, w.opts.Remote, w.branch, w.branch, w.opts.Remote, w.branch)}}
}

// localError is a reason to stop that lies in the worker's clone alone
// (its branch has commits the remote lacks, its checkout moved) or in how
// it was started (another worker runs under its --id): the
// units it runs were claimed at the remote's tip and still deliver there,
// so the worker lets them finish rather than throw their work away, and
// stops after them (stopOn).
type localError struct{ msg string }

func (e *localError) Error() string { return e.msg }

// stopOn stops the worker on err, one that waiting does not cure
// (refusedForGood): at once, its running units interrupted, when the
// remote refused; after its running units delivered, starting nothing
// more, when the reason lies in the clone alone (a *localError).
func (w *worker) stopOn(err error) {
	var le *localError
	if !errors.As(err, &le) {
		w.halt(err)
		return
	}
	w.mu.Lock()
	first := w.stopErr == nil
	if first {
		w.stopErr = err
	}
	running := len(w.held)
	w.mu.Unlock()
	if first && running > 0 {
		w.note("stopping once the %d unit(s) running here delivered: %v", running, err)
	}
	signal(w.changed)
}

// stopping is the error the worker stops on once its running units
// finished (stopOn), nil while it goes on.
func (w *worker) stopping() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopErr
}

// Claim is the orchestrator's Remote: it claims key for this worker unless
// a fresh look at the remote (see look) sees a live claim or a waiting
// result for it. A lapsed claim is taken over. The push is the arbiter:
// when another worker's claim got there first, the answer is false (and
// the run goes on to the next due unit).
func (w *worker) Claim(ctx context.Context, key, fingerprint, base string) (bool, error) {
	if w.stopping() != nil {
		// Its units finish and deliver; nothing new starts.
		w.refuse()
		return false, nil
	}
	view, err := w.look(ctx)
	if err != nil {
		return false, err
	}
	// A unit is claimed only from the remote's tip: a pass that picked it
	// at an older one (the integrator landed meanwhile) may be looking at
	// what landed already. The branch follows the remote's tip, and the
	// pass decides anew from there.
	if base != view.Tip {
		if err := w.follow(ctx, view.Tip); refusedForGood(err) {
			w.stopOn(err)
		} else if err != nil {
			w.note("%v", err)
		}
		w.refuse()
		return false, orchestrator.ErrBehind
	}
	if wait, err := w.twinWaits(); err != nil || wait {
		if err != nil {
			// The units it holds still deliver (their claims are its
			// own); nothing new starts.
			w.stopOn(err)
		}
		w.refuse()
		return false, nil
	}
	expect := ""
	if _, ok := view.Results[key]; ok {
		w.refuse()
		return false, nil
	}
	if _, ok := view.Reviews[key]; ok {
		// Its result waits for review on the remote; the pass looked
		// before this worker's copy of the review branch caught up.
		w.refuse()
		return false, nil
	}
	if rewound, err := w.rewindPending(view); err != nil || rewound {
		// A person rewound the branch, and the integrator has not held
		// what that undid yet: the unit may be one of them.
		w.refuse()
		return false, err
	}
	if c, ok := view.Claims[key]; ok {
		if !c.Expired(time.Now()) {
			w.refuse()
			return false, nil
		}
		expect = c.Commit
	}
	req, err := w.makeClaim(ctx, gitstate.ClaimRequest{Remote: w.opts.Remote, Branch: w.branch, Ref: gitstate.ClaimRef(key),
		Worker: w.opts.ID, Fingerprint: fingerprint, Expires: time.Now().Add(w.lease), Expect: expect})
	if err != nil {
		return false, err
	}
	var claim gitstate.Claim
	err = w.retry(ctx, "claim "+key, func() error {
		w.trips.claim.Add(1)
		var err error
		claim, err = w.repo.PushClaim(ctx, req)
		return err
	})
	if errors.Is(err, gitstate.ErrRefMoved) {
		// Another worker got there first: the next claim looks afresh.
		w.mu.Lock()
		w.viewAt = time.Time{}
		w.mu.Unlock()
		w.refuse()
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if expect != "" {
		w.note("%s: took over the lapsed claim of %s", key, view.Claims[key].Worker)
	}
	w.mu.Lock()
	w.held[key] = claim
	w.mu.Unlock()
	return true, nil
}

// freshView is how old a look at the remote may be for a claim to go by
// it without looking again (the claims of one pass, one after another).
const freshView = 250 * time.Millisecond

// look is the view a claim goes by: the last look at the remote when it is
// at most freshView old, else a fresh one. Claims that went by an older
// view raced for units other workers held already.
func (w *worker) look(ctx context.Context) (gitstate.RemoteWork, error) {
	w.mu.Lock()
	view, at := w.view, w.viewAt
	w.mu.Unlock()
	if time.Since(at) <= freshView && view.Tip != "" {
		return view, nil
	}
	view, err := w.fetch(ctx)
	if err == nil && view.Tip == "" {
		err = w.noBranch()
	}
	return view, err
}

func (w *worker) noBranch() error {
	return &orchestrator.ConfigError{Err: fmt.Errorf("the remote %s has no branch %s: push it first (git push %s %s)", w.opts.Remote, w.branch, w.opts.Remote, w.branch)}
}

// signal sends on c (buffered, one) unless a signal waits there already.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (w *worker) refuse() {
	w.mu.Lock()
	w.refused++
	w.mu.Unlock()
}

// Deliver pushes the unit's commit to its result ref and deletes its
// claim in one atomic push, under the claim's lease: when the claim lapsed
// and another worker holds it now, nothing is pushed and the result is
// discarded (orchestrator.ErrClaimLost).
func (w *worker) Deliver(ctx context.Context, d orchestrator.Delivery) error {
	w.claimMu.Lock()
	defer w.claimMu.Unlock()
	w.mu.Lock()
	claim, ok := w.held[d.Key]
	w.mu.Unlock()
	if !ok {
		return orchestrator.ErrClaimLost
	}
	// The claim becomes a delivered one (the integrator removes it with
	// the result), so that nobody claims the unit while it waits to land.
	marker, err := w.makeClaim(ctx, gitstate.ClaimRequest{Remote: w.opts.Remote, Branch: w.branch, Ref: claim.Ref, Worker: w.opts.ID,
		Fingerprint: claim.Fingerprint, Expires: time.Now().Add(w.lease), Delivered: d.Commit})
	if err != nil {
		return err
	}
	err = w.retry(ctx, "deliver "+d.Key, func() error {
		w.trips.deliver.Add(1)
		err := w.repo.PushCAS(ctx, w.opts.Remote, []gitstate.PushRef{
			{Local: d.Commit, Remote: gitstate.ResultRef(d.Key), Expect: ""},
			{Local: marker.Commit, Remote: claim.Ref, Expect: claim.Commit},
		})
		if errors.Is(err, gitstate.ErrRefMoved) {
			// A push whose answer was lost may have landed: then the
			// claim is the marker.
			if got, lerr := w.repo.RemoteRef(ctx, w.opts.Remote, claim.Ref); lerr == nil && got == marker.Commit {
				return nil
			}
		}
		return err
	})
	w.mu.Lock()
	delete(w.held, d.Key)
	integ := w.integ.Ref != ""
	w.mu.Unlock()
	switch {
	case err == nil && integ:
		// The integrator lands its own result at once.
		signal(w.kick)
	default:
		// A slot is free: the next look comes as soon as one is worth
		// it (nextPoll); the next claim looks afresh anyway.
		signal(w.wake)
	}
	if errors.Is(err, gitstate.ErrRefMoved) {
		// Still this worker's claim (another result got there first):
		// give it up rather than leave it to lapse.
		w.trips.release.Add(1)
		_ = w.repo.ReleaseClaim(ctx, w.opts.Remote, claim)
		return orchestrator.ErrClaimLost
	}
	return err
}

// Release gives up the claim of a unit that ended without a result.
func (w *worker) Release(ctx context.Context, key string) {
	w.claimMu.Lock()
	defer w.claimMu.Unlock()
	w.mu.Lock()
	claim, ok := w.held[key]
	delete(w.held, key)
	w.mu.Unlock()
	if !ok {
		return
	}
	defer signal(w.wake)
	err := w.retry(ctx, "release "+key, func() error {
		w.trips.release.Add(1)
		return w.repo.ReleaseClaim(ctx, w.opts.Remote, claim)
	})
	if err != nil && !errors.Is(err, gitstate.ErrRefMoved) {
		w.note("release the claim of %s: %v (it lapses by itself)", key, err)
	}
}

// releaseAll gives up what the worker still holds when it stops.
func (w *worker) releaseAll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, w.lease)
	defer cancel()
	w.mu.Lock()
	var keys []string
	for k := range w.held {
		keys = append(keys, k)
	}
	integ := w.integ
	w.integ = gitstate.Claim{}
	w.mu.Unlock()
	for _, k := range keys {
		w.Release(ctx, k)
	}
	if integ.Ref != "" {
		w.trips.role.Add(1)
		_ = w.repo.ReleaseClaim(ctx, w.opts.Remote, integ)
	}
}

// renewLoop renews every claim the worker holds each third of the lease.
// A claim that another worker took over meanwhile (this worker was cut off
// for longer than the lease) is dropped: its result will be discarded.
func (w *worker) renewLoop(ctx context.Context) {
	t := time.NewTicker(w.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		held := make(map[string]gitstate.Claim, len(w.held))
		for k, c := range w.held {
			held[k] = c
		}
		w.mu.Unlock()
		for key, c := range held {
			w.renew(ctx, key, c)
		}
	}
}

// renew moves one held claim's lease on.
func (w *worker) renew(ctx context.Context, key string, c gitstate.Claim) {
	w.claimMu.Lock()
	defer w.claimMu.Unlock()
	w.mu.Lock()
	cur, still := w.held[key]
	w.mu.Unlock()
	if !still || cur.Commit != c.Commit {
		return // delivered or released meanwhile
	}
	var next gitstate.Claim
	req, err := w.makeClaim(ctx, gitstate.ClaimRequest{Remote: w.opts.Remote, Branch: w.branch, Ref: c.Ref, Worker: w.opts.ID,
		Fingerprint: c.Fingerprint, Expires: time.Now().Add(w.lease), Expect: c.Commit})
	if err == nil {
		err = w.retry(ctx, "renew "+key, func() error {
			w.trips.renew.Add(1)
			var err error
			next, err = w.repo.PushClaim(ctx, req)
			return err
		})
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case errors.Is(err, gitstate.ErrRefMoved):
		delete(w.held, key)
		w.noteLocked("%s: the claim lapsed and another worker took it over; this worker's result will be discarded", key)
	case err == nil:
		w.held[key] = next
	case ctx.Err() == nil:
		w.noteLocked("renew the claim of %s: %v", key, err)
	}
}

func (w *worker) noteLocked(format string, args ...any) {
	w.mu.Unlock()
	defer w.mu.Lock()
	w.note(format, args...)
}

// makeClaim writes req's claim commit, as gitstate's MakeClaim does, and
// remembers it as this worker's own: a claim under this worker's ID whose
// commit it did not make is another process's (see twinsLocked), even
// one whose push answer was lost.
func (w *worker) makeClaim(ctx context.Context, req gitstate.ClaimRequest) (gitstate.ClaimRequest, error) {
	req, err := w.repo.MakeClaim(ctx, req)
	if err == nil {
		w.mu.Lock()
		w.own[req.Commit] = true
		w.mu.Unlock()
	}
	return req, err
}

// twinsLocked names the live claims of view (units and the integrator's
// role) that carry this worker's ID but that this process did not make:
// another worker runs under the same --id. A delivered claim is left out:
// it never lapses, and its result lands whoever made it (a worker killed
// and started again under its ID delivered it before).
func (w *worker) twinsLocked(view gitstate.RemoteWork) []string {
	now := time.Now()
	var keys []string
	if c := view.Integrator; c.Ref != "" && c.Worker == w.opts.ID && !c.Expired(now) && !w.own[c.Commit] {
		keys = append(keys, "the integrator's role")
	}
	for key, c := range view.Claims {
		if c.Worker == w.opts.ID && c.Delivered == "" && !c.Expired(now) && !w.own[c.Commit] {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	return keys
}

// twinWaits says whether this worker waits for another process that
// claims under its ID (a second worker started with the same --id, or one
// killed and started again before its leases lapsed): holding no unit, it
// claims nothing and does not integrate until those claims are gone or
// have lapsed, saying so once, and once when it goes on. One that holds
// units stops instead (an *orchestrator.ConfigError, exit 2) once they
// delivered (a *localError, see stopOn): their claims are its own (it
// renews and delivers only what it pushed), so their work is not thrown
// away, but it claims nothing more and leaves the integrator's role to the
// twin rather than wait for a process it cannot tell apart from itself.
func (w *worker) twinWaits() (bool, error) {
	w.mu.Lock()
	twins, units := w.twins, len(w.held)
	was := w.twinSaid
	w.twinSaid = len(twins) > 0
	w.mu.Unlock()
	switch {
	case len(twins) > 0 && units > 0:
		return false, &orchestrator.ConfigError{Err: &localError{fmt.Sprintf("another worker runs as %q on %s (it holds %s): give each running worker an --id of its own; this one stops",
			w.opts.ID, w.opts.Remote, strings.Join(twins, ", "))}}
	case len(twins) > 0 && !was:
		w.note("waiting: another worker runs as %q on %s (it holds %s): give each running worker an --id of its own; this one claims nothing until those claims are gone (a killed worker's claims lapse with their lease)",
			w.opts.ID, w.opts.Remote, strings.Join(twins, ", "))
	case len(twins) == 0 && was:
		w.note("the other worker that ran as %q is gone: this one goes on", w.opts.ID)
	}
	return len(twins) > 0, nil
}

// dropRole gives the integrator's role up, if this worker holds it.
func (w *worker) dropRole(ctx context.Context) {
	w.mu.Lock()
	integ := w.integ
	w.integ = gitstate.Claim{}
	w.mu.Unlock()
	if integ.Ref == "" {
		return
	}
	w.trips.role.Add(1)
	if err := w.repo.ReleaseClaim(ctx, w.opts.Remote, integ); err != nil && !errors.Is(err, gitstate.ErrRefMoved) {
		w.note("release the integrator's role: %v (it lapses by itself)", err)
	}
}
