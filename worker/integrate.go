package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/orchestrator"
)

// integrateBranch is the local scratch branch the integrator lands results
// on before it pushes them: the worker's own branch moves only to what the
// remote has.
const integrateBranch = "codemachine/integrate"

// integrator takes the integrator's role when nobody holds it or its
// holder's lease lapsed, and renews it while this worker holds it. It
// reports whether this worker is the integrator now.
func (w *worker) integrator(ctx context.Context, view gitstate.RemoteWork) bool {
	w.mu.Lock()
	mine := w.integ
	w.mu.Unlock()
	cur := view.Integrator
	now := time.Now()
	expect := cur.Commit
	switch {
	case cur.Ref != "" && w.ownClaim(cur.Commit) || (mine.Ref != "" && cur.Ref == ""):
		// Still this worker's as far as it knows: renewed once a third
		// of the lease has gone, from the claim the remote holds. The
		// look is this tick's, made after every renewal it pushed (they
		// are all pushed here, one tick at a time), so that is the one it
		// pushed last, or one it pushed without hearing back (a push cut
		// short as the worker stops, whose update the remote made).
		if mine.Ref != "" && now.Before(mine.Expires.Add(-w.lease*2/3)) {
			return true
		}
	case cur.Ref != "" && !cur.Expired(now):
		if mine.Ref != "" {
			w.note("another worker (%s) is the integrator now", cur.Worker)
			w.setInteg(gitstate.Claim{})
		}
		return false
	}
	req, err := w.makeClaim(ctx, gitstate.ClaimRequest{Remote: w.opts.Remote, Branch: w.branch, Ref: gitstate.IntegratorClaimRef,
		Worker: w.opts.ID, Expires: now.Add(w.lease), Expect: expect})
	var c gitstate.Claim
	if err == nil {
		w.trips.role.Add(1)
		c, err = w.repo.PushClaim(ctx, req)
	}
	if err != nil {
		if ctx.Err() != nil {
			// The look was cut short (the worker stops): the role is
			// still what it was, for the last landing (lastLanding)
			// and the release.
			return false
		}
		if !errors.Is(err, gitstate.ErrRefMoved) && !gitstate.IsTransientRemote(err) {
			w.note("integrator: %v", err)
		}
		w.setInteg(gitstate.Claim{})
		return false
	}
	if mine.Ref == "" {
		w.note("integrator: this worker lands the results")
	}
	w.setInteg(c)
	return true
}

// ownClaim says whether this process made the claim commit (makeClaim).
func (w *worker) ownClaim(commit string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.own[commit]
}

func (w *worker) setInteg(c gitstate.Claim) {
	w.mu.Lock()
	w.integ = c
	w.mu.Unlock()
}

// integrate lands the waiting results in plan order on the scratch branch
// made from the remote's tip, exactly as a run lands its own units, and
// pushes the branch, the landed results' removal and any conflict
// branches in one atomic push whose lease is the tip it started from: if
// another push moved the branch meanwhile, nothing happened and the next
// tick starts over. A result waits while a unit before it in plan order is
// claimed (it would land first in a local run); a result whose unit is no
// longer due with its fingerprint (it landed already, or its inputs
// changed) is dropped, never landed twice. It reports whether it pushed.
func (w *worker) integrate(ctx context.Context, view gitstate.RemoteWork) (bool, error) {
	view = w.ownBranch(view)
	if rewound, err := w.rewound(ctx, view); rewound || err != nil {
		return rewound, err
	}
	if view.Landed == "" {
		if err := w.recordLanded(ctx, view); err != nil {
			return false, err
		}
	}
	if len(view.Results) == 0 && !anyStale(view.Claims) && len(view.Reviews) == 0 && len(view.Holds) == 0 {
		return false, nil
	}
	due, err := w.o.DueUnits(view.Tip, w.opts.Run.Overrides)
	if err != nil {
		return false, err
	}
	refs, err := w.settledReviews(ctx, view)
	if err != nil {
		return false, err
	}
	fps, err := w.o.DueFingerprints(view.Tip, w.opts.Run.Overrides)
	if err != nil {
		return false, err
	}
	refs = append(refs, liftedHolds(view, fps)...)
	if err := w.repo.SetRef(ctx, "refs/heads/"+integrateBranch, view.Tip); err != nil {
		return false, err
	}
	refs = append(refs, w.stale(view, due)...)
	l, err := w.landDue(ctx, view, due, fps)
	if err != nil {
		return false, err
	}
	refs = append(refs, l.refs...)
	if len(refs) == 0 {
		return false, nil
	}
	if l.landed {
		tip, err := w.repo.ResolveRev("refs/heads/" + integrateBranch)
		if err != nil {
			return false, err
		}
		refs = append(refs, gitstate.PushRef{Local: tip, Remote: "refs/heads/" + w.branch, Expect: view.Tip},
			gitstate.PushRef{Local: tip, Remote: gitstate.LandedPrefix + w.branch, Expect: view.Landed})
	}
	err = w.retry(ctx, "push the landed results", func() error {
		w.trips.land.Add(1)
		return w.repo.PushCAS(ctx, w.opts.Remote, refs)
	})
	if errors.Is(err, gitstate.ErrRefMoved) {
		return false, nil // another integrator (a lapsed lease) or a user's push: look again
	}
	if err != nil {
		return false, err
	}
	for _, e := range l.events {
		w.o.Emit(e)
	}
	for _, n := range l.notes {
		w.note("%s", n)
	}
	return true, nil
}

// stale are the pushes that remove what is left of units not due (due,
// at view's tip) any more: their results are late copies (dropped), and
// lapsed claims of them (a worker cut off after another finished the
// unit) and delivery markers whose result is gone are nobody's.
func (w *worker) stale(view gitstate.RemoteWork, due []string) []gitstate.PushRef {
	dueSet := map[string]bool{}
	for _, k := range due {
		dueSet[k] = true
	}
	var refs []gitstate.PushRef
	for key, commit := range view.Results {
		if !dueSet[key] {
			refs = append(refs, w.settle(view, key, commit)...)
			w.note("%s: dropped a result for a unit that is not due any more (landed before, or changed)", key)
		}
	}
	now := time.Now()
	for key, c := range view.Claims {
		_, hasResult := view.Results[key]
		if (!dueSet[key] && c.Expired(now)) || (c.Delivered != "" && !hasResult) {
			refs = append(refs, gitstate.PushRef{Remote: c.Ref, Expect: c.Commit})
		}
	}
	return refs
}

// rewound publishes the holds of a person's rewind of the remote's branch
// (a rollback pushed, a force-push): when the branch no longer contains
// the tip the integrators last pushed (refs/codemachine-fleet/landed/<branch>),
// the units whose step commits the rewind took off and that are due again
// are held on the remote (refs/codemachine-fleet/holds/<key>), for every worker
// (mirrorHolds), in one atomic push that records the new tip as the one
// to compare with. It reports whether it pushed; nothing lands in that
// look: the next one lands with the holds in place.
func (w *worker) rewound(ctx context.Context, view gitstate.RemoteWork) (bool, error) {
	if pending, err := w.rewindPending(view); err != nil || !pending {
		return false, err
	}
	holds, keys, err := w.o.UndoneHolds(ctx, view.Landed, view.Tip, w.opts.Run.Overrides)
	if err != nil {
		return false, err
	}
	refs := []gitstate.PushRef{{Local: view.Tip, Remote: gitstate.LandedPrefix + w.branch, Expect: view.Landed}}
	for _, key := range keys {
		h := holds[key]
		if cur, ok := view.Holds[key]; ok && cur.Fingerprint == h.Fingerprint {
			continue
		}
		commit, err := w.repo.MakeHold(ctx, key, h.Fingerprint, h.Commit)
		if err != nil {
			return false, err
		}
		expect := ""
		if cur, ok := view.Holds[key]; ok {
			expect = cur.Commit
		}
		refs = append(refs, gitstate.PushRef{Local: commit, Remote: gitstate.HoldsPrefix + key, Expect: expect})
	}
	err = w.retry(ctx, "push the holds of a rewind", func() error {
		w.trips.land.Add(1)
		return w.repo.PushCAS(ctx, w.opts.Remote, refs)
	})
	if errors.Is(err, gitstate.ErrRefMoved) {
		return false, nil // another integrator did: look again
	}
	if err != nil {
		return false, err
	}
	if len(keys) > 0 {
		w.note("%s was rewound on %s: held there for every worker: %s", w.branch, w.opts.Remote, strings.Join(keys, ", "))
	}
	return true, nil
}

// recordLanded records the remote's tip as the one a rewind is found
// against (refs/codemachine-fleet/landed/<branch>) on a remote that has
// none: its last integration predates the record, or it never had one.
// Recorded only by the next landing, a rollback pushed before that would
// be missed and its units run again. A lost race (another integrator
// recorded it) is no error.
func (w *worker) recordLanded(ctx context.Context, view gitstate.RemoteWork) error {
	refs := []gitstate.PushRef{{Local: view.Tip, Remote: gitstate.LandedPrefix + w.branch, Expect: ""}}
	err := w.retry(ctx, "record the landed tip", func() error {
		w.trips.land.Add(1)
		return w.repo.PushCAS(ctx, w.opts.Remote, refs)
	})
	if errors.Is(err, gitstate.ErrRefMoved) {
		return nil
	}
	return err
}

// liftedHolds are the pushes that remove the remote's holds whose unit is
// not due with the held fingerprint (fps, by key) any more (it ran and
// landed again, or its inputs changed): nothing is held by them.
func liftedHolds(view gitstate.RemoteWork, fps map[string]string) []gitstate.PushRef {
	var refs []gitstate.PushRef
	for key, h := range view.Holds {
		if fps[key] != h.Fingerprint {
			refs = append(refs, gitstate.PushRef{Remote: gitstate.HoldsPrefix + key, Expect: h.Commit})
		}
	}
	return refs
}

// baseGone says whether the result commit was made on a commit the
// branch at tip no longer has.
func (w *worker) baseGone(tip, commit string) (bool, error) {
	info, err := w.repo.CommitInfo(commit)
	if err != nil {
		return false, err
	}
	if len(info.Parents) != 1 {
		return false, nil // LandResult says what is wrong with it
	}
	kept, err := w.repo.IsAncestor(info.Parents[0], tip)
	return !kept, err
}

// ownBranch is view without the claims made by workers of another branch
// and the results they delivered: the integrator neither lands nor drops
// another branch's work (see otherBranch).
func (w *worker) ownBranch(view gitstate.RemoteWork) gitstate.RemoteWork {
	var foreign []string
	for key, c := range view.Claims {
		if c.Branch != "" && c.Branch != w.branch {
			foreign = append(foreign, key)
		}
	}
	if len(foreign) == 0 {
		return view
	}
	view.Claims, view.Results = maps.Clone(view.Claims), maps.Clone(view.Results)
	for _, key := range foreign {
		delete(view.Claims, key)
		delete(view.Results, key)
	}
	return view
}

// anyStale says whether one of claims has lapsed or marks a delivery.
func anyStale(claims map[string]gitstate.Claim) bool {
	now := time.Now()
	for _, c := range claims {
		if c.Expired(now) || c.Delivered != "" {
			return true
		}
	}
	return false
}

// settle removes a result that is landed or dropped, and the delivery
// marker beside it.
func (w *worker) settle(view gitstate.RemoteWork, key, commit string) []gitstate.PushRef {
	refs := []gitstate.PushRef{{Remote: gitstate.ResultRef(key), Expect: commit}}
	if c, ok := view.Claims[key]; ok && c.Delivered != "" {
		refs = append(refs, gitstate.PushRef{Remote: c.Ref, Expect: c.Commit})
	}
	return refs
}

// settledReviews removes the review branches on the remote that a
// decision settled: one whose unit is not due at the tip any more was
// approved (it landed); one the branch rejected since its base (a commit
// with Codemachine-Rejected: <key>; its unit is due again with the
// feedback) is kept under refs/codemachine/rejected/<key>, as reject
// keeps it; one whose unit is due with another fingerprint (its inputs
// changed) under refs/codemachine/superseded/<key>.
func (w *worker) settledReviews(ctx context.Context, view gitstate.RemoteWork) ([]gitstate.PushRef, error) {
	if len(view.Reviews) == 0 {
		return nil, nil
	}
	fps, err := w.o.DueFingerprints(view.Tip, w.opts.Run.Overrides)
	if err != nil {
		return nil, err
	}
	var refs []gitstate.PushRef
	for key, commit := range view.Reviews {
		keep, err := w.reviewSettled(ctx, view.Tip, key, commit, fps)
		if err != nil {
			return nil, err
		}
		switch keep {
		case "waits":
			continue
		case "":
		default:
			refs = append(refs, gitstate.PushRef{Local: commit, Remote: keep + key, Expect: "*"})
		}
		refs = append(refs, gitstate.PushRef{Remote: gitstate.ReviewPrefix + key, Expect: commit})
	}
	return refs, nil
}

// reviewSettled says what became of the review of key (commit) at tip:
// "waits" for a decision still, "" approved, or the ref prefix its work is
// kept under (rejected, superseded).
func (w *worker) reviewSettled(ctx context.Context, tip, key, commit string, fps map[string]string) (string, error) {
	due, ok := fps[key]
	if !ok {
		return "", nil
	}
	info, err := w.repo.CommitInfo(commit)
	if err != nil {
		return "", err
	}
	if (gitstate.Message{Trailers: info.Trailers}).Get(gitstate.TrailerFingerprint) != due {
		return supersededPrefix, nil
	}
	if len(info.Parents) != 1 {
		return "waits", nil
	}
	since, err := w.repo.CommitsBetween(ctx, info.Parents[0], tip, 0)
	if err != nil {
		return "", err
	}
	for _, c := range since {
		if (gitstate.Message{Trailers: c.Trailers}).Get(trailerRejected) == key {
			return rejectedPrefix, nil
		}
	}
	return "waits", nil
}

// Where the work of a settled review is kept on the remote, as a local
// run keeps it.
const (
	supersededPrefix = "refs/codemachine/superseded/"
	rejectedPrefix   = "refs/codemachine/rejected/"
	trailerRejected  = "Codemachine-Rejected"
)

// landing is what landDue did on the scratch branch: the refs to push
// with it, whether a result landed, and what to tell the user once the
// push went through (not before: until then nothing landed where it
// lands, and a push that did not go through is done again from scratch).
type landing struct {
	refs   []gitstate.PushRef
	landed bool
	events []orchestrator.Event
	notes  []string
}

// landDue lands the waiting results of the due units in plan order on the
// scratch branch, and returns the refs to push with them and whether any
// landed. A result waits while a unit before it is claimed, or is not
// claimed yet but awaited: a worker will claim it (workers spread their
// first picks, and a unit passed over is claimed as soon as a slot
// frees). A unit that no worker will run here (it failed here, waits for
// a review or for a local run) holds nothing up.
func (w *worker) landDue(ctx context.Context, view gitstate.RemoteWork, due []string, fps map[string]string) (*landing, error) {
	l := &landing{}
	var awaited map[string]bool
	after, err := w.o.AfterDue(view.Tip, w.opts.Run.Overrides)
	if err != nil {
		return nil, err
	}
	for _, key := range due {
		commit, ok := view.Results[key]
		if !ok {
			if _, claimed := view.Claims[key]; claimed {
				break // plan order: what comes after waits for it
			}
			if _, review := view.Reviews[key]; review {
				continue
			}
			if awaited == nil {
				var err error
				if awaited, err = w.o.Awaited(view.Tip, w.opts.Run.Overrides); err != nil {
					return nil, err
				}
			}
			if awaited[key] {
				break
			}
			continue
		}
		if h, held := view.Holds[key]; held && fps[key] == h.Fingerprint {
			// It ran before its unit was held (a claim that raced a
			// rewind): the person undid that work; it does not come
			// back by itself.
			l.refs = append(l.refs, w.settle(view, key, commit)...)
			l.notes = append(l.notes, key+": dropped a result of a unit held after a rollback or reset")
			continue
		}
		if gone, err := w.baseGone(view.Tip, commit); err != nil {
			return nil, err
		} else if gone {
			// Made on work a rollback or reset took off the branch: it
			// cannot be rebased onto the tip (it would land as a
			// conflict branch), and the work it was made on is undone.
			// Its unit runs again from the tip.
			l.refs = append(l.refs, w.settle(view, key, commit)...)
			l.notes = append(l.notes, key+": dropped a result made on work a rollback or reset took off "+w.branch+" (it runs again from the tip)")
			continue
		}
		if deps := after[key]; len(deps) > 0 {
			// A task it comes after was unchecked since it ran (a
			// normal push of the plan): it was made on work being
			// redone, as one made on work a rewind took off. Its unit
			// runs again once that task landed again, as a run starts
			// it only then.
			l.refs = append(l.refs, w.settle(view, key, commit)...)
			l.notes = append(l.notes, fmt.Sprintf("%s: dropped a result made before %s was unchecked (it runs again once that landed again)", key, strings.Join(deps, ", ")))
			continue
		}
		res, err := w.o.LandResult(ctx, integrateBranch, key, commit, w.opts.Run.Overrides)
		if err != nil {
			return nil, err
		}
		l.refs = append(l.refs, w.settle(view, key, commit)...)
		l.add(view, key, commit, res)
	}
	return l, nil
}

// add records what LandResult did with the result of key (commit).
func (l *landing) add(view gitstate.RemoteWork, key, commit string, res *orchestrator.LandedResult) {
	switch res.Outcome {
	case orchestrator.ResultLanded:
		l.landed = true
		l.events = append(l.events, res.Event)
	case orchestrator.ResultConflict:
		l.refs = append(l.refs, gitstate.PushRef{Local: "refs/heads/" + res.Ref, Remote: "refs/heads/" + res.Ref, Expect: "*"})
		l.events = append(l.events, res.Event)
	case orchestrator.ResultStale:
		l.notes = append(l.notes, key+": dropped a result that is not due any more with its fingerprint")
	case orchestrator.ResultReview:
		if _, waits := view.Reviews[key]; waits {
			l.notes = append(l.notes, key+": dropped a second result: one waits for review already")
			break
		}
		l.refs = append(l.refs, gitstate.PushRef{Local: commit, Remote: gitstate.ReviewPrefix + key, Expect: ""})
		l.events = append(l.events, res.Event)
		l.notes = append(l.notes, fmt.Sprintf("%s: kept for review on %s (codemachine approve %s | reject %s -m WHY, in any clone after a fetch)", key, res.Ref, key, key))
	}
}
