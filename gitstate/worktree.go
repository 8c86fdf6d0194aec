package gitstate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
)

// Worktree is a pooled worktree handed out for one step, with its base's
// files and a clean tree when handed out; the step's agent works in Path.
//
// The worktree is not a linked worktree of the user's repository: its .git
// is a scratch repository of its own (Worktree.scratch), made fresh at
// every hand-out (scratch.go), that reads the user's objects through alternates (nothing is
// copied) and has its own HEAD, refs, index, config and hooks, so that the
// agent can commit there while the user's git directory stays read-only to
// it. codemachine never runs git over anything the agent can
// write: its own commands over the worktree name the user's git directory,
// the worktree and a private index outside it explicitly (GIT_DIR,
// GIT_WORK_TREE, GIT_INDEX_FILE), with hooks and fsmonitor off, and never
// read the worktree's .git or the scratch repository.
type Worktree struct {
	repo    *Repo
	slot    int
	path    string
	scratch string // path/.git: the agent's repository
	index   string // codemachine's private index of the worktree, beside it
	marker  string
	policy  string // the record of the slot's last user's Policy, beside marker
	base    string
	staged  string // the tree written by the last Stage
	closed  bool
	// tooLarge is LimitFiles's function; nil stages every file.
	tooLarge func(rel string, size int64) bool
	leftOut  []OversizeFile    // what the last Stage left out
	nested   []string          // the nested repositories the last Stage left out
	alias    *GitAliasError    // the first path git refuses that the last Stage left out
	guarded  map[string]string // GuardFiles's paths and why
}

// trusted are the options of every git command codemachine runs over a
// pooled worktree: the user's hooks (post-checkout, ...) stay out of the
// pool's bookkeeping, no fsmonitor daemon is started for it, and the
// user's sparse checkout (core.sparseCheckout of their worktree, which
// GIT_DIR brings along) does not leave files out of it: a step sees, and
// its check builds, the whole commit. The private index is never split
// (core.splitIndex): its shared part would be a sharedindex.* file in the
// user's git directory, which the user's git deletes two weeks after its
// own index stopped naming it, leaving the slot's index unreadable. Nor
// does git recurse into submodules there (submodule.recurse): their git
// directories are the user's (.git/modules), so a checkout of the slot
// would move the user's submodules, and a populated submodule would be
// taken for a nested repository the step made.
var trusted = []string{"-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false",
	"-c", "core.sparseCheckout=false", "-c", "core.splitIndex=false", "-c", "submodule.recurse=false"}

// Worktree returns the pool's worktree for slot with base's files and a
// clean tree (ignored files, such as build caches, are kept), for a step
// that may write what user allows. The first call for a slot in a clone
// pays a full checkout; afterwards the worktree is reused: when it was
// left clean at base no git command runs at all, when it was left clean
// elsewhere only the files that differ are rewritten, and when it was left
// dirty it is forced back and cleaned. A slot whose last user's policy
// does not cover user's (see Policy) is made afresh, with a full checkout,
// so that nothing that user left runs with more rights. Its scratch
// repository is made fresh every time, at base. A slot is handed out once
// until Finish or Discard.
func (r *Repo) Worktree(ctx context.Context, slot int, base string, user Policy) (*Worktree, error) {
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
	w, err := r.worktree(ctx, slot, base, user)
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

func (r *Repo) worktree(ctx context.Context, slot int, base string, user Policy) (*Worktree, error) {
	baseHash, err := r.ResolveRev(base)
	if err != nil {
		return nil, fmt.Errorf("worktree slot %d: %w", slot, err)
	}
	dir, err := r.localPath("worktrees", "slot-"+strconv.Itoa(slot))
	if err != nil {
		return nil, err
	}
	w := &Worktree{repo: r, slot: slot, path: dir, scratch: filepath.Join(dir, ".git"),
		index: dir + ".index", marker: dir + ".state", policy: dir + ".policy", base: baseHash}
	if err := w.clearStaleLocks(); err != nil {
		return nil, err
	}
	files, err := w.scratchFiles()
	if err != nil {
		return nil, fmt.Errorf("worktree slot %d: make its .git: %w", slot, err)
	}
	if err := w.dropUsedScratch(files); err != nil {
		return nil, err
	}
	clean := readMarker(w.marker)
	last, known := readPolicy(w.policy)
	switch {
	case !w.exists():
		if err := w.create(ctx); err != nil {
			return nil, err
		}
		clean, known = baseHash, false
	case !last.Covers(user):
		// Its last user was confined where this one is not (a sandboxed
		// step before a sandbox: off one): whatever that user left (an
		// ignored script, a tracked file changed) must not run with this
		// user's rights (scrub), or, where that fails, nothing of the
		// old worktree is kept.
		if err := w.scrub(ctx); err != nil {
			if err := w.create(ctx); err != nil {
				return nil, err
			}
		}
		clean, known = baseHash, false
	}
	if err := w.recordPolicy(user, last, known); err != nil {
		return nil, err
	}
	if err := w.markDirty(); err != nil {
		return nil, err
	}
	switch {
	case clean == baseHash:
	case clean != "" && w.moveFiles(ctx, clean, baseHash) == nil:
	default:
		// Dirty, or something changed the files behind the marker's
		// back: the forced path; where git cannot even do that (a private
		// index it cannot read), the slot is made afresh.
		if err := w.reset(ctx); err != nil {
			if cerr := w.create(ctx); cerr != nil {
				return nil, fmt.Errorf("%w; and making the slot afresh failed: %v", err, cerr)
			}
		}
	}
	if err := w.makeScratch(files); err != nil {
		return nil, err
	}
	return w, nil
}

// scrub brings a worktree that a more confined step used to base for a
// less confined one: every tracked file whose stat data differs from its
// private index entry is written again from base, and every file the index
// does not know, ignored ones (build caches) included, is removed. Stat
// data is compared with the ctime, which no step can set back (it changes
// with every write, chmod or utimes, whatever the user's core.trustctime),
// so a tracked file a step changed and dated back is found. Far cheaper
// than a new checkout: only what the step touched is written.
func (w *Worktree) scrub(ctx context.Context) error {
	// First: git clean reads the .gitignore files, and waits forever on
	// one that is a FIFO.
	if err := w.removeSpecialFiles(); err != nil {
		return err
	}
	strict := []string{"-c", "core.trustctime=true", "-c", "core.checkStat=default"}
	if _, err := w.git(ctx, append(slices.Clone(strict), "read-tree", "--reset", "-u", w.base)...); err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	// -x: ignored files too; -ff: also nested repositories.
	if _, err := w.git(ctx, "clean", "-ffdxq"); err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	return nil
}

// removeSpecialFiles removes the FIFOs, sockets and device files below the
// worktree (its scratch .git aside, which is made anew): git tracks none,
// and git clean passes them over, so a FIFO a step left would hang a
// later step that opens it, or git itself where it is a .gitignore. So
// goes a .gitignore or .gitattributes over MaxPatternFile, which git
// clean would read whole (a tracked one is checked out again after). A
// path it cannot look at (walkFailure) is an error: the caller makes the
// slot afresh rather than run git clean over what may be such a file.
func (w *Worktree) removeSpecialFiles() error {
	return filepath.WalkDir(w.path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return w.walkFailure(p, err)
		}
		if d.IsDir() && p == w.scratch {
			return filepath.SkipDir
		}
		oversize, err := oversizePatternFile(p, d)
		if err != nil {
			return w.walkFailure(p, err)
		}
		if d.Type()&(fs.ModeNamedPipe|fs.ModeSocket|fs.ModeDevice|fs.ModeCharDevice) != 0 || oversize {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("worktree slot %d: %w", w.slot, err)
			}
		}
		return nil
	})
}

// UnwalkedError is a path below a worktree that the checks of a step's
// change could not look at, though git may: one longer than PATH_MAX
// (4096 bytes) with the worktree's path in front, which git opens
// relative to the worktree. Passed over, it could hide a named pipe
// .gitignore that hangs git status, or a symbolic link out of the
// repository, so the stage fails instead.
type UnwalkedError struct {
	Path string // relative to the worktree, slash-separated
	Err  error
}

// Error names the path and why it could not be looked at.
func (e *UnwalkedError) Error() string {
	return fmt.Sprintf("%s cannot be checked by its full path (%v): a step may not leave such a path", e.Path, e.Err)
}

// Unwrap is the system's error.
func (e *UnwalkedError) Unwrap() error { return e.Err }

// walkFailure is what a walk over the worktree makes of err at p: nil
// where p is gone or the user may not read it (git, run as the same
// user, cannot read it either), else an *UnwalkedError.
func (w *Worktree) walkFailure(p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return nil
	}
	rel, rerr := filepath.Rel(w.path, p)
	if rerr != nil {
		rel = p
	}
	// The system's error alone: the path in a *PathError is the full one.
	var errno syscall.Errno
	if errors.As(err, &errno) {
		err = errno
	}
	return &UnwalkedError{Path: filepath.ToSlash(rel), Err: err}
}

// relativeSpecial is se with its path relative to the worktree.
func (w *Worktree) relativeSpecial(se *SpecialFileError) *SpecialFileError {
	rel, _ := filepath.Rel(w.path, se.Path)
	return &SpecialFileError{Path: filepath.ToSlash(rel), Mode: se.Mode, Size: se.Size}
}

// specialPatternFile returns the first .gitignore or .gitattributes below
// the worktree (its scratch .git aside) that is a FIFO, a socket or a
// device, or over MaxPatternFile, as a *SpecialFileError, or an
// *UnwalkedError for the first path it could not look at; nil when there
// is neither.
func (w *Worktree) specialPatternFile() error {
	var found error
	_ = filepath.WalkDir(w.path, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			if found = w.walkFailure(p, err); found != nil {
				return filepath.SkipAll
			}
			return nil
		case d.IsDir() && p == w.scratch:
			return filepath.SkipDir
		case d.Name() != ".gitignore" && d.Name() != ".gitattributes":
		case isSpecial(d.Type()):
			found = &SpecialFileError{Path: p, Mode: d.Type()}
			return filepath.SkipAll
		case d.Type().IsRegular():
			st, err := d.Info()
			if err != nil {
				found = w.walkFailure(p, err)
			} else if se := badPatternFile(p, st); se != nil {
				found = se
			}
			if found != nil {
				return filepath.SkipAll
			}
		}
		return nil
	})
	return found
}

// oversizePatternFile reports whether d, the entry p of a walk, is a
// .gitignore or .gitattributes over MaxPatternFile.
func oversizePatternFile(p string, d fs.DirEntry) (bool, error) {
	if !d.Type().IsRegular() || d.Name() != ".gitignore" && d.Name() != ".gitattributes" {
		return false, nil
	}
	st, err := d.Info()
	if err != nil {
		return false, err
	}
	return badPatternFile(p, st) != nil, nil
}

// exists reports whether the slot has its directory and private index.
func (w *Worktree) exists() bool {
	st, err := os.Lstat(w.path)
	if err != nil || !st.IsDir() {
		return false
	}
	_, err = os.Stat(w.index)
	return err == nil
}

// create makes the slot's worktree from scratch: the one full checkout,
// into a new directory with a new private index.
func (w *Worktree) create(ctx context.Context) error {
	for _, p := range []string{w.policy, w.marker, w.index, w.path} {
		if err := removeTree(p); err != nil {
			return fmt.Errorf("worktree slot %d: remove old %s: %w", w.slot, p, err)
		}
	}
	w.repo.dropLinkedSlot(w.path)
	if err := os.MkdirAll(w.path, 0o755); err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	if _, err := w.git(ctx, "read-tree", "--reset", "-u", w.base); err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	return nil
}

// removeTree removes p and everything below it, also where a step took
// the write permission away from a directory of its own (os.RemoveAll
// cannot empty one then). Symbolic links are removed, never followed.
func removeTree(p string) error {
	if os.RemoveAll(p) == nil {
		return nil
	}
	_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}

// dropLinkedSlot removes the user's .git/worktrees/ entry of a slot that
// an older codemachine made as a linked worktree of the user's repository.
func (r *Repo) dropLinkedSlot(dir string) {
	admin := filepath.Join(r.commonDir, "worktrees", filepath.Base(dir))
	link, err := os.ReadFile(filepath.Join(admin, "gitdir"))
	if err == nil && filepath.Dir(strings.TrimSpace(string(link))) == dir {
		_ = os.RemoveAll(admin)
	}
}

// moveFiles moves the worktree's files and private index from the commit
// from to the commit to, rewriting only the files that differ; it refuses
// (changing nothing) where a file is not as from has it.
func (w *Worktree) moveFiles(ctx context.Context, from, to string) error {
	if err := w.moveTree(ctx, from, to); err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	return nil
}

// reset forces the worktree to base and removes everything untracked that
// is not ignored.
func (w *Worktree) reset(ctx context.Context) error {
	if err := w.removeSpecialFiles(); err != nil {
		return err
	}
	if _, err := w.git(ctx, "read-tree", "--reset", "-u", w.base); err != nil {
		// Something the agent left in the way of a file of base (a
		// directory where base has a file): clean, then try again.
		if _, cerr := w.git(ctx, "clean", "-ffdq"); cerr != nil {
			return fmt.Errorf("worktree slot %d: %w", w.slot, cerr)
		}
		if _, err := w.git(ctx, "read-tree", "--reset", "-u", w.base); err != nil {
			return fmt.Errorf("worktree slot %d: %w", w.slot, err)
		}
	}
	// -ff: also nested repositories an agent may have created.
	if _, err := w.git(ctx, "clean", "-ffdq"); err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	return nil
}

// branchesAndTags is a packed-refs file of the user's branches and tags as
// they are now, so that the agent's git log main, git diff main and the
// like work in its scratch repository (a copy: the user's commits made
// while the step runs are not in it).
func (r *Repo) branchesAndTags() ([]byte, error) {
	refs, err := r.RefsWithPrefix("refs/")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(refs))
	for name := range refs {
		if strings.HasPrefix(name, "refs/heads/") || strings.HasPrefix(name, "refs/tags/") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	b := []byte("# pack-refs with: sorted \n")
	for _, name := range names {
		b = fmt.Appendf(b, "%s %s\n", refs[name], name)
	}
	return b, nil
}

// scratchConfig is the config of a scratch repository: a plain non-bare
// repository in the user's object format, with the identity the user's
// repository configures (the user's global config applies there anyway).
func (r *Repo) scratchConfig() ([]byte, error) {
	var b strings.Builder
	version, format := 0, ""
	var name, email string
	err := r.goGit(func(g *gitRepo) error {
		cfg, err := g.Config()
		if err != nil {
			return err
		}
		name, email = cfg.User.Name, cfg.User.Email
		format = cfg.Raw.Section("extensions").Option("objectformat")
		return nil
	})
	if err != nil {
		return nil, err
	}
	if format != "" {
		version = 1
	}
	fmt.Fprintf(&b, "[core]\n\trepositoryformatversion = %d\n\tbare = false\n\tlogallrefupdates = true\n", version)
	if format != "" {
		fmt.Fprintf(&b, "[extensions]\n\tobjectformat = %s\n", format)
	}
	if name != "" || email != "" {
		b.WriteString("[user]\n")
		if name != "" {
			fmt.Fprintf(&b, "\tname = %s\n", quoteConfig(name))
		}
		if email != "" {
			fmt.Fprintf(&b, "\temail = %s\n", quoteConfig(email))
		}
	}
	return []byte(b.String()), nil
}

// quoteConfig quotes a git config value.
func quoteConfig(v string) string {
	v = strings.NewReplacer("\\", "\\\\", "\"", "\\\"", "\n", "\\n").Replace(v)
	return "\"" + v + "\""
}

// git runs a mutating command over the worktree (see trusted and the
// Worktree doc): the user's git directory, the worktree and its private
// index named explicitly. The worktree's own writer serializes it (see
// gitWith).
func (w *Worktree) git(ctx context.Context, args ...string) (string, error) {
	return w.repo.gitWith(ctx, w.opts(), append(append([]string{}, trusted...), args...)...)
}

// opts are the options that point git at the worktree without asking
// anything in it.
func (w *Worktree) opts() runOpts {
	return runOpts{Dir: w.path, Env: []string{"GIT_DIR=" + w.repo.commonDir, "GIT_WORK_TREE=" + w.path,
		"GIT_INDEX_FILE=" + w.index}}
}

// Path is the worktree's directory.
func (w *Worktree) Path() string { return w.path }

// Slot is the pool slot the worktree belongs to.
func (w *Worktree) Slot() int { return w.slot }

// Base is the commit the worktree was handed out at.
func (w *Worktree) Base() string { return w.base }

// Head returns the commit the worktree's scratch repository has at HEAD:
// Base, unless the agent committed. It reads the agent's files and is for
// reports only: nothing codemachine does depends on it.
func (w *Worktree) Head(ctx context.Context) (string, error) {
	fail := func(err error) (string, error) { return "", fmt.Errorf("worktree slot %d: read HEAD: %w", w.slot, err) }
	head, err := os.ReadFile(filepath.Join(w.scratch, "HEAD"))
	if err != nil {
		return fail(err)
	}
	h := strings.TrimSpace(string(head))
	if ref, ok := strings.CutPrefix(h, "ref: "); ok {
		if h, err = w.scratchRef(ref); err != nil {
			return fail(err)
		}
	}
	if !isHash(h) {
		return fail(fmt.Errorf("not a commit: %q", h))
	}
	return h, nil
}

// scratchRef reads a ref of the scratch repository, loose or packed.
func (w *Worktree) scratchRef(ref string) (string, error) {
	if !strings.HasPrefix(ref, "refs/") || strings.Contains(ref, "..") {
		return "", fmt.Errorf("bad ref %q", ref)
	}
	if data, err := os.ReadFile(filepath.Join(w.scratch, filepath.FromSlash(ref))); err == nil {
		return strings.TrimSpace(string(data)), nil
	}
	packed, err := os.ReadFile(filepath.Join(w.scratch, "packed-refs"))
	if err != nil {
		return "", fmt.Errorf("no ref %s", ref)
	}
	for line := range strings.SplitSeq(string(packed), "\n") {
		if h, name, ok := strings.Cut(line, " "); ok && name == ref {
			return h, nil
		}
	}
	return "", fmt.Errorf("no ref %s", ref)
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
// not ignored files) in the private index and returns the resulting tree:
// in the process where it can (stagefast.go), else with git status, git
// update-index and git write-tree (stagegit.go).
// Commits the agent made in its scratch repository are thereby folded:
// only the worktree's files count, and the step commit's parent is Base.
func (w *Worktree) Stage(ctx context.Context) (string, error) {
	tree, err := w.StageUnprotected(ctx)
	if err != nil {
		return "", err
	}
	return tree, w.Protect(ctx, tree)
}

// StageUnprotected is Stage without pointing the slot's ref at the tree,
// for a caller that makes its commit of the tree at once and protects
// that (Protect) before anything slow: the ref is then written once per
// step instead of twice (each write a new file). Until then a git gc
// --prune=now of the user's may prune the staged objects, as it may
// while Stage writes them.
func (w *Worktree) StageUnprotected(ctx context.Context) (string, error) {
	w.leftOut, w.nested, w.alias = nil, nil, nil
	if err := w.checkGuarded(); err != nil {
		return "", fmt.Errorf("worktree slot %d: stage: %w", w.slot, err)
	}
	tree, err := w.stageInProcess(ctx)
	if err == nil {
		w.staged = tree
		return tree, nil
	}
	if se := (*SpecialFileError)(nil); errors.As(err, &se) {
		return "", fmt.Errorf("worktree slot %d: stage: %w", w.slot, w.relativeSpecial(se))
	}
	// Anything else (errStageByGit, or a file that could not be read):
	// git stages, and reports what it finds wrong.
	tree, err = w.stageWithGit(ctx)
	if se := (*SpecialFileError)(nil); errors.As(err, &se) {
		err = w.relativeSpecial(se)
	}
	if err != nil {
		return "", fmt.Errorf("worktree slot %d: stage: %w", w.slot, err)
	}
	w.staged = tree
	return tree, nil
}

// GuardedFileError is a change to a file GuardFiles guards: Stage
// refuses it before git runs over the worktree.
type GuardedFileError struct {
	Path string // relative to the worktree, slash-separated
	Why  string // what runs it: a configuration key
}

// Error names the guarded file the step changed and what git would run it as.
func (e *GuardedFileError) Error() string {
	return fmt.Sprintf("the step changed %s, which git runs (%s): staging or landing it would run the step's copy outside the sandbox", e.Path, e.Why)
}

// GuardFiles has Stage refuse, with a *GuardedFileError and before git
// runs over the worktree, a worktree whose file at one of paths (relative,
// slash-separated; the value says what runs it) differs from the base's:
// the scripts the configuration's commands name (a filter's sh
// scripts/clean.sh), which git runs with the worktree as its directory
// when it stages it.
func (w *Worktree) GuardFiles(paths map[string]string) {
	w.guarded = paths
}

// maxGuardedSize bounds the guarded files compared: a larger one counts
// as changed.
const maxGuardedSize = 16 << 20

// checkGuarded is GuardFiles's check.
func (w *Worktree) checkGuarded() error {
	for rel, why := range w.guarded {
		base, err := w.repo.ReadFile(w.base, rel)
		inBase := err == nil
		st, err := os.Lstat(filepath.Join(w.path, filepath.FromSlash(rel)))
		switch {
		case err != nil && !inBase:
			continue
		case err != nil, !inBase, !st.Mode().IsRegular(), st.Size() > maxGuardedSize:
			return &GuardedFileError{Path: rel, Why: why}
		}
		data, err := os.ReadFile(filepath.Join(w.path, filepath.FromSlash(rel)))
		if err != nil || !bytes.Equal(data, base) && !bytes.Equal(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), base) {
			return &GuardedFileError{Path: rel, Why: why}
		}
	}
	return nil
}

// LimitFiles has Stage leave out, unread, a regular file it would add or
// change (not ignored, not as the index has it) for which tooLarge, given
// its path (relative, slash-separated) and size, reports true: an
// untracked one is not added, a tracked one keeps its entry, and LeftOut
// lists them. Hashing is codemachine's work after the step, bounded by no
// timeout: a sparse file of a terabyte costs the step nothing to make and
// hours to hash, and its blob would stay in the user's objects (the
// failed ref keeps the step's work).
func (w *Worktree) LimitFiles(tooLarge func(rel string, size int64) bool) {
	w.tooLarge = tooLarge
}

// LeftOut are the files the last Stage left out (see LimitFiles).
func (w *Worktree) LeftOut() []OversizeFile {
	return w.leftOut
}

// Nested are the nested repositories the last Stage left out: a
// directory of the worktree with a .git of its own, which git add would
// record as a gitlink without its files.
func (w *Worktree) Nested() []string {
	return w.nested
}

// GitAlias is the first path the last Stage left out because one of its
// names is .git on another system (see GitAliasError), nil when there is
// none.
func (w *Worktree) GitAlias() *GitAliasError {
	return w.alias
}

// StagePaths stages just the given paths (new, changed or deleted) on top
// of what is staged already and returns the resulting tree. After Stage
// took the agent's change, the caller writes state.yaml and the ticked plan
// into the worktree and stages only those, without another full scan.
func (w *Worktree) StagePaths(ctx context.Context, paths ...string) (string, error) {
	if len(paths) > 0 {
		// -f: the paths are codemachine's own files, committed also where
		// the user's .gitignore ignores them (*.yaml, say).
		args := append([]string{"--literal-pathspecs", "add", "-A", "-f", "--"}, paths...)
		if _, err := w.git(ctx, args...); err != nil {
			return "", fmt.Errorf("worktree slot %d: stage %s: %w", w.slot, strings.Join(paths, ", "), err)
		}
	}
	out, err := w.git(ctx, "write-tree")
	if err != nil {
		return "", fmt.Errorf("worktree slot %d: stage: %w", w.slot, err)
	}
	w.staged = trimNL(out)
	return w.staged, w.Protect(ctx, w.staged)
}

// Finish records that the step ended at commit: the pool marks the
// worktree clean there, so the next step based on commit reuses it as it
// is. When commit's tree is not the staged tree (a rebased commit, or one
// with extra files overlaid), the worktree's files are first moved to
// commit's tree, rewriting only the files that differ. Finish must follow
// a Stage; when that Stage left files out (LimitFiles, Nested, GitAliases), the
// worktree is given back dirty instead, as by Discard.
func (w *Worktree) Finish(ctx context.Context, commit string) error {
	if w.closed {
		return fmt.Errorf("worktree slot %d: already finished or discarded", w.slot)
	}
	if w.staged == "" {
		return fmt.Errorf("worktree slot %d: finish without stage", w.slot)
	}
	if len(w.leftOut) > 0 || len(w.nested) > 0 || w.alias != nil {
		// The files are not commit's: the next use cleans them.
		w.Discard()
		return nil
	}
	var tree string
	err := w.repo.goGit(func(g *gitRepo) error {
		c, err := g.CommitObject(plumbing.NewHash(commit))
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
		if err := w.moveTree(ctx, w.staged, tree); err != nil {
			w.Discard()
			return fmt.Errorf("worktree slot %d: finish: %w", w.slot, err)
		}
	}
	if err := w.markClean(commit); err != nil {
		w.Discard()
		return err
	}
	w.unprotect(ctx)
	w.close()
	return nil
}

// Discard gives the worktree back to the pool as dirty: the next use
// forces it to its base and cleans it.
func (w *Worktree) Discard() {
	_ = w.markDirty()
	w.unprotect(context.Background())
	w.close()
}

// SlotRefPrefix holds a ref per pooled worktree in use,
// refs/codemachine/slots/<n>/work, at the worktree's work in progress.
const SlotRefPrefix = "refs/codemachine/slots/"

func (w *Worktree) slotRef() string { return SlotRefPrefix + strconv.Itoa(w.slot) + "/work" }

// Protect points the slot's ref at obj (the tree Stage wrote, then the
// step commit made of it), so that a git gc --prune=now of the user's
// while the step waits to land cannot prune objects nothing else refers
// to yet: the staged blobs and trees (the worktree's private index is
// none of git's indexes, which gc would keep) and the commit. Finish and
// Discard remove the ref. No reflog is kept for it.
func (w *Worktree) Protect(ctx context.Context, obj string) error {
	if w.protectInProcess(ctx, obj) {
		return nil
	}
	if _, err := w.git(ctx, "update-ref", "--no-deref", w.slotRef(), obj); err != nil {
		return fmt.Errorf("worktree slot %d: protect %s from git gc: %w", w.slot, short(obj), err)
	}
	return nil
}

// protectInProcess sets the slot's ref the way git's files backend does
// (its lock file created exclusively, holding the new value, renamed over
// the ref), sparing a git process per stage and per step commit. It
// reports false, leaving it to git update-ref, where git would do more:
// another ref backend or a reference-transaction hook, reflogs for every
// ref (core.logAllRefUpdates=always), or the lock held by someone else.
// Only this codemachine writes the slot's ref (the slot is handed out
// once), so no compare is needed.
func (w *Worktree) protectInProcess(ctx context.Context, obj string) bool {
	r, ref := w.repo, w.slotRef()
	s, err := r.refSettingsFor(ctx)
	if err != nil || !s.usable || s.logRefs == "always" {
		return false
	}
	path := filepath.Join(r.commonDir, filepath.FromSlash(ref))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false
	}
	lock := path + ".lock"
	if err := linkFile(lock, r.LocalDir(), []byte(obj+"\n")); err != nil {
		return false
	}
	if err := os.Rename(lock, path); err != nil {
		_ = os.Remove(lock)
		return false
	}
	return true
}

// unprotect removes the slot's ref (a missing one is fine): in the
// process, as git's files backend would, when the ref is a loose file
// only (a Finish after a landing runs no git), else with git update-ref.
func (w *Worktree) unprotect(ctx context.Context) {
	if w.staged == "" {
		return // Stage never ran: no ref was set by this hand-out
	}
	r, ref := w.repo, w.slotRef()
	if s, err := r.refSettingsFor(ctx); err == nil && s.usable {
		packed, err := os.ReadFile(filepath.Join(r.commonDir, "packed-refs"))
		if (err == nil && !strings.Contains(string(packed), " "+ref+"\n")) || errors.Is(err, fs.ErrNotExist) {
			if err := os.Remove(filepath.Join(r.commonDir, filepath.FromSlash(ref))); err == nil || errors.Is(err, fs.ErrNotExist) {
				return
			}
		}
	}
	_, _ = w.git(ctx, "update-ref", "--no-deref", "-d", ref)
}

func (w *Worktree) close() {
	if !w.closed {
		w.closed = true
		w.repo.releaseSlot(w.slot)
	}
}

// markDirty empties the marker: an empty or missing marker means dirty.
// Truncating is a single metadata operation, ordered before anything the
// agent then writes, so no crash can leave a "clean" marker on a used
// worktree. The file is kept for markClean to write into: a marker made
// afresh every step was a new inode, 0.3-1 ms of kernel time on ext4.
func (w *Worktree) markDirty() error {
	f, err := w.openMarker(false)
	if err == nil {
		err = f.Truncate(0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		if rerr := os.Remove(w.marker); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return fmt.Errorf("worktree slot %d: mark it dirty: %w (and removing its marker: %v)", w.slot, err, rerr)
		}
	}
	return nil
}

// markClean records that the worktree's files, index and HEAD are commit,
// written into the marker markDirty emptied (one write of a few bytes; a
// marker cut short, without its newline, reads as dirty), without a sync:
// if a crash loses the content, an empty marker reads as dirty, which is
// safe. No reader can see it mid-write: the marker is read only by the
// hand-out, which holds the slot.
func (w *Worktree) markClean(commit string) error {
	f, err := w.openMarker(true)
	if err == nil {
		if err = f.Truncate(0); err == nil {
			_, err = f.WriteAt([]byte("clean "+commit+"\n"), 0)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = w.markDirty()
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	return nil
}

// openMarker opens the marker for writing in place, made when create and
// missing. Anything but a regular file of one name there (a link or a
// second name an unconfined step planted) is removed rather than written
// through, and made afresh when create.
func (w *Worktree) openMarker(create bool) (*os.File, error) {
	flags := os.O_WRONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(w.marker, flags, 0o644)
	if err == nil {
		if st, serr := f.Stat(); serr == nil && st.Mode().IsRegular() {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink == 1 {
				return f, nil
			}
		}
		_ = f.Close()
	} else if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.Remove(w.marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if !create {
		return nil, fs.ErrNotExist
	}
	return os.OpenFile(w.marker, flags|os.O_EXCL, 0o644)
}

// readMarker returns the commit a pooled worktree was left clean at, ""
// when it is dirty (no marker) or unknown.
func readMarker(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	line, ok := strings.CutSuffix(string(data), "\n")
	c, clean := strings.CutPrefix(line, "clean ")
	if !ok || !clean || !isHash(c) {
		return ""
	}
	return c
}

// GitSnapshot is what an unsandboxed agent could plant in the user's git
// directory to run later, outside any step: the config (core.fsmonitor,
// core.hooksPath, aliases, filters) and the hooks. Nothing the user's own
// checkout, gc, add or commit changes is in it, so that a change is never
// the user's doing blamed on the agent. In the sandbox the git directory
// is read-only to the agent and no snapshot is needed.
type GitSnapshot struct {
	Files map[string]string // label -> content hash ("" when absent)
}

// SnapshotGitDir captures the config and hooks of the repository's git
// directories, to compare after an agent ran.
func (r *Repo) SnapshotGitDir() (GitSnapshot, error) {
	s := GitSnapshot{Files: map[string]string{}}
	files := map[string]string{"config": filepath.Join(r.commonDir, "config")}
	if r.gitDir != r.commonDir {
		files["config.worktree"] = filepath.Join(r.gitDir, "config.worktree")
	}
	for label, p := range files {
		h, err := hashFile(p)
		if err != nil {
			return GitSnapshot{}, fmt.Errorf("snapshot %s: %w", label, err)
		}
		s.Files[label] = h
	}
	root := filepath.Join(r.commonDir, "hooks")
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
		return GitSnapshot{}, fmt.Errorf("snapshot hooks: %w", err)
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

// Changed lists, sorted, the files ("config", "hooks/post-commit") that
// differ between s (before) and after.
func (s GitSnapshot) Changed(after GitSnapshot) []string {
	var out []string
	for k, v := range s.Files {
		if w, ok := after.Files[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range after.Files {
		if _, ok := s.Files[k]; !ok {
			out = append(out, k)
		}
	}
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
	err = w.repo.goGit(func(g *gitRepo) error {
		var err error
		data, err = g.BlobObject(plumbing.NewHash(hash))
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("worktree slot %d: read %s as committed: %w", w.slot, rel, err)
	}
	return data, hash, nil
}
