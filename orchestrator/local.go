package orchestrator

import (
	"errors"
	"io/fs"
	"time"

	"github.com/codemachine/codemachine/workflow"
)

// Local, per-clone facts: holds after a rollback, the last failure
// of each step, and what the lock holder is running. They live under
// .git/codemachine and are never committed.
const (
	holdsFile    = "holds.yaml"
	failuresFile = "failures.yaml"
	runningFile  = "running.yaml"
)

// Hold keeps a rolled-back step (or task) from running again with the same
// inputs. It lifts when the fingerprint changes or on `run STEP`/`retry`.
type Hold struct {
	Fingerprint string    `yaml:"fingerprint"`
	Commit      string    `yaml:"commit"` // the commit that was rolled back
	At          time.Time `yaml:"at"`
	// Remote is the hold commit on the workers' remote this hold mirrors
	// (MirrorHolds): it goes when the remote's hold goes.
	Remote string `yaml:"remote,omitempty"`
}

// Failure is the last failure of a step or task.
type Failure struct {
	Fingerprint string `yaml:"fingerprint"`
	Error       string `yaml:"error"`
	Ref         string `yaml:"ref,omitempty"`    // where its partial work is
	Commit      string `yaml:"commit,omitempty"` // the failed ref's commit
	Conflict    bool   `yaml:"conflict,omitempty"`
	// Interrupted: the run was stopped (Ctrl-C, SIGTERM) while the unit
	// ran; nothing failed, so a watcher or worker runs it again (resumed)
	// rather than waiting for new inputs or a retry.
	Interrupted bool      `yaml:"interrupted,omitempty"`
	Run         string    `yaml:"run"`
	At          time.Time `yaml:"at"`
	// Session is the engine session an interrupted unit resumes on its
	// next attempt with Engine (resume.go); empty when not resumable.
	Session string `yaml:"session,omitempty"`
	Engine  string `yaml:"engine,omitempty"`
	// Slot and Home are the worktree slot and engine config dir the
	// session ran in, where its next attempt resumes it.
	Slot int    `yaml:"slot,omitempty"`
	Home string `yaml:"home,omitempty"`
}

// Running is what the lock holder is doing, for status.
type Running struct {
	PID   int               `yaml:"pid"`
	Run   string            `yaml:"run"`
	Units map[string]string `yaml:"units"` // key -> started at (RFC 3339)
	// Groups are the process groups of the running agents and commands, by
	// key, so that a run taking over after this one was killed can stop
	// what it left running.
	Groups map[string]int `yaml:"groups,omitempty"`
}

// readLocal reads a local file; a missing one leaves v as it is. The
// error names the file already.
func (o *Orchestrator) readLocal(name string, v any) error {
	err := o.repo.ReadLocal(name, v)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (o *Orchestrator) holds() (map[string]Hold, error) {
	m := map[string]Hold{}
	err := o.readLocal(holdsFile, &m)
	if m == nil {
		m = map[string]Hold{}
	}
	return m, err
}

func (o *Orchestrator) failures() (map[string]Failure, error) {
	m := map[string]Failure{}
	err := o.readLocal(failuresFile, &m)
	if m == nil {
		m = map[string]Failure{}
	}
	return m, err
}

// updateHolds applies fn to the holds file under the repo lock's protection
// (callers hold the lock or run read-only commands).
func (o *Orchestrator) updateHolds(fn func(map[string]Hold)) error {
	o.localMu.Lock()
	defer o.localMu.Unlock()
	m, err := o.holds()
	if err != nil {
		return err
	}
	fn(m)
	return o.repo.WriteLocal(holdsFile, m)
}

func (o *Orchestrator) updateFailures(fn func(map[string]Failure)) error {
	o.localMu.Lock()
	defer o.localMu.Unlock()
	m, err := o.failures()
	if err != nil {
		return err
	}
	fn(m)
	return o.repo.WriteLocal(failuresFile, m)
}

// taskFingerprint identifies a task's definition under its step's
// fingerprint, so a hold on a task lifts when the task is reworded or the
// step's inputs change.
func taskFingerprint(stepFP string, t *workflow.Task) string {
	return workflow.TaskFingerprint(stepFP, t)
}

// forget drops a landed unit's failure and hold, writing the local files
// only when they held something for it (a landing is a hot path).
func (o *Orchestrator) forget(key string) error {
	o.localMu.Lock()
	defer o.localMu.Unlock()
	failures, err := o.failures()
	if err != nil {
		return err
	}
	if _, ok := failures[key]; ok {
		delete(failures, key)
		if err := o.repo.WriteLocal(failuresFile, failures); err != nil {
			return err
		}
	}
	holds, err := o.holds()
	if err != nil {
		return err
	}
	if _, ok := holds[key]; ok {
		delete(holds, key)
		return o.repo.WriteLocal(holdsFile, holds)
	}
	return nil
}
