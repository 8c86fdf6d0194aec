package orchestrator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/watcher"
	"github.com/codemachine/codemachine/workflow"
)

// WatchCommand is what the lock file says while `codemachine watch` runs;
// other commands recognize the watcher by it.
const WatchCommand = "codemachine watch"

// Trigger modes of workflow.yaml (DESIGN 11).
const (
	TriggerCommit = "commit"
	TriggerSave   = "save"
)

// requestsDir is where `codemachine retry` leaves requests for a running
// watcher, under .git/codemachine.
const requestsDir = "requests"

// WatchOptions configure Watch.
type WatchOptions struct {
	// Run holds what every pass runs with: overrides, Record, Parallel.
	// Steps, Force and DryRun do not apply to watch.
	Run RunOptions
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
	OnWatching func(WatchInfo)
	// OnPass receives each pass's summary and error; a failing step is
	// not an error of the watcher, which goes on.
	OnPass func(*Summary, error)

	// newBackend replaces the change source (tests).
	newBackend func() (watcher.Backend, error)
}

// Trigger is why a pass runs: one line for the user.
type Trigger struct {
	Pass    int    `json:"pass"`    // 1 for the pass at start
	Kind    string `json:"kind"`    // start, commit, checkout, reset, save, retry; several joined by "+"
	Message string `json:"message"` // what changed
}

// WatchInfo describes what a watch session watches.
type WatchInfo struct {
	Branch  string `json:"branch"`
	Trigger string `json:"trigger"` // commit or save
	Dirs    int    `json:"dirs"`    // directories watched
	Poll    time.Duration
}

// ErrNoWatcher is returned by QueueRetry when no watcher holds the lock.
var ErrNoWatcher = errors.New("no codemachine watch is running in this repository")

// retryRequest is what `codemachine retry` leaves for the watcher.
type retryRequest struct {
	Key string    `yaml:"key"`
	PID int       `yaml:"pid"`
	At  time.Time `yaml:"at"`
}

// Watch runs what is due, then waits for triggers and runs again, until ctx
// is canceled (ErrInterrupted). It holds the repository lock for the whole
// session, so that other commands and the git hooks know a watcher is
// running; `codemachine retry` hands its request over (QueueRetry).
//
// A trigger is a new commit, checkout, reset or merge on the current branch
// (the branch ref or HEAD moved), and with trigger: save also a saved input
// file, which is first committed as "steer: <files>". The orchestrator's
// own landings never trigger. Triggers that arrive while a pass runs are
// coalesced into one pass afterwards; failed steps wait for new inputs or a
// retry (SkipFailed); a reset that undoes step commits holds those steps,
// as a rollback does.
func (o *Orchestrator) Watch(ctx context.Context, opts WatchOptions) error {
	switch opts.Trigger {
	case "", TriggerCommit, TriggerSave:
	default:
		return configErrorf("unknown trigger %q (commit or save)", opts.Trigger)
	}
	head, err := o.checkHead()
	if err != nil {
		return err
	}
	if err := o.checkWorkflow(head.Commit); err != nil {
		return err
	}
	lock, err := o.lock(WatchCommand)
	if err != nil {
		return err
	}
	defer lock.Release()
	s, err := o.newWatchSession(opts, lock, head)
	if err != nil {
		return err
	}
	defer s.w.Close()
	// The orchestrator's landings are recorded as they happen: the branch
	// moving to one of them is no trigger.
	orig := o.cfg.OnEvent
	o.cfg.OnEvent = func(e Event) {
		if e.Kind == StepLanded && e.Commit != "" {
			s.markOwn(e.Commit)
		}
		orig(e)
	}
	defer func() { o.cfg.OnEvent = orig }()
	return s.run(ctx)
}

// watchSession is the state of one Watch. Apart from the own-commit set,
// it belongs to the goroutine running the session loop.
type watchSession struct {
	o    *Orchestrator
	opts WatchOptions
	lock *gitstate.Lock
	w    *watcher.Watcher

	ownMu sync.Mutex
	own   map[string]bool // commits this session landed or committed

	branch   string // the branch the last look found
	seen     string // the tip whose changes are handled (run, or queued)
	detached bool   // HEAD was detached at the last look (told once)

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

func (o *Orchestrator) newWatchSession(opts WatchOptions, lock *gitstate.Lock, head gitstate.Head) (*watchSession, error) {
	s := &watchSession{o: o, opts: opts, lock: lock, own: map[string]bool{}, deferred: map[string]bool{},
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
	s.w = watcher.New(backend, watcher.Options{Quiet: opts.Quiet, MaxWait: opts.MaxWait, Ignore: s.ignoredDirs,
		OnError: func(err error) { o.emit(Event{Kind: Note, Message: "watch: " + err.Error()}) }})
	if err := s.configure(head); err != nil {
		s.w.Close()
		return nil, err
	}
	return s, nil
}

func (s *watchSession) markOwn(commit string) {
	s.ownMu.Lock()
	defer s.ownMu.Unlock()
	s.own[commit] = true
}

func (s *watchSession) isOwn(commit string) bool {
	s.ownMu.Lock()
	defer s.ownMu.Unlock()
	return s.own[commit]
}

// run is the session loop: passes run in their own goroutine, so that
// changes keep being looked at (and saved inputs committed) while a step
// runs; what they trigger waits for the pass to end and becomes one pass.
func (s *watchSession) run(ctx context.Context) error {
	s.pending = append(s.pending, Trigger{Kind: "start",
		Message: fmt.Sprintf("watching %s at %s", s.branch, short(s.seen))})
	done := make(chan error, 1)
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
			return ErrInterrupted
		case b := <-s.w.Batches():
			s.absorb(ctx, b)
			if !running {
				s.settle(ctx)
			}
		case err := <-done:
			running = false
			if err != nil {
				return err
			}
			s.afterPass()
			s.settle(ctx)
		}
	}
}

// takePending merges the queued reasons into one trigger.
func (s *watchSession) takePending() Trigger {
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

// pass runs what is due under the session's lock. Only an interruption
// ends the session; every other outcome is reported and watching goes on.
func (s *watchSession) pass(ctx context.Context, trig Trigger) error {
	if s.opts.OnTrigger != nil {
		s.opts.OnTrigger(trig)
	}
	head, err := s.o.repo.Head()
	if err == nil && head.Branch == "" {
		err = configErrorf("HEAD is detached: the pass waits for a branch to be checked out")
	}
	var sum *Summary
	if err == nil {
		opts := s.opts.Run
		opts.Steps, opts.Force, opts.DryRun, opts.SkipFailed = nil, false, false, true
		opts.Command = WatchCommand
		sum, err = s.o.runLocked(ctx, head, opts, s.lock)
		// Told once, at the first pass.
		s.lock.TookOverFrom = 0
	}
	if ctx.Err() != nil || errors.Is(err, ErrInterrupted) {
		if s.opts.OnPass != nil {
			s.opts.OnPass(sum, ErrInterrupted)
		}
		return ErrInterrupted
	}
	if s.opts.OnPass != nil {
		s.opts.OnPass(sum, err)
	}
	return nil
}

// afterPass accepts the tip a pass ended at when the pass made it: its own
// landings on top of what it started from.
func (s *watchSession) afterPass() {
	head, err := s.o.repo.Head()
	if err != nil || head.Branch != s.branch {
		return
	}
	if head.Commit != s.seen && s.isOwn(head.Commit) {
		if ok, err := s.o.repo.IsAncestor(s.seen, head.Commit); err == nil && ok {
			s.seen = head.Commit
		}
	}
	if err := s.configure(head); err != nil {
		s.note(err.Error())
	}
}

// absorb takes in one batch of changes. It never runs a pass: it commits
// saved inputs (trigger: save) and notes what must be looked at.
func (s *watchSession) absorb(ctx context.Context, b watcher.Batch) {
	root := s.o.repo.Root()
	reqs := filepath.Join(s.o.repo.LocalDir(), requestsDir)
	gitDirs := []string{s.o.repo.GitDir(), s.o.repo.CommonDir()}
	var saved []string
	for _, p := range b.Paths {
		switch {
		case within(p, reqs):
			s.reqDirty = true
		case within(p, gitDirs...):
			s.gitDirty = true
		default:
			if rel, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(rel, "..") {
				saved = append(saved, filepath.ToSlash(rel))
			}
		}
	}
	if b.Overflow {
		// Changes were lost: look at everything, and run a pass even if
		// nothing visible moved, since what was lost cannot be known.
		s.gitDirty, s.reqDirty = true, true
		s.pending = append(s.pending, Trigger{Kind: "rescan",
			Message: "change notifications overflowed: looking at everything again"})
	}
	if s.trigger == TriggerSave && (len(saved) > 0 || b.Overflow || len(s.deferred) > 0) {
		s.steer(ctx, saved, b.Overflow)
	}
}

// within reports whether p is one of dirs or below one.
func within(p string, dirs ...string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// steer commits the saved input files (trigger: save) as "steer: <files>":
// only those files, with a pathspec commit, so that the user's other
// changes, staged or not, stay out of it and as they were.
func (s *watchSession) steer(ctx context.Context, saved []string, all bool) {
	for _, p := range saved {
		if s.matchesInput(p) {
			s.deferred[p] = true
		}
	}
	if all {
		// Events were lost: every input file may have changed.
		paths, err := s.o.repo.StatusPaths(ctx)
		if err != nil {
			s.note("steer: " + err.Error())
			return
		}
		for _, p := range paths {
			if s.matchesInput(p) {
				s.deferred[p] = true
			}
		}
	}
	if len(s.deferred) == 0 {
		return
	}
	// A git command is writing the index (a checkout, a merge, a landing
	// bringing the working tree forward): its files are half-way, and
	// whatever it finishes with is no edit of the user's. The lock's
	// removal is a change in .git, so the next batch comes back here.
	if _, err := os.Lstat(filepath.Join(s.o.repo.GitDir(), "index.lock")); err == nil {
		return
	}
	candidates := sortedKeys(s.deferred)
	s.deferred = map[string]bool{}
	dirty, err := s.dirtyInputs(ctx, candidates)
	if err != nil {
		s.note("steer: " + err.Error())
		return
	}
	if len(dirty) == 0 {
		return
	}
	head, err := s.o.repo.Head()
	if err != nil || head.Branch == "" {
		s.note("saved " + listPaths(dirty) + ": not committed while HEAD is detached")
		return
	}
	msg := "steer: " + listPaths(dirty)
	// The paths go through stdin: a checkout can change more of them
	// than a command line holds.
	var list bytes.Buffer
	for _, p := range dirty {
		list.WriteString(p)
		list.WriteByte(0)
	}
	fromStdin := gitstate.RunOpts{Stdin: list.Bytes()}
	_, err = s.o.repo.GitWith(ctx, fromStdin, "--literal-pathspecs", "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul")
	if err == nil {
		_, err = s.o.repo.GitWith(ctx, fromStdin, "--literal-pathspecs", "commit", "-q", "--only", "-m", msg,
			"--pathspec-from-file=-", "--pathspec-file-nul")
	}
	if err != nil {
		s.note("saved " + listPaths(dirty) + ": the steer commit failed: " + err.Error())
		return
	}
	after, err := s.o.repo.Head()
	if err != nil {
		s.note(err.Error())
		return
	}
	s.markOwn(after.Commit)
	if after.Branch == s.branch && head.Commit == s.seen {
		// Nothing else moved the branch meanwhile: the steer commit is
		// the whole news.
		s.seen = after.Commit
	}
	s.pending = append(s.pending, Trigger{Kind: "save",
		Message: fmt.Sprintf("saved %s: %s %s", listPaths(dirty), short(after.Commit), msg)})
}

// dirtyInputs returns those of paths that differ from HEAD. Many paths (a
// checkout's worth) are looked up in one status of the whole worktree
// rather than named on a command line.
func (s *watchSession) dirtyInputs(ctx context.Context, paths []string) ([]string, error) {
	const maxArgs = 500
	if len(paths) <= maxArgs {
		return s.o.repo.StatusPaths(ctx, paths...)
	}
	all, err := s.o.repo.StatusPaths(ctx)
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(paths))
	for _, p := range paths {
		want[p] = true
	}
	var dirty []string
	for _, p := range all {
		if want[p] {
			dirty = append(dirty, p)
		}
	}
	return dirty, nil
}

// matchesInput reports whether a path (slash-separated, relative to the
// root) is one a step reads: its inputs (a literal directory stands for
// everything below it) or its plan file.
func (s *watchSession) matchesInput(p string) bool {
	for _, pat := range s.patterns {
		if ok, _ := doublestar.Match(pat, p); ok {
			return true
		}
		if !hasGlobMeta(pat) && strings.HasPrefix(p, strings.TrimSuffix(pat, "/")+"/") {
			return true
		}
	}
	return false
}

func hasGlobMeta(s string) bool { return strings.ContainsAny(s, `*?[{\`) }

// listPaths names files for a message: all of a few, the first three of
// many.
func listPaths(paths []string) string {
	if len(paths) <= 3 {
		return strings.Join(paths, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(paths[:3], ", "), len(paths)-3)
}

// settle looks at what changed while no pass runs: the branch, and retry
// requests. What it finds is queued for the next pass.
func (s *watchSession) settle(ctx context.Context) {
	if s.gitDirty {
		s.gitDirty = false
		s.lookAtBranch(ctx)
	}
	if s.reqDirty {
		s.reqDirty = false
		s.takeRequests()
	}
}

// lookAtBranch compares HEAD and the branch tip with what was seen last.
func (s *watchSession) lookAtBranch(ctx context.Context) {
	head, err := s.o.repo.Head()
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
	forward, err := s.o.repo.IsAncestor(old, head.Commit)
	if err != nil {
		s.note(err.Error())
		forward = false
	}
	// Own commits count only going forward: a reset back to one of them
	// is the user's.
	if forward && s.isOwn(head.Commit) {
		return
	}
	if forward {
		s.pending = append(s.pending, Trigger{Kind: "commit", Message: s.describeNew(old, head)})
		return
	}
	back, _ := s.o.repo.IsAncestor(head.Commit, old)
	how := "moved back to"
	if !back {
		how = "rewritten, now at"
	}
	msg := fmt.Sprintf("%s %s %s", head.Branch, how, short(head.Commit))
	held, err := s.holdReset(ctx, old, head.Commit)
	if err != nil {
		s.note("hold the undone steps: " + err.Error())
	}
	if len(held) > 0 {
		msg += "; held: " + strings.Join(held, ", ")
	}
	s.pending = append(s.pending, Trigger{Kind: "reset", Message: msg})
}

// describeNew says which commits arrived on the branch since old.
func (s *watchSession) describeNew(old string, head gitstate.Head) string {
	const limit = 50
	commits, err := s.o.repo.Log(head.Commit, limit)
	if err != nil || len(commits) == 0 {
		return fmt.Sprintf("%s moved to %s", head.Branch, short(head.Commit))
	}
	n := 0
	for _, c := range commits {
		if c.Hash == old {
			break
		}
		n++
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

// holdReset holds the steps and tasks whose commits a reset (or rewrite)
// of the branch took away and which are due again because of it, as
// `codemachine rollback` does (DESIGN 7): they do not run again with the
// same inputs until the user asks or their inputs change.
func (s *watchSession) holdReset(ctx context.Context, from, to string) ([]string, error) {
	out, err := s.o.repo.Read(ctx, "rev-list", "--max-count=1000", to+".."+from)
	if err != nil {
		return nil, err
	}
	snap, err := s.o.load(to, s.opts.Run.Overrides)
	if err != nil {
		var cfg *ConfigError
		if errors.As(err, &cfg) {
			return nil, nil // no workflow to hold steps of
		}
		return nil, err
	}
	type undone struct{ key, commit string }
	var keys []undone
	seen := map[string]bool{}
	for _, h := range strings.Fields(out) {
		c, err := s.o.repo.CommitInfo(h)
		if err != nil {
			return nil, err
		}
		msg := gitstate.Message{Trailers: c.Trailers}
		stepID := msg.Get(gitstate.TrailerStep)
		if stepID == "" {
			continue
		}
		key := unitKey(stepID, msg.Get(gitstate.TrailerTask))
		if !seen[key] {
			seen[key] = true
			keys = append(keys, undone{key, c.Hash})
		}
	}
	now := s.o.cfg.Now().UTC()
	var held []string
	err = s.o.updateHolds(func(h map[string]Hold) {
		for _, k := range keys {
			stepID, taskID, _ := strings.Cut(k.key, "/")
			step := snap.project.Graph.Step(stepID)
			if step == nil {
				continue
			}
			fp := snap.settings[stepID].fingerprint
			if taskID == "" {
				if _, due := snap.due[stepID]; !due {
					continue // still done at the new tip (an amended commit, say)
				}
			} else {
				plan := snap.project.Plans[step.Foreach]
				if plan == nil || plan.Task(taskID) == nil || plan.Task(taskID).Done {
					continue
				}
				fp = taskFingerprint(fp, plan.Task(taskID))
			}
			h[k.key] = Hold{Fingerprint: fp, Commit: k.commit, At: now}
			held = append(held, k.key)
		}
	})
	sort.Strings(held)
	return held, err
}

// configure reads the trigger mode and the inputs from the workflow at the
// tip and points the watcher at what matters: git's own files always, and
// with trigger: save the .codemachine directory and the directories of
// every input.
func (s *watchSession) configure(head gitstate.Head) error {
	if head.Commit != s.wfTip {
		s.wfTip = head.Commit
		s.trigger, s.patterns = TriggerCommit, nil
		if fsys, err := s.o.repo.TreeFS(head.Commit); err == nil {
			if project, err := loadProject(fsys); err == nil && project != nil && project.Workflow != nil {
				if project.Workflow.Trigger != "" {
					s.trigger = project.Workflow.Trigger
				}
				for _, step := range project.Workflow.Steps {
					s.patterns = append(s.patterns, step.Inputs...)
					if step.Foreach != "" {
						s.patterns = append(s.patterns, step.Foreach)
					}
				}
			}
		}
		if s.opts.Trigger != "" {
			s.trigger = s.opts.Trigger
		}
	}
	dirs := s.watchDirs(head.Branch)
	if sameDirs(dirs, s.dirs) {
		return nil
	}
	if err := s.w.SetDirs(dirs); err != nil {
		return err
	}
	s.dirs = dirs
	if s.opts.OnWatching != nil {
		s.opts.OnWatching(WatchInfo{Branch: head.Branch, Trigger: s.trigger, Dirs: len(s.w.Watched()), Poll: s.opts.Poll})
	}
	return nil
}

// watchDirs is the watch set: .git without recursion (HEAD, the index,
// packed-refs), the directory of the branch's ref (refs/heads/feature for
// feature/x), the request directory, and in save mode .codemachine/ and
// each input's directory. The worktrees the orchestrator writes in live
// under .git/codemachine, outside all of these.
func (s *watchSession) watchDirs(branch string) []watcher.Dir {
	r := s.o.repo
	ref := filepath.Join(r.CommonDir(), "refs", "heads", filepath.FromSlash(branch))
	dirs := []watcher.Dir{{Path: r.GitDir()}, {Path: r.CommonDir()}, {Path: filepath.Dir(ref)},
		{Path: filepath.Join(r.LocalDir(), requestsDir)}}
	if s.trigger != TriggerSave {
		return dirs
	}
	dirs = append(dirs, watcher.Dir{Path: filepath.Join(r.Root(), workflow.Dir), Recursive: true})
	for _, p := range s.patterns {
		dirs = append(dirs, inputDir(r.Root(), p))
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Path < dirs[j].Path })
	return dirs
}

// inputDir is the directory to watch for an input glob: its static prefix,
// recursively when the pattern can match below it ("src/**/*.go", "a/*/b")
// and alone when only the last segment has wildcards ("docs/*.md"). A
// literal path is watched as a recursive root: a directory stands for
// everything in it, and for a file the watcher watches the nearest
// existing directory above it.
func inputDir(root, pattern string) watcher.Dir {
	segs := strings.Split(pattern, "/")
	i := 0
	for i < len(segs) && !hasGlobMeta(segs[i]) {
		i++
	}
	if i == len(segs) {
		return watcher.Dir{Path: filepath.Join(root, filepath.FromSlash(pattern)), Recursive: true}
	}
	dir := filepath.Join(append([]string{root}, segs[:i]...)...)
	return watcher.Dir{Path: dir, Recursive: i < len(segs)-1 || strings.Contains(segs[i], "**")}
}

func sameDirs(a, b []watcher.Dir) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ignoredDirs asks git which of dirs it ignores (one check-ignore for all):
// build output and dependencies are neither inputs nor worth a watch.
func (s *watchSession) ignoredDirs(dirs []string) []string {
	root := s.o.repo.Root()
	var in bytes.Buffer
	abs := map[string]string{}
	for _, d := range dirs {
		rel, err := filepath.Rel(root, d)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			continue
		}
		rel = filepath.ToSlash(rel)
		abs[rel] = d
		in.WriteString(rel)
		in.WriteByte(0)
	}
	if in.Len() == 0 {
		return nil
	}
	// --no-index: with the index, git checks each path against every
	// tracked file (1.5 s for 1,000 directories of a 100k-file
	// repository, against 2 ms without). What that check is for, an
	// ignored directory that holds tracked files, is asked of ls-files
	// below, for the few directories found ignored.
	ctx := context.Background()
	out, err := s.o.repo.ReadWith(ctx, gitstate.RunOpts{Stdin: in.Bytes()}, "check-ignore", "--no-index", "--stdin", "-z")
	if err != nil {
		// Exit 1: nothing is ignored. Anything else: watch everything
		// rather than miss a change.
		return nil
	}
	var rels []string
	for _, rel := range strings.Split(out, "\x00") {
		if _, ok := abs[rel]; ok {
			rels = append(rels, rel)
		}
	}
	if len(rels) == 0 {
		return nil
	}
	tracked, err := s.o.repo.Read(ctx, append([]string{"--literal-pathspecs", "ls-files", "-z", "--"}, rels...)...)
	if err != nil {
		return nil
	}
	var ignored []string
	for _, rel := range rels {
		if !strings.HasPrefix(tracked, rel+"/") && !strings.Contains(tracked, "\x00"+rel+"/") {
			ignored = append(ignored, abs[rel])
		}
	}
	return ignored
}

// clearRequests empties the request directory: requests left there were
// meant for a watcher that is gone.
func (s *watchSession) clearRequests() error {
	dir := filepath.Join(s.o.repo.LocalDir(), requestsDir)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}

// takeRequests lifts the holds and failures that `codemachine retry` asked
// to lift and queues a pass for them.
func (s *watchSession) takeRequests() {
	dir := filepath.Join(s.o.repo.LocalDir(), requestsDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		s.note("read retry requests: " + err.Error())
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "retry-") || !strings.HasSuffix(name, ".yaml") {
			continue
		}
		var req retryRequest
		rerr := s.o.repo.ReadLocal(requestsDir+"/"+name, &req)
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.note("retry request: " + err.Error())
		}
		if rerr != nil || req.Key == "" {
			continue
		}
		err := s.o.updateHolds(func(h map[string]Hold) { delete(h, req.Key) })
		if err == nil {
			err = s.o.updateFailures(func(f map[string]Failure) { delete(f, req.Key) })
		}
		if err != nil {
			s.note("retry " + req.Key + ": " + err.Error())
			continue
		}
		s.pending = append(s.pending, Trigger{Kind: "retry",
			Message: fmt.Sprintf("retry %s (asked by pid %d)", req.Key, req.PID)})
	}
}

// QueueRetry hands `codemachine retry ARG` to the watcher that holds the
// lock: it checks the request the way Retry does, leaves it for the
// watcher, and returns the watcher's pid. The watcher lifts the hold or
// failure and runs a pass after the current one. ErrNoWatcher: nobody is
// watching (any more); the caller can then retry by itself.
func (o *Orchestrator) QueueRetry(arg string) (int, error) {
	pid, command, held := o.repo.LockHolder()
	if !held || command != WatchCommand {
		return 0, ErrNoWatcher
	}
	head, err := o.checkHead()
	if err != nil {
		return 0, err
	}
	if !o.isStepKey(head.Commit, arg) {
		return 0, configErrorf("%s is not a step or task of the workflow", arg)
	}
	holds, err := o.holds()
	if err != nil {
		return 0, err
	}
	failures, err := o.failures()
	if err != nil {
		return 0, err
	}
	_, isHeld := holds[arg]
	_, isFailed := failures[arg]
	if !isHeld && !isFailed {
		return 0, configErrorf("%s is neither failed nor held: nothing to retry (the watcher runs it when it is due)", arg)
	}
	if err := os.MkdirAll(filepath.Join(o.repo.LocalDir(), requestsDir), 0o755); err != nil {
		return 0, fmt.Errorf("queue the retry: %w", err)
	}
	name := fmt.Sprintf("%s/retry-%d-%d.yaml", requestsDir, time.Now().UnixNano(), os.Getpid())
	if err := o.repo.WriteLocal(name, retryRequest{Key: arg, PID: os.Getpid(), At: o.cfg.Now().UTC()}); err != nil {
		return 0, fmt.Errorf("queue the retry: %w", err)
	}
	// The watcher may have stopped meanwhile; a new one clears what it
	// finds, so the request must not stay behind either way.
	if now, _, held := o.repo.LockHolder(); !held || now != pid {
		_ = os.Remove(filepath.Join(o.repo.LocalDir(), filepath.FromSlash(name)))
		return 0, ErrNoWatcher
	}
	return pid, nil
}

// note tells the user something in one line.
func (s *watchSession) note(msg string) {
	s.o.emit(Event{Kind: Note, Message: msg})
}

// HooksDir is where git looks for this repository's hooks: .git/hooks, or
// core.hooksPath when it is set.
func (o *Orchestrator) HooksDir(ctx context.Context) (string, error) {
	out, err := o.repo.Read(ctx, "rev-parse", "--path-format=absolute", "--git-path", "hooks")
	if err != nil {
		return "", fmt.Errorf("find the hooks directory: %w", err)
	}
	return strings.TrimSpace(out), nil
}

// HookRunWanted tells a git hook whether to start `codemachine run`: HEAD
// must be on a branch (not in the middle of a rebase) whose tip has a
// workflow, and no codemachine may be running here (a watcher does the
// work itself). reason says why not.
func (o *Orchestrator) HookRunWanted() (ok bool, reason string) {
	head, err := o.repo.Head()
	switch {
	case err != nil:
		return false, err.Error()
	case head.Branch == "" || head.Commit == "":
		return false, "HEAD is not on a branch with commits"
	}
	if _, err := o.repo.ReadFile(head.Commit, workflow.WorkflowFile); err != nil {
		return false, "no " + workflow.WorkflowFile + " at " + short(head.Commit)
	}
	if pid, command, held := o.repo.LockHolder(); held {
		return false, fmt.Sprintf("%s (pid %d) is running", command, pid)
	}
	return true, ""
}

// LockedByWatcher reports whether err is the lock error of a command
// refused because `codemachine watch` holds the repository, and its pid.
func LockedByWatcher(err error) (int, bool) {
	var locked *gitstate.LockedError
	if errors.As(err, &locked) && locked.Command == WatchCommand {
		return locked.PID, true
	}
	return 0, false
}
