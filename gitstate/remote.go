package gitstate

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
)

// PushRef is one branch to push: the local ref, the remote ref it goes
// to, and (for a safe force) the commit the remote ref must be at, ""
// when it must not exist, or "*" when it may be anything.
type PushRef struct {
	Local, Remote string
	Expect        string
}

// Push pushes refs to remote (a configured remote's name, or a URL) in one
// git push, each refspec forced but only over the value it expects
// (--force-with-lease), with push options for the receiving side (forges
// read some: a merge request's title and description). Credentials are
// git's own (credential helpers, SSH agent); it never prompts.
func (r *Repo) Push(ctx context.Context, remote string, refs []PushRef, pushOptions []string) error {
	if len(refs) == 0 {
		return nil
	}
	args := []string{"push", "--porcelain"}
	for _, o := range pushOptions {
		args = append(args, "--push-option="+o)
	}
	for _, ref := range refs {
		if ref.Expect != "*" {
			args = append(args, "--force-with-lease="+ref.Remote+":"+ref.Expect)
		}
	}
	args = append(args, "--", remote)
	for _, ref := range refs {
		args = append(args, leasedRefspec(ref))
	}
	if _, err := r.git(ctx, args...); err != nil {
		return fmt.Errorf("push to %s: %w", remote, err)
	}
	return nil
}

// BranchRemote is the remote branch's upstream is on (branch.<name>.remote),
// else "origin" when that remote exists, else "".
func (r *Repo) BranchRemote(ctx context.Context, branch string) (string, error) {
	out, err := r.read(ctx, "config", "--get", "branch."+branch+".remote")
	if err == nil && strings.TrimSpace(out) != "" && strings.TrimSpace(out) != "." {
		return strings.TrimSpace(out), nil
	}
	remotes, err := r.read(ctx, "remote")
	if err != nil {
		return "", err
	}
	for _, name := range strings.Fields(remotes) {
		if name == "origin" {
			return name, nil
		}
	}
	return "", nil
}

// RemoteRef is the commit a ref has on remote (git ls-remote), "" when the
// remote has no such ref.
func (r *Repo) RemoteRef(ctx context.Context, remote, ref string) (string, error) {
	out, err := r.read(ctx, "ls-remote", "--", remote, ref)
	if err != nil {
		return "", fmt.Errorf("ls-remote %s: %w", remote, err)
	}
	for _, line := range strings.Split(out, "\n") {
		if hash, name, ok := strings.Cut(line, "\t"); ok && name == ref {
			return hash, nil
		}
	}
	return "", nil
}

// DiffStat is git's diffstat of the change from a to b.
func (r *Repo) DiffStat(ctx context.Context, a, b string) (string, error) {
	return r.read(ctx, "diff", "--stat", "--no-color", "--no-renames", a, b)
}

// DiffPatch is git's patch of the change from a to b (no colour, no
// external diff program), leaving out the paths in exclude.
func (r *Repo) DiffPatch(ctx context.Context, a, b string, exclude ...string) (string, error) {
	args := []string{"diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", a, b, "--", "."}
	for _, p := range exclude {
		args = append(args, ":(exclude,literal)"+p)
	}
	out, err := r.read(ctx, args...)
	if err != nil {
		return "", fmt.Errorf("diff %s %s: %w", short(a), short(b), err)
	}
	return out, nil
}

// CommitterName is the name git records as the committer of a commit
// made now ("" when git has no identity to record): who a person's review
// names. It is git's own resolution (git var GIT_COMMITTER_IDENT):
// GIT_COMMITTER_NAME, then committer.name and user.name, as the commit
// that records the review gets, rather than user.name alone, which named
// someone else when the environment set the committer.
func (r *Repo) CommitterName(ctx context.Context) string {
	out, err := r.read(ctx, "var", "GIT_COMMITTER_IDENT")
	if err != nil {
		return ""
	}
	// "Name <email> 1700000000 +0000"; a name holds no "<" (git strips
	// angle brackets from it).
	name, _, ok := strings.Cut(strings.TrimSpace(out), " <")
	if !ok {
		return ""
	}
	return strings.TrimSpace(name)
}

// DisplayURL is url as it may be shown (printed, logged, put in JSON):
// without the user information of a URL with a scheme
// ("https://user:token@host/x.git" is "https://host/x.git"), which holds
// a password or an access token, as git leaves it out of its own
// messages. Other forms (a path, scp-like "user@host:path") hold no
// secret and are returned as they are.
func DisplayURL(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	authority, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = authority[i+1:]
	}
	return scheme + "://" + authority + path
}

// TreeOf is the tree id of a commit.
func (r *Repo) TreeOf(commit string) (string, error) {
	var tree string
	err := r.goGit(func(g *gitRepo) error {
		c, err := g.CommitObject(plumbing.NewHash(commit))
		if err != nil {
			return err
		}
		tree = c.TreeHash.String()
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("tree of %s: %w", commit, err)
	}
	return tree, nil
}

// RemoteURL is the URL a configured remote fetches from ("" when there is
// no such remote).
func (r *Repo) RemoteURL(ctx context.Context, remote string) string {
	out, err := r.read(ctx, "remote", "get-url", "--", remote)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}
