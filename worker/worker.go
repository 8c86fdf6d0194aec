// Package worker is `codemachine worker`: a client of the orchestrator that
// shares a workflow's units with other workers on other machines through a
// shared git remote (docs/workers.md). Each worker claims due units on the
// remote with a lease-checked atomic push, runs them exactly as a local run
// does, and delivers each result to a result ref; one worker at a time, the
// integrator (elected through a claim of its own), lands the results on the
// branch in plan order with a compare-and-swap push.
package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/orchestrator"
)

// Command is what the lock file says while a worker runs a pass.
const Command = "codemachine worker"

// DefaultLease is how long a claim lasts unless renewed.
const DefaultLease = 2 * time.Minute

// Options configure a worker.
type Options struct {
	// Remote is the configured remote's name ("" = origin).
	Remote string
	// ID names this worker on the remote ("" = host-pid-random).
	ID string
	// Slots is how many tasks run at once (0 = 1).
	Slots int
	// Once ends the worker when nothing is due, claimed or waiting to
	// land any more, instead of waiting for more work.
	Once bool
	// Lease is how long a claim lasts unless renewed (0 = DefaultLease).
	// Claims are renewed every third of it, and an idle worker looks at
	// the remote every sixth of it (at most every 5 s); one with other
	// workers' units in flight looks sooner (docs/workers.md).
	Lease time.Duration
	// Run are the options of every pass (overrides, record).
	Run orchestrator.RunOptions
	// OnNote tells the user what the worker does beside the passes'
	// events: claims lost, the integrator's role, the remote unreachable.
	OnNote func(string)
	// OnPass is called after every pass that did something.
	OnPass func(*orchestrator.Summary, error)
}

// UnfinishedError ends a --once worker that leaves units due that no
// worker can run any more (each failed, or they need a local run). Review
// are those of them that wait for a review on the remote: not unfinished
// work, but still left when the worker ends.
type UnfinishedError struct{ Keys, Review []string }

// Error names them.
func (e *UnfinishedError) Error() string {
	msg := fmt.Sprintf("%d unit(s) still due that the workers did not finish: %v (codemachine status; codemachine retry)", len(e.Keys), e.Keys)
	if len(e.Review) > 0 {
		msg += fmt.Sprintf("; waiting for review: %v", e.Review)
	}
	return msg
}

// worker is one worker process's state.
type worker struct {
	o      *orchestrator.Orchestrator
	repo   *gitstate.Repo
	opts   Options
	branch string
	lease  time.Duration
	poll   time.Duration

	tickMu sync.Mutex // one look at the remote at a time (tick)
	// fetchMu orders the fetches (a tick's and a claim's fresh look),
	// followMu the moves of the local branch to the remote's tip.
	fetchMu, followMu sync.Mutex
	// claimMu orders the pushes that move this worker's claims (renew,
	// deliver, release): each must expect the claim commit the one before
	// it left.
	claimMu sync.Mutex

	mu      sync.Mutex
	view    gitstate.RemoteWork
	viewAt  time.Time
	held    map[string]gitstate.Claim // units claimed and not delivered or released
	integ   gitstate.Claim            // the integrator's claim while this worker holds it
	down    bool                      // the remote was unreachable at the last try
	downAt  time.Time                 // when it was found unreachable (down)
	upAt    time.Time                 // when it last answered after being found unreachable
	fast    time.Duration             // the next look's delay while others' work is in flight (nextPoll)
	changed chan struct{}             // the remote's state changed (a tick saw something new)
	kick    chan struct{}             // look at the remote now (this worker delivered a result)
	wake    chan struct{}             // a slot came free: the next look's time is due anew (nextPoll)
	refused int                       // claims refused in the current pass
	spread  atomic.Int64              // the first pick's offset (FirstPick), 0 once asked
	// lastFailed are the failures of the last pass, by unit (newFailures).
	lastFailed map[string]string
	// lockedBy is the pid of the other codemachine the worker last
	// waited for (waitLock).
	lockedBy int

	// own are the claim commits this process made (makeClaim): a live
	// claim under its ID that is not one of them is another process's.
	own map[string]bool
	// twins are the live claims another process holds under this
	// worker's ID, as the last look saw them (twinsLocked); twinSaid
	// whether the worker said it waits for them.
	twins    []string
	twinSaid bool

	trips trips // the git round trips to the remote, by kind

	// halt stops the worker with an error its background looks at the
	// remote found (refusedForGood): the passes and the units running end.
	halt context.CancelCauseFunc
	// stopErr is why the worker stops once its running units delivered
	// (stopOn: the fault lies in its clone alone); the passes start
	// nothing more meanwhile.
	stopErr error
}

// trips counts the git commands that reach the remote (each try of a
// retried one), by what they are for: the cost of sharing work through
// a remote (docs/benchmarks.md).
type trips struct {
	fetch, claim, renew, deliver, release, role, land atomic.Int64
}

func (t *trips) String() string {
	return fmt.Sprintf("%d fetches, %d claims, %d renewals, %d deliveries, %d releases, %d integrator role, %d landings",
		t.fetch.Load(), t.claim.Load(), t.renew.Load(), t.deliver.Load(), t.release.Load(), t.role.Load(), t.land.Load())
}

// Run runs the worker until ctx is done (or, with Once, until the work is
// done). It returns orchestrator.ErrInterrupted when ctx ends it.
func Run(ctx context.Context, o *orchestrator.Orchestrator, opts Options) error {
	w, err := newWorker(ctx, o, opts)
	if err != nil {
		return err
	}
	// A landing or follow that a kill -9 cut short (of a worker, whose
	// looks move the branch outside a pass, or of a run) is finished or
	// undone first, as a pass would: the first look moves the branch and
	// would otherwise wait on the index.lock it left, and fail.
	if err := o.RecoverIdle(ctx, Command); err != nil {
		return err
	}
	if err := w.tick(ctx); err != nil {
		return interrupted(ctx, err)
	}
	run, halt := context.WithCancelCause(ctx)
	defer halt(nil)
	w.halt = halt
	bg, stop := context.WithCancel(run)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.renewLoop(bg) }()
	go func() { defer wg.Done(); w.tickLoop(bg) }()
	err = w.loop(run)
	stop()
	wg.Wait()
	if w.stopping() != nil && run.Err() == nil {
		w.lastLanding(run)
	}
	w.releaseAll(context.WithoutCancel(ctx))
	w.dropScratch(context.WithoutCancel(ctx))
	w.note("round trips to the remote: %s", &w.trips)
	if ctx.Err() == nil && run.Err() != nil {
		return context.Cause(run) // halted: the remote refused for good
	}
	return interrupted(ctx, err)
}

// lastLanding lands, when this worker is the integrator, what its units
// delivered before it stops on a fault of its clone's (stopOn): those
// results do not wait for another worker to take the role over. It looks
// again while a look pushed something (the holds of a rewind go first,
// then what lands), a few times at most. The clone's branch is not moved:
// it cannot follow, which is why the worker stops.
func (w *worker) lastLanding(ctx context.Context) {
	w.tickMu.Lock()
	defer w.tickMu.Unlock()
	for range maxLastLooks {
		w.mu.Lock()
		integ := w.integ.Ref != ""
		w.mu.Unlock()
		if !integ {
			return
		}
		view, err := w.fetch(ctx)
		if err == nil {
			err = w.mirrorHolds(view)
		}
		if err != nil || view.Tip == "" || !w.integrator(ctx, view) {
			return
		}
		if pushed, err := w.integrate(ctx, view); err != nil || !pushed {
			if err != nil {
				w.note("%v", err)
			}
			return
		}
	}
}

// maxLastLooks bounds lastLanding's looks.
const maxLastLooks = 4

// dropScratch deletes the integrator's scratch branch and the copies of
// the fleet's refs when the worker stops: the branch is made afresh from
// the remote's tip at every landing, and one left behind would sit among
// the user's branches (git branch) long after the worker is gone; the
// copies are fetched again at the next look. What a kill left is dropped
// by the next worker to stop in the clone.
func (w *worker) dropScratch(ctx context.Context) {
	if err := w.repo.DeleteRef(ctx, "refs/heads/"+integrateBranch, ""); err != nil {
		w.note("delete the scratch branch %s: %v", integrateBranch, err)
	}
	// The copies of the fleet's refs served this run's looks (the holds
	// live on in the clone's holds.yaml).
	if err := w.repo.ForgetFleet(ctx, w.opts.Remote); err != nil {
		w.note("delete the copies of %s's fleet refs: %v", w.opts.Remote, err)
	}
}

// interrupted is orchestrator.ErrInterrupted in place of err when ctx
// ended the worker: a look at the remote that was waiting out an outage
// (or any git command) ends with the context's error, which is the
// interruption, not a failure of its own (exit 130, not 1).
func interrupted(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return orchestrator.ErrInterrupted
	}
	return err
}

// refusedForGood says whether err, from a look at the remote, is one that
// waiting does not cure: the remote refused a push for another reason
// than a lost race (a hook, branch protection), or it cannot be used at
// all (no such repository, no permission), or the clone cannot follow it
// (its branch has commits the remote lacks: a person rewrote the remote's
// branch, or committed in the worker's clone).
func refusedForGood(err error) bool {
	var rej *gitstate.PushRejectedError
	var re *gitstate.RemoteError
	var ce *orchestrator.ConfigError
	switch {
	case errors.As(err, &ce):
		return true
	case errors.As(err, &rej):
		return !rej.Moved
	case errors.As(err, &re):
		return !re.Transient
	}
	return false
}

func newWorker(ctx context.Context, o *orchestrator.Orchestrator, opts Options) (*worker, error) {
	if opts.Remote == "" {
		opts.Remote = "origin"
	}
	if opts.ID == "" {
		opts.ID = defaultID()
	}
	if opts.Slots <= 0 {
		opts.Slots = 1
	}
	lease := opts.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	head, err := o.Repo().Head()
	if err != nil {
		return nil, err
	}
	if head.Branch == "" {
		return nil, &orchestrator.ConfigError{Err: errors.New("HEAD is detached: a worker works on the checked-out branch, which follows the remote's")}
	}
	// A remote that is not configured is a mistake to fix, not an outage
	// to retry or a failed step.
	if o.Repo().RemoteURL(ctx, opts.Remote) == "" {
		return nil, &orchestrator.ConfigError{Err: fmt.Errorf("worker: no remote %q is configured (git remote add %s URL, or --remote NAME)", opts.Remote, opts.Remote)}
	}
	w := &worker{o: o, repo: o.Repo(), opts: opts, branch: head.Branch, lease: lease,
		poll: min(max(lease/6, 50*time.Millisecond), 5*time.Second), held: map[string]gitstate.Claim{}, own: map[string]bool{},
		changed: make(chan struct{}, 1), kick: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
	w.fast = w.fastPoll()
	w.spread.Store(firstPick(opts.ID, opts.Slots))
	return w, nil
}

// The looks at the remote while other workers' units are in flight: the
// first fastMin after the remote changed, then twice as long each time
// up to fastMax (never longer than the idle poll).
const (
	fastMin = 100 * time.Millisecond
	fastMax = 500 * time.Millisecond
)

func (w *worker) fastPoll() time.Duration { return min(fastMin, w.poll) }

// nextPoll is how long the worker waits before its next look at the
// remote: promptly (fastMin doubling to fastMax, from the remote's last
// change) while another worker's unit is claimed or a result waits to
// land and this worker has something to do about it (it is the
// integrator, or it has a free slot: a unit may come free, or the work
// end); the poll interval (a sixth of the lease, at most 5 s) otherwise.
// A worker whose own units are all that is in flight learns nothing from
// looking sooner: its deliveries kick a look (tickLoop).
func (w *worker) nextPoll() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.integ.Ref == "" && len(w.held) >= w.opts.Slots {
		return w.poll
	}
	busy := len(w.view.Results) > 0
	for _, c := range w.view.Claims {
		if c.Worker != w.opts.ID {
			busy = true
			break
		}
	}
	if !busy {
		return w.poll
	}
	d := w.fast
	w.fast = min(2*w.fast, fastMax, w.poll)
	return d
}

// firstPick is the worker's first pick's offset among the due tasks,
// derived from its id: workers that start together spread over the first
// tasks (up to four per slot) instead of all claiming the first one.
func firstPick(id string, slots int) int64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int64(h.Sum32() % uint32(4*max(slots, 1)))
}

// FirstPick is the orchestrator's Spreader: the offset of this worker's
// very first pick, 0 after it was asked once (every later pick goes in
// plan order).
func (w *worker) FirstPick() int { return int(w.spread.Swap(0)) }

// CheckID reports whether id can name a worker on the remote ("" is the
// default ID, which can). A claim records its worker in a commit trailer,
// whose value git keeps on one line with single spaces: an ID that this
// changes (a leading or trailing space, a tab, a line break, two spaces in
// a row) would read back as another worker's, so the worker would wait for
// itself as the integrator forever. Control characters would also reach
// other users' terminals through status.
func CheckID(id string) error {
	switch {
	case id == "":
		return nil
	case strings.TrimSpace(id) == "":
		return errors.New("a worker ID cannot be blank")
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return errors.New("a worker ID cannot hold a control character (a tab, a line break, ...)")
	case strings.Join(strings.Fields(id), " ") != id:
		return errors.New("a worker ID cannot start or end with a space or hold two in a row: its claims would not keep them")
	}
	return nil
}

func defaultID() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

func (w *worker) note(format string, args ...any) {
	if w.opts.OnNote != nil {
		w.opts.OnNote(fmt.Sprintf(format, args...))
	}
}

// loop runs passes: each claims and runs what it can; between passes it
// waits for the remote to change (or the next look at it).
func (w *worker) loop(ctx context.Context) error {
	passes := 0
	for {
		if err := w.ended(ctx); err != nil {
			return err
		}
		head, err := w.repo.Head()
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.refused = 0
		reviews := maps.Clone(w.view.Reviews)
		w.mu.Unlock()
		opts := w.opts.Run
		opts.Remote = w
		opts.Command = Command
		opts.SkipFailed = true
		opts.Parallel = w.opts.Slots
		sum, err := w.o.Run(ctx, opts)
		if waited, werr := w.waitLock(ctx, passes, err); waited || werr != nil {
			if werr != nil {
				return werr
			}
			continue
		}
		passes++
		var failed *orchestrator.StepFailedError
		var review *orchestrator.ReviewPendingError
		var needsYou *orchestrator.NeedsYouError
		switch {
		case errors.Is(err, orchestrator.ErrInterrupted) || ctx.Err() != nil:
			return orchestrator.ErrInterrupted
		case errors.As(err, &failed), errors.As(err, &review), errors.As(err, &needsYou):
			// What waits for a person ends a --once worker only when
			// nothing else is left (finished).
		case err != nil:
			return err
		}
		idle := sum == nil || len(sum.Delivered) == 0 && !w.newFailures(sum.Failed)
		if w.opts.OnPass != nil && !idle {
			w.opts.OnPass(sum, err)
		}
		if w.opts.Once && idle {
			done, err := w.finished(ctx, head.Commit, reviews, sum)
			if done || err != nil {
				return err
			}
		}
		if !idle {
			// A pass that did something may have ended early (its claim
			// found the branch behind after its own result landed):
			// the next one starts at once instead of after a poll.
			continue
		}
		select {
		case <-ctx.Done():
			return orchestrator.ErrInterrupted
		case <-w.changed:
		case <-time.After(w.poll):
		}
	}
}

// ended is why the loop ends before its next pass: interrupted (ctx), or
// stopping once the units it ran delivered (stopOn); nil to go on.
func (w *worker) ended(ctx context.Context) error {
	if ctx.Err() != nil {
		return orchestrator.ErrInterrupted
	}
	return w.stopping()
}

// waitLock waits, when a pass found the repository held by another
// codemachine (a person's approve, review push or run in this clone)
// after the worker's first pass, for the next look at the remote, and
// reports that it did: the worker holds the lock only while a pass runs,
// and a command that takes it in between must not end a worker that has
// been at work. It says so once per holder. At the first pass, another
// holder is the error (exit 2), as for run.
func (w *worker) waitLock(ctx context.Context, passes int, err error) (bool, error) {
	var locked *gitstate.LockedError
	if passes == 0 || !errors.As(err, &locked) {
		return false, nil
	}
	if w.lockedBy != locked.PID {
		w.lockedBy = locked.PID
		w.note("waiting: %v", locked)
	}
	select {
	case <-ctx.Done():
		return false, orchestrator.ErrInterrupted
	case <-w.changed:
	case <-time.After(min(w.poll, lockRetry)):
	}
	return true, nil
}

// lockRetry is how long a worker waits at most before it tries a pass
// again while another codemachine holds the repository.
const lockRetry = 500 * time.Millisecond

// finished reports whether a --once worker is done after a pass (sum)
// that started nothing from base with the review branches reviews: a
// fresh look at the remote (and a landing, if this worker integrates)
// finds the branch still at base, the same reviews, nothing claimed, no
// result waiting, and the pass was refused no claim. Units still due then
// make it an error: an *UnfinishedError when the pass failed some or
// skipped some that failed here (units held here after a rollback or
// reset are no error, as for run), else an *orchestrator.ReviewPendingError or
// *orchestrator.NeedsYouError (exit 3, as for run) when what is left
// waits for a review or a person (a local run).
func (w *worker) finished(ctx context.Context, base string, reviews map[string]string, sum *orchestrator.Summary) (bool, error) {
	if err := w.stopping(); err != nil {
		return true, err
	}
	if err := w.tick(ctx); err != nil {
		return false, err
	}
	w.mu.Lock()
	view, refused := w.view, w.refused
	moved := view.Tip != base || !maps.Equal(reviews, view.Reviews)
	busy := len(w.held) > 0 || len(view.Claims) > 0 || len(view.Results) > 0 || refused > 0
	w.mu.Unlock()
	if moved {
		// The pass looked at an older branch: the next one, at once,
		// looks at this one.
		signal(w.changed)
	}
	if busy || moved {
		return false, nil
	}
	due, err := w.o.DueUnits(base, w.opts.Run.Overrides)
	if err != nil || len(due) == 0 {
		return err == nil, err
	}
	onlyHeld, err := w.onlyHeld(base, sum)
	if err != nil {
		return false, err
	}
	if sum != nil && len(sum.Failed) == 0 && (len(sum.Skipped) == 0 || onlyHeld) {
		if len(sum.Review) > 0 {
			return true, &orchestrator.ReviewPendingError{Steps: eventKeys(sum.Review)}
		}
		if len(sum.NeedsYou) > 0 {
			return true, &orchestrator.NeedsYouError{Steps: eventKeys(sum.NeedsYou), Hint: "not run by workers: codemachine run in a clone"}
		}
		if onlyHeld {
			// What is left waits behind units a rollback or reset undid
			// here: as for run, that is not a failure.
			return true, nil
		}
	}
	unfinished := &UnfinishedError{}
	for _, key := range due {
		if _, waits := view.Reviews[key]; waits {
			unfinished.Review = append(unfinished.Review, key)
		} else {
			unfinished.Keys = append(unfinished.Keys, key)
		}
	}
	if len(unfinished.Keys) == 0 {
		return true, &orchestrator.ReviewPendingError{Steps: unfinished.Review}
	}
	return true, unfinished
}

// onlyHeld says whether every unit the pass (sum) from base skipped is
// held in this clone (a rollback or reset undid it), and says which once.
func (w *worker) onlyHeld(base string, sum *orchestrator.Summary) (bool, error) {
	if sum == nil || len(sum.Skipped) == 0 {
		return false, nil
	}
	held, err := w.o.HeldUnits(base, w.opts.Run.Overrides)
	if err != nil {
		return false, err
	}
	keys := eventKeys(sum.Skipped)
	for _, k := range keys {
		if !held[k] {
			return false, nil
		}
	}
	w.note("held here after a rollback or reset: %s (not run again with the same inputs; codemachine retry KEY runs one)", strings.Join(keys, ", "))
	return true, nil
}

// newFailures says whether a pass's failures differ from the last pass's
// (by unit and message), and remembers them. A failure the next pass
// meets again as it was (a plan that cannot be planned: its task depends
// on a task it lacks) is nothing new: the pass was idle, and the worker
// waits for the remote to change instead of passing again at once, for
// ever (a --once worker ends, exit 1).
func (w *worker) newFailures(failed []orchestrator.Event) bool {
	cur := make(map[string]string, len(failed))
	for _, e := range failed {
		cur[e.Key()] = e.Message
	}
	news := false
	for k, m := range cur {
		if prev, ok := w.lastFailed[k]; !ok || prev != m {
			news = true
		}
	}
	w.lastFailed = cur
	return news
}

func eventKeys(events []orchestrator.Event) []string {
	keys := make([]string, 0, len(events))
	for _, e := range events {
		keys = append(keys, e.Key())
	}
	return keys
}

// tickLoop looks at the remote while passes run: promptly while other
// workers' units are in flight, every poll interval when nothing is
// (nextPoll), and at once after this worker delivered a result.
func (w *worker) tickLoop(ctx context.Context) {
	t := time.NewTimer(w.nextPoll())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
			// The integrator's own delivery: landed at once.
		case <-w.wake:
			// A slot came free: the look this worker waits for may be
			// due sooner now.
			t.Reset(w.nextPoll())
			continue
		}
		err := w.tick(ctx)
		switch {
		case err == nil || ctx.Err() != nil:
		case refusedForGood(err):
			// Nothing this worker runs could land (or be claimed):
			// stop now rather than run units for nothing; or, when
			// only this clone is at fault, once its units delivered.
			w.stopOn(err)
			if w.stopping() == nil {
				return
			}
		default:
			w.note("%v", err)
		}
		t.Reset(w.nextPoll())
	}
}
