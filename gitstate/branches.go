package gitstate

import (
	"context"
	"fmt"
	"strings"
)

// DeleteBranches deletes the branch name and its numbered siblings
// (name-2, name-3, ... as keepOnBranch makes them), except those a
// worktree of the user's has checked out, and returns the refs it deleted.
func (r *Repo) DeleteBranches(ctx context.Context, name string) ([]string, error) {
	prefix := "refs/heads/" + name
	refs, err := r.RefsWithPrefix(prefix)
	if err != nil {
		return nil, err
	}
	var deleted []string
	for ref, hash := range refs {
		if rest := strings.TrimPrefix(ref, prefix); rest != "" && !isNumberedSuffix(rest) {
			continue // another branch under the same prefix
		}
		cos, err := r.checkoutsOn(ref)
		if err != nil {
			return deleted, err
		}
		if len(cos) > 0 {
			continue
		}
		if err := r.DeleteRef(ctx, ref, hash); err != nil {
			return deleted, fmt.Errorf("delete %s: %w", ref, err)
		}
		deleted = append(deleted, ref)
	}
	return deleted, nil
}

// isNumberedSuffix reports whether s is "-N" for a number N.
func isNumberedSuffix(s string) bool {
	n, ok := strings.CutPrefix(s, "-")
	if !ok || n == "" {
		return false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
