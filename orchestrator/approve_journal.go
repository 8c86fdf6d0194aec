package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/codemachine/codemachine/gitstate"
)

// approveFile is an approval in progress, under LocalDir: written before
// the reviewed commit lands, removed once the review branch, the conflict
// branch and the unit's failure and hold are gone. An approve killed in
// between leaves it, and the next command finishes the approval (the
// commit is on the branch) or rolls it back (it is not: the review stays
// pending), so that a review is never half-landed: on the branch and still
// waiting for review, where a second approve would land it twice.
const approveFile = "approve.yaml"

// approveIntent is what recoverApprove needs.
type approveIntent struct {
	PID    int    `yaml:"pid"`
	Key    string `yaml:"key"`
	Branch string `yaml:"branch"`
	// Tip is the branch's tip when the approval began: the landing is
	// looked for after it.
	Tip string `yaml:"tip"`
	// Reviewed is what the review branch held; Commit the commit to land
	// (Reviewed with the approval's trailer, rebased when stale). Land may
	// rebase it again onto a moved tip: its message identifies it.
	Reviewed string `yaml:"reviewed"`
	Commit   string `yaml:"commit"`
}

// beginApprove records an approval about to land.
func (o *Orchestrator) beginApprove(ai approveIntent) error {
	return o.recordIntent(approveFile, "approval", ai)
}

// endApprove forgets the approval in progress.
func (o *Orchestrator) endApprove() error {
	return o.forgetIntent(approveFile)
}

// recordIntent writes a review decision about to land (approveFile,
// rejectFile), stamped with this process's pid.
func (o *Orchestrator) recordIntent(file, what string, in approveIntent) error {
	in.PID = os.Getpid()
	if err := o.repo.WriteLocal(file, in); err != nil {
		return fmt.Errorf("record the %s of %s: %w", what, in.Key, err)
	}
	return nil
}

// forgetIntent removes a review decision's record once it is done.
func (o *Orchestrator) forgetIntent(file string) error {
	p := o.repo.LocalDir() + "/" + file
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// finishApprove is what follows an approval's landing: the review branch
// (if it still holds the reviewed commit), the key's conflict branch, and
// its failure and hold go.
func (o *Orchestrator) finishApprove(ctx context.Context, key, reviewed string) error {
	if err := o.deleteRefAt(ctx, "refs/heads/"+reviewPrefix+key, reviewed); err != nil {
		return err
	}
	if _, err := o.repo.DeleteBranches(ctx, "codemachine/conflict/"+key); err != nil {
		return err
	}
	return o.forget(key)
}

// deleteRefAt deletes ref if it still holds commit. A ref that is gone
// meanwhile, or moved, is left as it is: after a kill, the killed
// command's own git update-ref (a child that outlives it) may still be
// deleting it while the next command recovers.
func (o *Orchestrator) deleteRefAt(ctx context.Context, ref, commit string) error {
	cur, err := o.repo.ResolveRev(ref)
	if err != nil || cur != commit {
		return nil
	}
	err = o.repo.DeleteRef(ctx, ref, commit)
	if errors.Is(err, gitstate.ErrRefMoved) {
		if now, rerr := o.repo.ResolveRev(ref); rerr != nil || now != commit {
			return nil
		}
	}
	return err
}

// recoverApprove finishes or rolls back an approval whose process was
// killed, once the caller holds the repository lock and the switch of the
// checkout was recovered (the branch is where the landing left it).
func (o *Orchestrator) recoverApprove(ctx context.Context) error {
	var ai approveIntent
	if err := o.repo.ReadLocal(approveFile, &ai); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("recover an interrupted approval: %w", err)
	}
	landed, err := o.approvalLanded(ai)
	if err != nil {
		return fmt.Errorf("recover the interrupted approval of %s: %w", ai.Key, err)
	}
	if landed != "" {
		if err := o.finishApprove(ctx, ai.Key, ai.Reviewed); err != nil {
			return fmt.Errorf("finish the interrupted approval of %s: %w", ai.Key, err)
		}
		o.noteBranchTip(ai.Branch)
		o.emit(Event{Kind: Note, Message: fmt.Sprintf("finished the interrupted approval of %s: %s is on %s", ai.Key, short(landed), ai.Branch)})
	} else {
		// Not landed: a conflict branch the landing may have left goes
		// (approve's own refusal removes it too), the review stays.
		if _, err := o.repo.DeleteBranches(ctx, "codemachine/conflict/"+ai.Key); err != nil {
			return fmt.Errorf("roll back the interrupted approval of %s: %w", ai.Key, err)
		}
		o.emit(Event{Kind: Note, Message: fmt.Sprintf("rolled back the interrupted approval of %s: nothing landed, its review is still pending", ai.Key)})
	}
	return o.endApprove()
}

// approvalLanded finds the approved commit on the branch after the tip the
// approval began at: the commit itself (a fast-forward) or one with its
// message (rebased onto a moved tip). "" when it did not land.
func (o *Orchestrator) approvalLanded(ai approveIntent) (string, error) {
	tip, err := o.repo.ResolveRev("refs/heads/" + ai.Branch)
	if errors.Is(err, gitstate.ErrUnknownRev) || (err == nil && tip == ai.Tip) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	want, err := o.repo.CommitInfo(ai.Commit)
	if err != nil {
		return "", err
	}
	found := ""
	err = o.repo.WalkLog(tip, func(c gitstate.Commit) bool {
		if c.Hash == ai.Tip {
			return false
		}
		if c.Hash == ai.Commit || c.Message == want.Message {
			found = c.Hash
			return false
		}
		return true
	})
	return found, err
}
