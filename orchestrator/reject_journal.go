package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// rejectFile is a rejection in progress, under LocalDir: written before
// the feedback commit lands, removed once the review branch is gone. A
// reject killed in between leaves it, and the next command finishes the
// rejection (the feedback is on the branch: the review branch goes) or
// rolls it back (it is not: the review stays pending), so that a review
// is never both rejected and pending, where an approve would land the
// work its reviewer rejected and a second reject would commit the
// feedback twice. It holds an approveIntent: Reviewed is the review
// branch's commit, Commit the feedback commit.
const rejectFile = "reject.yaml"

// beginReject records a rejection whose feedback is about to land.
func (o *Orchestrator) beginReject(ri approveIntent) error {
	return o.recordIntent(rejectFile, "rejection", ri)
}

// endReject forgets the rejection in progress.
func (o *Orchestrator) endReject() error {
	return o.forgetIntent(rejectFile)
}

// recoverReject finishes or rolls back a rejection whose process was
// killed, once the caller holds the repository lock and the switch of the
// checkout was recovered (the branch is where the landing left it).
func (o *Orchestrator) recoverReject(ctx context.Context) error {
	var ri approveIntent
	if err := o.repo.ReadLocal(rejectFile, &ri); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("recover an interrupted rejection: %w", err)
	}
	landed, err := o.approvalLanded(ri)
	if err != nil {
		return fmt.Errorf("recover the interrupted rejection of %s: %w", ri.Key, err)
	}
	if landed == "" {
		o.emit(Event{Kind: Note, Message: fmt.Sprintf("rolled back the interrupted rejection of %s: no feedback landed, its review is still pending", ri.Key)})
		return o.endReject()
	}
	if _, err := o.keepRef(ctx, rejectedRefPrefix, ri.Key, ri.Reviewed, "codemachine: "+ri.Key+" rejected"); err != nil {
		return fmt.Errorf("finish the interrupted rejection of %s: %w", ri.Key, err)
	}
	if err := o.deleteRefAt(ctx, "refs/heads/"+reviewPrefix+ri.Key, ri.Reviewed); err != nil {
		return fmt.Errorf("finish the interrupted rejection of %s: %w", ri.Key, err)
	}
	o.noteBranchTip(ri.Branch)
	o.emit(Event{Kind: Note, Message: fmt.Sprintf("finished the interrupted rejection of %s: its feedback %s is on %s", ri.Key, short(landed), ri.Branch)})
	return o.endReject()
}
