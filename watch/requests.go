package watch

import (
	"cmp"
	"context"
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

// retryRequest is what `codemachine retry` (or approve, or reject) leaves
// for the watcher.
type retryRequest struct {
	// Action is "retry" (also when empty), "approve" or "reject".
	Action string `yaml:"action,omitempty"`
	Key    string `yaml:"key"`
	// Message is a rejection's reason.
	Message string    `yaml:"message,omitempty"`
	PID     int       `yaml:"pid"`
	At      time.Time `yaml:"at"`
}

// clearRequests empties the request directory: requests left there were
// meant for a watcher that is gone (killed before it took them). Each is
// named in a note, since the command that handed it over said it would
// be done.
func (s *session) clearRequests() error {
	dir := filepath.Join(s.repo.LocalDir(), requestsDir)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		var req retryRequest
		name := e.Name()
		if !strings.HasPrefix(name, "retry-") || !strings.HasSuffix(name, ".yaml") ||
			s.repo.ReadLocal(requestsDir+"/"+name, &req) != nil || req.Key == "" {
			continue
		}
		action := cmp.Or(req.Action, "retry")
		s.note(fmt.Sprintf("the %s of %s (asked by pid %d) was handed to a watcher that stopped before it took it, and was not done: run codemachine %s %s again",
			action, req.Key, req.PID, action, req.Key))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}

// takeRequests lifts the holds and failures that `codemachine retry` asked
// to lift, approves and rejects what approve and reject handed over, and
// queues a pass for them.
func (s *session) takeRequests(ctx context.Context) {
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
		if req.Action == "approve" || req.Action == "reject" {
			s.review(ctx, req)
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

// review approves or rejects a pending review as asked, and queues a pass:
// what the decision made due (downstream steps, the next attempt) runs.
func (s *session) review(ctx context.Context, req retryRequest) {
	var res *orchestrator.ReviewResult
	var err error
	if req.Action == "approve" {
		res, err = s.lease.Approve(ctx, req.Key)
	} else {
		res, err = s.lease.Reject(ctx, req.Key, req.Message)
	}
	if err != nil {
		s.note(req.Action + " " + req.Key + ": " + err.Error())
		return
	}
	// The commit approve or reject landed is no trigger of its own.
	s.own[res.Commit] = true
	msg := fmt.Sprintf("approved %s (asked by pid %d): %s landed", req.Key, req.PID, short(res.Commit))
	if req.Action == "reject" {
		msg = fmt.Sprintf("rejected %s (asked by pid %d): feedback committed in %s; the work is kept on %s",
			req.Key, req.PID, short(res.Commit), res.Kept)
	}
	s.pending = append(s.pending, Trigger{Kind: req.Action, Message: msg})
}

// QueueReview hands `codemachine approve KEY` (action "approve") or
// `codemachine reject KEY -m MESSAGE` ("reject") to the watcher that holds
// the lock, as QueueRetry does: the watcher decides under its lock and
// runs a pass. ErrNoWatcher: nobody is watching.
func QueueReview(o *orchestrator.Orchestrator, action, key, message string) (int, error) {
	if _, command, held := o.Repo().LockHolder(); !held || command != Command {
		return 0, ErrNoWatcher
	}
	if !o.ReviewPending(key) {
		return 0, o.NoReviewError(key)
	}
	return queue(o, retryRequest{Action: action, Key: key, Message: message})
}

// QueueRetry hands `codemachine retry ARG` to the watcher that holds the
// lock: it checks the request the way Retry does, leaves it for the
// watcher, and returns the watcher's pid. The watcher lifts the hold or
// failure and runs a pass after the current one. ErrNoWatcher: nobody is
// watching (any more); the caller can then retry by itself.
func QueueRetry(o *orchestrator.Orchestrator, arg string) (int, error) {
	if _, command, held := o.Repo().LockHolder(); !held || command != Command {
		return 0, ErrNoWatcher
	}
	ok, err := o.Retryable(arg)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, configErrorf("%s is neither failed nor held: nothing to retry (the watcher runs it when it is due)", arg)
	}
	return queue(o, retryRequest{Key: arg})
}

// queue leaves a request for the watcher holding the lock and returns its
// pid; ErrNoWatcher when no watcher holds it (any more).
func queue(o *orchestrator.Orchestrator, req retryRequest) (int, error) {
	repo := o.Repo()
	pid, command, held := repo.LockHolder()
	if !held || command != Command {
		return 0, ErrNoWatcher
	}
	if err := os.MkdirAll(filepath.Join(repo.LocalDir(), requestsDir), 0o755); err != nil {
		return 0, fmt.Errorf("queue the retry: %w", err)
	}
	now := time.Now()
	name := fmt.Sprintf("%s/retry-%d-%d.yaml", requestsDir, now.UnixNano(), os.Getpid())
	req.PID, req.At = os.Getpid(), now.UTC()
	if err := repo.WriteLocal(name, req); err != nil {
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
