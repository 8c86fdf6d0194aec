package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/codemachine/codemachine/orchestrator"
)

// requestsDir is where `codemachine retry` leaves requests for a running
// watcher, under .git/codemachine.
const requestsDir = "requests"

// ErrNoWatcher is returned by QueueRetry when no watcher holds the lock.
var ErrNoWatcher = errors.New("no codemachine watch is running in this repository")

// retryRequest is what `codemachine retry` leaves for the watcher.
type retryRequest struct {
	Key string    `yaml:"key"`
	PID int       `yaml:"pid"`
	At  time.Time `yaml:"at"`
}

// clearRequests empties the request directory: requests left there were
// meant for a watcher that is gone.
func (s *session) clearRequests() error {
	dir := filepath.Join(s.repo.LocalDir(), requestsDir)
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
func (s *session) takeRequests() {
	dir := filepath.Join(s.repo.LocalDir(), requestsDir)
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
		rerr := s.repo.ReadLocal(requestsDir+"/"+name, &req)
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.note("retry request: " + err.Error())
		}
		if rerr != nil || req.Key == "" {
			continue
		}
		if err := s.lease.Lift(req.Key); err != nil {
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
func QueueRetry(o *orchestrator.Orchestrator, arg string) (int, error) {
	repo := o.Repo()
	pid, command, held := repo.LockHolder()
	if !held || command != Command {
		return 0, ErrNoWatcher
	}
	ok, err := o.Retryable(arg)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, configErrorf("%s is neither failed nor held: nothing to retry (the watcher runs it when it is due)", arg)
	}
	if err := os.MkdirAll(filepath.Join(repo.LocalDir(), requestsDir), 0o755); err != nil {
		return 0, fmt.Errorf("queue the retry: %w", err)
	}
	now := time.Now()
	name := fmt.Sprintf("%s/retry-%d-%d.yaml", requestsDir, now.UnixNano(), os.Getpid())
	if err := repo.WriteLocal(name, retryRequest{Key: arg, PID: os.Getpid(), At: now.UTC()}); err != nil {
		return 0, fmt.Errorf("queue the retry: %w", err)
	}
	// The watcher may have stopped meanwhile; a new one clears what it
	// finds, so the request must not stay behind either way.
	if now, _, held := repo.LockHolder(); !held || now != pid {
		_ = os.Remove(filepath.Join(repo.LocalDir(), filepath.FromSlash(name)))
		return 0, ErrNoWatcher
	}
	return pid, nil
}
