package watcher

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
)

// fakeClock is a clock that moves only when the test says so.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	clock   *fakeClock
	at      time.Time
	c       chan time.Time
	stopped bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer fires at once when d is not positive, as a real timer would.
func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
		t.stopped = true
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.c <- c.now
			t.stopped = true
		default:
			kept = append(kept, t)
		}
	}
	c.timers = kept
}

// fakeBackend is a Backend whose events the test sends.
type fakeBackend struct {
	mu      sync.Mutex
	added   map[string]bool
	events  chan Event
	errors  chan error
	addErrs map[string]error
	// onAdd, when set, runs as a directory's watch is added (before it is
	// active): what it writes is never notified, as with a real kernel
	// racing a mkdir -p.
	onAdd func(dir string)
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{added: map[string]bool{}, events: make(chan Event), errors: make(chan error)}
}

func (b *fakeBackend) Add(dir string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.addErrs[dir]; err != nil {
		return err
	}
	b.added[dir] = true
	if b.onAdd != nil {
		b.onAdd(dir)
	}
	return nil
}

func (b *fakeBackend) Remove(dir string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.added, dir)
	return nil
}

func (b *fakeBackend) Events() <-chan Event { return b.events }
func (b *fakeBackend) Errors() <-chan error { return b.errors }
func (b *fakeBackend) Close() error         { return nil }

func (b *fakeBackend) dirs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for d := range b.added {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// fakeRig is a watcher on a fake backend and clock.
type fakeRig struct {
	t       *testing.T
	w       *Watcher
	b       *fakeBackend
	c       *fakeClock
	handled chan struct{}
	timed   chan struct{}
}

func newFakeRig(t *testing.T, opts Options) *fakeRig {
	t.Helper()
	r := &fakeRig{t: t, b: newFakeBackend(), c: newFakeClock(), handled: make(chan struct{}, 1024), timed: make(chan struct{}, 1024)}
	opts.Clock = r.c
	r.w = newWatcher(r.b, opts, r.handled)
	r.w.timed = r.timed
	t.Cleanup(func() { r.w.Close() })
	return r
}

// send delivers an event and waits until the watcher has processed it.
func (r *fakeRig) send(path string, op Op) {
	r.t.Helper()
	r.b.events <- Event{Path: path, Op: op}
	r.wait()
}

// fail delivers a backend error and waits until it is processed.
func (r *fakeRig) fail(err error) {
	r.t.Helper()
	r.b.errors <- err
	r.wait()
}

func (r *fakeRig) wait() {
	r.t.Helper()
	select {
	case <-r.handled:
	case <-time.After(testenv.Patience()):
		r.t.Fatal("the watcher did not process the event")
	}
}

// waitTimer waits until the watcher has processed a timer that fired.
func (r *fakeRig) waitTimer() {
	r.t.Helper()
	select {
	case <-r.timed:
	case <-time.After(testenv.Patience()):
		r.t.Fatal("the watcher did not process the timer")
	}
}

// batch waits (in real time) for the next batch.
func (r *fakeRig) batch() Batch {
	r.t.Helper()
	select {
	case b := <-r.w.Batches():
		return b
	case <-time.After(testenv.Patience()):
		r.t.Fatal("no batch")
	}
	return Batch{}
}

// none checks that no batch is waiting. Batches only come from timers that
// fired, so a batch that should not exist yet cannot be merely late.
func (r *fakeRig) none() {
	r.t.Helper()
	select {
	case b := <-r.w.Batches():
		r.t.Fatalf("unexpected batch %+v at %v", b, r.c.Now())
	case <-time.After(20 * time.Millisecond):
	}
}
