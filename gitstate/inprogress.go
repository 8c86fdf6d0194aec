package gitstate

import (
	"fmt"
	"os"
	"path/filepath"
)

// OperationError says that a checkout of the branch the steps land on is in
// the middle of a git operation (a merge, a rebase, a cherry-pick, a
// revert, git am): a step commit landing there would be taken into the
// operation's own commit, or move the branch under it.
type OperationError struct {
	Checkout  string // the worktree's directory
	Operation string // "a merge", "a rebase", ...
	Abort     string // the command that abandons it
}

// Error names the operation, where it is and how to finish or abandon it.
func (e *OperationError) Error() string {
	return fmt.Sprintf("%s is in progress in %s: finish it, or abandon it with %s, before steps land on its branch", e.Operation, e.Checkout, e.Abort)
}

// operationMark is a file git leaves while an operation waits for the
// user, the operation's name and the command that abandons it.
type operationMark struct{ file, operation, abort string }

// operationMarks are the files git leaves in a worktree's git directory
// while an operation waits for the user, most specific first: git am and
// a rebase of the apply backend share rebase-apply, told apart by applying.
var operationMarks = []operationMark{
	{"rebase-merge", "a rebase", "git rebase --abort"},
	{"rebase-apply/applying", "git am", "git am --abort"},
	{"rebase-apply", "a rebase", "git rebase --abort"},
	{"MERGE_HEAD", "a merge", "git merge --abort"},
	{"CHERRY_PICK_HEAD", "a cherry-pick", "git cherry-pick --abort"},
	{"REVERT_HEAD", "a revert", "git revert --abort"},
	{"sequencer", "a cherry-pick or revert of several commits", "git cherry-pick --abort (or git revert --abort)"},
}

// OperationInProgress returns an *OperationError when a worktree of the
// user's that has branch checked out is in the middle of a git operation,
// and nil otherwise (also when no checkout has the branch). It looks for
// the operation's files only (a few stats, cheap before every unit);
// CheckUnmerged reads the index for conflicts.
func (r *Repo) OperationInProgress(branch string) error {
	cos, err := r.checkoutsOn("refs/heads/" + branch)
	if err != nil {
		return err
	}
	for _, co := range cos {
		if m, ok := co.operation(); ok {
			return &OperationError{Checkout: co.root, Operation: m.operation, Abort: m.abort}
		}
	}
	return nil
}

// operation is the git operation the checkout is in the middle of.
func (c checkout) operation() (operationMark, bool) {
	for _, m := range operationMarks {
		if _, err := os.Lstat(filepath.Join(c.gitDir, m.file)); err == nil {
			return m, true
		}
	}
	return operationMark{}, false
}

// abortCommand is the command that abandons the checkout's operation, ""
// when none is in progress.
func (c checkout) abortCommand() string {
	m, _ := c.operation()
	return m.abort
}
