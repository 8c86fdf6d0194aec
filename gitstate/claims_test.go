package gitstate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
)

// servedClones serves a bare remote (holding one commit on main) over
// smart HTTP and makes n clones of it, each with the remote as origin.
func servedClones(t *testing.T, n int) (*testenv.HTTPGit, []*Repo) {
	t.Helper()
	root := t.TempDir()
	git(t, root, "init", "-q", "--bare", "-b", "main", "remote.git")
	srv := testenv.ServeHTTPGit(t, root)
	seed, _ := newRepo(t, map[string]string{"README.md": "x\n"})
	git(t, seed, "push", "-q", srv.URL("remote.git"), "main")
	var repos []*Repo
	for i := 0; i < n; i++ {
		dir := filepath.Join(t.TempDir(), "clone")
		git(t, filepath.Dir(dir), "clone", "-q", srv.URL("remote.git"), dir)
		r, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		repos = append(repos, r)
	}
	return srv, repos
}

func TestPushClaimRaceHasOneWinner(t *testing.T) {
	ctx := context.Background()
	_, repos := servedClones(t, 3)
	for round := 0; round < 2; round++ {
		ref := ClaimRef("build/T" + string(rune('1'+round)))
		var wg sync.WaitGroup
		errs := make([]error, len(repos))
		claims := make([]Claim, len(repos))
		start := make(chan struct{})
		for i, r := range repos {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				claims[i], errs[i] = r.PushClaim(ctx, ClaimRequest{Remote: "origin", Ref: ref,
					Worker: "w" + string(rune('a'+i)), Fingerprint: "fp", Expires: time.Now().Add(time.Minute)})
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: workers %d and %d both hold %s", round, winner, i, ref)
			case err == nil:
				winner = i
			case !errors.Is(err, ErrRefMoved):
				t.Fatalf("round %d: worker %d: %v, want ErrRefMoved", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won %s: %v", round, ref, errs)
		}
		// Every clone sees the winner's claim.
		for i, r := range repos {
			w, err := r.FetchWork(ctx, "origin", "main")
			if err != nil {
				t.Fatal(err)
			}
			got := w.Claims[claims[winner].Key()]
			if got.Commit != claims[winner].Commit || got.Worker != claims[winner].Worker {
				t.Errorf("round %d: clone %d sees %+v, want %+v", round, i, got, claims[winner])
			}
		}
	}
}

func TestClaimRenewExpireTakeOverRelease(t *testing.T) {
	ctx := context.Background()
	_, repos := servedClones(t, 2)
	a, b := repos[0], repos[1]
	ref := ClaimRef("lint")
	now := time.Now()
	ca, err := a.PushClaim(ctx, ClaimRequest{Remote: "origin", Ref: ref, Worker: "a", Fingerprint: "fp1", Expires: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	// Renewing moves the lease from a's own claim.
	ca2, err := a.PushClaim(ctx, ClaimRequest{Remote: "origin", Ref: ref, Worker: "a", Fingerprint: "fp1", Expires: now.Add(2 * time.Minute), Expect: ca.Commit, Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if ca2.Commit == ca.Commit {
		t.Fatal("renewal made the same claim commit")
	}
	// b reads it, lapsed at a time after its expiry, and takes it over.
	w, err := b.FetchWork(ctx, "origin", "main")
	if err != nil {
		t.Fatal(err)
	}
	seen := w.Claims["lint"]
	if seen.Worker != "a" || seen.Fingerprint != "fp1" || !seen.Expires.Equal(ca2.Expires) || seen.Commit != ca2.Commit || seen.Branch != "main" {
		t.Fatalf("b sees %+v, want %+v", seen, ca2)
	}
	if seen.Expired(now.Add(time.Minute)) || !seen.Expired(now.Add(3*time.Minute)) {
		t.Fatal("Expired wrong")
	}
	cb, err := b.PushClaim(ctx, ClaimRequest{Remote: "origin", Ref: ref, Worker: "b", Fingerprint: "fp1", Expires: now.Add(5 * time.Minute), Expect: seen.Commit})
	if err != nil {
		t.Fatal(err)
	}
	// a's renewal of the lease it lost is refused, and so is its release.
	if _, err := a.PushClaim(ctx, ClaimRequest{Remote: "origin", Ref: ref, Worker: "a", Fingerprint: "fp1", Expires: now.Add(time.Hour), Expect: ca2.Commit}); !errors.Is(err, ErrRefMoved) {
		t.Fatalf("stale renewal: %v, want ErrRefMoved", err)
	}
	if err := a.ReleaseClaim(ctx, "origin", ca2); !errors.Is(err, ErrRefMoved) {
		t.Fatalf("stale release: %v, want ErrRefMoved", err)
	}
	var rej *PushRejectedError
	if err := a.ReleaseClaim(ctx, "origin", ca2); !errors.As(err, &rej) || rej.Refs[ref] == "" {
		t.Fatalf("stale release: %v, want a rejection of %s", err, ref)
	}
	if err := b.ReleaseClaim(ctx, "origin", cb); err != nil {
		t.Fatal(err)
	}
	w, err = a.FetchWork(ctx, "origin", "main")
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Claims) != 0 {
		t.Fatalf("claims after release: %+v", w.Claims)
	}
	if w.Tip == "" {
		t.Fatal("no tip of main fetched")
	}
}

func TestClaimRemoteDown(t *testing.T) {
	ctx := context.Background()
	srv, repos := servedClones(t, 1)
	r := repos[0]
	srv.Stop()
	_, err := r.PushClaim(ctx, ClaimRequest{Remote: "origin", Ref: ClaimRef("x"), Worker: "a", Expires: time.Now().Add(time.Minute)})
	if !IsTransientRemote(err) {
		t.Fatalf("push while down: %v, want a transient *RemoteError", err)
	}
	if _, err := r.FetchWork(ctx, "origin", "main"); !IsTransientRemote(err) {
		t.Fatalf("fetch while down: %v, want a transient *RemoteError", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PushClaim(ctx, ClaimRequest{Remote: "origin", Ref: ClaimRef("x"), Worker: "a", Expires: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.FetchWork(ctx, "nosuchremote", "main"); err == nil || IsTransientRemote(err) {
		t.Fatalf("fetch from an unknown remote: %v, want a permanent error", err)
	}
}

func TestFetchWorkFreshRemote(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	git(t, root, "init", "-q", "--bare", "-b", "main", "remote.git")
	dir, r := newRepo(t, map[string]string{"a": "a\n"})
	git(t, dir, "remote", "add", "origin", filepath.Join(root, "remote.git"))
	w, err := r.FetchWork(ctx, "origin", "main")
	if err != nil {
		t.Fatal(err)
	}
	if w.Tip != "" || len(w.Claims) != 0 || len(w.Results) != 0 || w.Integrator.Ref != "" {
		t.Fatalf("fresh remote: %+v", w)
	}
	c, err := r.PushClaim(ctx, ClaimRequest{Remote: "origin", Ref: IntegratorClaimRef, Worker: "a", Expires: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	w, err = r.FetchWork(ctx, "origin", "main")
	if err != nil {
		t.Fatal(err)
	}
	if w.Integrator.Commit != c.Commit || w.Integrator.Worker != "a" {
		t.Fatalf("integrator %+v, want %+v", w.Integrator, c)
	}
}

// A claim pushed again after its answer was lost (the same claim commit)
// counts as claimed; another commit for the same lease does not.
func TestPushClaimRetryOfLostAnswer(t *testing.T) {
	ctx := context.Background()
	_, repos := servedClones(t, 1)
	r := repos[0]
	req, err := r.MakeClaim(ctx, ClaimRequest{Remote: "origin", Ref: ClaimRef("s"), Worker: "a", Expires: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.PushClaim(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.PushClaim(ctx, req)
	if err != nil || again.Commit != first.Commit {
		t.Fatalf("retry of the same claim: %+v, %v", again, err)
	}
	req.Commit = ""
	if _, err := r.PushClaim(ctx, req); !errors.Is(err, ErrRefMoved) {
		t.Fatalf("a new claim commit over the held one: %v, want ErrRefMoved", err)
	}
}

// TestPushCASRejectedSaysWhy: a push a pre-receive hook refuses (branch
// protection) is a *PushRejectedError that carries what the hook said,
// not only git's "pre-receive hook declined", and is no lost race.
func TestPushCASRejectedSaysWhy(t *testing.T) {
	ctx := context.Background()
	srv, repos := servedClones(t, 1)
	hook := filepath.Join(srv.Root(), "remote.git", "hooks", "pre-receive")
	script := "#!/bin/sh\necho 'main is protected: open a merge request' >&2\nexit 1\n"
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := repos[0]
	tip, err := r.ResolveRev("HEAD")
	if err != nil {
		t.Fatal(err)
	}
	err = r.PushCAS(ctx, "origin", []PushRef{{Local: tip, Remote: "refs/codemachine/results/build", Expect: ""}})
	var rej *PushRejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("push: %v, want a *PushRejectedError", err)
	}
	if errors.Is(err, ErrRefMoved) {
		t.Errorf("a hook's refusal is taken for a lost race: %v", err)
	}
	if !strings.Contains(err.Error(), "main is protected: open a merge request") {
		t.Errorf("error %q: want the hook's words", err)
	}
}

// TestPushCASNoRoomIsNoRace: a ref the remote cannot create because one
// of its own is in the way (a branch named codemachine beside
// codemachine/review/...) is a refusal that says so, not a lost race that
// a worker would look at again forever.
func TestPushCASNoRoomIsNoRace(t *testing.T) {
	ctx := context.Background()
	srv, repos := servedClones(t, 1)
	r := repos[0]
	tip, err := r.ResolveRev("HEAD")
	if err != nil {
		t.Fatal(err)
	}
	git(t, filepath.Join(srv.Root(), "remote.git"), "update-ref", "refs/heads/codemachine", tip)
	err = r.PushCAS(ctx, "origin", []PushRef{{Local: tip, Remote: "refs/heads/codemachine/review/build", Expect: ""}})
	var rej *PushRejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("push: %v, want a *PushRejectedError", err)
	}
	if errors.Is(err, ErrRefMoved) {
		t.Errorf("no room on the remote is taken for a lost race: %v", err)
	}
	if !strings.Contains(err.Error(), "'refs/heads/codemachine' exists") {
		t.Errorf("error %q: want the remote's reason", err)
	}
}

// TestRemoteErrorLocalRefRace: git's "cannot lock ref" on a fetch is this
// clone's own ref being updated at once (a push updates the
// remote-tracking branch), transient and local, not the remote's failure.
func TestRemoteErrorLocalRefRace(t *testing.T) {
	err := remoteError("fetch", "origin", &GitError{Args: []string{"fetch"}, ExitCode: 1,
		Stderr: "error: cannot lock ref 'refs/remotes/origin/main': is at a84d2fa but expected 2a7116a\n"})
	var re *RemoteError
	if !errors.As(err, &re) || !re.Transient || !re.Local {
		t.Fatalf("remoteError = %#v, want a transient local *RemoteError", err)
	}
	err = remoteError("fetch", "origin", &GitError{Args: []string{"fetch"}, ExitCode: 128,
		Stderr: "fatal: unable to access 'http://127.0.0.1:1/r.git/': Failed to connect\n"})
	if !errors.As(err, &re) || !re.Transient || re.Local {
		t.Fatalf("remoteError = %#v, want a transient remote *RemoteError", err)
	}
}
