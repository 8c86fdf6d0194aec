package watch

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/codemachine/codemachine/watcher"
)

// absorb takes in one batch of changes. It never runs a pass: it commits
// saved inputs (trigger: save) and notes what must be looked at.
func (s *session) absorb(ctx context.Context, b watcher.Batch) {
	root := s.repo.Root()
	reqs := filepath.Join(s.repo.LocalDir(), requestsDir)
	gitDirs := []string{s.repo.GitDir(), s.repo.CommonDir()}
	var saved []string
	for _, p := range b.Paths {
		switch {
		case within(p, reqs):
			s.reqDirty = true
		case within(p, gitDirs...):
			s.gitDirty = true
		default:
			if rel, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(rel, "..") {
				saved = append(saved, filepath.ToSlash(rel))
			}
		}
	}
	if b.Overflow {
		// Changes were lost: look at everything, and run a pass even if
		// nothing visible moved, since what was lost cannot be known.
		s.gitDirty, s.reqDirty = true, true
		s.pending = append(s.pending, Trigger{Kind: "rescan",
			Message: "change notifications overflowed: looking at everything again"})
	}
	if s.trigger == TriggerSave && (len(saved) > 0 || b.Overflow || len(s.deferred) > 0) {
		s.steer(ctx, saved, b.Overflow)
	}
}

// within reports whether p is one of dirs or below one.
func within(p string, dirs ...string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// steer commits the saved input files (trigger: save) as "steer: <files>":
// only those files, with a pathspec commit, so that the user's other
// changes, staged or not, stay out of it and as they were.
func (s *session) steer(ctx context.Context, saved []string, all bool) {
	for _, p := range saved {
		if s.matchesInput(p) {
			s.deferred[p] = true
		}
	}
	if all {
		// Events were lost: every input file may have changed.
		paths, err := s.repo.StatusPaths(ctx)
		if err != nil {
			s.note("steer: " + err.Error())
			return
		}
		for _, p := range paths {
			if s.matchesInput(p) {
				s.deferred[p] = true
			}
		}
	}
	if len(s.deferred) == 0 {
		return
	}
	// A git command is writing the index (a checkout, a merge, a landing
	// bringing the working tree forward): its files are half-way, and
	// whatever it finishes with is no edit of the user's. The lock's
	// removal is a change in .git, so the next batch comes back here.
	if _, err := os.Lstat(filepath.Join(s.repo.GitDir(), "index.lock")); err == nil {
		return
	}
	candidates := slices.Sorted(maps.Keys(s.deferred))
	s.deferred = map[string]bool{}
	dirty, err := s.dirtyInputs(ctx, candidates)
	if err != nil {
		s.note("steer: " + err.Error())
		return
	}
	if len(dirty) == 0 {
		return
	}
	head, err := s.repo.Head()
	if err != nil || head.Branch == "" {
		s.note("saved " + listPaths(dirty) + ": not committed while HEAD is detached")
		return
	}
	msg := "steer: " + listPaths(dirty)
	if err := s.repo.CommitPaths(ctx, dirty, msg); err != nil {
		s.note("saved " + listPaths(dirty) + ": the steer commit failed: " + err.Error())
		return
	}
	after, err := s.repo.Head()
	if err != nil {
		s.note(err.Error())
		return
	}
	s.own[after.Commit] = true
	if after.Branch == s.branch && head.Commit == s.seen {
		// Nothing else moved the branch meanwhile: the steer commit is
		// the whole news.
		s.seen = after.Commit
	}
	s.pending = append(s.pending, Trigger{Kind: "save",
		Message: fmt.Sprintf("saved %s: %s %s", listPaths(dirty), short(after.Commit), msg)})
}

// dirtyInputs returns those of paths that differ from HEAD. Many paths (a
// checkout's worth) are looked up in one status of the whole worktree
// rather than named on a command line.
func (s *session) dirtyInputs(ctx context.Context, paths []string) ([]string, error) {
	const maxArgs = 500
	if len(paths) <= maxArgs {
		return s.repo.StatusPaths(ctx, paths...)
	}
	all, err := s.repo.StatusPaths(ctx)
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(paths))
	for _, p := range paths {
		want[p] = true
	}
	var dirty []string
	for _, p := range all {
		if want[p] {
			dirty = append(dirty, p)
		}
	}
	return dirty, nil
}

// matchesInput reports whether a path (slash-separated, relative to the
// root) is one a step reads: its inputs (a literal directory stands for
// everything below it) or its plan file.
func (s *session) matchesInput(p string) bool {
	for _, pat := range s.patterns {
		if ok, _ := doublestar.Match(pat, p); ok {
			return true
		}
		if !hasGlobMeta(pat) && strings.HasPrefix(p, strings.TrimSuffix(pat, "/")+"/") {
			return true
		}
	}
	return false
}

func hasGlobMeta(s string) bool { return strings.ContainsAny(s, `*?[{\`) }

// listPaths names files for a message: all of a few, the first three of
// many.
func listPaths(paths []string) string {
	if len(paths) <= 3 {
		return strings.Join(paths, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(paths[:3], ", "), len(paths)-3)
}
