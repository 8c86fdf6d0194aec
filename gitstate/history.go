package gitstate

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// CommitsBetween returns the commits reachable from tip but not from base,
// newest first, at most limit of them (all when limit <= 0): what a reset
// or rewrite from tip to base took away, merged side branches included.
func (r *Repo) CommitsBetween(ctx context.Context, base, tip string, limit int) ([]Commit, error) {
	args := []string{"rev-list"}
	if limit > 0 {
		args = append(args, "--max-count="+strconv.Itoa(limit))
	}
	out, err := r.read(ctx, append(args, base+".."+tip)...)
	if err != nil {
		return nil, fmt.Errorf("commits between %s and %s: %w", short(base), short(tip), err)
	}
	var commits []Commit
	for _, h := range strings.Fields(out) {
		c, err := r.CommitInfo(h)
		if err != nil {
			return nil, err
		}
		commits = append(commits, c)
	}
	return commits, nil
}

// ShowOptions tune ShowCommit.
type ShowOptions struct {
	StatOnly bool // the diffstat without the patch
	Color    bool // ANSI colours, for a terminal
}

// ShowCommit is one commit for a reader, as `git show` prints it: hash,
// author, date, the whole message indented, the diffstat and (unless
// StatOnly) the patch against its first parent.
func (r *Repo) ShowCommit(ctx context.Context, commit string, opts ShowOptions) (string, error) {
	args := []string{"show", "--first-parent", "--format=commit %H%nAuthor: %an <%ae>%nDate:   %ad%n%n%w(0,4,4)%B"}
	if opts.StatOnly {
		args = append(args, "--stat")
	} else {
		args = append(args, "--stat", "--patch")
	}
	if opts.Color {
		args = append(args, "--color=always")
	} else {
		args = append(args, "--color=never")
	}
	return r.read(ctx, append(args, commit)...)
}
