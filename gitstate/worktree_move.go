package gitstate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
)

// moveInProcess moves a pooled worktree's files and private index from
// the tree (or commit) from to to, as git read-tree -m -u from to would,
// in the process: with the staged switch's preparation and its rules
// (switch_inprocess.go), then the moves under the private index's lock.
// errStageByGit when those rules cannot vouch for it: git moves it then,
// and decides what is in the way.
func (w *Worktree) moveInProcess(ctx context.Context, from, to string) error {
	r := w.repo
	changes, err := r.diffTreesInProcess(from, to)
	if err != nil {
		return errStageByGit
	}
	for _, c := range changes {
		if c.OldMode == "160000" || c.NewMode == "160000" {
			return errStageByGit
		}
	}
	s := &stagedSwitch{r: r, co: checkout{root: w.path}, cas: refUpdate{old: from, new: to}, from: from,
		index: w.index, changes: changes, private: true}
	defer s.cleanup()
	mu := r.writerFor(w.path)
	mu.Lock()
	defer mu.Unlock()
	// The new index is written into the private index's lock and renamed
	// over the index, as git writes one: a copy beside it would be one
	// more file made and removed per move. Nothing waits on that lock
	// (the slot is handed out once), and a kill leaves it to
	// clearStaleLocks, with the slot's marker already gone.
	lock := w.index + ".lock"
	lf, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return errStageByGit
	}
	lf.Close()
	defer os.Remove(lock)
	s.tmp = lock
	if s.snapshotIndex() != nil {
		return errStageByGit
	}
	if s.stamps, err = s.stampChanges(); err != nil {
		return errStageByGit
	}
	if s.staging, err = s.stagingDir(); err != nil {
		return errStageByGit
	}
	s.flat, s.aside = true, s.staging
	if err := s.prepareInProcess(ctx); err != nil {
		return err
	}
	if s.unchanged() != nil {
		return errStageByGit
	}
	moved, err := s.moveIntoPlace()
	if err != nil {
		if uerr := s.undoMoves(moved); uerr != nil {
			return fmt.Errorf("move %s: %w; and putting the files back failed: %v", w.path, err, uerr)
		}
		return errStageByGit
	}
	if err := os.Rename(lock, w.index); err != nil {
		return fmt.Errorf("install the index of %s: %w", w.path, err)
	}
	return nil
}

// moveTree is moveInProcess, or git's read-tree -m -u where it does not
// apply, then cleanUnignored.
func (w *Worktree) moveTree(ctx context.Context, from, to string) error {
	err := w.moveInProcess(ctx, from, to)
	if errors.Is(err, errStageByGit) {
		_, err = w.git(ctx, "read-tree", "-m", "-u", from, to)
	}
	if err != nil {
		return err
	}
	return w.cleanUnignored(ctx, from, to)
}

// cleanUnignored removes, after a move from from to to that changed a
// .gitignore, the untracked files that to's rules no longer ignore. A
// step's ignored files stay in the worktree for the next step (build
// caches), but one that from's .gitignore alone ignored (a step's own
// rule, in a change held for review or rolled back) would otherwise be
// taken by the next step's Stage and land in its commit, unreviewed.
func (w *Worktree) cleanUnignored(ctx context.Context, from, to string) error {
	changes, err := w.repo.diffTreesInProcess(from, to)
	if err == nil && !slices.ContainsFunc(changes, func(c Change) bool { return path.Base(c.Path) == ".gitignore" }) {
		return nil
	}
	// git clean reads the .gitignore files, and waits forever on one
	// that is a FIFO.
	if err := w.removeSpecialFiles(); err != nil {
		return err
	}
	if _, err := w.git(ctx, "clean", "-ffdq"); err != nil {
		return fmt.Errorf("remove the files no longer ignored: %w", err)
	}
	return nil
}
