package gitstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Policy is what the step a pooled worktree is handed to may write outside
// it. The pool keeps a slot's ignored files (build caches: node_modules/,
// target/) from one step to the next, so a step can leave a script there
// (node_modules/.bin/prettier) for the next step to run: harmless while
// that step may write no more than the one that left it, an escalation
// otherwise. The pool records the policy of each slot's last user beside
// its marker (slot-N.policy, out of the steps' reach) and hands a slot to
// a step that may write more with none of its files kept (see Covers).
type Policy struct {
	// Sandboxed says the step's writes are confined (to its worktree,
	// its TMPDIR, its engine's config dirs and Writable); false means no
	// restriction at all.
	Sandboxed bool `json:"sandboxed"`
	// Writable are the further paths the workflow lets it write, absolute
	// and clean. The worktree, the TMPDIR and the slot's config dirs
	// are not listed: the TMPDIR is one per policy, and the slot's
	// worktree and config dirs are the same for every user of the slot.
	Writable []string `json:"writable,omitempty"`
}

// Covers reports whether p allows every write q allows: then whatever a
// step under p left in a worktree can do no more harm when a step under
// q runs it than the step under p could do itself. Unconfined covers
// everything; a sandbox covers another sandbox whose every writable path
// is one of its own or under one.
func (p Policy) Covers(q Policy) bool {
	if !p.Sandboxed {
		return true
	}
	if !q.Sandboxed {
		return false
	}
	for _, w := range q.Writable {
		if !slices.ContainsFunc(p.Writable, func(d string) bool { return within(w, d) }) {
			return false
		}
	}
	return true
}

// within reports whether path is dir or below it (both clean).
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// strictest is assumed of a slot whose last user is not known (no record,
// as a slot of an older codemachine has, or one a crash left unreadable):
// the tightest sandbox, so that only a step as confined reuses its files.
var strictest = Policy{Sandboxed: true}

// readPolicy returns the policy recorded at path, strictest when there is
// none or it cannot be read.
func readPolicy(path string) (p Policy, known bool) {
	data, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(data, &p) != nil {
		return strictest, false
	}
	return p, true
}

// recordPolicy records user as the slot's last user before the step
// starts (see writePolicy).
func (w *Worktree) recordPolicy(user Policy, last Policy, known bool) error {
	if err := writePolicy(w.policy, user, last, known); err != nil {
		return fmt.Errorf("worktree slot %d: %w", w.slot, err)
	}
	return nil
}

// writePolicy records user at path as the last user of what the record
// is about, unless last (known) is user already. The old record is removed
// first: the removal is a journaled metadata operation ordered before
// anything the step then writes, so a crash can leave no record (read as
// strictest) but never the record of a user allowed more than the one
// whose files are there now.
func writePolicy(path string, user Policy, last Policy, known bool) error {
	if known && last.equal(user) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("record its user's sandbox: %w", err)
	}
	data, err := json.Marshal(user)
	if err != nil {
		return fmt.Errorf("record its user's sandbox: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("record its user's sandbox: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("record its user's sandbox: %w", err)
	}
	return nil
}

// ClaimDir readies dir, a directory of a pool slot that its steps may
// write besides the worktree (the slot's private config dirs, whose
// session stores the CLIs keep from one step to the next), for a step
// under user, as Worktree does the worktree: when the policy recorded at
// record (which must be out of the steps' reach) does not cover user's,
// everything in dir is removed first, for what a step allowed less left
// there must not run with more rights (opencode runs git over the
// snapshot repositories in its session store: a core.fsmonitor planted
// there by a sandboxed step would run unconfined in the next step with
// sandbox: off). user is then recorded. dir must exist.
func ClaimDir(dir, record string, user Policy) error {
	last, known := readPolicy(record)
	if !last.Covers(user) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("empty %s for a step allowed more than its last: %w", dir, err)
		}
		for _, e := range entries {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("empty %s for a step allowed more than its last: %w", dir, err)
			}
		}
	}
	if err := writePolicy(record, user, last, known); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}

func (p Policy) equal(q Policy) bool {
	return p.Sandboxed == q.Sandboxed && slices.Equal(p.Writable, q.Writable)
}
