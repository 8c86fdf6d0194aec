package gitstate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CommitPaths commits exactly paths (literal, slash-separated, relative to
// the root; additions, changes and deletions alike) on the current branch
// with message msg, as `git commit --only` does: the user's other changes,
// staged or not, stay out of the commit and as they were. The user's git
// hooks run, as for a commit of their own. The paths go to git on standard
// input, so that a checkout's worth of them fits, and the message in a
// file, so that a message of any length does. When the commit fails (a
// hook refuses it), the paths' index entries are put back as HEAD has
// them; their files stay as they are in the working tree.
func (r *Repo) CommitPaths(ctx context.Context, paths []string, msg string) error {
	if len(paths) == 0 {
		// An empty pathspec list would mean every path to git.
		return errors.New("commit paths: no paths given")
	}
	var list bytes.Buffer
	for _, p := range paths {
		list.WriteString(p)
		list.WriteByte(0)
	}
	msgFile, err := r.tempPath("commit-msg")
	if err != nil {
		return err
	}
	if err := os.WriteFile(msgFile, []byte(msg), 0o600); err != nil {
		return fmt.Errorf("commit paths: %w", err)
	}
	defer os.Remove(msgFile)
	// The add and the commit lock the user's index: not stopped once they
	// run (milliseconds), so that a signal never leaves index.lock behind.
	fromStdin := runOpts{Stdin: list.Bytes(), finish: true}
	// add -A first: --only alone does not take in untracked files.
	if _, err := r.gitWith(ctx, fromStdin, "--literal-pathspecs", "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul"); err != nil {
		return err
	}
	_, err = r.gitWith(ctx, fromStdin, "--literal-pathspecs", "commit", "-q", "--only", "-F", msgFile,
		"--pathspec-from-file=-", "--pathspec-file-nul")
	if err != nil {
		// Not left staged by the add above for the user's next commit.
		if _, rerr := r.gitWith(context.WithoutCancel(ctx), fromStdin, "--literal-pathspecs", "reset", "-q",
			"--pathspec-from-file=-", "--pathspec-file-nul"); rerr != nil {
			return fmt.Errorf("%w (and unstaging the paths again: %w)", err, rerr)
		}
	}
	return err
}

// IgnoredDirs returns those of dirs (absolute paths) that git ignores and
// that hold no tracked file, in the order given: build output and
// dependencies, which a watcher need not enter. The root itself and paths
// outside the worktree are never ignored.
func (r *Repo) IgnoredDirs(ctx context.Context, dirs []string) ([]string, error) {
	var in bytes.Buffer
	abs := map[string]string{}
	for _, d := range dirs {
		rel, err := filepath.Rel(r.root, d)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			continue
		}
		rel = filepath.ToSlash(rel)
		abs[rel] = d
		in.WriteString(rel)
		in.WriteByte(0)
	}
	if in.Len() == 0 {
		return nil, nil
	}
	// --no-index: with the index, git checks each path against every
	// tracked file (1.5 s for 1,000 directories of a 100k-file
	// repository, against 2 ms without). What that check is for, an
	// ignored directory that holds tracked files, is asked of ls-files
	// below, for the few directories found ignored.
	out, err := r.readWith(ctx, runOpts{Stdin: in.Bytes()}, "check-ignore", "--no-index", "--stdin", "-z")
	if exitCode(err) == 1 {
		return nil, nil // nothing is ignored
	}
	if err != nil {
		return nil, fmt.Errorf("ignored directories: %w", err)
	}
	var rels []string
	for _, rel := range strings.Split(out, "\x00") {
		if _, ok := abs[rel]; ok {
			rels = append(rels, rel)
		}
	}
	if len(rels) == 0 {
		return nil, nil
	}
	tracked, err := r.read(ctx, append([]string{"--literal-pathspecs", "ls-files", "-z", "--"}, rels...)...)
	if err != nil {
		return nil, fmt.Errorf("ignored directories: %w", err)
	}
	var ignored []string
	for _, rel := range rels {
		if !strings.HasPrefix(tracked, rel+"/") && !strings.Contains(tracked, "\x00"+rel+"/") {
			ignored = append(ignored, abs[rel])
		}
	}
	return ignored, nil
}
