package worker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/codemachine/codemachine/gitstate"
)

// TestAnsweredOncePerOutage: commands to the remote run side by side
// (fetches, claims, renewals, deliveries); the worker says once that the
// remote went away and once that it is back, and a command that set out
// before the last change it saw (its answer arriving late) says nothing.
// This is how a worker once said both twice during one outage
// (workers_outage_lease.txtar): a renewal the remote had answered just
// before it went away came back after a fetch had found it gone.
func TestAnsweredOncePerOutage(t *testing.T) {
	var notes []string
	w := &worker{opts: Options{Remote: "origin", OnNote: func(s string) { notes = append(notes, s) }}}
	down := errors.New("connection refused")
	early := time.Now() // a renewal sets out while the remote answers
	time.Sleep(time.Millisecond)
	w.answered(time.Now(), false, "fetch", down) // a fetch finds it gone
	w.answered(early, true, "", nil)             // the renewal's late answer
	w.answered(time.Now(), false, "claim T2", down)
	retrying := time.Now() // a claim retries while the remote is still away
	time.Sleep(time.Millisecond)
	w.answered(time.Now(), true, "", nil) // back: a fetch gets through
	w.answered(retrying, false, "claim T2", down)
	w.answered(time.Now(), true, "", nil)
	want := []string{"fetch: connection refused; trying again with back-off", "the remote origin answers again"}
	if strings.Join(notes, "\n") != strings.Join(want, "\n") {
		t.Fatalf("notes:\n%s\nwant:\n%s", strings.Join(notes, "\n"), strings.Join(want, "\n"))
	}
	// A second outage is told again.
	time.Sleep(time.Millisecond)
	w.answered(time.Now(), false, "fetch", down)
	if len(notes) != 3 || !strings.Contains(notes[2], "trying again") {
		t.Fatalf("a second outage: %q", notes)
	}
}

// TestViewChanged: a look at the remote that differs from the last one in
// anything a waiting worker acts on wakes it.
func TestViewChanged(t *testing.T) {
	a := gitstate.RemoteWork{Tip: "t1", Claims: map[string]gitstate.Claim{"b/T1": {Commit: "c1"}}, Results: map[string]string{}}
	b := a
	b.Claims = map[string]gitstate.Claim{"b/T1": {Commit: "c2"}} // renewed or delivered: same count
	if !viewChanged(a, b) {
		t.Error("a claim that moved is a change")
	}
	if viewChanged(a, a) {
		t.Error("the same view is no change")
	}
}

// TestFirstPick: the offset of a worker's first pick is asked once, and
// stays within four per slot.
func TestFirstPick(t *testing.T) {
	w := &worker{}
	w.spread.Store(firstPick("w1", 1))
	first := w.FirstPick()
	if first < 0 || first >= 4 {
		t.Fatalf("first pick %d", first)
	}
	if w.FirstPick() != 0 {
		t.Fatal("asked twice")
	}
	seen := map[int64]bool{}
	for _, id := range []string{"w1", "w2", "w3", "w4"} {
		seen[firstPick(id, 1)] = true
	}
	if len(seen) < 2 {
		t.Fatal("every worker starts at the same task")
	}
}

// TestRetryLocalRefRaceIsNoOutage: a fetch that failed because a push of
// the same clone was updating the remote-tracking branch at once (git's
// "cannot lock ref") is tried again without the worker saying that the
// remote went away and came back: the remote answered.
func TestRetryLocalRefRaceIsNoOutage(t *testing.T) {
	var notes []string
	w := &worker{opts: Options{Remote: "origin", OnNote: func(s string) { notes = append(notes, s) }}}
	race := &gitstate.RemoteError{Op: "fetch", Remote: "origin", Transient: true, Local: true,
		Err: errors.New("git fetch: cannot lock ref 'refs/remotes/origin/main': is at a84d2fa but expected 2a7116a")}
	tries := 0
	err := w.retry(t.Context(), "fetch", func() error {
		tries++
		if tries == 1 {
			return race
		}
		return nil
	})
	if err != nil || tries != 2 {
		t.Fatalf("retry: %v after %d tries, want success on the second", err, tries)
	}
	if len(notes) != 0 {
		t.Errorf("notes %q: a local ref race is no outage of the remote", notes)
	}
}
