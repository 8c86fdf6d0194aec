package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
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
// then an approval (recoverApprove) and a rollback's holds. What it did is told as notes.
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
