package gitstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Refs that workers share through a remote (docs/workers.md).
const (
	// ClaimsPrefix holds one claim per unit a worker is running,
	// refs/codemachine/claims/<step>[/<task>], and the integrator's
	// (IntegratorClaimRef).
	ClaimsPrefix = "refs/codemachine/claims/"
	// ResultsPrefix holds one finished unit's commit per unit,
	// refs/codemachine/results/<step>[/<task>], waiting to be landed.
	ResultsPrefix = "refs/codemachine/results/"
	// RolesPrefix holds the claims of roles rather than units.
	RolesPrefix = "refs/codemachine/roles/"
	// IntegratorClaimRef is the claim of the one worker that lands results
	// on the branch.
	IntegratorClaimRef = RolesPrefix + "integrator"
	// ReviewPrefix holds the review branches, refs/heads/codemachine/review/
	// <step>[/<task>]: an integrator keeps a review: true unit's result
	// there, as a local run keeps it, for approve or reject in any clone.
	ReviewPrefix = "refs/heads/codemachine/review/"
	// FleetPrefix holds what the workers keep on a remote beyond their
	// work in flight: it outlives the work (a fleet started later must
	// find a rewind made meanwhile, and what it held), so it stays out of
	// refs/codemachine/, which a remote whose work is done has empty. A
	// clone fetches it to refs/codemachine-fleet/remote/<remote>/...
	FleetPrefix = "refs/codemachine-fleet/"
	// HoldsPrefix holds the fleet's holds, refs/codemachine-fleet/holds/
	// <step>[/<task>]: units a rollback or reset of the branch undid, which
	// no worker runs again with the same inputs (a hold commit, MakeHold).
	HoldsPrefix = FleetPrefix + "holds/"
	// LandedPrefix holds, per branch, refs/codemachine-fleet/landed/
	// <branch>: the branch's tip as the integrator last pushed it. A
	// branch that no longer contains it was rewound by a person (a
	// rollback pushed, a force-push), which holds the units the rewind
	// undid.
	LandedPrefix = FleetPrefix + "landed/"
	// mirrorPrefix is where a remote's claims and results are fetched to:
	// refs/codemachine/remote/<remote>/{claims,results}/...
	mirrorPrefix = "refs/codemachine/remote/"
)

// The trailers of a claim commit (and, TrailerClaim, of a result commit).
const (
	TrailerWorker       = "Codemachine-Worker"
	TrailerLeaseExpires = "Codemachine-Lease-Expires"
	TrailerClaimNonce   = "Codemachine-Claim-Nonce"
	// TrailerDelivered marks a claim whose unit was delivered: its result
	// (this commit id) waits to land, and the claim is not taken over.
	TrailerDelivered = "Codemachine-Delivered"
	// TrailerClaim names, on a result commit, the claim commit under
	// which the work was done.
	TrailerClaim = "Codemachine-Claim"
	// TrailerUndone names, on a hold commit, the step commit whose undoing
	// holds the unit.
	TrailerUndone = "Codemachine-Undone"
	// TrailerBranch names the branch the claiming worker works on: the
	// claims and results of a remote are named by step and task alone,
	// so the workers of one remote work on one branch at a time.
	TrailerBranch = "Codemachine-Branch"
)

// ClaimRef is the claim ref of the unit key ("<step>" or "<step>/<task>").
func ClaimRef(key string) string { return ClaimsPrefix + key }

// ResultRef is the result ref of the unit key.
func ResultRef(key string) string { return ResultsPrefix + key }

// Claim is a worker's lease on a unit (or on the integrator's role) as a
// remote holds it: a commit with an empty tree and no parent whose
// trailers say who holds it, for which fingerprint, and until when. A new
// claim commit is made for every claim and renewal (a random nonce makes
// each one distinct), so the ref's value names one lease exactly and a
// compare-and-swap on it cannot be fooled by an old value coming back.
type Claim struct {
	Ref         string    // the claim ref
	Commit      string    // the claim commit the ref holds
	Worker      string    // who holds it
	Fingerprint string    // what the unit's fingerprint was when claimed
	Expires     time.Time // when the lease lapses unless renewed
	// Delivered is the result commit of a delivered unit: such a claim
	// stays until the integrator lands or drops the result.
	Delivered string
	// Branch is the branch its worker works on ("" in a claim made
	// before claims said so).
	Branch string
}

// Key is the unit key of a unit's claim ("" for the integrator's).
func (c Claim) Key() string {
	return strings.TrimPrefix(c.Ref, ClaimsPrefix)
}

// Expired says whether the lease has lapsed at now; a delivered claim
// never lapses.
func (c Claim) Expired(now time.Time) bool { return c.Delivered == "" && !now.Before(c.Expires) }

// ClaimRequest is one lease to push: Ref moves to a new claim commit for
// Worker and Fingerprint lasting until Expires, but only when the remote's
// Ref is at Expect ("" = it must not exist). Claiming a free unit, renewing
// one's own lease and taking over a lapsed one are all this, with
// different Expect.
type ClaimRequest struct {
	Remote      string
	Ref         string
	Worker      string
	Fingerprint string
	Expires     time.Time
	Expect      string
	Delivered   string // the result commit, for the claim that marks a delivery
	Branch      string // the branch the worker works on
	// Commit is the claim commit to push, made by MakeClaim; "" makes a
	// new one. A retry after a lost answer must push the same commit, so
	// that it can tell its own earlier push from another worker's.
	Commit string
}

// PushClaim pushes a claim as an atomic compare-and-swap on the remote.
// When the remote's ref is no longer at Expect (another worker claimed
// first, or renewed, or took the lapsed lease over) the error wraps
// ErrRefMoved; an unreachable remote is a *RemoteError. A push whose
// answer was lost but which did land (the retry finds the ref at this
// very claim) counts as claimed.
func (r *Repo) PushClaim(ctx context.Context, req ClaimRequest) (Claim, error) {
	if req.Worker == "" || req.Ref == "" {
		return Claim{}, errors.New("claim: no worker or ref given")
	}
	commit := req.Commit
	if commit == "" {
		var err error
		if commit, err = r.claimCommit(ctx, req); err != nil {
			return Claim{}, err
		}
	}
	c := Claim{Ref: req.Ref, Commit: commit, Worker: req.Worker, Fingerprint: req.Fingerprint, Expires: req.Expires.UTC(), Delivered: req.Delivered, Branch: req.Branch}
	err := r.PushCAS(ctx, req.Remote, []PushRef{{Local: commit, Remote: req.Ref, Expect: req.Expect}})
	if err == nil || !errors.Is(err, ErrRefMoved) {
		return c, err
	}
	if now, lerr := r.RemoteRef(ctx, req.Remote, req.Ref); lerr == nil && now == commit {
		return c, nil
	}
	return Claim{}, err
}

// MakeClaim writes req's claim commit (nothing moves yet) and returns req
// with it, ready for PushClaim and its retries.
func (r *Repo) MakeClaim(ctx context.Context, req ClaimRequest) (ClaimRequest, error) {
	commit, err := r.claimCommit(ctx, req)
	req.Commit = commit
	return req, err
}

// claimCommit writes the claim commit of req (nothing moves yet).
func (r *Repo) claimCommit(ctx context.Context, req ClaimRequest) (string, error) {
	tree, err := r.emptyTree(ctx)
	if err != nil {
		return "", fmt.Errorf("claim %s: %w", req.Ref, err)
	}
	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("claim %s: %w", req.Ref, err)
	}
	msg := Message{
		Subject: "claim " + strings.TrimPrefix(req.Ref, ClaimsPrefix),
		Trailers: []Trailer{
			{Key: TrailerWorker, Value: req.Worker},
			{Key: TrailerFingerprint, Value: req.Fingerprint},
			{Key: TrailerLeaseExpires, Value: req.Expires.UTC().Format(time.RFC3339Nano)},
			{Key: TrailerClaimNonce, Value: hex.EncodeToString(nonce)},
		},
	}
	if req.Delivered != "" {
		msg.Trailers = append(msg.Trailers, Trailer{Key: TrailerDelivered, Value: req.Delivered})
	}
	if req.Branch != "" {
		msg.Trailers = append(msg.Trailers, Trailer{Key: TrailerBranch, Value: req.Branch})
	}
	commit, err := r.CommitTree(ctx, CommitSpec{Tree: tree, Message: msg.String()})
	if err != nil {
		return "", fmt.Errorf("claim %s: %w", req.Ref, err)
	}
	return commit, nil
}

// ReleaseClaim deletes the remote's claim ref, only while it still holds
// c (a lease that lapsed and was taken over is left to its new holder:
// the error then wraps ErrRefMoved). Once the remote no longer has the
// ref, its local mirror (FetchWork's copy) goes too: a worker that stops
// after releasing its claims (the integrator's role) leaves no copy of
// them behind for status or the next look to find.
func (r *Repo) ReleaseClaim(ctx context.Context, remote string, c Claim) error {
	if err := r.PushCAS(ctx, remote, []PushRef{{Remote: c.Ref, Expect: c.Commit}}); err != nil {
		return err
	}
	if checkRemoteName(remote) != nil || !strings.HasPrefix(c.Ref, "refs/codemachine/") {
		return nil
	}
	mirror := mirrorPrefix + remote + "/" + strings.TrimPrefix(c.Ref, "refs/codemachine/")
	if err := r.DeleteRef(ctx, mirror, ""); err != nil {
		return fmt.Errorf("release %s: forget its copy: %w", c.Ref, err)
	}
	return nil
}

// ReadClaim reads the claim commit at commit (fetched already) as the
// claim of ref.
func (r *Repo) ReadClaim(ref, commit string) (Claim, error) {
	info, err := r.CommitInfo(commit)
	if err != nil {
		return Claim{}, fmt.Errorf("claim %s: %w", ref, err)
	}
	m := Message{Trailers: info.Trailers}
	c := Claim{Ref: ref, Commit: info.Hash, Worker: m.Get(TrailerWorker), Fingerprint: m.Get(TrailerFingerprint), Delivered: m.Get(TrailerDelivered),
		Branch: m.Get(TrailerBranch)}
	exp, err := time.Parse(time.RFC3339Nano, m.Get(TrailerLeaseExpires))
	if err != nil || c.Worker == "" {
		return Claim{}, fmt.Errorf("claim %s: commit %s is no claim (no %s or %s)", ref, short(commit), TrailerWorker, TrailerLeaseExpires)
	}
	c.Expires = exp
	return c, nil
}

// RemoteWork is what a remote holds of the workers' shared state, as one
// fetch saw it.
type RemoteWork struct {
	// Tip is the branch's commit on the remote ("" when it has none).
	Tip string
	// Claims are the units' claims by unit key; Integrator is the
	// integrator's claim (Ref "" when nobody holds it).
	Claims     map[string]Claim
	Integrator Claim
	// Results are the result commits waiting to be landed, by unit key.
	Results map[string]string
	// Reviews are the review branches' commits, by unit key.
	Reviews map[string]string
	// Bad lists claim refs whose commit is no claim (left alone).
	Bad []string
	// Holds are the fleet's holds, by unit key.
	Holds map[string]RemoteHold
	// Landed is the branch's tip as the integrator last pushed it ("" when
	// none did yet).
	Landed string
}

// RemoteHold is a hold on the remote (HoldsPrefix): its unit does not run
// again while its fingerprint is Fingerprint.
type RemoteHold struct {
	Commit      string // the hold commit the ref holds
	Fingerprint string
	Undone      string // the step commit the rewind undid
}

// MakeHold writes the hold commit of the unit key (an empty tree, no
// parent, like a claim's): held with fingerprint, after a rewind undid its
// step commit undone. Nothing moves yet.
func (r *Repo) MakeHold(ctx context.Context, key, fingerprint, undone string) (string, error) {
	tree, err := r.emptyTree(ctx)
	if err != nil {
		return "", fmt.Errorf("hold %s: %w", key, err)
	}
	msg := Message{Subject: "hold " + key, Trailers: []Trailer{
		{Key: TrailerFingerprint, Value: fingerprint},
		{Key: TrailerUndone, Value: undone},
	}}
	commit, err := r.CommitTree(ctx, CommitSpec{Tree: tree, Message: msg.String()})
	if err != nil {
		return "", fmt.Errorf("hold %s: %w", key, err)
	}
	return commit, nil
}

// FetchWork fetches, in one round trip, the branch, the claims and the
// results of remote (a configured remote's name) into the local mirror
// refs, and reads them. The branch goes to refs/remotes/<remote>/<branch>
// as a plain fetch would put it.
func (r *Repo) FetchWork(ctx context.Context, remote, branch string) (RemoteWork, error) {
	if err := checkRemoteName(remote); err != nil {
		return RemoteWork{}, err
	}
	mirror := mirrorPrefix + remote + "/"
	branchRef := "refs/remotes/" + remote + "/" + branch
	specs := []string{
		"+" + ClaimsPrefix + "*:" + mirror + "claims/*",
		"+" + ResultsPrefix + "*:" + mirror + "results/*",
		"+" + RolesPrefix + "*:" + mirror + "roles/*",
		"+" + ReviewPrefix + "*:" + mirror + "review/*",
	}
	fleet := FleetPrefix + "remote/" + remote + "/"
	specs = append(specs, "+"+HoldsPrefix+"*:"+fleet+"holds/*", "+"+LandedPrefix+"*:"+fleet+"landed/*")
	err := r.fetch(ctx, remote, append(specs, "+refs/heads/"+branch+":"+branchRef))
	if missingRemoteRef(err) {
		// The remote has no such branch yet (a fresh remote): fetch the
		// rest, and forget a branch it no longer has.
		if old, rerr := r.refHash(branchRef); rerr == nil && old != "" {
			if err := r.DeleteRef(ctx, branchRef, old); err != nil {
				return RemoteWork{}, err
			}
		}
		err = r.fetch(ctx, remote, specs)
	}
	if err != nil {
		return RemoteWork{}, remoteError("fetch", remote, err)
	}
	w, err := r.readWork(mirror, branchRef)
	if err != nil {
		return RemoteWork{}, err
	}
	return w, r.readFleet(&w, fleet, branch)
}

// fetch fetches refspecs from remote, pruning what the remote no longer
// has.
func (r *Repo) fetch(ctx context.Context, remote string, refspecs []string) error {
	args := append([]string{"fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules", "--", remote}, refspecs...)
	_, err := r.network(ctx, args...)
	return err
}

func missingRemoteRef(err error) bool {
	var ge *GitError
	return errors.As(err, &ge) && strings.Contains(ge.Stderr, "couldn't find remote ref")
}

// readWork reads the mirror refs of one remote.
func (r *Repo) readWork(mirror, branchRef string) (RemoteWork, error) {
	w := RemoteWork{Claims: map[string]Claim{}, Results: map[string]string{}, Reviews: map[string]string{}, Holds: map[string]RemoteHold{}}
	refs, err := r.RefsWithPrefix(mirror)
	if err != nil {
		return RemoteWork{}, err
	}
	for name, hash := range refs {
		rel := strings.TrimPrefix(name, mirror)
		switch {
		case rel == "roles/integrator":
			c, err := r.ReadClaim(IntegratorClaimRef, hash)
			if err != nil {
				w.Bad = append(w.Bad, IntegratorClaimRef)
				continue
			}
			w.Integrator = c
		case strings.HasPrefix(rel, "claims/"):
			key := strings.TrimPrefix(rel, "claims/")
			c, err := r.ReadClaim(ClaimRef(key), hash)
			if err != nil {
				w.Bad = append(w.Bad, ClaimRef(key))
				continue
			}
			w.Claims[key] = c
		case strings.HasPrefix(rel, "results/"):
			w.Results[strings.TrimPrefix(rel, "results/")] = hash
		case strings.HasPrefix(rel, "review/"):
			w.Reviews[strings.TrimPrefix(rel, "review/")] = hash
		}
	}
	if tip, err := r.refHash(branchRef); err == nil {
		w.Tip = tip
	}
	return w, nil
}

// ForgetFleet deletes this clone's copies of remote's fleet refs
// (FetchWork's, under refs/codemachine-fleet/remote/<remote>/): a worker
// that stops leaves none behind; the next look fetches them again.
func (r *Repo) ForgetFleet(ctx context.Context, remote string) error {
	if err := checkRemoteName(remote); err != nil {
		return err
	}
	refs, err := r.RefsWithPrefix(FleetPrefix + "remote/" + remote + "/")
	if err != nil {
		return err
	}
	for ref, hash := range refs {
		if err := r.DeleteRef(ctx, ref, hash); err != nil && !errors.Is(err, ErrRefMoved) {
			return err
		}
	}
	return nil
}

// readFleet reads into w the fleet's refs of one remote as fetched to
// fleet: its holds, and the tip last landed on branch.
func (r *Repo) readFleet(w *RemoteWork, fleet, branch string) error {
	refs, err := r.RefsWithPrefix(fleet)
	if err != nil {
		return err
	}
	for name, hash := range refs {
		rel := strings.TrimPrefix(name, fleet)
		switch {
		case rel == "landed/"+branch:
			w.Landed = hash
		case strings.HasPrefix(rel, "holds/"):
			key := strings.TrimPrefix(rel, "holds/")
			info, err := r.CommitInfo(hash)
			m := Message{Trailers: info.Trailers}
			if err != nil || m.Get(TrailerFingerprint) == "" {
				w.Bad = append(w.Bad, HoldsPrefix+key)
				continue
			}
			w.Holds[key] = RemoteHold{Commit: hash, Fingerprint: m.Get(TrailerFingerprint), Undone: m.Get(TrailerUndone)}
		}
	}
	return nil
}

// checkRemoteName refuses what cannot be a configured remote's name: the
// mirror refs are named after it.
func checkRemoteName(remote string) error {
	if remote == "" || strings.ContainsAny(remote, "/:\\ \t~^?*[") || strings.HasPrefix(remote, ".") || strings.Contains(remote, "..") {
		return fmt.Errorf("remote %q: give the name of a configured remote (git remote add NAME URL)", remote)
	}
	return nil
}

// FollowBranch moves branch from `from` to `to` (the remote's tip, which a
// worker's clone follows), its checkout with it the way a landing moves it:
// local changes are kept, and a file with local changes that the move
// would overwrite stops it (nothing changes). When the branch is no longer
// at from the error wraps ErrRefMoved.
func (r *Repo) FollowBranch(ctx context.Context, branch, from, to string) error {
	err := r.advance(ctx, "refs/heads/"+branch, from, to, "codemachine: follow the remote", true)
	var sc *switchConflict
	if errors.As(err, &sc) {
		return &DirtyError{Paths: sc.paths}
	}
	if err != nil {
		return fmt.Errorf("follow the remote on %s: %w", branch, err)
	}
	return nil
}

// SetRef points ref at commit whatever it held (a scratch ref of
// codemachine's own, such as the integrator's branch).
func (r *Repo) SetRef(ctx context.Context, ref, commit string) error {
	_, err := r.git(ctx, "update-ref", "-m", "codemachine", ref, commit)
	return refError(ref, err)
}
