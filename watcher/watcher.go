package watcher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults of the trigger modes (docs/workflow.md).
const (
	DefaultQuiet   = 300 * time.Millisecond
	DefaultMaxWait = 2 * time.Second
)

// Dir is one directory to watch.
type Dir struct {
	Path string // absolute
	// Recursive also watches every directory below, except .git and what
	// Options.Ignore excludes; directories created later are added as they
	// appear.
	Recursive bool
}

// Options tune a Watcher.
type Options struct {
	Quiet   time.Duration // quiet window; 0 = DefaultQuiet
	MaxWait time.Duration // longest wait after the first change; 0 = DefaultMaxWait
	Clock   Clock         // nil = RealClock
	// Ignore returns those of dirs (absolute paths) that a recursive watch
	// must not enter, nor anything below them (what git ignores: build
	// output, dependencies). It is called with many directories at once,
	// so one git process can answer. nil enters everything.
	Ignore func(dirs []string) []string
	// OnError receives failures that do not stop the watcher (a watch
	// limit reached while adding a new directory, a backend error); nil
	// drops them. Every such failure is also reported as an overflow, since
	// changes may have gone unseen.
	OnError func(error)
}

// Watcher watches a set of directories and delivers batches of changed
// paths on Batches. While a batch waits for its consumer, newer changes are
// merged into it: a consumer busy for a long time gets one batch.
type Watcher struct {
	backend Backend
	opts    Options
	clock   Clock
	batch   *batcher

	mu      sync.Mutex
	roots   []Dir
	watched map[string]bool // directory -> entered as part of a recursive watch
	missing []Dir           // roots that do not exist (yet): their nearest existing ancestor is watched

	out       chan Batch
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	// handled and timed, when set (tests), receive a value after every
	// event or error, and every timer, that the loop has fully processed.
	handled, timed chan struct{}
}

// New starts a watcher on backend; nothing is watched until SetDirs. The
// watcher owns the backend and closes it on Close.
func New(backend Backend, opts Options) *Watcher {
	return newWatcher(backend, opts, nil)
}

func newWatcher(backend Backend, opts Options, handled chan struct{}) *Watcher {
	if opts.Quiet <= 0 {
		opts.Quiet = DefaultQuiet
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.MaxWait < opts.Quiet {
		opts.MaxWait = opts.Quiet
	}
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	w := &Watcher{
		backend: backend, opts: opts, clock: opts.Clock, batch: newBatcher(opts.Quiet, opts.MaxWait),
		watched: map[string]bool{}, out: make(chan Batch), quit: make(chan struct{}), done: make(chan struct{}),
		handled: handled,
	}
	go w.loop()
	return w
}

// Batches delivers the changes, one batch per quiet period (or max wait).
func (w *Watcher) Batches() <-chan Batch { return w.out }

// SetDirs replaces the set of watched directories: what is new is added
// (recursive ones walked), what is no longer wanted is dropped. A root that
// does not exist yet is watched for through its nearest existing ancestor
// and added when it appears.
func (w *Watcher) SetDirs(dirs []Dir) error {
	roots := normalize(dirs)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.roots = roots
	return w.rescanLocked(nil)
}

// Watched lists the directories watched now, sorted.
func (w *Watcher) Watched() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.watched))
	for d := range w.watched {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// Close stops the watcher and its backend.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		close(w.quit)
		<-w.done
		w.closeErr = w.backend.Close()
	})
	return w.closeErr
}

// normalize cleans the roots and merges duplicates (recursive wins).
func normalize(dirs []Dir) []Dir {
	byPath := map[string]bool{}
	for _, d := range dirs {
		p := filepath.Clean(d.Path)
		byPath[p] = byPath[p] || d.Recursive
	}
	out := make([]Dir, 0, len(byPath))
	for p, rec := range byPath {
		out = append(out, Dir{Path: p, Recursive: rec})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (w *Watcher) loop() {
	defer close(w.done)
	var timer Timer
	var timerC <-chan time.Time
	var ready *Batch
	arm := func(now time.Time) {
		if timer == nil && !w.batch.empty() {
			timer = w.clock.NewTimer(w.batch.deadline().Sub(now))
			timerC = timer.C()
		}
	}
	for {
		var out chan<- Batch
		var next Batch
		if ready != nil {
			out, next = w.out, *ready
		}
		select {
		case e := <-w.backend.Events():
			now := w.clock.Now()
			w.handle(e, now)
			arm(now)
			signal(w.handled, w.quit)
		case err := <-w.backend.Errors():
			now := w.clock.Now()
			if !errors.Is(err, ErrOverflow) && w.opts.OnError != nil {
				w.opts.OnError(err)
			}
			w.batch.addOverflow(now)
			w.mu.Lock()
			if rerr := w.rescanLocked(nil); rerr != nil && w.opts.OnError != nil {
				w.opts.OnError(rerr)
			}
			w.mu.Unlock()
			arm(now)
			signal(w.handled, w.quit)
		case <-timerC:
			timer, timerC = nil, nil
			now := w.clock.Now()
			if w.batch.due(now) {
				b := w.batch.take()
				if ready != nil {
					b = merge(*ready, b)
				}
				ready = &b
			} else {
				arm(now)
			}
			signal(w.timed, w.quit)
		case out <- next:
			ready = nil
		case <-w.quit:
			if timer != nil {
				timer.Stop()
			}
			return
		}
	}
}

// signal tells a test that the loop finished a step.
func signal(c chan struct{}, quit chan struct{}) {
	if c != nil {
		select {
		case c <- struct{}{}:
		case <-quit:
		}
	}
}

// handle records one notification and keeps the watch set in step with
// the directories it announces.
func (w *Watcher) handle(e Event, now time.Time) {
	w.batch.add(now, e.Path)
	w.mu.Lock()
	defer w.mu.Unlock()
	if e.Op&(Remove|Rename) != 0 {
		w.forgetLocked(e.Path)
	}
	if e.Op&Create != 0 {
		w.createdLocked(e.Path, now)
	}
	if e.Op&(Remove|Rename|Create) != 0 && w.rootsChangedLocked() {
		if err := w.rescanLocked(func(p string) { w.batch.add(now, p) }); err != nil && w.opts.OnError != nil {
			w.opts.OnError(err)
		}
	}
}

// forgetLocked drops the watches of a removed or renamed-away directory
// and of everything below it: after a move, the kernel would go on
// reporting the moved subdirectories under their old names.
func (w *Watcher) forgetLocked(path string) {
	if _, ok := w.watched[path]; !ok {
		return
	}
	prefix := path + string(filepath.Separator)
	for d := range w.watched {
		if d == path || strings.HasPrefix(d, prefix) {
			_ = w.backend.Remove(d)
			delete(w.watched, d)
		}
	}
}

// createdLocked adds a new directory that appeared inside a recursive
// watch, with everything below it. Files may have been written into it
// before its watch existed, so they are reported as changed too.
func (w *Watcher) createdLocked(path string, now time.Time) {
	if filepath.Base(path) == ".git" {
		return
	}
	fi, err := os.Lstat(path)
	if err != nil || !fi.IsDir() {
		return
	}
	if _, ok := w.watched[path]; ok {
		return
	}
	rec, ok := w.watched[filepath.Dir(path)]
	if !ok || !rec {
		return
	}
	if w.ignored([]string{path})[path] {
		return
	}
	_, files := w.walk(path, true, func(d string) bool {
		if err := w.backend.Add(d); err != nil {
			if !errors.Is(err, fs.ErrNotExist) && w.opts.OnError != nil {
				w.opts.OnError(watchError(d, err))
			}
			return false
		}
		w.watched[d] = true
		w.batch.add(now, d)
		return true
	})
	for _, f := range files {
		w.batch.add(now, f)
	}
}

// rootsChangedLocked reports whether a root appeared or vanished: a
// missing one exists now (or a directory on its way to it, which is then
// the one to watch), or a watched one is no longer watched.
func (w *Watcher) rootsChangedLocked() bool {
	for _, r := range w.missing {
		if isDir(r.Path) {
			return true
		}
		if a := existingAncestor(r.Path); a != "" {
			if _, ok := w.watched[a]; !ok {
				return true
			}
		}
	}
	for _, r := range w.roots {
		if _, ok := w.watched[r.Path]; !ok && !w.isMissingLocked(r.Path) {
			return true
		}
	}
	return false
}

func (w *Watcher) isMissingLocked(p string) bool {
	for _, m := range w.missing {
		if m.Path == p {
			return true
		}
	}
	return false
}

// rescanLocked brings the watches in line with the roots as they are on
// disk now. report, when set, receives every path that a newly added
// directory holds (they may have changed unseen).
func (w *Watcher) rescanLocked(report func(string)) error {
	sc := &rescan{w: w, desired: map[string]bool{}, added: map[string]bool{}, withFiles: report != nil}
	for _, r := range w.roots {
		sc.root(r)
	}
	for d := range sc.desired {
		if _, ok := w.watched[d]; !ok && !sc.added[d] && !sc.enter(d) {
			delete(sc.desired, d)
		}
	}
	for d := range w.watched {
		if _, ok := sc.desired[d]; !ok {
			_ = w.backend.Remove(d)
		}
	}
	w.watched = sc.desired
	w.missing = sc.missing
	if report != nil {
		for d := range sc.added {
			report(d)
		}
		for _, f := range sc.files {
			if _, ok := sc.added[filepath.Dir(f)]; ok {
				report(f)
			}
		}
	}
	return sc.firstErr
}

// rescan is one pass of rescanLocked.
type rescan struct {
	w         *Watcher
	desired   map[string]bool // directory -> recursive
	added     map[string]bool // watched by this pass
	files     []string        // in the directories walked
	missing   []Dir
	withFiles bool
	firstErr  error
}

func (sc *rescan) want(d string, rec bool) { sc.desired[d] = sc.desired[d] || rec }

// enter watches d unless it is watched already. A directory is watched
// before it is read, so that what appears in it meanwhile is either listed
// or notified.
func (sc *rescan) enter(d string) bool {
	if _, ok := sc.w.watched[d]; ok || sc.added[d] {
		return true
	}
	if err := sc.w.backend.Add(d); err != nil {
		if !errors.Is(err, fs.ErrNotExist) && sc.firstErr == nil {
			sc.firstErr = watchError(d, err)
		}
		return false
	}
	sc.added[d] = true
	return true
}

// root watches one root: its nearest existing ancestor while it is
// missing, itself, or everything below it.
func (sc *rescan) root(r Dir) {
	if !isDir(r.Path) {
		sc.missing = append(sc.missing, r)
		if a := existingAncestor(r.Path); a != "" {
			sc.want(a, false)
		}
		return
	}
	if !r.Recursive {
		_, before := sc.w.watched[r.Path]
		if sc.enter(r.Path) {
			sc.want(r.Path, false)
			if sc.withFiles && !before {
				sc.files = append(sc.files, entries(r.Path)...)
			}
		}
		return
	}
	dirs, inside := sc.w.walk(r.Path, sc.withFiles, sc.enter)
	for _, d := range dirs {
		sc.want(d, true)
	}
	sc.files = append(sc.files, inside...)
}

// walk lists dir and the directories below it, level by level so that
// Ignore sees each level in one call, never entering .git or following a
// symlink. enter is called on each directory before it is read (to watch
// it first, so nothing created meanwhile goes unseen); a directory it
// refuses is neither read nor listed. With withFiles walk also lists the
// files.
func (w *Watcher) walk(dir string, withFiles bool, enter func(string) bool) (dirs, files []string) {
	level := []string{dir}
	for len(level) > 0 {
		var next []string
		for _, d := range level {
			if !enter(d) {
				continue
			}
			dirs = append(dirs, d)
			list, err := os.ReadDir(d)
			if err != nil {
				continue
			}
			for _, e := range list {
				p := filepath.Join(d, e.Name())
				switch {
				case e.Name() == ".git":
				case e.IsDir():
					next = append(next, p)
				case withFiles:
					files = append(files, p)
				}
			}
		}
		if ign := w.ignored(next); len(ign) > 0 {
			kept := next[:0]
			for _, p := range next {
				if !ign[p] {
					kept = append(kept, p)
				}
			}
			next = kept
		}
		level = next
	}
	return dirs, files
}

// ignored asks Options.Ignore about dirs.
func (w *Watcher) ignored(dirs []string) map[string]bool {
	if w.opts.Ignore == nil || len(dirs) == 0 {
		return nil
	}
	out := map[string]bool{}
	for _, d := range w.opts.Ignore(dirs) {
		out[d] = true
	}
	return out
}

// entries lists the paths directly inside dir.
func entries(dir string) []string {
	list, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

// existingAncestor is the nearest existing directory above p, "" when
// there is none.
func existingAncestor(p string) string {
	for {
		parent := filepath.Dir(p)
		if parent == p {
			return ""
		}
		if isDir(parent) {
			return parent
		}
		p = parent
	}
}

// watchError explains the one failure a user can fix.
func watchError(dir string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EMFILE) {
		return fmt.Errorf("watch %s: %w (the limit on watched directories is reached: raise fs.inotify.max_user_watches, or use --poll)", dir, err)
	}
	return fmt.Errorf("watch %s: %w", dir, err)
}
