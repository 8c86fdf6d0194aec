package orchestrator

import (
	"fmt"

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
	if pid, command, held := o.repo.LockHolder(); held {
		return false, fmt.Sprintf("%s (pid %d) is running", command, pid)
	}
	return true, ""
}
