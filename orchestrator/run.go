package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// RunOptions select what a run does.
type RunOptions struct {
	Overrides
	// Steps are the named targets, "STEP" or "STEP/TASK"; empty = all due.
	Steps []string
	// Force runs the named steps even when they are not due.
	Force bool
	// Record writes a replay recording of every agent step into the step's
	// commit (.codemachine/recordings/).
	Record bool
	// DryRun prints the plan and the rendered prompts to Out and runs nothing.
	DryRun bool
	Out    io.Writer
	// Parallel caps concurrent tasks of foreach steps (0 = the step's own).
	Parallel int
	// SkipFailed leaves steps whose last failure had the same fingerprint
	// alone (watch mode: a failure waits for new inputs or `retry`); a unit
	// the last run was interrupted in runs again.
	SkipFailed bool
	// Watching says the run is a watcher's pass: an interactive unit that
	// waits tells the person to stop the watcher first, since run and
	// open refuse while it holds the repository.
	Watching bool
	// Command is what the lock file says is running.
	Command string
	// Cascade re-runs the done tasks whose work no longer matches the
	// plan (reworded since they ran, or built on a task that ran or runs
	// again), unchecking them in one commit first.
	Cascade bool
	// UpdateUses pins every git source of uses: again, to what its ref
	// names now, before the run (run --update-uses).
	UpdateUses bool
	// Terminal is the person's terminal: interactive steps run their
	// agent's own UI on it. nil (watch, hooks, CI, no tty): they wait as
	// needs-you while the rest of the workflow goes on.
	Terminal *os.File
	// Interactive makes the named steps interactive in this run;
	// InteractiveAll every agent step (run --interactive).
	Interactive    []string
	InteractiveAll bool
	// OnTerminal, when set, is called with true before an agent's UI takes
	// the terminal and with false once it is given back: the caller stops
	// drawing on it meanwhile.
	OnTerminal func(taken bool)
	// Open, when set, is the unit codemachine open takes up (Open).
	Open *OpenTarget
	// Remote, when set, makes the run a worker's: each unit is claimed
	// before it starts and delivered instead of landed (remote.go).
	Remote Remote
}

// Summary is what a run did.
type Summary struct {
	Run     string  `json:"run"`
	Landed  []Event `json:"landed"`
	Failed  []Event `json:"failed"`
	Skipped []Event `json:"skipped"`
	Review  []Event `json:"review"` // commits waiting on review branches
	// NeedsYou are the interactive units that wait for a terminal.
	NeedsYou []Event `json:"needs_you,omitempty"`
	// Delivered are the units a worker's run handed to the integrator.
	Delivered []Event `json:"delivered,omitempty"`
	TokensIn  int64   `json:"tokens_in"`
	TokensOut int64   `json:"tokens_out"`
	CostUSD   float64 `json:"cost_usd"`
}

// runState is what one run's units share with its scheduler: the run's
// identity and options, its summary, the branches it wrote and what it is
// running. What only the scheduler needs is in scheduler.
type runState struct {
	id     string
	branch string
	opts   RunOptions
	// repo is where the running file is written.
	repo *gitstate.Repo
	// now is the clock that stamps the summary's events (nil: none).
	now func() time.Time
	// failed holds step ids that failed in this run; their downstream waits.
	failed  map[string]bool
	summary *Summary
	// mu guards failed, summary, running and groups, which units
	// running concurrently use.
	mu      sync.Mutex
	running map[string]string // unit key -> started at, as in the running file
	groups  map[string]int    // unit key -> process group of its agent
	// unwritten: running has units the running file does not name yet
	// (setRunning defers additions to flushRunning or agentStarted).
	unwritten bool

	// sandboxWarned: the run said what the sandbox lacks here.
	sandboxWarned sync.Once
	// terminal is held by the interactive unit whose agent's UI has the
	// person's terminal: one at a time.
	terminal sync.Mutex
}

// stamp gives e the time it happened, as emit does, for the summary's
// copy of it (run --json).
func (rs *runState) stamp(e Event) Event {
	if e.At.IsZero() && rs.now != nil {
		e.At = rs.now()
	}
	return e
}

// stepFailed reports whether a step failed in this run.
func (rs *runState) stepFailed(id string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.failed[id]
}

// recordFailure adds a failed (or unlandable) unit to the summary; its
// step's downstream waits for the rest of the run.
func (rs *runState) recordFailure(e Event) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	e = rs.stamp(e)
	rs.failed[e.Step] = true
	rs.summary.Failed = append(rs.summary.Failed, e)
}

func (rs *runState) recordLanded(e Event) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	e = rs.stamp(e)
	rs.summary.Landed = append(rs.summary.Landed, e)
}

func (rs *runState) recordReview(e Event) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	e = rs.stamp(e)
	rs.summary.Review = append(rs.summary.Review, e)
}

// unrecordReview takes key's wait for review out of the summary: its
// review was released (a stale one), and the unit runs again.
func (rs *runState) unrecordReview(key string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.summary.Review = slices.DeleteFunc(rs.summary.Review, func(e Event) bool {
		return (e.Task == "" && e.Step == key) || e.Step+"/"+e.Task == key
	})
}

func (rs *runState) recordNeedsYou(e Event) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	e = rs.stamp(e)
	rs.summary.NeedsYou = append(rs.summary.NeedsYou, e)
}

func (rs *runState) recordDelivered(e Event) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	e = rs.stamp(e)
	rs.summary.Delivered = append(rs.summary.Delivered, e)
}

func (rs *runState) recordSkipped(e Event) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	e = rs.stamp(e)
	rs.summary.Skipped = append(rs.summary.Skipped, e)
}

// addUsage adds an engine run's usage to the run's totals (the budget).
func (rs *runState) addUsage(tokensIn, tokensOut int64, cost float64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.summary.TokensIn += tokensIn
	rs.summary.TokensOut += tokensOut
	rs.summary.CostUSD += cost
}

// totals returns a copy of the summary's counters.
func (rs *runState) totals() Summary {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return Summary{TokensIn: rs.summary.TokensIn, TokensOut: rs.summary.TokensOut, CostUSD: rs.summary.CostUSD}
}

// setRunning records the units in progress for `status` (key -> started
// at): running, or finished and waiting for their turn to land (not
// landed yet, so not done, and not due either).
// A unit already in progress keeps the time it started at; the others
// start at now.
//
// A unit that ends is taken off the running file at once (status must not
// show it running after that). Units only added are written later: by
// agentStarted, which writes the file with the agent's process group as
// soon as the agent starts (for a step, a few milliseconds after this),
// else by flushRunning when the scheduler next wakes. One write per step
// instead of two: on a busy ext4 each file written anew costs a new
// inode. Nothing but status reads the units; what a run taking over after
// a kill needs, the groups, agentStarted writes before it returns.
func (rs *runState) setRunning(keys []string, now string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	units := make(map[string]string, len(keys))
	added, removed := false, false
	for _, k := range keys {
		if at, ok := rs.running[k]; ok {
			units[k] = at
		} else {
			units[k] = now
			added = true
		}
	}
	for k := range rs.running {
		if _, ok := units[k]; !ok {
			removed = true
		}
	}
	rs.running = units
	switch {
	case removed:
		rs.writeRunning()
	case added:
		rs.unwritten = true
	}
}

// flushRunning writes the units setRunning deferred, if no write has
// named them since.
func (rs *runState) flushRunning() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.unwritten {
		rs.writeRunning()
	}
}

// agentStarted records the process group of a unit's agent (or command) in
// the running file. The unit is added to those in progress when the
// scheduler has not written it yet (it writes after starting a round of
// units): a group is only kept for a unit in progress, and a run killed
// now must leave it on record for the run that takes over to stop.
func (rs *runState) agentStarted(key string, pid int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.groups == nil {
		rs.groups = map[string]int{}
	}
	rs.groups[key] = pid
	if _, ok := rs.running[key]; !ok {
		units := maps.Clone(rs.running)
		if units == nil {
			units = map[string]string{}
		}
		now := time.Now()
		if rs.now != nil {
			now = rs.now()
		}
		units[key] = now.UTC().Format(time.RFC3339)
		rs.running = units
	}
	rs.writeRunning()
}

// writeRunning writes the running file; rs.mu must be held. With nothing
// in progress it says so (no units): the file is kept, and written in
// place (WriteLocalExchanged), since a file made anew, or removed and made
// again, for each step is an inode's creation, 0.3-1 ms of kernel time on
// a busy ext4. Readers take a file of another process than the lock's
// holder, or none, for an idle holder.
func (rs *runState) writeRunning() {
	rs.unwritten = false
	groups := map[string]int{}
	for key, pid := range rs.groups {
		if _, ok := rs.running[key]; ok {
			groups[key] = pid
		}
	}
	_ = rs.repo.WriteLocalExchanged(runningFile, Running{PID: os.Getpid(), Run: rs.id, Units: rs.running, Groups: groups})
}

// idleRunning leaves the running file saying that nothing runs where it
// names this process running something: a run that ends, or stops on an
// error, with units on record. A run that wrote none writes nothing.
func (rs *runState) idleRunning() {
	var r Running
	if rs.repo.ReadLocal(runningFile, &r) == nil && r.PID == os.Getpid() && (len(r.Units) > 0 || len(r.Groups) > 0) {
		_ = rs.repo.WriteLocalExchanged(runningFile, Running{PID: os.Getpid(), Run: rs.id})
	}
}

// unfinished is the error a run that ran to its end returns: the units
// that failed, else those waiting for review, else nil.
func (rs *runState) unfinished() error {
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
	if len(rs.summary.NeedsYou) > 0 {
		keys := make([]string, 0, len(rs.summary.NeedsYou))
		for _, e := range rs.summary.NeedsYou {
			keys = append(keys, e.Key())
		}
		if rs.opts.Watching {
			return &NeedsYouError{Steps: keys, Hint: watchingHint}
		}
		return &NeedsYouError{Steps: keys}
	}
	return nil
}

// newRunID returns a sortable, unique run id: UTC time plus random bits.
func (o *Orchestrator) newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return o.cfg.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Run runs what is due (or the named steps and what they need) until nothing
// is due, one commit per step or task. It returns a *StepFailedError when a
// step failed, a *BudgetError when the budget ran out, ErrInterrupted when
// ctx was canceled, and a *ConfigError for bad input.
func (o *Orchestrator) Run(ctx context.Context, opts RunOptions) (*Summary, error) {
	if err := o.checkEngine(opts.Overrides); err != nil {
		return nil, err
	}
	head, err := o.checkHead()
	if err != nil {
		return nil, err
	}
	if err := o.checkWorkflow(head.Commit); err != nil {
		return nil, err
	}
	if opts.Force {
		if err := o.checkForced(head.Commit, opts); err != nil {
			return nil, err
		}
	}
	if opts.DryRun {
		return nil, o.dryRun(ctx, head, opts)
	}
	if opts.Command == "" {
		opts.Command = "codemachine run"
	}
	lock, err := o.lock(opts.Command)
	if err != nil {
		return nil, err
	}
	sum, err := o.runLocked(ctx, head, opts, lock)
	lock.Release()
	// A git hook that fired while this run held the lock started no run
	// of its own: its commits get one more pass here. The hook leaves its
	// request before it looks at the lock, and this looks at requests
	// after the lock is released, so one of the two always sees the other.
	for err == nil && len(opts.Steps) == 0 && o.takeHookRequest() {
		if lock, err = o.lock(opts.Command); err != nil {
			return sum, nil // another codemachine runs now, and sees the commits
		}
		o.emit(Event{Kind: Note, Message: "commits arrived while it ran (a git hook asked for a run): one more pass"})
		var more *Summary
		if head, err = o.checkHead(); err == nil {
			more, err = o.runLocked(ctx, head, opts, lock)
			sum.add(more)
		}
		lock.Release()
	}
	return sum, err
}

// add appends what another pass of the same run did.
func (s *Summary) add(more *Summary) {
	if more == nil {
		return
	}
	s.Landed = append(s.Landed, more.Landed...)
	s.Failed = append(s.Failed, more.Failed...)
	s.Skipped = append(s.Skipped, more.Skipped...)
	s.Review = append(s.Review, more.Review...)
	s.Delivered = append(s.Delivered, more.Delivered...)
	s.TokensIn += more.TokensIn
	s.TokensOut += more.TokensOut
	s.CostUSD += more.CostUSD
}

// lock takes the repository lock; another live holder, or a ref in the way
// of codemachine's own, is a *ConfigError naming it (exit 2).
func (o *Orchestrator) lock(command string) (*gitstate.Lock, error) {
	// A ref where codemachine keeps its own (a branch named
	// "codemachine") would fail the landing of a step that already ran.
	if err := o.repo.CheckRefSpace(); err != nil {
		return nil, &ConfigError{Err: err}
	}
	lock, err := o.repo.Lock(command)
	if err != nil {
		var locked *gitstate.LockedError
		if errors.As(err, &locked) {
			return nil, &ConfigError{Err: err}
		}
		return nil, err
	}
	// A landing or rollback that a kill interrupted is finished first,
	// before anything reads the branch or the user's checkout.
	if err := o.recoverInterrupted(context.Background()); err != nil {
		lock.Release()
		return nil, err
	}
	return lock, nil
}

// checkCommitter is a *ConfigError when git could not name the committer
// of the step commits: said before a step runs, not once its agent's work
// is done and cannot be committed.
func (o *Orchestrator) checkCommitter(ctx context.Context) error {
	if err := o.repo.CheckCommitter(ctx); err != nil {
		if errors.Is(err, gitstate.ErrNoIdentity) {
			return &ConfigError{Err: gitstate.ErrNoIdentity}
		}
		return err
	}
	return nil
}

// runLocked is Run for a caller that holds the repository lock.
func (o *Orchestrator) runLocked(ctx context.Context, head gitstate.Head, opts RunOptions, lock *gitstate.Lock) (*Summary, error) {
	if err := o.checkCommitter(ctx); err != nil {
		return nil, err
	}
	if lock.TookOverFrom != 0 {
		o.emit(Event{Kind: Note, Message: fmt.Sprintf("took over a stale lock left by pid %d", lock.TookOverFrom)})
		if n := o.stopOrphans(lock.TookOverFrom); n > 0 {
			o.emit(Event{Kind: Note, Message: fmt.Sprintf("stopped %d agent process group(s) that pid %d left running", n, lock.TookOverFrom)})
		}
	}
	// What the repository looked up on PATH is looked up again once per
	// run, not at each of the dozen configuration reads of a step.
	o.repo.ForgetLookups()
	// The run's landings and worktree moves reuse one staging directory.
	defer o.repo.PoolStaging()()
	rs := &runState{
		id: o.newRunID(), branch: head.Branch, opts: opts,
		repo: o.repo, failed: map[string]bool{}, now: o.cfg.Now,
	}
	rs.summary = &Summary{Run: rs.id}
	o.sweepRunTmp(rs.id)
	o.sweepRunLogs(rs.id)
	defer rs.idleRunning()
	o.emit(Event{Kind: RunStarted, Run: rs.id})
	merged, err := o.mergedReviews(ctx, head.Commit)
	for _, m := range merged {
		step, task, _ := strings.Cut(m.key, "/")
		o.emit(Event{Kind: Note, Step: step, Task: task,
			Message: m.note(head.Branch)})
	}
	if err == nil {
		err = o.followBranch(ctx, head, opts.Overrides)
	}
	if err == nil {
		if err = o.pinUses(ctx, head, opts.UpdateUses); err == nil {
			head, err = o.checkHead() // a pin commit moved the tip
		}
	}
	if err == nil {
		err = o.refreshReviews(ctx, head, opts.Overrides)
	}
	if err == nil && opts.Cascade {
		err = o.cascade(ctx, head, opts.Overrides)
	}
	if err == nil {
		err = o.runLoop(ctx, rs)
	}
	if !errors.Is(err, ErrInterrupted) {
		o.noteStale(head.Branch, opts.Overrides)
	}
	o.noteBranchTip(head.Branch)
	t := rs.totals()
	end := Event{Kind: RunFinished, Run: rs.id, Tokens: t.TokensIn + t.TokensOut, CostUSD: t.CostUSD, CostOK: t.CostUSD > 0}
	if err != nil {
		end.Message = err.Error()
	}
	o.emit(end)
	return rs.summary, err
}

// checkHead requires a branch with at least one commit: step commits need a
// branch to land on.
func (o *Orchestrator) checkHead() (gitstate.Head, error) {
	head, err := o.repo.Head()
	if err != nil {
		return head, err
	}
	if head.Branch == "" {
		for _, dir := range []string{"rebase-merge", "rebase-apply"} {
			if fi, err := os.Stat(filepath.Join(o.repo.GitDir(), dir)); err == nil && fi.IsDir() {
				// git rebase detaches HEAD while it works: the branch
				// is the rebase's until it ends.
				return head, configErrorf("a rebase is in progress (HEAD is detached while it works): finish it (git rebase --continue) or abort it (git rebase --abort), then run again")
			}
		}
		return head, configErrorf("HEAD is detached: check out a branch for the step commits to land on")
	}
	if head.Commit == "" {
		return head, configErrorf("branch %s has no commits yet: commit .codemachine/ first (git add .codemachine && git commit)", head.Branch)
	}
	return head, nil
}

// checkWorkflow requires the workflow file at commit, before anything takes
// the lock or writes under .git/codemachine: a repository without one is
// not codemachine's to touch.
func (o *Orchestrator) checkWorkflow(commit string) error {
	if _, err := o.repo.ReadFile(commit, workflow.WorkflowFile); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// .codemachine committed as a link to a directory: say so,
			// rather than that there is no workflow.
			if fsys, ferr := o.repo.TreeFS(commit); ferr == nil {
				if lerr := workflow.CheckNoLink(fsys, workflow.WorkflowFile); lerr != nil {
					return &ConfigError{Err: lerr}
				}
				if werr := workflow.WorkflowInTheWay(fsys); werr != nil {
					return &ConfigError{Err: werr}
				}
			}
			return &ConfigError{Err: workflow.ErrNoWorkflow}
		}
		if errors.Is(err, gitstate.ErrIsDir) {
			return configErrorf("%s is a directory, not a file", workflow.WorkflowFile)
		}
		return fmt.Errorf("read %s: %w", workflow.WorkflowFile, err)
	}
	return nil
}
