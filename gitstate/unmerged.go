package gitstate

import (
	"context"
	"fmt"
	"strings"
)

// UnmergedError is returned by CheckUnmerged and ResetBranch when a
// checkout of the branch is in the middle of a merge (or a cherry-pick,
// revert or stash pop) that left conflicts: git refuses to move such an
// index forward, or to stash it, so nothing could land on the branch, nor
// could it be reset, until the user settles them.
type UnmergedError struct {
	Branch string
	Dir    string   // the checkout's root
	Paths  []string // the unmerged paths, sorted
}

// Error says which files are unmerged and what to do, on one line.
func (e *UnmergedError) Error() string {
	paths := e.Paths
	more := ""
	if len(paths) > 5 {
		paths, more = paths[:5], fmt.Sprintf(" and %d more", len(e.Paths)-5)
	}
	return fmt.Sprintf("the checkout of %s in %s has unresolved merge conflicts in %s%s: resolve them and commit (or git merge --abort) first",
		e.Branch, e.Dir, strings.Join(paths, ", "), more)
}

// CheckUnmerged returns an *UnmergedError when a worktree of the user's
// with branch checked out has unmerged index entries.
func (r *Repo) CheckUnmerged(ctx context.Context, branch string) error {
	cos, err := r.checkoutsOn("refs/heads/" + branch)
	if err != nil {
		return err
	}
	for _, co := range cos {
		out, err := r.readWith(ctx, runOpts{Dir: co.root}, "ls-files", "--unmerged", "-z")
		if err != nil {
			return fmt.Errorf("list unmerged files in %s: %w", co.root, err)
		}
		var paths []string
		for rec := range strings.SplitSeq(out, "\x00") {
			// "MODE HASH STAGE\tPATH", one record per stage of a path.
			// git lists them sorted by path.
			if _, path, ok := strings.Cut(rec, "\t"); ok && (len(paths) == 0 || paths[len(paths)-1] != path) {
				paths = append(paths, path)
			}
		}
		if len(paths) > 0 {
			return &UnmergedError{Branch: branch, Dir: co.root, Paths: paths}
		}
	}
	return nil
}

// unmergedPaths are the paths of the unmerged entries of a status.
func unmergedPaths(entries []StatusEntry) []string {
	var paths []string
	for _, e := range entries {
		if e.Unmerged {
			paths = append(paths, e.Path)
		}
	}
	return paths
}
