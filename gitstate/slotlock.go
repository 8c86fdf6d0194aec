package gitstate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// clearStaleLocks removes the lock files that a codemachine killed while
// it used the slot left behind: its private index's lock (an in-process
// stage or switch, or one of its git commands, cut short) and its work
// ref's. Left there, every later hand-out of the slot would wait for them
// and fail. Only the holder of the repository lock hands out slots, and
// one process hands a slot out once until Finish or Discard, so a lock
// present now is not a live user's: the git processes of the killed
// codemachine over the slot (marked by the slot's GIT_INDEX_FILE in their
// environment) are waited for first, since they end on their own and
// remove their locks themselves.
func (w *Worktree) clearStaleLocks() error {
	ref := filepath.Join(w.repo.commonDir, filepath.FromSlash(w.slotRef())) + ".lock"
	locks := []string{w.index + ".lock", ref}
	present := false
	for _, l := range locks {
		if _, err := os.Lstat(l); err == nil {
			present = true
		}
	}
	if !present {
		return nil
	}
	waitUnmarked([]byte("GIT_INDEX_FILE="+w.index+"\x00"), time.Minute)
	for _, l := range locks {
		if err := os.Remove(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("worktree slot %d: remove a stale lock: %w", w.slot, err)
		}
	}
	return nil
}
