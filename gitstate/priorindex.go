package gitstate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// A switch of the user's checkout installs the new index before it moves
// the branch, as git checkout and git merge do. A kill between the two
// leaves the branch at the old commit with the new index and files: should
// the user remove the stale index.lock and commit, their commit holds the
// step's changes on top of the old commit, which Recover would otherwise
// finish by moving the branch. The other order (branch first) leaves the
// branch at the new commit with the old index, and the user's next commit
// records the old tree on top of the step: a revert of it.
//
// The user's index is kept at the journal's Prior path (a hard link) from
// just before the new one replaces it until the ref has moved: a ref
// update that fails puts it back, and Recover tells an installed index
// from one not yet installed by Prior being there without Tmp (the rename
// consumed it).

// installIndex keeps the user's index at prior and renames the new one,
// tmp, over it. A checkout without an index gets an empty file at prior,
// which no git index can be.
func installIndex(tmp, index, prior string) error {
	err := os.Link(index, prior)
	if errors.Is(err, fs.ErrNotExist) {
		err = os.WriteFile(prior, nil, 0o644)
	}
	if err != nil {
		return fmt.Errorf("keep the index: %w", err)
	}
	if err := os.Rename(tmp, index); err != nil {
		_ = os.Remove(prior)
		return fmt.Errorf("install the index: %w", err)
	}
	noteOwnIndex(index)
	return nil
}

// takeBackIndex undoes installIndex after the ref could not be moved: the
// new index goes back to tmp (undoing the file update reads it) and the
// user's returns from prior.
func takeBackIndex(tmp, index, prior string) error {
	if err := os.Rename(index, tmp); err != nil {
		return fmt.Errorf("put back the index: %w", err)
	}
	if st, err := os.Stat(prior); err == nil && st.Size() == 0 {
		if err := os.Remove(prior); err != nil {
			return fmt.Errorf("put back the index: %w", err)
		}
		return nil
	}
	if err := os.Rename(prior, index); err != nil {
		return fmt.Errorf("put back the index: %w", err)
	}
	return nil
}

// indexInstalled reports whether the switch j records got past
// installIndex: its new index is the user's.
func (j *switchJournal) indexInstalled() bool {
	if j.Prior == "" {
		return false
	}
	if _, err := os.Lstat(j.Prior); err != nil {
		return false
	}
	_, err := os.Lstat(j.Tmp)
	return errors.Is(err, fs.ErrNotExist)
}
