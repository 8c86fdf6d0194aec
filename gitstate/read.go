package gitstate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/storage/filesystem/dotgit"

	"github.com/codemachine/codemachine/internal/fastread"
)

// ErrUnknownRev is returned (wrapped) for a revision that names no commit.
var ErrUnknownRev = errors.New("unknown revision")

// Head reads what HEAD of this worktree points at. An unborn branch (no
// commit yet) gives Head{Branch: name, Commit: ""}.
func (r *Repo) Head() (Head, error) {
	return r.headOf(r.gitDir)
}

// headOf reads the HEAD file of a worktree's git dir directly: cheaper than
// any git command, and exact for linked worktrees.
func (r *Repo) headOf(gitDir string) (Head, error) {
	data, err := fastread.ReadFile(filepath.Join(gitDir, "HEAD"))
	if err != nil {
		return Head{}, fmt.Errorf("read HEAD: %w", err)
	}
	s := strings.TrimSpace(string(data))
	target, symbolic := strings.CutPrefix(s, "ref: ")
	if !symbolic {
		if !isHash(s) {
			return Head{}, fmt.Errorf("read HEAD: %s/HEAD holds %q, neither a ref nor a commit", gitDir, s)
		}
		return Head{Commit: s}, nil
	}
	h := Head{Branch: strings.TrimPrefix(target, "refs/heads/")}
	c, err := r.refHash(target)
	if err != nil {
		return Head{}, fmt.Errorf("read HEAD: %w", err)
	}
	h.Commit = c
	return h, nil
}

// refHash resolves a full ref name; "" when it does not exist.
func (r *Repo) refHash(name string) (string, error) {
	if h, ok := refFast(r.gitDir, r.commonDir, name); ok {
		return h, nil
	}
	var out string
	err := r.goGit(func(g *gitRepo) error {
		ref, err := g.Reference(plumbing.ReferenceName(name), true)
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("resolve %s: %w", name, err)
		}
		out = ref.Hash().String()
		return nil
	})
	return out, err
}

// ResolveRev resolves a revision (anything git rev-parse accepts) to a full
// commit hash. go-git answers the common forms; anything it cannot resolve
// is asked of git itself, which is the authority.
func (r *Repo) ResolveRev(rev string) (string, error) {
	if rev == "" {
		return "", fmt.Errorf("resolve revision: empty revision: %w", ErrUnknownRev)
	}
	var out string
	_ = r.goGit(func(g *gitRepo) error {
		var h *plumbing.Hash
		if isHash(rev) {
			// A full hash needs no revision parsing, only a lookup.
			full := plumbing.NewHash(rev)
			h = &full
		} else {
			var err error
			if h, err = g.ResolveRevision(rev); err != nil {
				return err
			}
		}
		if _, err := g.CommitObject(*h); err != nil {
			return err
		}
		out = h.String()
		return nil
	})
	if out != "" {
		return out, nil
	}
	s, err := r.read(context.Background(), "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if err != nil {
		if exitCode(err) == 1 {
			return "", fmt.Errorf("resolve %q: %w", rev, ErrUnknownRev)
		}
		return "", fmt.Errorf("resolve %q: %w", rev, err)
	}
	return trimNL(s), nil
}

// ReadFile reads path (slash-separated, relative to the root) at rev. A path
// absent at rev gives an error wrapping fs.ErrNotExist.
func (r *Repo) ReadFile(rev, path string) ([]byte, error) {
	fsys, err := r.TreeFS(rev)
	if err != nil {
		return nil, err
	}
	data, err := fsys.(*TreeFS).ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", path, rev, err)
	}
	return data, nil
}

// CommitInfo reads one commit.
func (r *Repo) CommitInfo(rev string) (Commit, error) {
	h, err := r.ResolveRev(rev)
	if err != nil {
		return Commit{}, err
	}
	var c Commit
	err = r.goGit(func(g *gitRepo) error {
		oc, err := g.CommitObject(plumbing.NewHash(h))
		if err != nil {
			return fmt.Errorf("read commit %s: %w", h, err)
		}
		c = toCommit(oc)
		return nil
	})
	return c, err
}

// Log walks first parents from rev, newest first, returning at most limit
// commits (all when limit <= 0). An unborn HEAD has an empty log.
func (r *Repo) Log(from string, limit int) ([]Commit, error) {
	var out []Commit
	err := r.WalkLog(from, func(c Commit) bool {
		out = append(out, c)
		return limit <= 0 || len(out) < limit
	})
	return out, err
}

// WalkLog walks the first-parent history from rev, newest first, calling
// fn for each commit until fn returns false or the history ends. fn must
// not call back into r: the walk holds the go-git reader.
func (r *Repo) WalkLog(from string, fn func(Commit) bool) error {
	return r.walkLog(from, false, func(c Commit, _ []Commit) bool { return fn(c) })
}

// WalkLogMerges is WalkLog, also handing fn, with each merge commit, the
// commits it brought in (mergedIn): a review branch merged as a pull
// request lands its step commit beside the first-parent history.
func (r *Repo) WalkLogMerges(from string, fn func(c Commit, merged []Commit) bool) error {
	return r.walkLog(from, true, fn)
}

func (r *Repo) walkLog(from string, merges bool, fn func(Commit, []Commit) bool) error {
	if from == "HEAD" {
		h, err := r.Head()
		if err != nil {
			return err
		}
		if h.Commit == "" {
			return nil
		}
		from = h.Commit
	}
	h, err := r.ResolveRev(from)
	if err != nil {
		return err
	}
	shallow := r.shallowCommits()
	return r.goGit(func(g *gitRepo) error {
		next := plumbing.NewHash(h)
		for {
			oc, err := g.CommitObject(next)
			if err != nil {
				return fmt.Errorf("log %s: read commit %s: %w", from, next, err)
			}
			var merged []Commit
			if merges {
				merged = mergedIn(g, oc)
			}
			c := toCommit(oc)
			if shallow[c.Hash] {
				// The history of a shallow clone ends here, as git's
				// log shows it: the parents are not in the repository.
				c.Parents = nil
			}
			markStateChange(g, oc, &c)
			if !fn(c, merged) || len(c.Parents) == 0 {
				return nil
			}
			next = oc.ParentHashes[0]
		}
	})
}

// IsShallow reports whether the repository is a shallow clone: its
// history ends at commits whose parents it does not have, and a fetch
// (--deepen, --unshallow) can add history behind them.
func (r *Repo) IsShallow() bool {
	_, err := os.Stat(filepath.Join(r.commonDir, "shallow"))
	return err == nil
}

// shallowCommits are the commits at the edge of a shallow clone
// ($GIT_COMMON_DIR/shallow), whose parents the repository does not have;
// none when it is complete.
func (r *Repo) shallowCommits() map[string]bool {
	data, err := fastread.ReadFile(filepath.Join(r.commonDir, "shallow"))
	if err != nil {
		return nil
	}
	set := map[string]bool{}
	for _, line := range strings.Fields(string(data)) {
		set[line] = true
	}
	return set
}

// sideWalk bounds mergedIn's walks.
const sideWalk = 64

// mergedIn lists, newest first, the commits a merge brought in: its second
// parent and that parent's first ancestors down to where they meet the
// merge's first-parent line. Nothing when it is no merge, or when the two
// do not meet within sideWalk commits of each (a long-lived branch, or
// unrelated histories): better no answer than commits the first-parent
// line holds too, counted as new.
func mergedIn(g *gitRepo, merge *commitObj) []Commit {
	if len(merge.ParentHashes) < 2 {
		return nil
	}
	line := map[plumbing.Hash]bool{}
	next := merge.ParentHashes[0]
	for range sideWalk {
		line[next] = true
		c, err := g.CommitObject(next)
		if err != nil || len(c.ParentHashes) == 0 {
			break
		}
		next = c.ParentHashes[0]
	}
	var out []Commit
	next = merge.ParentHashes[1]
	for range sideWalk {
		if line[next] {
			return out
		}
		c, err := g.CommitObject(next)
		if err != nil || len(c.ParentHashes) == 0 {
			return nil
		}
		mc := toCommit(c)
		markStateChange(g, c, &mc)
		out = append(out, mc)
		next = c.ParentHashes[0]
	}
	return nil
}

// markStateChange sets c.ChangesState for a commit with a step trailer:
// whether oc's StateFile differs from its first parent's. A parent that is
// not here (the edge of a shallow clone, c.Parents cleared) cannot be
// compared with, and the trailer is taken at its word.
func markStateChange(g *gitRepo, oc *commitObj, c *Commit) {
	if (Message{Trailers: c.Trailers}).Get(TrailerStep) == "" {
		return
	}
	now, ok := blobAt(g, oc.TreeHash, StateFile)
	if !ok {
		return
	}
	if len(c.Parents) == 0 || len(oc.ParentHashes) == 0 {
		c.ChangesState = true
		return
	}
	parent, err := g.CommitObject(oc.ParentHashes[0])
	if err != nil {
		c.ChangesState = true
		return
	}
	before, _ := blobAt(g, parent.TreeHash, StateFile)
	c.ChangesState = before != now
}

// blobAt is the object id of the file at slash-separated path p in tree,
// ok false when the tree has no file there.
func blobAt(g *gitRepo, tree plumbing.Hash, p string) (plumbing.Hash, bool) {
	hash := tree
	parts := strings.Split(p, "/")
	for i, name := range parts {
		t, err := g.TreeObject(hash)
		if err != nil {
			return plumbing.ZeroHash, false
		}
		found := false
		for _, e := range t.Entries {
			if e.Name == name {
				if (i < len(parts)-1) != (e.Mode == filemode.Dir) {
					return plumbing.ZeroHash, false
				}
				hash, found = e.Hash, true
				break
			}
		}
		if !found {
			return plumbing.ZeroHash, false
		}
	}
	return hash, true
}

func toCommit(oc *commitObj) Commit {
	c := Commit{
		Hash:      oc.Hash.String(),
		Author:    oc.Author,
		Committer: oc.Committer,
		Message:   oc.Message,
	}
	for _, p := range oc.ParentHashes {
		c.Parents = append(c.Parents, p.String())
	}
	// Trailers are parsed only where there can be some: most of a long
	// history is the user's own commits, and status walks it.
	if strings.Contains(oc.Message, ": ") {
		if m, err := ParseMessage(oc.Message); err == nil {
			c.Trailers = m.Trailers
		}
	}
	return c
}

// IsAncestor reports whether commit a is an ancestor of (or equal to) b.
// git answers this from its commit-graph, much faster than a go-git walk.
func (r *Repo) IsAncestor(a, b string) (bool, error) {
	if r.firstParentAncestor(a, b) {
		return true, nil
	}
	_, err := r.read(context.Background(), "merge-base", "--is-ancestor", a, b)
	switch exitCode(err) {
	case 0:
		return true, nil
	case 1:
		return false, nil
	}
	return false, fmt.Errorf("is %s an ancestor of %s: %w", a, b, err)
}

// ancestorWalk bounds the in-process look for an ancestor.
const ancestorWalk = 64

// firstParentAncestor reports whether commit a is b or one of b's first
// ancestors, within ancestorWalk commits: the common case (a tip checked
// against the tip a landing just made), answered in-process. false says
// nothing; git answers then.
func (r *Repo) firstParentAncestor(a, b string) bool {
	if !isHash(a) || !isHash(b) {
		return false
	}
	found := false
	_ = r.goGit(func(g *gitRepo) error {
		want, next := plumbing.NewHash(a), plumbing.NewHash(b)
		for i := 0; i < ancestorWalk; i++ {
			if next == want {
				found = true
				return nil
			}
			c, err := g.CommitObject(next)
			if err != nil || len(c.ParentHashes) == 0 {
				return err
			}
			next = c.ParentHashes[0]
		}
		return nil
	})
	return found
}

// MergeBase returns the best common ancestor of commits a and b, or ""
// when they have none (unrelated histories).
func (r *Repo) MergeBase(a, b string) (string, error) {
	out, err := r.read(context.Background(), "merge-base", a, b)
	switch exitCode(err) {
	case 0:
		return strings.TrimSpace(out), nil
	case 1:
		return "", nil
	}
	return "", fmt.Errorf("merge base of %s and %s: %w", a, b, err)
}

// RefsWithPrefix lists the refs whose full name starts with prefix (e.g.
// "refs/codemachine/failed/"), mapping each name to its peeled-once hash.
//
// go-git reads every file under refs/, including the <ref>.lock files that
// git writes while it updates a ref: such a file is no ref (git forbids
// names ending in .lock) and is left out, and one that git has created but
// not yet written (go-git's "ref file is empty") makes the listing start
// over, for a bounded time, instead of failing a reader that merely ran
// beside a writer.
func (r *Repo) RefsWithPrefix(prefix string) (map[string]string, error) {
	out := map[string]string{}
	deadline := time.Now().Add(refListPatience)
	for {
		if refs, ok, err := refsFast(r.commonDir, prefix); ok {
			if err == nil {
				return refs, nil
			}
			if !errors.Is(err, errRefBeingWritten) || time.Now().After(deadline) {
				return nil, fmt.Errorf("list refs: %w", err)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		err := r.goGit(func(g *gitRepo) error {
			clear(out)
			it, err := g.References()
			if err != nil {
				return err
			}
			defer it.Close()
			return it.ForEach(func(ref *plumbing.Reference) error {
				name := ref.Name().String()
				if ref.Type() != plumbing.HashReference || !strings.HasPrefix(name, prefix) || strings.HasSuffix(name, ".lock") {
					return nil
				}
				out[name] = ref.Hash().String()
				return nil
			})
		})
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, dotgit.ErrEmptyRefFile) || time.Now().After(deadline) {
			return nil, fmt.Errorf("list refs: %w", err)
		}
		time.Sleep(time.Millisecond)
	}
}

// refListPatience bounds how long RefsWithPrefix waits for git to finish
// writing a ref lock file that it read empty.
const refListPatience = 2 * time.Second

// StatusEntry is one line of `git status --porcelain=v2`.
type StatusEntry struct {
	Path     string
	OrigPath string // the source of a rename or copy
	// Index and Worktree are the X and Y status letters ('.' unchanged,
	// 'M', 'A', 'D', 'R', 'C', 'T', 'U'); both are '?' for an untracked
	// path and '!' for an ignored one.
	Index, Worktree byte
	Unmerged        bool
}

// Untracked reports whether the entry is an untracked file.
func (e StatusEntry) Untracked() bool { return e.Index == '?' }

// Status lists the changes in the worktree, including untracked files
// (every file, not just directories) when untracked is set.
func (r *Repo) Status(ctx context.Context, untracked bool) ([]StatusEntry, error) {
	return r.statusIn(ctx, "", untracked)
}

func (r *Repo) statusIn(ctx context.Context, dir string, untracked bool) ([]StatusEntry, error) {
	mode := "--untracked-files=no"
	if untracked {
		mode = "--untracked-files=all"
	}
	out, err := r.readWith(ctx, runOpts{Dir: dir}, "status", "--porcelain=v2", "-z", mode)
	if err != nil {
		return nil, err
	}
	return parseStatus(out)
}

func parseStatus(out string) ([]StatusEntry, error) {
	var entries []StatusEntry
	recs := strings.Split(out, "\x00")
	for i := 0; i < len(recs); i++ {
		rec := recs[i]
		if rec == "" || rec[0] == '#' {
			continue
		}
		var e StatusEntry
		var fields []string
		switch rec[0] {
		case '1':
			fields = strings.SplitN(rec, " ", 9)
		case '2':
			fields = strings.SplitN(rec, " ", 10)
		case 'u':
			fields = strings.SplitN(rec, " ", 11)
			e.Unmerged = true
		case '?', '!':
			if len(rec) < 3 {
				return nil, fmt.Errorf("git status: malformed entry %q", rec)
			}
			entries = append(entries, StatusEntry{Path: rec[2:], Index: rec[0], Worktree: rec[0]})
			continue
		default:
			return nil, fmt.Errorf("git status: unknown entry %q", rec)
		}
		if len(fields) < 9 || len(fields[1]) != 2 {
			return nil, fmt.Errorf("git status: malformed entry %q", rec)
		}
		e.Index, e.Worktree = fields[1][0], fields[1][1]
		e.Path = fields[len(fields)-1]
		if rec[0] == '2' {
			i++
			if i >= len(recs) {
				return nil, fmt.Errorf("git status: rename of %q without its source", e.Path)
			}
			e.OrigPath = recs[i]
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// StatusPaths lists, sorted, the paths under the given pathspecs (literal
// paths or directories; all of the worktree when none) that differ from
// HEAD in any way: staged, unstaged, or untracked (not ignored), with both
// sides of a rename.
func (r *Repo) StatusPaths(ctx context.Context, pathspecs ...string) ([]string, error) {
	if len(pathspecs) == 1 {
		if paths, err := r.statusUnder(ctx, pathspecs[0]); err == nil {
			return paths, nil
		}
	}
	return r.statusPathsByGit(ctx, pathspecs...)
}

// statusPathsByGit is StatusPaths by git status.
func (r *Repo) statusPathsByGit(ctx context.Context, pathspecs ...string) ([]string, error) {
	args := []string{"--literal-pathspecs", "status", "--porcelain=v2", "-z", "--untracked-files=all", "--"}
	out, err := r.read(ctx, append(args, pathspecs...)...)
	if err != nil {
		return nil, err
	}
	entries, err := parseStatus(out)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var paths []string
	for _, e := range entries {
		for _, p := range []string{e.OrigPath, e.Path} {
			if p != "" && !seen[p] {
				seen[p] = true
				paths = append(paths, p)
			}
		}
	}
	sort.Strings(paths)
	return paths, nil
}

// DirtyTracked lists the tracked paths with staged or unstaged changes
// (both sides of a rename), sorted.
func (r *Repo) DirtyTracked(ctx context.Context) ([]string, error) {
	entries, err := r.Status(ctx, false)
	if err != nil {
		return nil, err
	}
	return dirtyPaths(entries), nil
}

func dirtyPaths(entries []StatusEntry) []string {
	seen := map[string]bool{}
	var paths []string
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	for _, e := range entries {
		if e.Index == '?' || e.Index == '!' {
			continue
		}
		add(e.OrigPath)
		add(e.Path)
	}
	sort.Strings(paths)
	return paths
}

func isHash(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
