package gitstate

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// This file is the stage git does where the in-process one declines (an
// index of more than stageInProcessMaxEntries entries, attributes or
// configuration that change what git stores, ...). It stages what git add
// -A would, but walks the worktree once: a single git status lists what
// changed (untracked files that are not ignored, tracked files that differ
// from the index), and git update-index stages exactly those paths. git
// add -A would walk the worktree again, and the checks below (nested
// repositories, oversized files) would have walked it twice more.

// statusArgs list, NUL-separated, what git add -A would stage. The
// submodules' own status is not asked (--ignore-submodules=all): git would
// run it inside them with their own configuration, which a step may have
// written. Renames are not looked for: only the paths count.
var statusArgs = []string{"status", "--porcelain=v2", "-z", "--untracked-files=all", "--ignore-submodules=all",
	"--no-renames"}

// worktreeChanges sorts git status's entries into what git add -A
// would stage.
type worktreeChanges struct {
	// untracked are the untracked paths that are not ignored; a nested
	// repository is its directory with a trailing slash.
	untracked []string
	// changed are the tracked paths whose file differs from the index:
	// modified, deleted, of another type, or unmerged.
	changed []string
}

func changesOf(entries []StatusEntry) worktreeChanges {
	var c worktreeChanges
	for _, e := range entries {
		switch {
		case e.Untracked():
			c.untracked = append(c.untracked, e.Path)
		case e.Index == '!':
		case e.Unmerged || e.Worktree != '.':
			c.changed = append(c.changed, e.Path)
		}
	}
	return c
}

// stageWithGit stages the worktree with git, as git add -A would, but
// leaves out what Stage must not give git (nested repositories, files
// LimitFiles refuses, every gitlink, paths git refuses as .git or a
// .gitmodules link elsewhere), records those as Nested, LeftOut and
// GitAlias, and returns the tree git write-tree writes.
func (w *Worktree) stageWithGit(ctx context.Context) (string, error) {
	out, err := w.statusBesideWalk(ctx)
	if err != nil {
		return "", err
	}
	entries, err := parseStatus(out)
	if err != nil {
		return "", err
	}
	c := changesOf(entries)
	if err := w.reachable(c); err != nil {
		return "", err
	}
	gitlinks, err := w.gitlinks(ctx)
	if err != nil {
		return "", err
	}
	var nested []string
	for _, p := range c.untracked {
		if dir, ok := strings.CutSuffix(p, "/"); ok && dir != "" {
			nested = append(nested, dir)
		}
	}
	for _, g := range gitlinks {
		if _, err := os.Lstat(filepath.Join(w.path, filepath.FromSlash(g), ".git")); err == nil {
			nested = append(nested, g)
		}
	}
	leftOut := w.oversize(append(slices.Clone(c.untracked), c.changed...))
	leave := map[string]bool{}
	for _, p := range append(gitlinks, nested...) {
		leave[p] = true
	}
	for _, f := range leftOut {
		leave[f.Path] = true
	}
	refused, alias := w.gitAliases(c)
	for _, p := range refused {
		leave[p] = true
	}
	var stdin strings.Builder
	// Removals first: a file that replaced a directory, or a directory
	// that replaced a file, then finds its path free.
	for _, p := range append(c.changed, c.untracked...) {
		if !leave[p] && !strings.HasSuffix(p, "/") {
			stdin.WriteString(p + "\x00")
		}
	}
	if stdin.Len() > 0 {
		opts := w.opts()
		opts.Stdin = []byte(stdin.String())
		args := append(append([]string{}, trusted...), "update-index", "--add", "--remove", "--replace", "-z", "--stdin")
		if _, err := w.repo.gitWith(ctx, opts, args...); err != nil {
			return "", err
		}
	}
	w.leftOut, w.nested, w.alias = leftOut, nested, alias
	tree, err := w.git(ctx, "write-tree")
	if err != nil {
		return "", err
	}
	return trimNL(tree), nil
}

// gitAliases lists the paths of c that git would refuse: a name it takes
// for .git elsewhere (a new path's), or a symbolic link it takes for
// .gitmodules. git update-index drops such a path with no more than a
// warning, and the step would land without it, as if it had not made it.
// It also returns the error for the first, nil when there is none.
func (w *Worktree) gitAliases(c worktreeChanges) ([]string, *GitAliasError) {
	var refused []string
	var first *GitAliasError
	for i, p := range append(slices.Clone(c.untracked), c.changed...) {
		var e *GitAliasError
		if i < len(c.untracked) {
			e = FirstGitAlias([]string{p})
		}
		if name := path.Base(p); e == nil && IsGitmodulesAlias(name) {
			if st, err := os.Lstat(filepath.Join(w.path, filepath.FromSlash(p))); err == nil && st.Mode()&os.ModeSymlink != 0 {
				e = &GitAliasError{Path: p, Name: name, Link: true}
			}
		}
		if e != nil {
			refused = append(refused, p)
			if first == nil {
				first = e
			}
		}
	}
	return refused, first
}

// statusBesideWalk runs git status over the worktree while the worktree
// is searched for a .gitignore or .gitattributes that is a FIFO, a socket
// or a device, and returns what git status printed, or the
// *SpecialFileError for such a file (or the *UnwalkedError for a path the
// search could not look at): git status would wait forever on a
// FIFO .gitignore (and update-index on a FIFO .gitattributes), and the
// in-process stage declined before it met every one. The search runs
// beside git status, not before it: at 100k files it takes about as long
// as git's own walk. When it finds one, git status is stopped (SIGTERM,
// on which git removes its lock) and a lock of the private index git may
// still have left (a signal between taking the lock and arming its
// removal) is removed: no other process uses that index.
// git status refreshes the index's stat data as it goes and writes it
// back: the next stage then compares no file's content again.
func (w *Worktree) statusBesideWalk(ctx context.Context) (string, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	walked := make(chan error, 1)
	go func() {
		se := w.specialPatternFile()
		if se != nil {
			cancel()
		}
		walked <- se
	}()
	out, err := w.git(sctx, statusArgs...)
	if se := <-walked; se != nil {
		if err != nil {
			_ = os.Remove(w.index + ".lock")
		}
		return "", se
	}
	return out, err
}

// reachable refuses, with an *UnwalkedError, a path of c that is over
// PATH_MAX (4096 bytes) with the worktree's path in front: git stages it
// by its path relative to the worktree, but every check of the step's
// change that looks at the worktree's file by its full path (where a
// symbolic link leads, the size max_file_size limits, the secrets scan)
// could not, and would pass it over.
func (w *Worktree) reachable(c worktreeChanges) error {
	for _, p := range append(slices.Clone(c.untracked), c.changed...) {
		if len(w.path)+1+len(p) >= pathMax {
			return &UnwalkedError{Path: strings.TrimSuffix(p, "/"), Err: syscall.ENAMETOOLONG}
		}
	}
	return nil
}

// pathMax is Linux's PATH_MAX: the bytes of a path the kernel takes,
// its terminating NUL included.
const pathMax = 4096

// oversize are the files of paths (those git add -A would stage) that
// LimitFiles's function refuses, by their size.
func (w *Worktree) oversize(paths []string) []OversizeFile {
	if w.tooLarge == nil {
		return nil
	}
	var out []OversizeFile
	for _, rel := range paths {
		st, err := os.Lstat(filepath.Join(w.path, filepath.FromSlash(rel)))
		if err == nil && st.Mode().IsRegular() && w.tooLarge(rel, st.Size()) {
			out = append(out, OversizeFile{Path: rel, Size: st.Size()})
		}
	}
	return out
}

// gitlinks are the paths of the index's gitlinks: read in the process
// when stagefast.go's reader understands the index, else with git
// ls-files.
func (w *Worktree) gitlinks(ctx context.Context) ([]string, error) {
	var links []string
	if idx, err := readIndex(w.index); err == nil {
		for _, e := range idx.entries {
			if e.mode == 0o160000 {
				links = append(links, e.name)
			}
		}
		return links, nil
	}
	out, err := w.git(ctx, "ls-files", "-z", "--stage")
	if err != nil {
		return nil, err
	}
	for _, e := range strings.Split(out, "\x00") {
		mode, rest, _ := strings.Cut(e, " ")
		if _, name, ok := strings.Cut(rest, "\t"); ok && mode == "160000" {
			links = append(links, name)
		}
	}
	return links, nil
}
