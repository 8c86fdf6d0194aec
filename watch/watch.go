// Package watch is `codemachine watch`: a session that runs what is due,
// then waits for commits (or saved inputs) and runs again. It is a client
// of the orchestrator, as the command line is: it holds the repository
// lock through an orchestrator.Lease for the whole session and runs each
// pass through it. It owns the session loop, the steer commits of trigger:
// save, the watch set, and the retry requests that `codemachine retry`
// leaves for a running watcher.
package watch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/watcher"
	"github.com/codemachine/codemachine/workflow"
)

// Command is what the lock file says while `codemachine watch` runs;
// other commands recognize the watcher by it.
const Command = "codemachine watch"

// Trigger modes of workflow.yaml.
const (
	TriggerCommit = "commit"
	TriggerSave   = "save"
)

// Options configure Run.
type Options struct {
	// Run holds what every pass runs with: overrides, Record, Parallel.
	// Steps, Force and DryRun do not apply to watch.
	Run orchestrator.RunOptions
	// Trigger overrides the workflow's trigger ("commit" or "save"); ""
	// follows workflow.yaml.
	Trigger string
	// Quiet and MaxWait bound the batching of changes (watcher defaults
	// when 0).
	Quiet, MaxWait time.Duration
	// Poll, when positive, replaces the kernel's change notifications by
	// stat polling at this interval, for file systems that cannot be
	// watched.
	Poll time.Duration
	// OnTrigger is told why each pass starts.
	OnTrigger func(Trigger)
	// OnWatching is told what is watched, before the first pass and again
	// whenever that changes.
	OnWatching func(Info)
	// OnPass receives each pass's summary and error; a failing step is
	// not an error of the watcher, which goes on.
	OnPass func(*orchestrator.Summary, error)
	// OnNote is told, in one line, what the session could not do and goes
	// on without (a steer commit that failed, say); nil drops it.
	OnNote func(string)

	// newBackend replaces the change source (tests).
	newBackend func() (watcher.Backend, error)
}

// Trigger is why a pass runs: one line for the user.
type Trigger struct {
	Pass    int    `json:"pass"`    // 1 for the pass at start
	Kind    string `json:"kind"`    // start, commit, checkout, reset, save, retry, approve, reject, rescan; several joined by "+"
	Message string `json:"message"` // what changed
}

// Info describes what a watch session watches.
type Info struct {
	Branch  string `json:"branch"`
	Trigger string `json:"trigger"` // commit or save
	Dirs    int    `json:"dirs"`    // directories watched
	Poll    time.Duration
}

// Run runs what is due, then waits for triggers and runs again, until ctx
// is canceled (orchestrator.ErrInterrupted). It holds the repository lock
// for the whole session, so that other commands and the git hooks know a
// watcher is running; `codemachine retry` hands its request over
// (QueueRetry).
//
// A trigger is a new commit, checkout, reset or merge on the current branch
// (the branch ref or HEAD moved), and with trigger: save also a saved input
// file, which is first committed as "steer: <files>". The orchestrator's
// own landings never trigger. Triggers that arrive while a pass runs are
// coalesced into one pass afterwards; failed steps wait for new inputs or a
// retry (SkipFailed); a reset that undoes step commits holds those steps,
// as a rollback does.
func Run(ctx context.Context, o *orchestrator.Orchestrator, opts Options) error {
	switch opts.Trigger {
	case "", TriggerCommit, TriggerSave:
	default:
		return configErrorf("unknown trigger %q (commit or save)", opts.Trigger)
	}
	lease, err := o.Lease(Command)
	if err != nil {
		return err
	}
	defer lease.Release()
	s, err := newSession(ctx, o.Repo(), lease, opts)
	if err != nil {
		return err
	}
	s.project = o.ProjectAt
	defer s.w.Close()
	return s.run(ctx)
}

// session is the state of one Run; it belongs to the goroutine running
// the session loop (passes run in another, and hand their summary back).
type session struct {
	repo  *gitstate.Repo
	lease *orchestrator.Lease
	opts  Options
	w     *watcher.Watcher

	own map[string]bool // commits this session landed or committed

	branch   string // the branch the last look found
	seen     string // the tip whose changes are handled (run, or queued)
	detached bool   // HEAD was detached at the last look (told once)

	// project loads the workflow at a commit, its uses: sources
	// included; nil: read without git sources.
	project func(commit string) (*workflow.Project, error)

	trigger  string   // commit or save, for the tip in wfTip
	patterns []string // save mode: the input globs and plan files
	wfTip    string
	dirs     []watcher.Dir

	gitDirty bool            // git state changed: look after the pass
	reqDirty bool            // requests may be waiting
	deferred map[string]bool // saved paths waiting for git's index lock
	pending  []Trigger       // reasons for the next pass
	passes   int
}

func newSession(ctx context.Context, repo *gitstate.Repo, lease *orchestrator.Lease, opts Options) (*session, error) {
	head := lease.Head()
	s := &session{repo: repo, lease: lease, opts: opts, own: map[string]bool{}, deferred: map[string]bool{},
		branch: head.Branch, seen: head.Commit}
	if err := s.clearRequests(); err != nil {
		return nil, err
	}
	newBackend := opts.newBackend
	if newBackend == nil {
		newBackend = func() (watcher.Backend, error) {
			if opts.Poll > 0 {
				return watcher.NewPoll(opts.Poll), nil
			}
			return watcher.NewNotify()
		}
	}
	backend, err := newBackend()
	if err != nil {
		return nil, err
	}
	s.w = watcher.New(backend, watcher.Options{Quiet: opts.Quiet, MaxWait: opts.MaxWait,
		Ignore:  func(dirs []string) []string { return s.ignoredDirs(ctx, dirs) },
		OnError: func(err error) { s.note("watch: " + err.Error()) }})
	if err := s.configure(head); err != nil {
		s.w.Close()
		return nil, err
	}
	return s, nil
}

// passResult is what a pass hands back to the session loop.
type passResult struct {
	sum *orchestrator.Summary
	err error // only an interruption
}

// run is the session loop: passes run in their own goroutine, so that
// changes keep being looked at (and saved inputs committed) while a step
// runs; what they trigger waits for the pass to end and becomes one pass.
func (s *session) run(ctx context.Context) error {
	s.pending = append(s.pending, Trigger{Kind: "start",
		Message: fmt.Sprintf("watching %s at %s", s.branch, short(s.seen))})
	done := make(chan passResult, 1)
	running := false
	for {
		if !running && len(s.pending) > 0 {
			trig := s.takePending()
			running = true
			go func() { done <- s.pass(ctx, trig) }()
		}
		select {
		case <-ctx.Done():
			if running {
				<-done
			}
			return orchestrator.ErrInterrupted
		case b := <-s.w.Batches():
			s.absorb(ctx, b)
			if !running {
				s.settle(ctx)
			}
		case res := <-done:
			running = false
			if res.err != nil {
				return res.err
			}
			s.afterPass(res.sum)
			s.settle(ctx)
		}
	}
}

// takePending merges the queued reasons into one trigger.
func (s *session) takePending() Trigger {
	s.passes++
	t := Trigger{Pass: s.passes}
	var kinds, msgs []string
	seenKind := map[string]bool{}
	for _, p := range s.pending {
		if !seenKind[p.Kind] {
			seenKind[p.Kind] = true
			kinds = append(kinds, p.Kind)
		}
		msgs = append(msgs, p.Message)
	}
	t.Kind = strings.Join(kinds, "+")
	t.Message = strings.Join(msgs, "; ")
	s.pending = nil
	return t
}

// pass runs what is due under the session's lease. Only an interruption
// ends the session; every other outcome is reported and watching goes on.
func (s *session) pass(ctx context.Context, trig Trigger) passResult {
	if s.opts.OnTrigger != nil {
		s.opts.OnTrigger(trig)
	}
	head, err := s.repo.Head()
	if err == nil && head.Branch == "" {
		err = configErrorf("HEAD is detached: the pass waits for a branch to be checked out")
	}
	var sum *orchestrator.Summary
	if err == nil {
		opts := s.opts.Run
		opts.Steps, opts.Force, opts.SkipFailed, opts.Watching = nil, false, true, true
		sum, err = s.lease.Run(ctx, opts)
	}
	if ctx.Err() != nil || errors.Is(err, orchestrator.ErrInterrupted) {
		if s.opts.OnPass != nil {
			s.opts.OnPass(sum, orchestrator.ErrInterrupted)
		}
		return passResult{sum: sum, err: orchestrator.ErrInterrupted}
	}
	if s.opts.OnPass != nil {
		s.opts.OnPass(sum, err)
	}
	return passResult{sum: sum}
}

// afterPass takes in what a pass did: its landings, and the commits that
// record its skipped steps (when: false), are the session's own commits,
// and the tip it ended at is accepted when the pass made it, its own
// commits on top of what it started from.
func (s *session) afterPass(sum *orchestrator.Summary) {
	if sum != nil {
		for _, e := range slices.Concat(sum.Landed, sum.Skipped) {
			if e.Commit != "" {
				s.own[e.Commit] = true
			}
		}
	}
	head, err := s.repo.Head()
	if err != nil || head.Branch != s.branch {
		return
	}
	if head.Commit != s.seen && s.own[head.Commit] {
		if ok, err := s.repo.IsAncestor(s.seen, head.Commit); err == nil && ok {
			// Commits of the user's that arrived during the pass, under
			// the pass's own landings: one more pass (README: watch).
			if n := s.foreign(s.seen, head.Commit); n > 0 {
				s.pending = append(s.pending, Trigger{Kind: "commit",
					Message: fmt.Sprintf("%s arrived on %s during pass %d", plural(n, "commit"), head.Branch, s.passes)})
			}
			s.seen = head.Commit
		}
	}
	if err := s.configure(head); err != nil {
		s.note(err.Error())
	}
}

// foreign counts the commits from old (excluded) to tip on the first-parent
// line that this session did not land or commit itself.
func (s *session) foreign(old, tip string) int {
	n := 0
	_ = s.repo.WalkLog(tip, func(c gitstate.Commit) bool {
		if c.Hash == old {
			return false
		}
		if !s.own[c.Hash] {
			n++
		}
		return true
	})
	return n
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// settle looks at what changed while no pass runs: the branch, and retry
// requests. What it finds is queued for the next pass.
func (s *session) settle(ctx context.Context) {
	if s.gitDirty {
		s.gitDirty = false
		s.lookAtBranch(ctx)
	}
	if s.reqDirty {
		s.reqDirty = false
		s.takeRequests(ctx)
	}
}

// lookAtBranch compares HEAD and the branch tip with what was seen last.
func (s *session) lookAtBranch(ctx context.Context) {
	head, err := s.repo.Head()
	if err != nil {
		s.note(err.Error())
		return
	}
	if head.Branch == "" {
		if !s.detached {
			s.detached = true
			s.note("HEAD is detached: watching for a branch to be checked out")
		}
		return
	}
	s.detached = false
	if head.Commit == "" {
		return
	}
	defer func() {
		if err := s.configure(head); err != nil {
			s.note(err.Error())
		}
	}()
	if head.Branch != s.branch {
		s.branch, s.seen = head.Branch, head.Commit
		s.pending = append(s.pending, Trigger{Kind: "checkout",
			Message: fmt.Sprintf("checked out %s at %s", head.Branch, short(head.Commit))})
		return
	}
	if head.Commit == s.seen {
		return
	}
	old := s.seen
	s.seen = head.Commit
	forward, err := s.repo.IsAncestor(old, head.Commit)
	if err != nil {
		s.note(err.Error())
		forward = false
	}
	// Own commits count only going forward: a reset back to one of them
	// is the user's.
	if forward && s.own[head.Commit] {
		return
	}
	if forward {
		s.pending = append(s.pending, Trigger{Kind: "commit", Message: s.describeNew(old, head)})
		return
	}
	s.pending = append(s.pending, Trigger{Kind: "reset", Message: s.reset(ctx, old, head)})
}

// reset holds the steps and tasks whose commits a reset (or rewrite) of
// the branch from old took away and which are due again because of it,
// as `codemachine rollback` does, and says what happened.
func (s *session) reset(ctx context.Context, old string, head gitstate.Head) string {
	back, _ := s.repo.IsAncestor(head.Commit, old)
	how := "moved back to"
	if !back {
		how = "rewritten, now at"
	}
	msg := fmt.Sprintf("%s %s %s", head.Branch, how, short(head.Commit))
	held, err := s.lease.HoldUndone(ctx, old, head.Commit, s.opts.Run.Overrides)
	if err != nil {
		s.note("hold the undone steps: " + err.Error())
	}
	if len(held) > 0 {
		sort.Strings(held)
		msg += "; held: " + strings.Join(held, ", ")
	}
	return msg
}

// describeNew says which commits arrived on the branch since old; the
// session's own step commits among them (landed before it looked at the
// branch again) are not counted.
func (s *session) describeNew(old string, head gitstate.Head) string {
	const limit = 50
	commits, err := s.repo.Log(head.Commit, limit)
	if err != nil || len(commits) == 0 {
		return fmt.Sprintf("%s moved to %s", head.Branch, short(head.Commit))
	}
	n := 0
	for i, c := range commits {
		if c.Hash == old {
			break
		}
		if !s.own[c.Hash] || i == 0 {
			n++
		}
	}
	subject, _, _ := strings.Cut(commits[0].Message, "\n")
	switch {
	case n == 1:
		return fmt.Sprintf("new commit %s on %s: %s", short(head.Commit), head.Branch, subject)
	case n >= limit:
		return fmt.Sprintf("new commits on %s, last %s: %s", head.Branch, short(head.Commit), subject)
	}
	return fmt.Sprintf("%d new commits on %s, last %s: %s", n, head.Branch, short(head.Commit), subject)
}

// note tells the user something in one line.
func (s *session) note(msg string) {
	if s.opts.OnNote != nil {
		s.opts.OnNote(msg)
	}
}

// RefusedBy reports whether err is the lock error of a command refused
// because a watcher holds the repository, and the watcher's pid.
func RefusedBy(err error) (pid int, ok bool) {
	var locked *gitstate.LockedError
	if errors.As(err, &locked) && locked.Command == Command {
		return locked.PID, true
	}
	return 0, false
}

// configErrorf is a usage or configuration problem (exit 2), as the
// orchestrator reports its own.
func configErrorf(format string, args ...any) error {
	return &orchestrator.ConfigError{Err: fmt.Errorf(format, args...)}
}

// short abbreviates a commit hash for messages.
func short(hash string) string {
	if len(hash) > 7 {
		return hash[:7]
	}
	return hash
}
