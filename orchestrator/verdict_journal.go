package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/codemachine/codemachine/gitstate"
)

// verdictFile is a reviewer agent's verdict waiting to be applied, under
// LocalDir: written before the unit's commit goes to its review branch,
// removed once the verdict was applied (approved, rejected, or left to a
// person with the reviewer's word in the commit's message). A run killed
// in between leaves the commit on its review branch with no verdict,
// where it would wait for a person although the step has a reviewer
// agent: the next command releases that review (recoverVerdict), so that
// the unit runs again and its reviewer reviews it, as in a run that was
// not killed.
const verdictFile = "verdict.yaml"

// verdictIntent is what recoverVerdict needs.
type verdictIntent struct {
	PID int    `yaml:"pid"`
	Key string `yaml:"key"`
	// Commit is the unit's commit the review branch is about to hold.
	Commit string `yaml:"commit"`
}

// beginVerdict records that key's commit goes to its review branch for
// its reviewer agent's verdict.
func (o *Orchestrator) beginVerdict(key, commit string) error {
	if err := o.repo.WriteLocal(verdictFile, verdictIntent{PID: os.Getpid(), Key: key, Commit: commit}); err != nil {
		return fmt.Errorf("record the review of %s: %w", key, err)
	}
	return nil
}

// endVerdict forgets the verdict in progress.
func (o *Orchestrator) endVerdict() error {
	return o.forgetIntent(verdictFile)
}

// recoverVerdict releases a review whose reviewer agent's verdict was never
// applied (the run was killed after the commit went to its review branch),
// once the caller holds the repository lock and an interrupted approval or
// rejection was finished or rolled back: the review branch still holds the
// commit the journal names. The commit is kept under
// refs/codemachine/superseded/ and the unit is due again.
func (o *Orchestrator) recoverVerdict(ctx context.Context) error {
	var vi verdictIntent
	if err := o.repo.ReadLocal(verdictFile, &vi); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("recover an interrupted review: %w", err)
	}
	cur, err := o.repo.ResolveRev("refs/heads/" + reviewPrefix + vi.Key)
	if err == nil && vi.Commit != "" && cur == vi.Commit {
		kept, err := o.releaseReview(ctx, vi.Key, cur)
		if err != nil {
			return fmt.Errorf("release the unreviewed %s: %w", vi.Key, err)
		}
		o.emit(Event{Kind: Note, Message: fmt.Sprintf("the reviewer agent's verdict on %s was lost when its run was killed: its review is released (kept on %s) and %s runs again", vi.Key, kept, vi.Key)})
	} else if err != nil && !errors.Is(err, gitstate.ErrUnknownRev) {
		return fmt.Errorf("recover the interrupted review of %s: %w", vi.Key, err)
	}
	return o.endVerdict()
}
