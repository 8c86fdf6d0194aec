package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/codemachine/codemachine/gitstate"
)

// rollbackFile is a rollback in progress, under LocalDir: written before the
// branch is reset, removed once the undone steps are held. A rollback killed
// in between leaves it, and the next command holds what the reset undid.
const rollbackFile = "rollback.yaml"

// rollbackIntent is what recover needs to finish a rollback.
type rollbackIntent struct {
	PID    int    `yaml:"pid"`
	Branch string `yaml:"branch"`
	From   string `yaml:"from"`
	To     string `yaml:"to"`
}

// recoverInterrupted finishes what a killed codemachine left halfway, once the caller
// holds the repository lock: a landing or rollback's switch of the user's
// checkout (gitstate.Recover: completed or undone, its index.lock removed),
// then an approval (recoverApprove), a rejection (recoverReject), a reviewer
// agent's verdict (recoverVerdict) and a rollback's holds. What it did is told as notes.
func (o *Orchestrator) recoverInterrupted(ctx context.Context) error {
	rc, err := o.repo.Recover(ctx)
	if err != nil {
		return err
	}
	if rc != nil {
		o.emit(Event{Kind: Note, Message: rc.String()})
	}
	if err := o.recoverApprove(ctx); err != nil {
		return err
	}
	if err := o.recoverReject(ctx); err != nil {
		return err
	}
	if err := o.recoverVerdict(ctx); err != nil {
		return err
	}
	var ri rollbackIntent
	if err := o.repo.ReadLocal(rollbackFile, &ri); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	tip, err := o.repo.ResolveRev("refs/heads/" + ri.Branch)
	if err == nil && tip == ri.To && ri.From != ri.To {
		held, err := o.holdUndone(ctx, ri.From, ri.To, Overrides{})
		if err != nil {
			return fmt.Errorf("finish the interrupted rollback of %s: %w", ri.Branch, err)
		}
		o.emit(Event{Kind: Note, Message: fmt.Sprintf("finished the interrupted rollback of %s to %s: held %d step(s)", ri.Branch, short(ri.To), len(held))})
	}
	return o.endRollback()
}

// RecoverIdle finishes what a killed codemachine left halfway, as the
// commands that take the repository lock do first, for a command that
// does not otherwise take it (status): after a kill during a landing the
// user's index.lock stays, and every git command of theirs that writes the
// index fails, until some codemachine command recovers. Nothing is done
// when nothing was interrupted (no journal: the usual case costs three
// stats), or when another codemachine holds the lock (its own start
// recovers). The lock is handed back with a dead holder's record, so the
// next run still stops what that holder left running.
func (o *Orchestrator) RecoverIdle(ctx context.Context, command string) error {
	if !o.Interrupted() {
		return nil
	}
	lock, err := o.repo.Lock(command)
	if err != nil {
		var locked *gitstate.LockedError
		if errors.As(err, &locked) {
			return nil
		}
		return err
	}
	defer lock.Handback()
	return o.recoverInterrupted(ctx)
}

// Interrupted reports whether a switch of the checkout, an approval or a
// rollback left its journal behind: a codemachine was killed during it,
// or one is doing it now. It only looks (LocalDir would create the
// directory in a repository that is not codemachine's).
func (o *Orchestrator) Interrupted() bool {
	if o.repo.SwitchInterrupted() {
		return true
	}
	for _, name := range []string{approveFile, rejectFile, verdictFile, rollbackFile} {
		if _, err := os.Lstat(filepath.Join(o.repo.CommonDir(), "codemachine", name)); err == nil {
			return true
		}
	}
	return false
}

// beginRollback records a rollback about to reset branch from one commit to
// another.
func (o *Orchestrator) beginRollback(branch, from, to string) error {
	return o.repo.WriteLocal(rollbackFile, rollbackIntent{PID: os.Getpid(), Branch: branch, From: from, To: to})
}

// endRollback forgets the rollback in progress.
func (o *Orchestrator) endRollback() error {
	p := o.repo.LocalDir() + "/" + rollbackFile
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}
