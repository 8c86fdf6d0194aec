package gitstate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Worktree is a pooled linked worktree handed out for one step. It is
// detached at Base with a clean tree when handed out; the step's agent
// works in Path.
type Worktree struct {
	repo   *Repo
	slot   int
	path   string
	gitDir string // its admin dir, <common>/worktrees/<name>
	marker string
	base   string
	staged string // the tree written by the last Stage
	closed bool
}

// noHooks keeps the user's git hooks (post-checkout, ...) out of the pool's
// bookkeeping: the pool is codemachine's machinery, not the user's checkout.
var noHooks = []string{"-c", "core.hooksPath=/dev/null"}

// pooledState files are what an agent may leave in its worktree's admin
// dir by starting a merge, rebase, cherry-pick or bisect; they are removed
// before the worktree is reused.
var pooledState = []string{
	"MERGE_HEAD", "MERGE_MSG", "MERGE_MODE", "MERGE_RR", "AUTO_MERGE", "CHERRY_PICK_HEAD", "REVERT_HEAD",
	"ORIG_HEAD", "BISECT_LOG", "BISECT_START", "BISECT_TERMS", "BISECT_EXPECTED_REV", "BISECT_NAMES",
	"rebase-merge", "rebase-apply", "sequencer",
}

// Worktree returns the pool's worktree for slot, detached at base with a
// clean tree (ignored files, such as build caches, are kept). The first
// call for a slot in a clone pays a full checkout; afterwards the worktree
// is reused: when it was left clean at base nothing runs at all, when it
// was left clean elsewhere only the files that differ are rewritten, and
// when it was left dirty it is forced back and cleaned. A slot is handed
// out once until Finish or Discard.
func (r *Repo) Worktree(ctx context.Context, slot int, base string) (*Worktree, error) {
	if slot < 0 {
		return nil, fmt.Errorf("worktree: invalid slot %d", slot)
	}
	r.mu.Lock()
	if r.slots == nil {
		r.slots = map[int]bool{}
	}
	if r.slots[slot] {
		r.mu.Unlock()
		return nil, fmt.Errorf("worktree slot %d is already in use", slot)
	}
	r.slots[slot] = true
	r.mu.Unlock()
	w, err := r.worktree(ctx, slot, base)
	if err != nil {
		r.releaseSlot(slot)
		return nil, err
	}
	return w, nil
}

func (r *Repo) releaseSlot(slot int) {
	r.mu.Lock()
	delete(r.slots, slot)
	r.mu.Unlock()
}

func (r *Repo) worktree(ctx context.Context, slot int, base string) (*Worktree, error) {
	baseHash, err := r.ResolveRev(base)
	if err != nil {
		return nil, fmt.Errorf("worktree slot %d: %w", slot, err)
	}
	dir, err := r.localPath("worktrees", "slot-"+strconv.Itoa(slot))
	if err != nil {
		return nil, err
	}
	w := &Worktree{repo: r, slot: slot, path: dir, marker: dir + ".state", base: baseHash}
	clean := readMarker(w.marker)
	w.gitDir, err = readGitFile(dir)
	if err != nil {
		if err := w.create(ctx); err != nil {
			return nil, err
		}
		clean = baseHash
	}
	if err := w.markDirty(); err != nil {
		return nil, err
	}
	switch {
	case clean == baseHash:
		return w, nil
	case clean != "":
		if _, err := w.git(ctx, "checkout", "-q", "--detach", baseHash); err == nil {
			return w, nil
		}
		// Something changed the files behind the marker's back: fall
		// through to the forced path.
	}
	if err := w.reset(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// create makes the slot's worktree from scratch: the one full checkout.
// Slots are created one at a time: git does not guard .git/worktrees/
// against a concurrent `worktree add` or `prune`, which read (or prune) the
// other's half-written admin dir ("failed to read
// .git/worktrees/slot-2/commondir"), and parallel tasks start together.
func (w *Worktree) create(ctx context.Context) error {
	r := w.repo
	r.poolMu.Lock()
	defer r.poolMu.Unlock()
	if _, err := os.Lstat(w.path); err == nil {
		// A directory without a valid .git file is a broken pool entry
		// (the pool is codemachine's own directory); start it over.
		if err := os.RemoveAll(w.path); err != nil {
			return fmt.Errorf("worktree slot %d: remove broken %s: %w", w.slot, w.path, err)
		}
	}
	if _, err := r.git(ctx, "worktree", "prune"); err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	args := append(append([]string{}, noHooks...), "worktree", "add", "--detach", w.path, w.base)
	if _, err := r.gitWith(ctx, runOpts{lockKey: w.path}, args...); err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	gd, err := readGitFile(w.path)
	if err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	w.gitDir = gd
	return nil
}

// reset forces the worktree to base and removes everything untracked that
// is not ignored, including what an agent's abandoned merge or rebase left.
func (w *Worktree) reset(ctx context.Context) error {
	for _, name := range pooledState {
		if err := os.RemoveAll(filepath.Join(w.gitDir, name)); err != nil {
			return fmt.Errorf("worktree slot %d: %w", w.slot, err)
		}
	}
	if _, err := w.git(ctx, "checkout", "-q", "-f", "--detach", w.base); err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	// -ff: also nested repositories an agent may have created.
	if _, err := w.git(ctx, "clean", "-ffdq"); err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	return nil
}

// git runs a mutating command in the worktree, without the user's hooks.
// The worktree's own writer serializes it (see gitWith).
func (w *Worktree) git(ctx context.Context, args ...string) (string, error) {
	return w.repo.gitWith(ctx, runOpts{Dir: w.path}, append(append([]string{}, noHooks...), args...)...)
}

// Path is the worktree's directory.
func (w *Worktree) Path() string { return w.path }

// Slot is the pool slot the worktree belongs to.
func (w *Worktree) Slot() int { return w.slot }

// Base is the commit the worktree was handed out at.
func (w *Worktree) Base() string { return w.base }

// Head returns the commit the worktree's HEAD is at now: Base, unless the
// agent committed.
func (w *Worktree) Head(ctx context.Context) (string, error) {
	out, err := w.repo.readWith(ctx, runOpts{Dir: w.path}, "rev-parse", "--verify", "--quiet", "HEAD")
	if err != nil {
		return "", fmt.Errorf("worktree slot %d: read HEAD: %w", w.slot, err)
	}
	return trimNL(out), nil
}

// RestoreWork brings commit's tree into the worktree, which must be clean
// at Base: a two-tree read-tree moves its index and files from Base to
// that tree and leaves HEAD at Base, so that the difference is uncommitted
// work again, as an agent left it (the partial work of an interrupted
// session, say).
func (w *Worktree) RestoreWork(ctx context.Context, commit string) error {
	if _, err := w.git(ctx, "read-tree", "-m", "-u", w.base, commit); err != nil {
		return fmt.Errorf("worktree slot %d: restore the tree of %s: %w", w.slot, short(commit), err)
	}
	return nil
}

// Stage stages everything in the worktree (additions, changes, deletions;
// not ignored files) and returns the resulting tree. Commits the agent made
// are thereby folded: only the final tree counts, and the step commit's
// parent is Base.
func (w *Worktree) Stage(ctx context.Context) (string, error) {
	if err := w.GitFileIntact(); err != nil {
		return "", err
	}
	if _, err := w.git(ctx, "add", "-A"); err != nil {
		return "", fmt.Errorf("worktree slot %d: stage: %w", w.slot, err)
	}
	out, err := w.git(ctx, "write-tree")
	if err != nil {
		return "", fmt.Errorf("worktree slot %d: stage: %w", w.slot, err)
	}
	w.staged = trimNL(out)
	return w.staged, nil
}

// StagePaths stages just the given paths (new, changed or deleted) on top
// of what is staged already and returns the resulting tree. After Stage
// took the agent's change, the caller writes state.yaml and the ticked plan
// into the worktree and stages only those, without another full scan.
func (w *Worktree) StagePaths(ctx context.Context, paths ...string) (string, error) {
	if err := w.GitFileIntact(); err != nil {
		return "", err
	}
	if len(paths) > 0 {
		args := append([]string{"--literal-pathspecs", "add", "-A", "--"}, paths...)
		if _, err := w.git(ctx, args...); err != nil {
			return "", fmt.Errorf("worktree slot %d: stage %s: %w", w.slot, strings.Join(paths, ", "), err)
		}
	}
	out, err := w.git(ctx, "write-tree")
	if err != nil {
		return "", fmt.Errorf("worktree slot %d: stage: %w", w.slot, err)
	}
	w.staged = trimNL(out)
	return w.staged, nil
}

// Finish records that the step ended at commit: the worktree's HEAD is
// pointed at it and the pool marks the worktree clean there, so the next
// step based on commit reuses it as it is. When commit's tree is not the
// staged tree (a rebased commit, or one with extra files overlaid), the
// worktree's files are first moved to commit's tree, rewriting only the
// files that differ. Finish must follow a Stage.
func (w *Worktree) Finish(ctx context.Context, commit string) error {
	if w.closed {
		return fmt.Errorf("worktree slot %d: already finished or discarded", w.slot)
	}
	if w.staged == "" {
		return fmt.Errorf("worktree slot %d: finish without stage", w.slot)
	}
	var tree string
	err := w.repo.goGit(func(g *gogit.Repository) error {
		c, err := object.GetCommit(g.Storer, plumbing.NewHash(commit))
		if err != nil {
			return fmt.Errorf("read commit %s: %w", commit, err)
		}
		tree = c.TreeHash.String()
		return nil
	})
	if err != nil {
		return fmt.Errorf("worktree slot %d: finish: %w", w.slot, err)
	}
	if tree != w.staged {
		if _, err := w.git(ctx, "read-tree", "-m", "-u", w.staged, tree); err != nil {
			w.Discard()
			return fmt.Errorf("worktree slot %d: finish: %w", w.slot, err)
		}
	}
	if head, err := os.ReadFile(filepath.Join(w.gitDir, "HEAD")); err != nil || strings.TrimSpace(string(head)) != commit {
		// Not already moved by Land (LandOptions.Worktree).
		if _, err := w.git(ctx, "update-ref", "--no-deref", "-m", "codemachine: step finished", "HEAD", commit); err != nil {
			w.Discard()
			return fmt.Errorf("worktree slot %d: finish: %w", w.slot, err)
		}
	}
	if err := w.markClean(commit); err != nil {
		w.Discard()
		return err
	}
	w.close()
	return nil
}

// Discard gives the worktree back to the pool as dirty: the next use
// forces it to its base and cleans it.
func (w *Worktree) Discard() {
	_ = w.markDirty()
	w.close()
}

func (w *Worktree) close() {
	if !w.closed {
		w.closed = true
		w.repo.releaseSlot(w.slot)
	}
}

// markDirty removes the marker: a missing marker means dirty. Removing is
// a single journaled metadata operation, ordered before anything the agent
// then writes, so no crash can leave a "clean" marker on a used worktree.
func (w *Worktree) markDirty() error {
	if err := os.Remove(w.marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	return nil
}

// markClean records that the worktree's files, index and HEAD are commit.
// The new marker is renamed into place without a sync: if a crash loses
// its content, an empty or missing marker reads as dirty, which is safe.
func (w *Worktree) markClean(commit string) error {
	tmp := w.marker + ".tmp"
	if err := os.WriteFile(tmp, []byte("clean "+commit+"\n"), 0o644); err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	if err := os.Rename(tmp, w.marker); err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	return nil
}

// readMarker returns the commit a pooled worktree was left clean at, ""
// when it is dirty (no marker) or unknown.
func readMarker(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	c, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "clean ")
	if !ok || !isHash(c) {
		return ""
	}
	return c
}

// readGitFile returns the admin dir a linked worktree's .git file points
// at, checking that it exists.
func readGitFile(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, ".git"))
	if err != nil {
		return "", err
	}
	gd, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "gitdir: ")
	if !ok {
		return "", fmt.Errorf("%s/.git is not a worktree link", dir)
	}
	if !filepath.IsAbs(gd) {
		gd = filepath.Join(dir, gd)
	}
	if _, err := os.Stat(filepath.Join(gd, "HEAD")); err != nil {
		return "", fmt.Errorf("%s/.git points at %s: %w", dir, gd, err)
	}
	return filepath.Clean(gd), nil
}

// GitFileIntact checks that the worktree's .git file still links it to its
// admin dir; an agent that rewrote or deleted it could otherwise make git
// act on another repository.
func (w *Worktree) GitFileIntact() error {
	gd, err := readGitFile(w.path)
	if err != nil {
		return fmt.Errorf("worktree slot %d: .git file damaged: %w", w.slot, err)
	}
	if gd != w.gitDir {
		return fmt.Errorf("worktree slot %d: .git file points at %s instead of %s", w.slot, gd, w.gitDir)
	}
	return nil
}

// GitSnapshot is what an agent must not change in the repository's git
// directory: the pooled worktree's .git file, the shared config, hooks/ and
// info/, the HEAD of the user's worktree (and of the main worktree), and
// the branches and tags.
type GitSnapshot struct {
	Files map[string]string // label -> content hash ("" when absent)
	Refs  map[string]string // full ref name -> commit
}

// SnapshotGitDir captures the git directory state an agent could tamper
// with, to compare after the agent ran.
func (w *Worktree) SnapshotGitDir() (GitSnapshot, error) {
	r := w.repo
	s := GitSnapshot{Files: map[string]string{}, Refs: map[string]string{}}
	files := map[string]string{
		"worktree .git file": filepath.Join(w.path, ".git"),
		"config":             filepath.Join(r.commonDir, "config"),
		"HEAD":               filepath.Join(r.gitDir, "HEAD"),
	}
	if r.gitDir != r.commonDir {
		files["main worktree HEAD"] = filepath.Join(r.commonDir, "HEAD")
	}
	for label, p := range files {
		h, err := hashFile(p)
		if err != nil {
			return GitSnapshot{}, fmt.Errorf("snapshot %s: %w", label, err)
		}
		s.Files[label] = h
	}
	for _, d := range []string{"hooks", "info"} {
		root := filepath.Join(r.commonDir, d)
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if e.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(r.commonDir, p)
			h, err := hashFile(p)
			if err != nil {
				return err
			}
			if info, err := e.Info(); err == nil && info.Mode()&0o111 != 0 {
				h += "+x"
			}
			s.Files[filepath.ToSlash(rel)] = h
			return nil
		})
		if err != nil {
			return GitSnapshot{}, fmt.Errorf("snapshot %s: %w", d, err)
		}
	}
	for _, prefix := range []string{"refs/heads/", "refs/tags/"} {
		refs, err := r.RefsWithPrefix(prefix)
		if err != nil {
			return GitSnapshot{}, fmt.Errorf("snapshot refs: %w", err)
		}
		for k, v := range refs {
			s.Refs[k] = v
		}
	}
	return s, nil
}

func hashFile(p string) (string, error) {
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// Changed lists, sorted, what differs between s (before) and after: file
// labels ("config", "hooks/pre-commit", "HEAD", "worktree .git file") and
// ref names. Refs in ignoreRefs (those the orchestrator moved itself) are
// left out. What the user did meanwhile in their own checkout (a commit, a
// branch switch) looks the same as an agent's doing; telling them apart is
// the caller's policy.
func (s GitSnapshot) Changed(after GitSnapshot, ignoreRefs map[string]bool) []string {
	var out []string
	diff := func(a, b map[string]string, skip map[string]bool) {
		for k, v := range a {
			if w, ok := b[k]; (!ok || w != v) && !skip[k] {
				out = append(out, k)
			}
		}
		for k := range b {
			if _, ok := a[k]; !ok && !skip[k] {
				out = append(out, k)
			}
		}
	}
	diff(s.Files, after.Files, nil)
	diff(s.Refs, after.Refs, ignoreRefs)
	sort.Strings(out)
	return out
}

// CleanFile returns a file of the worktree as git would commit it, line
// endings converted and clean filters applied as its attributes and the
// configuration (core.autocrlf, .gitattributes eol/text) say, with its
// blob id. A file that git converts on checkout (CRLF in the worktree)
// reads back as the committed bytes. fs.ErrNotExist when it is absent.
func (w *Worktree) CleanFile(ctx context.Context, rel string) (data []byte, hash string, err error) {
	p := filepath.Join(w.path, filepath.FromSlash(rel))
	if _, err := os.Lstat(p); err != nil {
		return nil, "", err
	}
	out, err := w.git(ctx, "hash-object", "-w", "--path="+rel, "--", filepath.FromSlash(rel))
	if err != nil {
		return nil, "", fmt.Errorf("worktree slot %d: hash %s: %w", w.slot, rel, err)
	}
	hash = trimNL(out)
	err = w.repo.goGit(func(g *gogit.Repository) error {
		b, err := object.GetBlob(g.Storer, plumbing.NewHash(hash))
		if err != nil {
			return err
		}
		rd, err := b.Reader()
		if err != nil {
			return err
		}
		defer rd.Close()
		data, err = io.ReadAll(rd)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("worktree slot %d: read %s as committed: %w", w.slot, rel, err)
	}
	return data, hash, nil
}
