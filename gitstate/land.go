package gitstate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/codemachine/codemachine/internal/lazyre"
)

// LandOptions tune Land.
type LandOptions struct {
	// ConflictBranch is the branch (short name, e.g.
	// "codemachine/conflict/implement/T3") that keeps the step commit when it
	// cannot land. "" derives it from the commit's Codemachine-Step and
	// Codemachine-Task trailers.
	ConflictBranch string
	// Overlay, when set, is called on the merged tree when the commit has to
	// be rebased onto a moved branch tip, and returns the tree to commit
	// instead: the caller re-applies what depends on the tip (state.yaml,
	// the ticked plan box). A *ConflictError from it (its Branch is
	// ignored) means the paths it rewrites do not merge: the commit is kept
	// on its conflict branch.
	Overlay func(tip, tree string) (string, error)
	// OverlayPaths are paths whose merge conflicts do not stop a rebase,
	// because Overlay rewrites them from the tip (state.yaml, which every
	// landing changes, and a plan file the agent only ticked).
	OverlayPaths []string
	// OverlayReplaces, when set, gives the paths whose merged content
	// Overlay replaces whatever it is, for a rebase onto tip: a merge of
	// changes to different paths (done in-process, without git merge-tree)
	// keeps the tip's version of these.
	OverlayReplaces func(tip string) []string
	// Attempts bounds the compare-and-swap retries while the branch keeps
	// moving; 0 means 5.
	Attempts int
	// Protect, when set, is given a rebased commit as soon as it is made,
	// to keep it from a git gc --prune=now of the user's until it lands
	// (Worktree.Protect).
	Protect func(ctx context.Context, commit string) error
}

// DirtyError is returned by ResetBranch when the working tree has changes
// that the reset would destroy.
type DirtyError struct {
	Paths     []string
	Untracked bool // the paths are untracked files the reset would overwrite
}

// Error lists the files in the way, on one line.
func (e *DirtyError) Error() string {
	what := "uncommitted changes in"
	if e.Untracked {
		what = "the reset would overwrite untracked"
	}
	return fmt.Sprintf("%s %s: %s", what, plural(len(e.Paths), "file"), strings.Join(e.Paths, ", "))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// Land puts commit (whose only parent is base) on branch:
//
//   - The branch is still at base: the ref moves by compare-and-swap; where
//     the branch is checked out, the working tree and index are brought
//     forward the way git merge --ff-only would, keeping the user's
//     uncommitted changes. If a file the commit changes has local changes,
//     nothing moves and the result is a *ConflictError "uncommitted changes".
//   - The branch moved on from base: the commit is rebased onto the tip
//     (three-way merge of trees, Overlay applied, same message and author)
//     and landed the same way (Rebased). If it does not apply cleanly, or
//     the branch no longer contains base, the result is a *ConflictError
//     "the branch moved".
//
// A checkout of the branch whose merge left conflicts, which git moves
// forward for no commit, is an *UnmergedError. A ConflictError always
// leaves the commit on its conflict branch; after any other error the
// commit is referenced by nothing Land wrote, and the caller keeps it
// (refs/codemachine/failed/...). The
// user's staged, unstaged and untracked changes survive every path, and a
// commit the user makes while Land runs is never overwritten: the index
// lock is held from the working-tree update to the ref update.
func (r *Repo) Land(ctx context.Context, branch, base, commit string, opts LandOptions) (LandResult, error) {
	l, err := r.newLanding(branch, base, commit, opts)
	if err != nil {
		return LandResult{}, err
	}
	attempts := opts.Attempts
	if attempts <= 0 {
		attempts = 5
	}
	for i := range attempts {
		// A branch that keeps moving (someone committing again and
		// again) overtakes a landing prepared without the lock: the
		// later attempts take the lock first.
		l.staged = i < stagedLandings
		res, moved, err := l.attemptLocked(ctx)
		var lc *landConflict
		switch {
		case errors.As(err, &lc):
			return l.keep(ctx, lc)
		case !moved:
			return res, err
		}
	}
	// The branch kept moving under every attempt.
	return l.keep(ctx, &landConflict{reason: "the branch moved", keep: l.commit})
}

// landing is one call of Land.
type landing struct {
	r            *Repo
	branch, ref  string
	base, commit string // full hashes; base is "" for a root commit
	orig         Commit // the commit as it was made
	subject      string // the first line of its message, for the reflog
	opts         LandOptions
	staged       bool // this attempt prepares the working tree before taking the lock
	// held is the checkout's index lock when this attempt took it
	// first (see attemptLocked); nil otherwise.
	held *heldCheckout
}

// stagedLandings is how many attempts of a landing prepare the working
// tree before taking the user's index lock (switch_staged.go).
const stagedLandings = 2

// newLanding resolves base and commit and checks that commit's only parent
// is base.
func (r *Repo) newLanding(branch, base, commit string, opts LandOptions) (*landing, error) {
	orig, err := r.CommitInfo(commit)
	if err != nil {
		return nil, fmt.Errorf("land %s: %w", commit, err)
	}
	commit = orig.Hash
	if base != "" {
		if base, err = r.ResolveRev(base); err != nil {
			return nil, fmt.Errorf("land %s: %w", commit, err)
		}
	}
	if (base == "" && len(orig.Parents) != 0) || (base != "" && (len(orig.Parents) != 1 || orig.Parents[0] != base)) {
		return nil, fmt.Errorf("land %s: its parent is not the base %s", short(commit), short(base))
	}
	return &landing{r: r, branch: branch, ref: "refs/heads/" + branch, base: base, commit: commit, orig: orig,
		subject: strings.SplitN(orig.Message, "\n", 2)[0], opts: opts}, nil
}

// landConflict is why a commit cannot land, and the commit (the step's own
// or its rebased copy) to keep on the conflict branch.
type landConflict struct {
	reason string
	paths  []string
	keep   string
}

func (c *landConflict) Error() string { return c.reason }

// keep puts the commit of a conflict on its conflict branch and returns the
// *ConflictError that names it.
func (l *landing) keep(ctx context.Context, c *landConflict) (LandResult, error) {
	name := l.opts.ConflictBranch
	if name == "" {
		name = conflictBranchFor(l.orig)
	}
	name, err := l.r.keepOnBranch(ctx, name, c.keep)
	if err != nil {
		return LandResult{}, fmt.Errorf("land %s: keep it on %s: %w", short(l.commit), name, err)
	}
	return LandResult{}, &ConflictError{Branch: name, Paths: c.paths, Reason: c.reason}
}

// fail says which landing err stopped.
func (l *landing) fail(err error) error {
	return fmt.Errorf("land %s on %s: %w", short(l.commit), l.branch, err)
}

// attemptLocked is attempt, holding the index lock of the checkout on the
// branch from before the tip is read when the attempt is not staged. git
// commit takes that lock before it moves the branch, so a person
// committing in a tight loop cannot move the tip between the read and the
// compare-and-swap: the landing is not overtaken forever.
func (l *landing) attemptLocked(ctx context.Context) (LandResult, bool, error) {
	if l.staged {
		return l.attempt(ctx)
	}
	cos, err := l.r.checkoutsOn(l.ref)
	if err != nil || len(cos) != 1 {
		return l.attempt(ctx)
	}
	held, err := l.r.holdCheckout(ctx, cos[0], l.ref)
	if errors.Is(err, ErrRefMoved) {
		return LandResult{}, true, nil
	}
	if err != nil {
		return LandResult{}, false, l.fail(err)
	}
	defer held.release()
	l.held = held
	defer func() { l.held = nil }()
	return l.attempt(ctx)
}

// attempt lands the commit on the branch as it is now: moved reports that
// the branch moved during the attempt, which is worth another one. A
// *landConflict error means the commit cannot land.
func (l *landing) attempt(ctx context.Context) (res LandResult, moved bool, err error) {
	tip, err := l.r.refHash(l.ref)
	switch {
	case err != nil:
		return LandResult{}, false, err
	case tip == l.commit:
		return LandResult{Commit: l.commit}, false, nil
	case tip == l.base:
		err := l.advance(ctx, l.base, l.commit, "codemachine: "+l.subject)
		return l.advanced(ctx, err, LandResult{Commit: l.commit})
	}
	return l.rebase(ctx, tip)
}

// advanced turns the outcome of moving the branch to res.Commit into
// Land's: a *switchConflict (local changes in the way) is a conflict,
// ErrRefMoved is worth another attempt.
func (l *landing) advanced(ctx context.Context, err error, res LandResult) (LandResult, bool, error) {
	var sc *switchConflict
	switch {
	case errors.As(err, &sc):
		// A merge left conflicts in the checkout: git refuses any index
		// with them, whatever the commit changes, which "uncommitted
		// changes" (to no path git names) would not say.
		var ue *UnmergedError
		if uerr := l.r.CheckUnmerged(ctx, l.branch); errors.As(uerr, &ue) {
			return LandResult{}, false, ue
		}
		return LandResult{}, false, &landConflict{reason: ReasonUncommitted, paths: sc.paths, keep: res.Commit}
	case errors.Is(err, ErrRefMoved):
		return LandResult{}, true, nil
	case err != nil:
		return LandResult{}, false, l.fail(err)
	}
	return res, false, nil
}

// rebase re-applies the commit onto tip, where the branch moved on from
// base, and lands the copy.
func (l *landing) rebase(ctx context.Context, tip string) (LandResult, bool, error) {
	moved := &landConflict{reason: "the branch moved", keep: l.commit}
	if tip == "" || l.base == "" {
		return LandResult{}, false, moved
	}
	if ok, err := l.r.IsAncestor(l.base, tip); err != nil {
		return LandResult{}, false, l.fail(err)
	} else if !ok {
		return LandResult{}, false, moved
	}
	tree, err := l.rebasedTree(ctx, tip)
	if err != nil {
		return LandResult{}, false, err
	}
	rebased, err := l.r.CommitTree(ctx, CommitSpec{Tree: tree, Parents: []string{tip}, Message: l.orig.Message, Author: l.orig.Author})
	if err != nil {
		return LandResult{}, false, l.fail(err)
	}
	if l.opts.Protect != nil {
		if err := l.opts.Protect(ctx, rebased); err != nil {
			return LandResult{}, false, l.fail(err)
		}
	}
	err = l.advance(ctx, tip, rebased, "codemachine: "+l.subject+" (rebased)")
	return l.advanced(ctx, err, LandResult{Commit: rebased, Rebased: true})
}

// rebasedTree merges the commit onto tip (base is their merge base: it is
// the commit's only parent and an ancestor of tip) and applies the
// overlay.
func (l *landing) rebasedTree(ctx context.Context, tip string) (string, error) {
	var replaced []string
	if l.opts.Overlay != nil && l.opts.OverlayReplaces != nil {
		replaced = l.opts.OverlayReplaces(tip)
	}
	tree, ok, err := l.r.mergeDisjoint(l.base, tip, l.commit, replaced)
	if err != nil {
		return "", l.fail(err)
	}
	var conflicts []string
	if !ok {
		if tree, conflicts, err = l.r.mergeCommits(ctx, tip, l.commit); err != nil {
			return "", l.fail(err)
		}
	}
	if conflicts = without(conflicts, l.opts.OverlayPaths); len(conflicts) > 0 {
		return "", &landConflict{reason: "the branch moved", paths: conflicts, keep: l.commit}
	}
	if l.opts.Overlay == nil {
		return tree, nil
	}
	tree, err = l.opts.Overlay(tip, tree)
	var ce *ConflictError
	switch {
	case errors.As(err, &ce):
		return "", &landConflict{reason: ce.Reason, paths: ce.Paths, keep: l.commit}
	case err != nil:
		return "", fmt.Errorf("land %s on %s: overlay: %w", short(l.commit), l.branch, err)
	}
	return tree, nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "(none)"
	}
	return h
}

// conflictBranchFor names the conflict branch after the step and task the
// commit's trailers record.
func conflictBranchFor(c Commit) string {
	m := Message{Trailers: c.Trailers}
	name := m.Get(TrailerStep)
	if t := m.Get(TrailerTask); name != "" && t != "" {
		name += "/" + t
	}
	if name == "" {
		name = short(c.Hash)
	}
	return "codemachine/conflict/" + name
}

// keepOnBranch points branch at commit, replacing an earlier conflict kept
// there (which stays in the branch's reflog). A conflict branch the user
// has checked out (to look at the last conflict) is not moved under their
// feet: the commit goes to branch-2, branch-3, ... instead. It returns the
// branch used.
func (r *Repo) keepOnBranch(ctx context.Context, branch, commit string) (string, error) {
	name := branch
	for i := 2; ; i++ {
		cos, err := r.checkoutsOn("refs/heads/" + name)
		if err != nil {
			return name, err
		}
		if len(cos) == 0 {
			break
		}
		if i > 100 {
			return name, fmt.Errorf("every candidate branch is checked out")
		}
		name = fmt.Sprintf("%s-%d", branch, i)
	}
	ref := "refs/heads/" + name
	if strings.HasPrefix(ref, conflictRefPrefix) {
		// A conflict kept for the step in another shape (before it
		// became a foreach, or the reverse) leaves git no room for this
		// one: it is moved aside, unless it is checked out.
		stamp := time.Now().UTC().Format("20060102T150405Z")
		if _, err := r.MakeRoomForRef(ctx, conflictRefPrefix, ref, stamp, r.checkedOut); err != nil {
			return name, err
		}
	}
	for range 3 {
		cur, err := r.refHash(ref)
		if err != nil {
			return name, err
		}
		if cur == commit {
			return name, nil
		}
		err = r.updateRef(ctx, runOpts{}, ref, commit, cur, "codemachine: kept after a conflict")
		if !errors.Is(err, ErrRefMoved) {
			return name, err
		}
	}
	return name, fmt.Errorf("update %s: %w", ref, ErrRefMoved)
}

// conflictRefPrefix holds the conflict branches.
const conflictRefPrefix = "refs/heads/codemachine/conflict/"

// checkedOut reports whether a worktree of the user's has the branch ref
// checked out (true also when that cannot be told).
func (r *Repo) checkedOut(ref string) bool {
	cos, err := r.checkoutsOn(ref)
	return err != nil || len(cos) > 0
}

// checkout is a worktree of the user's (not of the pool).
type checkout struct {
	root, gitDir string
}

// on reports whether the checkout's HEAD names ref.
func (c checkout) on(ref string) bool {
	data, err := os.ReadFile(filepath.Join(c.gitDir, "HEAD"))
	return err == nil && strings.TrimSpace(string(data)) == "ref: "+ref
}

// errCheckoutMoved: the checkout a switch was for left the branch (the
// user's git checkout) before its index lock was taken; it is ErrRefMoved,
// so that the landing tries again, with the checkouts as they are now.
var errCheckoutMoved = fmt.Errorf("the checkout left the branch: %w", ErrRefMoved)

// checkoutsOn lists the user's worktrees whose HEAD is the branch ref.
func (r *Repo) checkoutsOn(ref string) ([]checkout, error) {
	var cands []checkout
	if r.gitDir == r.commonDir {
		cands = append(cands, checkout{r.root, r.gitDir})
	} else if filepath.Base(r.commonDir) == ".git" {
		cands = append(cands, checkout{filepath.Dir(r.commonDir), r.commonDir})
	}
	admins, err := os.ReadDir(filepath.Join(r.commonDir, "worktrees"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list worktrees: %w", err)
	}
	pool := filepath.Join(r.commonDir, "codemachine") + string(filepath.Separator)
	for _, a := range admins {
		gd := filepath.Join(r.commonDir, "worktrees", a.Name())
		link, err := os.ReadFile(filepath.Join(gd, "gitdir"))
		if err != nil {
			continue
		}
		root := filepath.Dir(strings.TrimSpace(string(link)))
		if strings.HasPrefix(root+string(filepath.Separator), pool) {
			continue
		}
		cands = append(cands, checkout{root, gd})
	}
	var out []checkout
	for _, c := range cands {
		if c.on(ref) {
			out = append(out, c)
		}
	}
	return out, nil
}

// advance moves the branch from old to new, under the attempt's held lock
// when it took one.
func (l *landing) advance(ctx context.Context, old, new, msg string) error {
	if l.held != nil {
		return l.held.switchTo(ctx, newRefUpdate(l.ref, new, old, msg), false)
	}
	return l.r.advance(ctx, l.ref, old, new, msg, l.staged)
}

// advance moves ref from old to new by compare-and-swap, bringing along the
// worktree that has it checked out; staged prepares the worktree's update
// before taking its index lock (switch_staged.go).
func (r *Repo) advance(ctx context.Context, ref, old, new, msg string, staged bool) error {
	cos, err := r.checkoutsOn(ref)
	if err != nil {
		return err
	}
	cas := newRefUpdate(ref, new, old, msg)
	switch len(cos) {
	case 0:
		return r.advanceUnchecked(ctx, cas)
	case 1:
		if staged {
			// What the staged switch cannot vouch for is decided under
			// the lock.
			if err := r.switchStaged(ctx, cos[0], cas); !errors.Is(err, errNotStaged) {
				return err
			}
		}
		return r.switchCheckout(ctx, cos[0], cas, false)
	}
	return fmt.Errorf("%s is checked out in %d worktrees", ref, len(cos))
}

// advanceUnchecked moves a branch no checkout of the user's is on. It
// holds the main checkout's index lock around the ref update: git checkout
// reads the branch's commit before it takes that lock, so a checkout of
// the branch that began before the update fails on the lock (and is tried
// again) instead of switching to the branch with the files of its old
// commit, which the user's next commit would then revert. What is left is
// git's own window, between a checkout's index update and its HEAD update
// (it holds no lock for the latter); see docs/internals.md.
func (r *Repo) advanceUnchecked(ctx context.Context, cas refUpdate) error {
	co, ok := r.mainCheckout()
	if !ok {
		_, err := r.gitWith(ctx, runOpts{}, cas.args...)
		return refError(cas.ref, err)
	}
	s, err := r.refSettingsFor(ctx)
	if err != nil {
		return err
	}
	held, err := r.holdIndex(ctx, co, cas.ref)
	if err != nil {
		return err
	}
	if co.on(cas.ref) {
		// Checked out meanwhile: the landing tries again, switching it.
		held.release()
		return errCheckoutMoved
	}
	err = r.swapRef(context.WithoutCancel(ctx), cas, held.journal.env(), s)
	held.release()
	if err == nil && cas.old != "" {
		r.repairAfterUnchecked(ctx, co, cas.ref, cas.old, cas.new)
	}
	return err
}

// mainCheckout is the repository's main worktree, if it has one.
func (r *Repo) mainCheckout() (checkout, bool) {
	switch {
	case r.gitDir == r.commonDir && r.root != "":
		return checkout{r.root, r.gitDir}, true
	case filepath.Base(r.commonDir) == ".git":
		return checkout{filepath.Dir(r.commonDir), r.commonDir}, true
	}
	return checkout{}, false
}

// refUpdate is a compare-and-swap of one ref.
type refUpdate struct {
	ref, new, old string
	msg           string
	saved         string // the commit of a forced rollback's saved changes (for Recover)
	args          []string
}

func newRefUpdate(ref, new, old, msg string) refUpdate {
	u := refUpdate{ref: ref, new: new, old: old, msg: msg}
	if old == "" {
		old = strings.Repeat("0", max(len(new), 40))
	}
	u.args = []string{"update-ref", "-m", msg, ref, new, old}
	return u
}

// switchConflict is a working-tree update that would have destroyed local
// changes; nothing was changed.
type switchConflict struct {
	paths []string
	msg   string
}

func (e *switchConflict) Error() string { return e.msg }

var (
	entryRe  = lazyre.New(`(?:Entry|file|pathspec) '([^']+)'`)
	listedRe = lazyre.New(`(?m)^\t(.+)$`)
)

// switchCheckout moves a checked-out branch from old to new together with
// its worktree. It holds the worktree's index.lock throughout, as git
// itself would, so that no git command of the user's (a commit, above all)
// can run between the file update and the ref update:
//
//  1. create index.lock (backing off while someone else holds it);
//  2. in a copy of the index (same mtime, so git's racy-file detection
//     judges the same), run read-tree -m -u old new: a two-tree merge that
//     rewrites only the files that differ and refuses to touch a file with
//     local changes (with hard, read-tree --reset -u new: the caller saved
//     the local changes first);
//  3. compare-and-swap the ref; if it moved, undo the file update;
//  4. install the new index by renaming it over the lock, as git does.
func (r *Repo) switchCheckout(ctx context.Context, co checkout, cas refUpdate, hard bool) error {
	held, err := r.holdCheckout(ctx, co, cas.ref)
	if err != nil {
		return err
	}
	defer held.release()
	return held.switchTo(ctx, cas, hard)
}

// heldCheckout is a checkout whose index lock codemachine holds, with the
// journal that lets Recover release it after a kill.
type heldCheckout struct {
	r       *Repo
	co      checkout
	journal *switchJournal
}

// holdCheckout takes co's index lock for a switch of ref, and the main
// worktree's writer (in this order, as every in-process writer takes them);
// commands that write objects only do not wait for that writer, so a
// landing can rebase while it holds both. The journal says nothing has
// begun yet (Pending) until switchTo records the switch.
func (r *Repo) holdCheckout(ctx context.Context, co checkout, ref string) (*heldCheckout, error) {
	h, err := r.holdIndex(ctx, co, ref)
	if err != nil {
		return nil, err
	}
	if !co.on(ref) {
		// The user's git checkout switched away meanwhile: the files and
		// index are another branch's now.
		h.release()
		return nil, errCheckoutMoved
	}
	return h, nil
}

// holdIndex is holdCheckout whatever co has checked out.
func (r *Repo) holdIndex(ctx context.Context, co checkout, ref string) (*heldCheckout, error) {
	index := filepath.Join(co.gitDir, "index")
	r.settleIndex(co, index) // before the lock; under it only if written in between
	r.writeMu.Lock()
	r.hook("before-lock")
	journal := &switchJournal{Root: co.root, Index: index, Ref: ref, Pending: true}
	if err := r.beginSwitch(ctx, journal); err != nil {
		r.writeMu.Unlock()
		return nil, err
	}
	r.hook("locked")
	r.settleIndex(co, journal.Index)
	return &heldCheckout{r: r, co: co, journal: journal}, nil
}

// release drops the lock and the journal.
func (h *heldCheckout) release() {
	_ = os.Remove(h.journal.lock())
	_ = h.r.removeJournal()
	h.r.writeMu.Unlock()
}

// switchTo performs the switch of switchCheckout under the held lock.
func (h *heldCheckout) switchTo(ctx context.Context, cas refUpdate, hard bool) error {
	r, co, journal := h.r, h.co, h.journal
	old, new := cas.old, cas.new
	if cas.ref != journal.Ref {
		return fmt.Errorf("switch %s while holding the lock for %s", cas.ref, journal.Ref)
	}
	index := journal.Index
	tmp, err := r.tempPath("switch-index")
	if err != nil {
		return err
	}
	// The journal lets the next command complete or undo what a kill
	// interrupts from here on (Recover).
	journal.Tmp, journal.Old, journal.New, journal.Hard, journal.Saved, journal.Pending = tmp, old, new, hard, cas.saved, false
	journal.Prior, journal.Msg = tmp+".prior", cas.msg
	if err := r.WriteLocal(journalFile, journal); err != nil {
		return err
	}
	// From here on the working tree, the index and the ref must end up
	// consistent: a cancellation halfway would leave the user's files
	// ahead of their branch.
	ctx = context.WithoutCancel(ctx)
	defer os.Remove(tmp)
	defer os.Remove(journal.Prior)
	if err := copyIndex(index, tmp); err != nil {
		return err
	}
	from := old
	if from == "" {
		if from, err = r.emptyTree(ctx); err != nil {
			return err
		}
	}
	if !hard {
		if err := r.checkInWay(co.root, old, new); err != nil {
			return err
		}
	}
	opts := runOpts{Dir: co.root, Env: []string{"GIT_INDEX_FILE=" + tmp, journal.env()}}
	args := []string{"read-tree", "-m", "-u", from, new}
	if hard {
		args = []string{"read-tree", "--reset", "-u", new}
	}
	_, err = r.run(ctx, opts, true, args)
	var ge *GitError
	if errors.As(err, &ge) && !hard {
		// Possibly files whose stat data alone changed: refresh those
		// and try once more. A refused read-tree changed nothing.
		if rerr := r.refreshPaths(ctx, opts, old, new); rerr != nil {
			return rerr
		}
		_, err = r.run(ctx, opts, true, args)
	}
	if err != nil {
		// Whatever git refused (local changes above all, but also an
		// index in the middle of a merge), nothing has moved: report it
		// as a conflict so that the commit is kept on a branch.
		if errors.As(err, &ge) {
			return &switchConflict{paths: conflictPaths(ge.Stderr), msg: err.Error()}
		}
		return err
	}
	// The new index replaces the old one in one rename while the lock is
	// held, before the ref moves (priorindex.go); the lock (holding the
	// journal's marker, never index data, so that Recover can tell it
	// from a lock of anyone else's) goes last.
	r.hook("before-index")
	if err := installIndex(tmp, index, journal.Prior); err != nil {
		return r.undoFiles(ctx, opts, err, new, from, hard)
	}
	r.hook("before-ref-update")
	if _, err := r.run(ctx, runOpts{Env: []string{journal.env()}}, true, cas.args); err != nil {
		err = refError(cas.ref, err)
		if uerr := takeBackIndex(tmp, index, journal.Prior); uerr != nil {
			return fmt.Errorf("%w; and restoring the index failed: %v", err, uerr)
		}
		return r.undoFiles(ctx, opts, err, new, from, hard)
	}
	r.hook("ref-updated")
	return nil
}

// undoFiles moves the working tree of a switch that failed with err back
// from new to from, in the switch's index (opts), and returns err.
func (r *Repo) undoFiles(ctx context.Context, opts runOpts, err error, new, from string, hard bool) error {
	back := []string{"read-tree", "-m", "-u", new, from}
	if hard {
		back = []string{"read-tree", "--reset", "-u", from}
	}
	if _, uerr := r.run(ctx, opts, true, back); uerr != nil {
		return fmt.Errorf("%w; and restoring the working tree failed: %v", err, uerr)
	}
	return err
}

// refreshPaths refreshes the stat data of the index entries that the
// switch from old to new rewrites. read-tree -m judges "up to date" by stat
// data alone, so a file whose content is unchanged but whose stat changed
// (touched, rewritten by an editor, put back by an undone switch) reads as
// a local change. git checkout and git merge refresh the whole index
// first; here only the paths that change are refreshed, and only after
// read-tree refused, so the common case costs nothing and the rare one
// does not depend on the size of the repository. A path that is not in
// the index at all is a local change of the user's (a staged deletion).
func (r *Repo) refreshPaths(ctx context.Context, opts runOpts, old, new string) error {
	if old == "" {
		return nil
	}
	changes, err := r.diffTreesInProcess(old, new)
	if err != nil {
		return fmt.Errorf("diff %s %s: %w", short(old), short(new), err)
	}
	var paths []string
	for _, c := range changes {
		if c.Status != 'A' {
			paths = append(paths, c.Path)
		}
	}
	if err != nil || len(paths) == 0 {
		return err
	}
	opts.Stdin = []byte(strings.Join(paths, "\x00") + "\x00")
	_, err = r.run(ctx, opts, true, []string{"--literal-pathspecs", "add", "--refresh", "--pathspec-from-file=-", "--pathspec-file-nul"})
	var ge *GitError
	if errors.As(err, &ge) {
		return &switchConflict{paths: conflictPaths(ge.Stderr), msg: err.Error()}
	}
	return err
}

// hook runs the test hook, if any, at a named point of a landing.
func (r *Repo) hook(stage string) {
	if r.testHook != nil {
		r.testHook(stage)
	}
}

// createLockFrom creates a git lock file exclusively as a second name of
// tmp, a written file (the lock never exists empty), retrying like a git
// command would while another process holds it.
func (r *Repo) createLockFrom(ctx context.Context, lock, tmp string) error {
	wait := r.LockWait
	if wait <= 0 {
		wait = DefaultLockWait
	}
	start, delay := time.Now(), 10*time.Millisecond
	for {
		err := os.Link(tmp, lock)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", lock, err)
		}
		waited := time.Since(start)
		if waited >= wait {
			return &LockHeldError{Cmd: "read-tree", Path: r.RelPath(lock), Waited: waited}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", r.RelPath(lock), ctx.Err())
		case <-time.After(min(delay, wait-waited)):
		}
		delay = min(2*delay, time.Second)
	}
}

// copyIndex copies the index keeping its modification time; a missing
// index (a repository with nothing staged yet) is no error.
func copyIndex(src, dst string) error {
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("copy the index: %w", err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return fmt.Errorf("copy the index: %w", err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("copy the index: %w", err)
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(dst, st.ModTime(), st.ModTime())
	}
	if err != nil {
		return fmt.Errorf("copy the index: %w", err)
	}
	return nil
}

// conflictPaths extracts the paths git names in a refused working-tree
// update.
func conflictPaths(stderr string) []string {
	seen := map[string]bool{}
	var paths []string
	for _, re := range []*regexp.Regexp{entryRe(), listedRe()} {
		for _, m := range re.FindAllStringSubmatch(stderr, -1) {
			p := strings.TrimSpace(m[1])
			if p != "" && !seen[p] {
				seen[p] = true
				paths = append(paths, p)
			}
		}
	}
	sort.Strings(paths)
	return paths
}

// resettable checks that the checkout of branch co can be reset to target:
// no merge conflicts (git stash, which --force saves changes with, refuses
// them), no uncommitted changes unless force, no untracked file in the way.
// It returns the paths with uncommitted changes, for force to save.
func (r *Repo) resettable(ctx context.Context, co checkout, branch, target string, force bool) ([]string, error) {
	entries, err := r.statusIn(ctx, co.root, true)
	if err != nil {
		return nil, fmt.Errorf("reset %s: %w", branch, err)
	}
	if paths := unmergedPaths(entries); len(paths) > 0 {
		return nil, &UnmergedError{Branch: branch, Dir: co.root, Paths: paths, Abort: co.abortCommand()}
	}
	dirty := dirtyPaths(entries)
	if len(dirty) > 0 && !force {
		return nil, &DirtyError{Paths: dirty}
	}
	if inWay := r.untrackedInWay(target, entries); len(inWay) > 0 {
		return nil, &DirtyError{Paths: inWay, Untracked: true}
	}
	return dirty, nil
}

// ResetBranch moves branch back to to (a rollback), after recording the old
// tip at refs/codemachine/backup/<UTC time> (returned). When expectedTip is
// set and the branch is elsewhere, it fails with ErrRefMoved. Where the
// branch is checked out, uncommitted changes to tracked files make it fail
// with a *DirtyError unless force; with force they are first saved (git
// stash create) at refs/codemachine/backup/<time>-worktree (returned as
// saved) and then discarded. Untracked files are never overwritten.
func (r *Repo) ResetBranch(ctx context.Context, branch, to, expectedTip string, force bool) (backupRef, saved string, err error) {
	ref := "refs/heads/" + branch
	tip, err := r.refHash(ref)
	if err != nil {
		return "", "", err
	}
	if tip == "" {
		return "", "", fmt.Errorf("reset %s: no such branch", branch)
	}
	if expectedTip != "" && tip != expectedTip {
		return "", "", fmt.Errorf("reset %s: %w (it is at %s, expected %s)", branch, ErrRefMoved, short(tip), short(expectedTip))
	}
	target, err := r.ResolveRev(to)
	if err != nil {
		return "", "", fmt.Errorf("reset %s: %w", branch, err)
	}
	cos, err := r.checkoutsOn(ref)
	if err != nil {
		return "", "", err
	}
	if len(cos) > 1 {
		return "", "", fmt.Errorf("reset %s: checked out in %d worktrees", branch, len(cos))
	}
	var dirty []string
	if len(cos) == 1 {
		if dirty, err = r.resettable(ctx, cos[0], branch, target, force); err != nil {
			return "", "", err
		}
	}
	msg := fmt.Sprintf("codemachine: rollback %s to %s", branch, short(target))
	backupRef, err = r.createBackupRef(ctx, tip, msg)
	if err != nil {
		return "", "", fmt.Errorf("reset %s: %w", branch, err)
	}
	if len(cos) == 0 {
		if err := r.updateRef(ctx, runOpts{}, ref, target, tip, msg); err != nil {
			return backupRef, "", fmt.Errorf("reset %s: %w", branch, err)
		}
		return backupRef, "", nil
	}
	hard := false
	cas := newRefUpdate(ref, target, tip, msg)
	if len(dirty) > 0 {
		// It locks the user's index: not stopped once it runs (a few
		// milliseconds), the cancellation is taken after it.
		out, err := r.gitWith(ctx, runOpts{Dir: cos[0].root, finish: true}, "stash", "create", "codemachine: uncommitted changes before rollback")
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return backupRef, "", fmt.Errorf("reset %s: save uncommitted changes: %w", branch, err)
		}
		if stash := trimNL(out); stash != "" {
			saved = backupRef + "-worktree"
			if err := r.updateRef(ctx, runOpts{}, saved, stash, "", msg); err != nil {
				return backupRef, "", fmt.Errorf("reset %s: save uncommitted changes: %w", branch, err)
			}
			// The journal names the commit: Recover reads its tree.
			cas.saved = stash
		}
		hard = true
	}
	err = r.switchCheckout(ctx, cos[0], cas, hard)
	var sc *switchConflict
	if errors.As(err, &sc) && len(sc.paths) > 0 {
		return backupRef, saved, &DirtyError{Paths: sc.paths}
	}
	if err != nil {
		return backupRef, saved, fmt.Errorf("reset %s: %w", branch, err)
	}
	return backupRef, saved, nil
}

// untrackedInWay lists untracked files at paths where target has a file,
// which a forced reset would overwrite.
func (r *Repo) untrackedInWay(target string, entries []StatusEntry) []string {
	fsys, err := r.TreeFS(target)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !e.Untracked() {
			continue
		}
		if _, err := fs.Stat(fsys, e.Path); err == nil {
			out = append(out, e.Path)
		}
	}
	return out
}

// createBackupRef writes refs/codemachine/backup/<UTC time>, adding -2, -3,
// ... when a backup of the same second exists.
func (r *Repo) createBackupRef(ctx context.Context, commit, msg string) (string, error) {
	stamp := "refs/codemachine/backup/" + time.Now().UTC().Format("20060102T150405Z")
	for i := 1; i < 100; i++ {
		name := stamp
		if i > 1 {
			name = fmt.Sprintf("%s-%d", stamp, i)
		}
		err := r.updateRef(ctx, runOpts{}, name, commit, "", msg)
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, ErrRefMoved) {
			return "", err
		}
	}
	return "", fmt.Errorf("create a backup ref under %s: too many backups this second", stamp)
}

// without returns paths minus those in drop.
func without(paths, drop []string) []string {
	var out []string
	for _, p := range paths {
		if !slices.Contains(drop, p) {
			out = append(out, p)
		}
	}
	return out
}
