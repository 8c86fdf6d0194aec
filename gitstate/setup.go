package gitstate

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Version is what `git --version` says ("git version 2.43.0"): whether git
// is installed, and which.
func Version(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "git", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("git --version: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// HooksDir is where git looks for this repository's hooks: .git/hooks, or
// core.hooksPath when it is set.
func (r *Repo) HooksDir(ctx context.Context) (string, error) {
	out, err := r.read(ctx, "rev-parse", "--path-format=absolute", "--git-path", "hooks")
	if err != nil {
		return "", fmt.Errorf("find the hooks directory: %w", err)
	}
	return strings.TrimSpace(out), nil
}

// WorktreeInfo is one of the repository's worktrees as git lists them.
type WorktreeInfo struct {
	Path string
	// Prunable: its directory is gone, and `git worktree prune` removes
	// what git still keeps of it.
	Prunable bool
}

// ListWorktrees lists every worktree of the repository, the main one
// first, with the pooled ones and the user's linked ones.
func (r *Repo) ListWorktrees(ctx context.Context) ([]WorktreeInfo, error) {
	out, err := r.read(ctx, "worktree", "list", "--porcelain")
	if err != nil {
		return nil, fmt.Errorf("list worktrees: %w", err)
	}
	var list []WorktreeInfo
	for _, line := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(line, "worktree "); ok {
			list = append(list, WorktreeInfo{Path: p})
		}
		if strings.HasPrefix(line, "prunable") && len(list) > 0 {
			list[len(list)-1].Prunable = true
		}
	}
	return list, nil
}
