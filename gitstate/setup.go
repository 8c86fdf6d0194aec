package gitstate

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/codemachine/codemachine/internal/lazyre"
)

// Version is what `git --version` says ("git version 2.43.0"): whether git
// is installed, and which. In a repository (repo not nil) it is the git
// that repo's commands run, found on PATH without the directories in its
// working tree (see Repo.Command): a step may have landed a git there.
func Version(ctx context.Context, repo *Repo) (string, error) {
	cmd := exec.CommandContext(ctx, "git", "--version")
	if repo != nil {
		cmd = repo.Command(ctx, repo.Root(), "git", "--version")
	}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git --version: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// HooksDir is where git looks for this repository's hooks: .git/hooks (of
// the common directory), or core.hooksPath when it is set, a relative one
// against the working tree, where git runs hooks. It reads the
// configuration git config --list gave (read again when a configuration
// file changed), as `git rev-parse --git-path hooks` would answer.
func (r *Repo) HooksDir(ctx context.Context) (string, error) {
	c, err := r.fastConfigFor(ctx)
	if err != nil {
		return "", fmt.Errorf("find the hooks directory: %w", err)
	}
	p, ok := c.get("core.hookspath")
	if !ok || p == "" {
		return filepath.Join(r.commonDir, "hooks"), nil
	}
	if expanded := r.expandPath(p); expanded != "" {
		p = expanded
	} else {
		return "", fmt.Errorf("find the hooks directory: core.hooksPath %q cannot be expanded", p)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(r.root, p)
	}
	return filepath.Clean(p), nil
}

// TrackedIn lists the files git tracks in dir (a path of the working tree,
// as HooksDir gives it), relative to the root: none when dir is outside
// the working tree. A hooks directory committed with the project (husky's
// .husky, a .githooks) is the project's, not codemachine's to write in.
func (r *Repo) TrackedIn(ctx context.Context, dir string) ([]string, error) {
	root, abs := r.root, dir
	if rr, err := filepath.EvalSymlinks(root); err == nil {
		if rd, err := filepath.EvalSymlinks(dir); err == nil {
			root, abs = rr, rd
		}
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return nil, nil
	}
	out, err := r.read(ctx, "--literal-pathspecs", "ls-files", "-z", "--", filepath.ToSlash(rel))
	if err != nil {
		return nil, fmt.Errorf("list the tracked files of %s: %w", dir, err)
	}
	var files []string
	for _, f := range strings.Split(out, "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	return files, nil
}

// Unignored are the paths among paths (files of the working tree, which
// need not exist yet) that `git add -A` would add: inside the working tree,
// outside .git, and not ignored. A hook written into a hooks directory the
// project has not ignored (a new .githooks) would be committed with the
// next `git add -A`.
func (r *Repo) Unignored(ctx context.Context, paths []string) ([]string, error) {
	var in bytes.Buffer
	var rels []string
	for _, p := range paths {
		// Both sides with their links resolved, or neither: a hooks
		// directory not created yet cannot be resolved.
		root, abs := r.root, p
		if rr, err := filepath.EvalSymlinks(root); err == nil {
			if rd, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
				root, abs = rr, filepath.Join(rd, filepath.Base(p))
			}
		}
		rel, err := filepath.Rel(root, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) ||
			rel == ".git" || strings.HasPrefix(rel, ".git"+string(filepath.Separator)) {
			continue
		}
		rels = append(rels, filepath.ToSlash(rel))
		in.WriteString(filepath.ToSlash(rel))
		in.WriteByte(0)
	}
	if len(rels) == 0 {
		return nil, nil
	}
	out, err := r.readWith(ctx, runOpts{Stdin: in.Bytes()}, "check-ignore", "--no-index", "--stdin", "-z")
	if err != nil && exitCode(err) != 1 { // 1: none is ignored
		return nil, fmt.Errorf("check which of %s git ignores: %w", strings.Join(rels, ", "), err)
	}
	ignored := strings.Split(out, "\x00")
	var add []string
	for _, rel := range rels {
		if !slices.Contains(ignored, rel) {
			add = append(add, rel)
		}
	}
	return add, nil
}

// IncludedConfigFiles are the files the repository's configuration
// includes (include.path, includeIf.*.path, followed as git follows
// them), absolute and clean; relative ones as git resolves them, against
// the directory of the file that includes them. A repository that shares
// its settings through a tracked file (include.path = ../.gitconfig) has
// git read what lands there.
func (r *Repo) IncludedConfigFiles(ctx context.Context) ([]string, error) {
	c, err := r.fastConfigFor(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the configuration's includes: %w", err)
	}
	var files []string
	for _, inc := range c.includes {
		origin, ok := strings.CutPrefix(inc.origin, "file:")
		value := inc.value
		switch {
		case !ok || value == "":
			continue
		case strings.HasPrefix(value, "~/"):
			if value = r.expandPath(value); value == "" {
				continue
			}
		case !filepath.IsAbs(value):
			if !filepath.IsAbs(origin) {
				origin = filepath.Join(r.root, origin)
			}
			value = filepath.Join(filepath.Dir(origin), value)
		}
		files = append(files, filepath.Clean(value))
	}
	return files, nil
}

// ConfiguredCommands are the commands the repository's configuration
// gives git to run (filter drivers, diff and merge drivers, fsmonitor,
// ssh, credential helpers, ...), by key. Git runs a filter with the
// working tree as its directory: one that names a script of the
// repository (sh scripts/clean.sh) runs the copy of whichever working
// tree git works on.
func (r *Repo) ConfiguredCommands(ctx context.Context) (map[string]string, error) {
	c, err := r.fastConfigFor(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the configuration's commands: %w", err)
	}
	cmds := map[string]string{}
	for k, v := range c.values {
		if v != "" && commandKeyRe().MatchString(k) {
			cmds[k] = v
		}
	}
	return cmds, nil
}

// commandKeyRe matches commandKeys.
var commandKeyRe = lazyre.New(commandKeys)

// commandKeys match the configuration keys whose values git runs.
const commandKeys = `^(filter\..*\.(clean|smudge|process)|diff\..*\.(textconv|command)|merge\..*\.driver|` +
	`core\.(fsmonitor|sshcommand|askpass|editor|pager|gitproxy)|credential\.(.*\.)?helper|gpg\.(.*\.)?program|` +
	`sequence\.editor|diff\.external)$`

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
