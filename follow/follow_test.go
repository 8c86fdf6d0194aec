package follow

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codemachine/codemachine/orchestrator"

	"github.com/codemachine/codemachine/internal/testenv"
)

func ev(kind orchestrator.EventKind, step, task string) orchestrator.Event {
	return orchestrator.Event{Kind: kind, Step: step, Task: task, At: time.Now().Round(time.Millisecond)}
}

// TestFollow: a follower that connects mid-run gets the units running then
// with their latest activity, then every event after it, in order; the
// socket goes away when the server closes, and the follower sees the end.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	s, err := Listen(dir, "codemachine run")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path() != filepath.Join(dir, "follow-"+strconv.Itoa(os.Getpid())+".sock") {
		t.Errorf("socket at %s", s.Path())
	}
	s.Publish(orchestrator.Event{Kind: orchestrator.RunStarted, Run: "r1", At: time.Now()})
	started := ev(orchestrator.StepStarted, "implement", "T2")
	started.Engine, started.Title = "claude", "Parse"
	s.Publish(started)
	s.Publish(ev(orchestrator.StepStarted, "implement", "T3"))
	act := ev(orchestrator.StepActivity, "implement", "T2")
	act.Activity, act.Message = "tool", "Write main.go"
	s.Publish(act)
	s.Publish(ev(orchestrator.StepLanded, "implement", "T3"))

	c, err := Dial(t.Context(), dir, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := c.Hello()
	if h.PID != os.Getpid() || h.Command != "codemachine run" || h.Run != "r1" {
		t.Errorf("hello %+v", h)
	}
	if len(h.Units) != 1 || h.Units[0].Key() != "implement/T2" || h.Units[0].Activity != "Write main.go" ||
		h.Units[0].Engine != "claude" || h.Units[0].Title != "Parse" || !h.Units[0].Started.Equal(started.At) {
		t.Errorf("hello units %+v, want implement/T2 writing main.go", h.Units)
	}

	landed := ev(orchestrator.StepLanded, "implement", "T2")
	landed.Duration = 1500 * time.Millisecond
	s.Publish(landed)
	s.Publish(orchestrator.Event{Kind: orchestrator.RunFinished, Run: "r1", At: time.Now()})
	for _, want := range []orchestrator.EventKind{orchestrator.StepLanded, orchestrator.RunFinished} {
		e, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind != want {
			t.Fatalf("event %v, want %v", e.Kind, want)
		}
		if e.Kind == orchestrator.StepLanded && (e.Key() != "implement/T2" || e.Duration != landed.Duration) {
			t.Errorf("landed %+v", e)
		}
	}
	s.Close()
	if _, err := c.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after close: %v, want EOF", err)
	}
	if _, err := os.Stat(s.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	if _, err := Dial(t.Context(), dir, os.Getpid()); !errors.Is(err, ErrNotServing) {
		t.Errorf("dial after close: %v, want ErrNotServing", err)
	}
}

// TestLaggingFollowerDropped: a follower that reads nothing is cut off
// once its queue is full, and publishing never waits for it.
func TestLaggingFollowerDropped(t *testing.T) {
	dir := t.TempDir()
	s, err := Listen(dir, "codemachine watch")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := Dial(t.Context(), dir, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	act := ev(orchestrator.StepActivity, "build", "")
	act.Message = strings.Repeat("x", 4000)
	done := make(chan struct{})
	go func() {
		for range 20 * followerQueue {
			s.Publish(act)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(testenv.Patience()):
		t.Fatal("Publish blocked on a follower that reads nothing")
	}
	if n := s.followers.Load(); n != 0 {
		t.Errorf("%d followers still queued after lagging", n)
	}
}

// TestStaleSocketsRemoved: a socket left by a process that is gone is
// removed when a new server starts; one of a live process stays.
func TestStaleSocketsRemoved(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "follow-999999999.sock")
	live := filepath.Join(dir, "follow-1.sock") // init is always alive
	for _, p := range []string{stale, live} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Listen(dir, "codemachine run")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale socket kept: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live process's socket was removed: %v", err)
	}
}

// TestLongPathFallsBack: a repository too deep for a socket address gets
// a socket under the temporary directory, named after its path, which
// both sides find.
func TestLongPathFallsBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Listen(dir, "codemachine run")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if strings.HasPrefix(s.Path(), dir) || len(s.Path()) > maxSocketPath+20 {
		t.Errorf("socket at %s, want it under %s", s.Path(), os.TempDir())
	}
	c, err := Dial(t.Context(), dir, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
