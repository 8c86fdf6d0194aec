package gitstate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// OperationError says that a checkout of the branch the steps land on is in
// the middle of a git operation (a merge, a rebase, a cherry-pick, a
// revert, git am) or has unresolved conflicts (a git stash pop's): a step
// commit landing there would be taken into the operation's own commit, or
// move the branch under it, and git moves no index with conflicts forward.
type OperationError struct {
	Checkout  string   // the worktree's directory
	Operation string   // "a merge", "a rebase", ...; "" for conflicts alone
	Abort     string   // the command that abandons the operation
	Unmerged  []string // the paths with unresolved conflicts, sorted
}

// Error names the operation or the conflicted files, where they are, and
// how to finish or abandon them, on one line.
func (e *OperationError) Error() string {
	conflicts := ""
	if len(e.Unmerged) > 0 {
		paths, more := e.Unmerged, ""
		if len(paths) > 5 {
			paths, more = paths[:5], fmt.Sprintf(" and %d more", len(e.Unmerged)-5)
		}
		conflicts = " with unresolved conflicts in " + strings.Join(paths, ", ") + more
	}
	if e.Operation == "" {
		return fmt.Sprintf("the checkout in %s has unresolved conflicts in %s: resolve them (edit, then git add) or git checkout the files, before steps land on its branch",
			e.Checkout, strings.TrimPrefix(conflicts, " with unresolved conflicts in "))
	}
	finish := "finish it"
	if conflicts != "" {
		finish = "resolve them and commit"
	}
	return fmt.Sprintf("%s is in progress in %s%s: %s, or abandon it with %s, before steps land on its branch", e.Operation, e.Checkout, conflicts, finish, e.Abort)
}

// operationMarks are the files git leaves in a worktree's git directory
// while an operation waits for the user, most specific first: git am and
// a rebase of the apply backend share rebase-apply, told apart by applying.
var operationMarks = []struct{ file, operation, abort string }{
	{"rebase-merge", "a rebase", "git rebase --abort"},
	{"rebase-apply/applying", "git am", "git am --abort"},
	{"rebase-apply", "a rebase", "git rebase --abort"},
	{"MERGE_HEAD", "a merge", "git merge --abort"},
	{"CHERRY_PICK_HEAD", "a cherry-pick", "git cherry-pick --abort"},
	{"REVERT_HEAD", "a revert", "git revert --abort"},
	{"sequencer", "a cherry-pick or revert of several commits", "git cherry-pick --abort (or git revert --abort)"},
}

// OperationInProgress returns an *OperationError when a worktree of the
// user's that has branch checked out is in the middle of a git operation
// or, when readIndex, has unresolved conflicts in its index; nil otherwise
// (also when no checkout has the branch). The marks are a few stats; the
// index is read in full, which a caller asking often may leave to its first
// time.
func (r *Repo) OperationInProgress(ctx context.Context, branch string, readIndex bool) error {
	cos, err := r.checkoutsOn("refs/heads/" + branch)
	if err != nil {
		return err
	}
	for _, co := range cos {
		var unmerged []string
		if readIndex {
			if unmerged, err = r.unmergedIn(ctx, co); err != nil {
				return err
			}
		}
		for _, m := range operationMarks {
			if _, err := os.Lstat(filepath.Join(co.gitDir, m.file)); err == nil {
				return &OperationError{Checkout: co.root, Operation: m.operation, Abort: m.abort, Unmerged: unmerged}
			}
		}
		if len(unmerged) > 0 {
			return &OperationError{Checkout: co.root, Unmerged: unmerged}
		}
	}
	return nil
}

// unmergedIn lists the checkout's paths with unresolved conflicts, read
// from its index in-process where it can be (git ls-files otherwise).
func (r *Repo) unmergedIn(ctx context.Context, co checkout) ([]string, error) {
	paths, ok, err := unmergedPaths(filepath.Join(co.gitDir, "index"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no index yet: nothing staged, nothing unmerged
	}
	if ok || err != nil {
		return paths, err
	}
	out, err := r.readWith(ctx, runOpts{Dir: co.root}, "ls-files", "--unmerged", "-z")
	if err != nil {
		return nil, fmt.Errorf("list unmerged files in %s: %w", co.root, err)
	}
	for _, rec := range strings.Split(out, "\x00") {
		// "MODE HASH STAGE\tPATH", one record per stage, sorted by path.
		if _, p, found := strings.Cut(rec, "\t"); found && (len(paths) == 0 || paths[len(paths)-1] != p) {
			paths = append(paths, p)
		}
	}
	return paths, nil
}
