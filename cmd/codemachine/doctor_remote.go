package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/orchestrator"
)

// remoteCheck is the shared remote workers use (codemachine worker): is
// it configured and reachable, does it have the branch, and who holds
// which claim there now.
type remoteCheck struct {
	Name      string      `json:"name"`
	URL       string      `json:"url,omitempty"`
	Reachable bool        `json:"reachable"`
	Error     string      `json:"error,omitempty"`
	Branch    string      `json:"branch,omitempty"`
	Tip       string      `json:"tip,omitempty"` // the branch's commit there; "" when it lacks the branch
	Ahead     bool        `json:"local_ahead,omitempty"`
	Claims    []claimInfo `json:"claims"`
	Results   []string    `json:"results"`
	Integrate *claimInfo  `json:"integrator,omitempty"`
}

type claimInfo struct {
	Key     string    `json:"key,omitempty"` // the unit claimed; none for the integrator's role
	Worker  string    `json:"worker"`
	Expires time.Time `json:"expires"`
	Lapsed  bool      `json:"lapsed"`
	// Branch is the branch its worker works on, when the claim says.
	Branch string `json:"branch,omitempty"`
	// Delivered: the unit's result waits to land.
	Delivered bool `json:"delivered,omitempty"`
}

// remoteTimeout bounds doctor's look at the remote.
const remoteTimeout = 30 * time.Second

// checkRemote looks at the remote named name (or the branch's remote) the
// way a worker does: one fetch of the branch, the claims and the results.
func checkRemote(ctx context.Context, repo *gitstate.Repo, branch, name string) *remoteCheck {
	if name == "" {
		name, _ = repo.BranchRemote(ctx, branch)
		if name == "" {
			return nil
		}
	}
	rc := &remoteCheck{Name: name, Branch: branch, Claims: []claimInfo{}, Results: []string{}}
	url := repo.RemoteURL(ctx, name)
	if url == "" {
		rc.Error = fmt.Sprintf("no remote %q is configured (git remote add %s URL)", name, name)
		return rc
	}
	// Shown without the password or token a URL may carry: doctor's
	// and status's output ends up in CI logs and bug reports.
	rc.URL = gitstate.DisplayURL(url)
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	w, err := repo.FetchWork(ctx, name, branch)
	if err != nil {
		rc.Error = err.Error()
		return rc
	}
	rc.Reachable, rc.Tip = true, w.Tip
	if head, err := repo.Head(); err == nil && w.Tip != "" && head.Commit != w.Tip {
		if behind, err := repo.IsAncestor(head.Commit, w.Tip); err == nil && !behind {
			rc.Ahead = true
		}
	}
	now := time.Now()
	for key, c := range w.Claims {
		rc.Claims = append(rc.Claims, claimInfo{Key: key, Worker: c.Worker, Expires: c.Expires, Lapsed: c.Expired(now), Delivered: c.Delivered != "", Branch: c.Branch})
	}
	sort.Slice(rc.Claims, func(i, j int) bool { return rc.Claims[i].Key < rc.Claims[j].Key })
	for key := range w.Results {
		rc.Results = append(rc.Results, key)
	}
	sort.Strings(rc.Results)
	if c := w.Integrator; c.Ref != "" {
		rc.Integrate = &claimInfo{Worker: c.Worker, Expires: c.Expires, Lapsed: c.Expired(now), Branch: c.Branch}
	}
	return rc
}

// printRemoteCheck says what checkRemote found.
func printRemoteCheck(out *output, rc *remoteCheck) {
	if rc == nil {
		out.printf("remote: none (codemachine worker needs one: git remote add origin URL)\n")
		return
	}
	if !rc.Reachable {
		out.printf("remote %s: %s\n", rc.Name, out.paint(red, rc.Error))
		return
	}
	switch {
	case rc.Tip == "":
		out.printf("remote %s: %s  %s\n", rc.Name, rc.URL, out.paint(yellow, "has no branch "+rc.Branch+" (git push "+rc.Name+" "+rc.Branch+")"))
	case rc.Ahead:
		out.printf("remote %s: %s  %s\n", rc.Name, rc.URL, out.paint(yellow, rc.Branch+" has commits the remote lacks: a worker here would stop"))
	default:
		out.printf("remote %s: %s  %s at %s\n", rc.Name, rc.URL, rc.Branch, shortHash(rc.Tip))
	}
	lease := func(c claimInfo) string {
		if c.Lapsed {
			return out.paint(yellow, "lapsed "+orchestrator.FormatDuration(time.Since(c.Expires))+" ago")
		}
		return "lease " + orchestrator.FormatDuration(time.Until(c.Expires)) + " left"
	}
	if rc.Integrate != nil {
		other := ""
		if b := rc.Integrate.Branch; b != "" && b != rc.Branch && !rc.Integrate.Lapsed {
			// A worker started here would stop (one branch at a time).
			other = out.paint(yellow, "  works on branch "+b+": a worker started on "+rc.Branch+" stops (one branch at a time)")
		}
		out.printf("  integrator: %s (%s)%s\n", rc.Integrate.Worker, lease(*rc.Integrate), other)
	}
	for _, c := range rc.Claims {
		switch {
		case c.Delivered:
		case c.Lapsed:
			// Its worker stopped renewing it (killed, or cut off): it runs
			// nowhere we know of, and the next worker takes it over.
			out.printf("  lapsed:  %-20s %s (%s; the next worker takes it over)\n", c.Key, c.Worker, lease(c))
		default:
			out.printf("  running: %-20s %s (%s)\n", c.Key, c.Worker, lease(c))
		}
	}
	if len(rc.Results) > 0 {
		out.printf("  waiting to land: %d result(s)\n", len(rc.Results))
	}
	if rc.Integrate == nil && len(rc.Claims) == 0 && len(rc.Results) == 0 {
		out.printf("  workers: none at work\n")
	}
}
