package orchestrator

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/codemachine/codemachine/workflow"
)

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
	// The request comes first: a run that releases the lock after this
	// looks at it (Run), and one that released it before is not running.
	if err := o.repo.WriteLocal(hookRequestFile, hookRequest{Commit: head.Commit, PID: os.Getpid()}); err != nil {
		return false, err.Error()
	}
	if pid, command, held := o.repo.LockHolder(); held {
		return false, fmt.Sprintf("%s (pid %d) is running; it makes one more pass when it ends", command, pid)
	}
	// The run this hook starts sees every commit so far.
	o.takeHookRequest()
	return true, ""
}

// hookRequestFile is a git hook's request for a run, left under LocalDir
// for the run that held the lock when the hook fired.
const hookRequestFile = "hook-request.yaml"

type hookRequest struct {
	Commit string `yaml:"commit"`
	PID    int    `yaml:"pid"`
}

// takeHookRequest removes a hook's request and reports whether there was
// one.
func (o *Orchestrator) takeHookRequest() bool {
	err := os.Remove(filepath.Join(o.repo.LocalDir(), hookRequestFile))
	return err == nil
}
