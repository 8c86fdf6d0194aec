package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// skip records a step whose when: is false as skipped: one commit on the
// branch that changes only state.yaml (the step's record, skipped: true,
// with the fingerprint it has now), landed like any step commit, so the
// record goes back with the code on a reset. Nothing else runs meanwhile
// (a plain step runs alone).
func (s *scheduler) skip(ctx context.Context, u *unit) {
	o, snap := s.o, s.snap
	s.attempted[u.key()] = u.fingerprint()
	rec := gitstate.RunRecord{Fingerprint: u.fingerprint(), FinishedAt: o.cfg.Now().UTC(), Engine: u.settings.engine,
		Model: u.settings.model, Skipped: true}
	write := func(ctx context.Context, base string, state *gitstate.State) (string, error) {
		h, err := o.repo.HashObject(ctx, o.marshalState(applyRecord(state, &unit{step: u.step, settings: u.settings}, rec, "")))
		if err != nil {
			return "", err
		}
		return o.repo.OverlayTree(ctx, base, map[string]gitstate.Blob{workflow.StateFile: {Hash: h, Mode: "100644"}})
	}
	tree, err := write(ctx, snap.commit, snap.state)
	if err != nil {
		s.stop(fmt.Errorf("skip %s: %w", u.key(), err))
		return
	}
	why := "when: " + u.step.When.Source + " is false"
	msg := gitstate.Message{Subject: "codemachine(" + u.step.ID + "): skipped", Body: why,
		Trailers: []gitstate.Trailer{{Key: gitstate.TrailerStep, Value: u.step.ID}, {Key: gitstate.TrailerFingerprint, Value: u.fingerprint()},
			{Key: gitstate.TrailerRun, Value: s.rs.id}}}
	commit, err := o.repo.CommitTree(ctx, gitstate.CommitSpec{Tree: tree, Parents: []string{snap.commit}, Message: msg.String()})
	if err != nil {
		s.stop(fmt.Errorf("skip %s: %w", u.key(), err))
		return
	}
	if r := s.rs.opts.Remote; r != nil {
		err := r.Deliver(ctx, Delivery{Key: u.key(), Fingerprint: u.fingerprint(), Base: snap.commit, Commit: commit})
		if errors.Is(err, ErrClaimLost) {
			o.emit(Event{Kind: Note, Step: u.step.ID, Message: err.Error()})
			return
		}
		if err != nil {
			s.stop(fmt.Errorf("deliver %s: %w", u.key(), err))
			return
		}
		e := Event{Kind: StepDelivered, Step: u.step.ID, Commit: commit, Message: why}
		s.rs.recordDelivered(e)
		o.emit(e)
		return
	}
	res, err := o.repo.Land(ctx, s.rs.branch, snap.commit, commit, gitstate.LandOptions{
		ConflictBranch: "codemachine/conflict/" + u.key(),
		Overlay: func(tip, merged string) (string, error) {
			tipState, err := o.loadState(tip)
			if err != nil {
				return "", err
			}
			return write(ctx, merged, tipState)
		},
		OverlayPaths: []string{workflow.StateFile},
	})
	if err != nil {
		s.stop(fmt.Errorf("skip %s: %w", u.key(), err))
		return
	}
	e := Event{Kind: StepSkipped, Step: u.step.ID, Commit: res.Commit, Message: why}
	s.rs.recordSkipped(e)
	o.emit(e)
}
