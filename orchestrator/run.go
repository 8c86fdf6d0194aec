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
	"sort"
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
	// alone (watch mode: a failure waits for new inputs or `retry`).
	SkipFailed bool
	// Command is what the lock file says is running.
	Command string
}

// Summary is what a run did.
type Summary struct {
	Run       string  `json:"run"`
	Landed    []Event `json:"landed"`
	Failed    []Event `json:"failed"`
	Skipped   []Event `json:"skipped"`
	Review    []Event `json:"review"` // commits waiting on review branches
	TokensIn  int64   `json:"tokens_in"`
	TokensOut int64   `json:"tokens_out"`
	CostUSD   float64 `json:"cost_usd"`
}

// runState is the bookkeeping of one run.
type runState struct {
	id     string
	branch string
	opts   RunOptions
	// attempted holds the keys of units run (landed or failed) in this run:
	// nothing runs twice in one run.
	attempted map[string]bool
	// failed holds step ids that failed in this run; their downstream waits.
	failed   map[string]bool
	reported map[string]bool
	named    map[string]bool // step ids named on the command line
	tasks    map[string]bool // step/task keys named on the command line
	targets  map[string]bool // named steps and everything they need
	summary  *Summary
	// refs are the branches besides the working one that this run wrote
	// (conflict and review branches), each with the commit it set: units
	// running meanwhile see them appear in .git, which is not their
	// agents' doing.
	refs map[string]string
	// landing is held for writing while the scheduler writes branches
	// (landing a unit, keeping one on a conflict or review branch) and
	// for reading while a unit snapshots .git, so that a snapshot sees a
	// landing's branches either not at all or noted in refs.
	landing sync.RWMutex

	// mu guards failed, summary, refs, running and groups, which units
	// running concurrently use; the other fields belong to the scheduler.
	mu      sync.Mutex
	running map[string]string // unit key -> started at, as in the running file
	groups  map[string]int    // unit key -> process group of its agent
}

// noteRef records that the run set ref to commit; the caller holds
// landing for writing.
func (rs *runState) noteRef(ref, commit string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.refs == nil {
		rs.refs = map[string]string{}
	}
	rs.refs[ref] = commit
}

// snapshotGit snapshots what a unit's agent must leave alone in .git,
// never in the middle of one of the run's landings, and returns with it
// the branches the run had written by then.
func (rs *runState) snapshotGit(wt *gitstate.Worktree) (gitstate.GitSnapshot, map[string]string, error) {
	rs.landing.RLock()
	defer rs.landing.RUnlock()
	snap, err := wt.SnapshotGitDir()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return snap, maps.Clone(rs.refs), err
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
	rs.failed[e.Step] = true
	rs.summary.Failed = append(rs.summary.Failed, e)
}

func (rs *runState) recordLanded(e Event) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.summary.Landed = append(rs.summary.Landed, e)
}

func (rs *runState) recordReview(e Event) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.summary.Review = append(rs.summary.Review, e)
}

func (rs *runState) recordSkipped(e Event) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
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
	head, err := o.checkHead()
	if err != nil {
		return nil, err
	}
	if err := o.checkWorkflow(head.Commit); err != nil {
		return nil, err
	}
	if opts.DryRun {
		return nil, o.dryRun(head, opts)
	}
	if opts.Command == "" {
		opts.Command = "codemachine run"
	}
	lock, err := o.lock(opts.Command)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	return o.runLocked(ctx, head, opts, lock)
}

// lock takes the repository lock; another live holder is a *ConfigError
// naming it (exit 2).
func (o *Orchestrator) lock(command string) (*gitstate.Lock, error) {
	lock, err := o.repo.Lock(command)
	if err != nil {
		var locked *gitstate.LockedError
		if errors.As(err, &locked) {
			return nil, &ConfigError{Err: err}
		}
		return nil, err
	}
	return lock, nil
}

// runLocked is Run for a caller that holds the repository lock.
func (o *Orchestrator) runLocked(ctx context.Context, head gitstate.Head, opts RunOptions, lock *gitstate.Lock) (*Summary, error) {
	if lock.TookOverFrom != 0 {
		o.emit(Event{Kind: Note, Message: fmt.Sprintf("took over a stale lock left by pid %d", lock.TookOverFrom)})
		if n := o.stopOrphans(lock.TookOverFrom); n > 0 {
			o.emit(Event{Kind: Note, Message: fmt.Sprintf("stopped %d agent process group(s) that pid %d left running", n, lock.TookOverFrom)})
		}
	}
	rs := &runState{
		id: o.newRunID(), branch: head.Branch, opts: opts,
		attempted: map[string]bool{}, failed: map[string]bool{}, reported: map[string]bool{},
		named: map[string]bool{}, tasks: map[string]bool{},
	}
	rs.summary = &Summary{Run: rs.id}
	defer func() { _ = o.repo.WriteLocal(runningFile, Running{}) }()
	return rs.summary, o.runLoop(ctx, rs)
}

// checkHead requires a branch with at least one commit: step commits need a
// branch to land on.
func (o *Orchestrator) checkHead() (gitstate.Head, error) {
	head, err := o.repo.Head()
	if err != nil {
		return head, err
	}
	if head.Branch == "" {
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
			return &ConfigError{Err: workflow.ErrNoWorkflow}
		}
		return fmt.Errorf("read %s: %w", workflow.WorkflowFile, err)
	}
	return nil
}

// resolveTargets checks the named steps and collects them with everything
// they need.
func (o *Orchestrator) resolveTargets(snap *snapshot, rs *runState) error {
	if len(rs.opts.Steps) == 0 {
		return nil
	}
	g := snap.project.Graph
	rs.targets = map[string]bool{}
	var unknown []string
	for _, name := range rs.opts.Steps {
		stepID, taskID, _ := strings.Cut(name, "/")
		step := g.Step(stepID)
		if step == nil {
			unknown = append(unknown, stepID)
			continue
		}
		if taskID != "" {
			if step.Foreach == "" {
				return configErrorf("step %s has no tasks (it is not a foreach step)", stepID)
			}
			plan := snap.project.Plans[step.Foreach]
			if plan == nil || plan.Task(taskID) == nil {
				return configErrorf("no task %s in %s", taskID, step.Foreach)
			}
			rs.tasks[stepID+"/"+taskID] = true
		}
		rs.named[stepID] = true
		rs.targets[stepID] = true
		for _, up := range g.AllUpstream(stepID) {
			rs.targets[up] = true
		}
	}
	if len(unknown) > 0 {
		var ids []string
		for _, s := range snap.project.Workflow.Steps {
			ids = append(ids, s.ID)
		}
		return configErrorf("unknown step %s (steps: %s)", strings.Join(unknown, ", "), strings.Join(ids, ", "))
	}
	return nil
}

// liftNamedHolds lifts the holds of the steps (or tasks) named on the
// command line: naming a step is the user's way to run it again (DESIGN 7).
func (o *Orchestrator) liftNamedHolds(rs *runState) error {
	if len(rs.named) == 0 {
		return nil
	}
	return o.updateHolds(func(h map[string]Hold) {
		for key := range h {
			stepID, _, _ := strings.Cut(key, "/")
			if rs.named[stepID] && (len(rs.tasks) == 0 || rs.tasks[key] || !strings.Contains(key, "/")) {
				delete(h, key)
			}
		}
	})
}

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

// next picks the first runnable unit in dependency order, or nil when
// nothing more can run.
func (o *Orchestrator) next(snap *snapshot, rs *runState) (*unit, error) {
	holds, err := o.holds()
	if err != nil {
		return nil, err
	}
	failures, err := o.failures()
	if err != nil {
		return nil, err
	}
	g := snap.project.Graph
	for _, step := range g.Order() {
		id := step.ID
		if rs.targets != nil && !rs.targets[id] {
			continue
		}
		reason, due := snap.due[id]
		forced := rs.opts.Force && rs.named[id] && step.Foreach == ""
		// A failed task stops only itself and the tasks after it; a failed
		// step stops itself.
		if (!due && !forced) || (step.Foreach == "" && rs.stepFailed(id)) {
			continue
		}
		if o.upstreamBlocked(snap, rs, step) {
			continue
		}
		base := &unit{step: step, agent: snap.project.Agents[step.Agent], settings: snap.settings[id], reason: string(reason)}
		if step.Foreach != "" {
			u, err := o.nextTask(snap, rs, base, holds, failures)
			if err != nil || u != nil {
				return u, err
			}
			continue
		}
		if rs.attempted[id] {
			continue
		}
		if o.skipForHoldOrFailure(snap, rs, base, holds, failures) {
			continue
		}
		return base, nil
	}
	return nil, nil
}

// upstreamBlocked reports whether a step must wait: a step it needs is still
// due or failed in this run.
func (o *Orchestrator) upstreamBlocked(snap *snapshot, rs *runState, step *workflow.Step) bool {
	for _, up := range snap.project.Graph.Upstream(step.ID) {
		if _, due := snap.due[up]; due || rs.stepFailed(up) {
			return true
		}
	}
	return false
}

// nextTask picks the next runnable task of a foreach step.
func (o *Orchestrator) nextTask(snap *snapshot, rs *runState, base *unit, holds map[string]Hold, failures map[string]Failure) (*unit, error) {
	step := base.step
	if errs := snap.project.PlanErrs[step.Foreach]; len(errs) > 0 {
		// One problem per line, each with its position: the run table
		// shows the first line, so it must be a problem, not a heading.
		o.failUnplannable(rs, step, errs.Error())
		return nil, nil
	}
	plan := snap.project.Plans[step.Foreach]
	if plan == nil {
		o.failUnplannable(rs, step, fmt.Sprintf("%s does not exist: no step wrote it and it is not committed", step.Foreach))
		return nil, nil
	}
	onlyNamed := false
	for key := range rs.tasks {
		if strings.HasPrefix(key, step.ID+"/") {
			onlyNamed = true
		}
	}
	for _, t := range plan.Runnable() {
		u := *base
		u.task = t
		key := u.key()
		if rs.attempted[key] || (onlyNamed && !rs.tasks[key]) {
			continue
		}
		if o.skipForHoldOrFailure(snap, rs, &u, holds, failures) {
			continue
		}
		u.reason = "task to do"
		return &u, nil
	}
	return nil, nil
}

// failUnplannable reports a foreach step that cannot start; only that step
// (and what needs it) stops, other steps continue. The scheduler asks for
// work again after every landing, so it is reported once per run.
func (o *Orchestrator) failUnplannable(rs *runState, step *workflow.Step, msg string) {
	key := step.ID + " (plan)"
	if rs.reported[key] {
		return
	}
	rs.reported[key] = true
	e := Event{Kind: StepFailed, Step: step.ID, Message: msg}
	rs.recordFailure(e)
	o.emit(e)
}

// skipForHoldOrFailure applies holds (lifted when the fingerprint changed)
// and, in watch mode, remembered failures.
func (o *Orchestrator) skipForHoldOrFailure(snap *snapshot, rs *runState, u *unit, holds map[string]Hold, failures map[string]Failure) bool {
	if commit, ok := snap.reviews[u.key()]; ok {
		if !rs.reported[u.key()] {
			rs.reported[u.key()] = true
			e := Event{Kind: StepReview, Step: u.step.ID, Task: taskID(u.task), Commit: commit, Ref: reviewPrefix + u.key(),
				Message: "waiting for review (codemachine approve " + u.key() + " | reject " + u.key() + " -m WHY)"}
			rs.recordReview(e)
			o.emit(e)
		}
		return true
	}
	key, fp := u.key(), u.fingerprint()
	if h, ok := holds[key]; ok {
		if h.Fingerprint == fp {
			if !rs.reported[key] {
				rs.reported[key] = true
				e := Event{Kind: StepSkipped, Step: u.step.ID, Task: taskID(u.task),
					Message: "held after a rollback (codemachine retry " + key + " to run it)"}
				rs.recordSkipped(e)
				o.emit(e)
			}
			return true
		}
		_ = o.updateHolds(func(m map[string]Hold) { delete(m, key) })
	}
	if f, ok := failures[key]; ok && rs.opts.SkipFailed && f.Fingerprint == fp {
		if !rs.reported[key] {
			rs.reported[key] = true
			e := Event{Kind: StepSkipped, Step: u.step.ID, Task: taskID(u.task),
				Message: "failed before with the same inputs (codemachine retry " + key + " to run it)"}
			rs.recordSkipped(e)
			o.emit(e)
		}
		return true
	}
	return false
}

func taskID(t *workflow.Task) string {
	if t == nil {
		return ""
	}
	return t.ID
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

// markRunning records the units in progress for `status`: running, or
// finished and waiting for their turn to land (not landed yet, so not
// done, and not due either).
func (o *Orchestrator) markRunning(rs *runState, order []*active) {
	units := map[string]string{}
	now := o.cfg.Now().UTC().Format(time.RFC3339)
	for _, a := range order {
		units[a.u.key()] = now
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.running = units
	o.writeRunning(rs)
}

// agentStarted records the process group of a unit's agent (or command) in
// the running file.
func (o *Orchestrator) agentStarted(rs *runState, key string, pid int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.groups == nil {
		rs.groups = map[string]int{}
	}
	rs.groups[key] = pid
	o.writeRunning(rs)
}

// writeRunning writes the running file; rs.mu must be held.
func (o *Orchestrator) writeRunning(rs *runState) {
	groups := map[string]int{}
	for key, pid := range rs.groups {
		if _, ok := rs.running[key]; ok {
			groups[key] = pid
		}
	}
	_ = o.repo.WriteLocal(runningFile, Running{PID: os.Getpid(), Run: rs.id, Units: rs.running, Groups: groups})
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func taskTitle(t *workflow.Task) string {
	if t == nil {
		return ""
	}
	return t.Title
}
