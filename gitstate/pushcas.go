package gitstate

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// RemoteError is a remote that could not be reached or answered with an
// error of its own (not a rejected ref: that is a *PushRejectedError).
// Transient ones (no connection, a broken transfer, a server error) are
// worth retrying after a while; the others (no such repository, no
// permission) are not.
type RemoteError struct {
	Op, Remote string
	Transient  bool
	// Local is a transient failure of this clone, not of the remote: the
	// remote answered, but a local ref (a remote-tracking branch) was
	// being updated by another command of the same clone at once.
	Local bool
	Err   error
}

// Error is "<op> <remote>: <what git said>".
func (e *RemoteError) Error() string { return e.Op + " " + e.Remote + ": " + e.Err.Error() }

// Unwrap is the git error.
func (e *RemoteError) Unwrap() error { return e.Err }

// permanentRemote are git's words for a remote failure that waiting does
// not cure.
var permanentRemote = []string{
	"does not appear to be a git repository", "repository not found", "not found",
	"authentication failed", "permission denied", "could not read username",
	"the requested url returned error: 401", "the requested url returned error: 403",
	"the requested url returned error: 404", "no such remote", "not a git repository",
}

// remoteError wraps err as a *RemoteError unless it is a cancellation.
func remoteError(op, remote string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var re *RemoteError
	if errors.As(err, &re) {
		return err
	}
	transient := true
	var ge *GitError
	if errors.As(err, &ge) {
		low := strings.ToLower(ge.Stderr)
		if strings.Contains(low, "cannot lock ref") {
			return &RemoteError{Op: op, Remote: remote, Transient: true, Local: true, Err: err}
		}
		for _, p := range permanentRemote {
			if strings.Contains(low, p) {
				transient = false
				break
			}
		}
	}
	return &RemoteError{Op: op, Remote: remote, Transient: transient, Err: err}
}

// IsTransientRemote says whether err is a remote failure worth retrying.
func IsTransientRemote(err error) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Transient
}

// PushRejectedError is a push the remote (or git, comparing the leases)
// refused for one or more refs. It wraps ErrRefMoved when a ref was not
// where its lease expected it (the compare-and-swap lost).
type PushRejectedError struct {
	Remote  string
	Refs    map[string]string // remote ref -> git's reason ("stale info", "fetch first", ...)
	Moved   bool
	Summary string
	// Message is what the remote itself said (git's "remote:" lines, such
	// as a pre-receive hook's or a forge's branch protection's reason),
	// on one line; "" when it said nothing.
	Message string
}

// Error names the refused refs and why, and what the remote said.
func (e *PushRejectedError) Error() string {
	msg := "push to " + e.Remote + " rejected: " + e.Summary
	if e.Message != "" {
		msg += " (the remote said: " + e.Message + ")"
	}
	return msg
}

// Unwrap is ErrRefMoved when a lease was lost.
func (e *PushRejectedError) Unwrap() error {
	if e.Moved {
		return ErrRefMoved
	}
	return nil
}

// leaseLost are the reasons git gives when a ref was not at the value the
// push expected: the compare-and-swap lost against another writer.
var leaseLost = []string{"stale info", "fetch first", "non-fast-forward", "already exists", "failed to update ref", "failed to lock", "atomic push failed", "cannot lock ref", "incorrect old value", "atomic transaction failed"}

// PushCAS moves refs on remote in one atomic push (all or none): each
// PushRef's remote ref to Local (a commit id or a local ref; "" deletes
// it), only where the remote's ref is at Expect ("" = absent, "*" =
// anything). The remote checks the expected values under its ref locks,
// so two writers racing for one ref cannot both win. A lost race is a
// *PushRejectedError wrapping ErrRefMoved; an unreachable remote a
// *RemoteError.
func (r *Repo) PushCAS(ctx context.Context, remote string, refs []PushRef) error {
	if len(refs) == 0 {
		return nil
	}
	args := []string{"push", "--porcelain", "--atomic", "--no-verify"}
	for _, ref := range refs {
		if ref.Expect != "*" {
			args = append(args, "--force-with-lease="+ref.Remote+":"+ref.Expect)
		}
	}
	args = append(args, "--", remote)
	for _, ref := range refs {
		args = append(args, leasedRefspec(ref))
	}
	out, err := r.network(ctx, args...)
	if err == nil {
		return nil
	}
	if rej := parseRejections(remote, out); rej != nil {
		var ge *GitError
		if errors.As(err, &ge) {
			rej.Message = remoteSaid(ge.Stderr)
		}
		if strings.Contains(rej.Message, "exists; cannot create") {
			// Not a lost race: a ref of the remote's leaves no room
			// for one pushed (a branch named codemachine beside
			// codemachine/review/...), and looking again cannot cure it.
			rej.Moved = false
		}
		return rej
	}
	return remoteError("push", remote, err)
}

// network runs a git command that talks to a remote. It is not
// serialized with the repository's other writes: a slow or hanging remote
// must not hold up local commits (git's own ref locks keep the few local
// refs it writes consistent, and lock conflicts are retried).
func (r *Repo) network(ctx context.Context, args ...string) (string, error) {
	return r.run(ctx, runOpts{}, true, args)
}

// leasedRefspec is ref's refspec: forced with "+" only when it may
// overwrite anything, because a "+" makes git ignore the ref's
// --force-with-lease (the lease alone already allows a non-fast-forward
// update from the expected value).
func leasedRefspec(ref PushRef) string {
	switch {
	case ref.Local == "":
		return ":" + ref.Remote
	case ref.Expect == "*":
		return "+" + ref.Local + ":" + ref.Remote
	}
	return ref.Local + ":" + ref.Remote
}

// remoteSaid is the remote's own lines of git's stderr ("remote: ..."),
// joined into one line: a hook's or a forge's reason for refusing a push.
func remoteSaid(stderr string) string {
	var said []string
	for line := range strings.SplitSeq(stderr, "\n") {
		text, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "remote:")
		if text = strings.TrimSpace(text); ok && text != "" {
			said = append(said, text)
		}
	}
	return strings.Join(said, " ")
}

// parseRejections reads git push --porcelain's lines ("!\tsrc:dst\t[rejected]
// (reason)") into a *PushRejectedError, nil when no ref was rejected.
func parseRejections(remote, out string) *PushRejectedError {
	var rej *PushRejectedError
	for line := range strings.SplitSeq(out, "\n") {
		if !strings.HasPrefix(line, "!\t") {
			continue
		}
		parts := strings.SplitN(line, "\t", 3)
		if len(parts) < 3 {
			continue
		}
		_, dst, _ := strings.Cut(parts[1], ":")
		reason := parts[2]
		if rej == nil {
			rej = &PushRejectedError{Remote: remote, Refs: map[string]string{}}
		}
		rej.Refs[dst] = reason
		if rej.Summary != "" {
			rej.Summary += "; "
		}
		rej.Summary += fmt.Sprintf("%s %s", dst, reason)
		for _, p := range leaseLost {
			if strings.Contains(reason, p) {
				rej.Moved = true
			}
		}
	}
	return rej
}
