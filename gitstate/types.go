// Package gitstate is the repository as codemachine's database. Every
// mutation goes through the git CLI, serialized per repository and backing
// off while another process holds a git lock; reads go through go-git. It
// owns state.yaml, commit messages and trailers, the worktree pool,
// compare-and-swap landing, codemachine's refs, the repo lock and the local
// files under .git/codemachine. It imports nothing else of codemachine but
// the leaf internal/yamlnode.
package gitstate

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Head describes what HEAD points at.
type Head struct {
	Branch string // short branch name ("main"); "" when HEAD is detached
	Commit string // "" when the branch is unborn (no commits yet)
}

// Ref is the full ref name of the branch ("refs/heads/main"), "" if detached.
func (h Head) Ref() string {
	if h.Branch == "" {
		return ""
	}
	return "refs/heads/" + h.Branch
}

// Signature is a git identity with a time.
type Signature struct {
	Name  string
	Email string
	When  time.Time
}

// Trailer is one "Key: value" line of a commit message's trailer block.
type Trailer struct {
	Key   string
	Value string
}

// Commit is a commit as read from the repository.
type Commit struct {
	Hash      string
	Parents   []string
	Author    Signature
	Committer Signature
	Message   string
	Trailers  []Trailer // the message's trailer block, as ParseMessage reads it
	// ChangesState: the commit changes StateFile against its first parent
	// (or has it, without a parent whose tree is here to compare with).
	// Set by the log walks (WalkLog, WalkLogMerges) for commits with a
	// Codemachine-Step trailer only, which is where it matters: every
	// landing commits the state, so a commit with the trailer that leaves
	// it as it was is no step commit.
	ChangesState bool
}

// StateFile is the path of the committed state record (the same as
// workflow.StateFile: gitstate imports nothing of ours).
const StateFile = ".codemachine/state.yaml"

// Change is one path that differs between two trees.
type Change struct {
	Path    string
	Status  byte   // 'A' added, 'M' modified, 'D' deleted, 'T' type changed
	OldMode string // "100644", "100755", "120000", "160000"; "" when added
	NewMode string // "" when deleted
	OldHash string
	NewHash string
}

// LandResult says how a step commit reached the branch.
type LandResult struct {
	Commit  string // the commit now at the branch tip (rebased if the branch moved)
	Rebased bool   // the branch had moved and the commit was re-applied onto it
}

// ErrNotRepo is returned by Open outside a git repository.
var ErrNotRepo = errors.New("not a git repository (or any of the parent directories)")

// NoWorkTreeError is returned by Open in a git directory that has no
// working tree (a bare repository, such as a remote, or inside .git):
// it is a git repository, but not one codemachine can work in. It is an
// ErrNotRepo for errors.Is.
type NoWorkTreeError struct{ Dir string }

// Error says what the directory is and where to run instead.
func (e *NoWorkTreeError) Error() string {
	return e.Dir + ": a git directory without a working tree (a bare repository, or inside .git): run codemachine in a clone's working tree"
}

// Is makes the error an ErrNotRepo.
func (e *NoWorkTreeError) Is(target error) bool { return target == ErrNotRepo }

// DetachedGitDirError is returned by Open when GIT_DIR, GIT_WORK_TREE or
// GIT_COMMON_DIR name a git directory apart from its work tree: a bare
// repository checked out elsewhere (the "dotfiles" pattern), or GIT_DIR set
// in another directory, which git then takes as the work tree. It is an
// ErrNotRepo for errors.Is: not a repository codemachine can work in.
type DetachedGitDirError struct {
	Env      []string // the variables set, KEY=VALUE
	WorkTree string   // the work tree git takes with them
	GitDir   string   // the git directory they name
}

// Error names the variables, what git makes of them and what to do.
func (e *DetachedGitDirError) Error() string {
	keys := make([]string, len(e.Env))
	for i, kv := range e.Env {
		keys[i], _, _ = strings.Cut(kv, "=")
	}
	hint := "run codemachine in a clone's work tree"
	if filepath.Base(e.GitDir) == ".git" {
		hint = "run codemachine in its work tree (codemachine -C " + filepath.Dir(e.GitDir) + ")"
	}
	return fmt.Sprintf("%s: git dir %s with work tree %s, which does not hold it: codemachine needs a work tree whose .git is its repository; unset %s and %s",
		strings.Join(e.Env, " "), e.GitDir, e.WorkTree, strings.Join(keys, " and "), hint)
}

// Is makes the error an ErrNotRepo.
func (e *DetachedGitDirError) Is(target error) bool { return target == ErrNotRepo }

// DubiousOwnershipError is returned by Open for a repository that git
// refuses because another user owns it (safe.directory): a repository
// mounted into a container, or another user's checkout. It is an
// ErrNotRepo for errors.Is, as git treats it.
type DubiousOwnershipError struct{ Dir string }

// Error says what git refuses and how to trust the repository.
func (e *DubiousOwnershipError) Error() string {
	return fmt.Sprintf("%s: git refuses a repository another user owns (dubious ownership); if you trust it: git config --global --add safe.directory %s",
		e.Dir, e.Dir)
}

// Is makes the error an ErrNotRepo.
func (e *DubiousOwnershipError) Is(target error) bool { return target == ErrNotRepo }

// ErrRefMoved is returned by a compare-and-swap ref update when the ref no
// longer has the expected old value.
var ErrRefMoved = errors.New("ref moved")

// ConflictError is returned by Land when the step commit cannot be applied:
// the branch moved and the change does not apply cleanly, or it would
// overwrite the user's uncommitted changes. Nothing was lost: the commit is
// kept on Branch.
type ConflictError struct {
	Branch string   // e.g. "codemachine/conflict/implement/T3"
	Paths  []string // the conflicting paths, when known
	Reason string   // "the branch moved" or ReasonUncommitted
}

// ReasonUncommitted is the Reason of a ConflictError whose commit would
// overwrite the user's uncommitted changes (or untracked files) in the
// checkout: the change itself applies to the branch.
const ReasonUncommitted = "uncommitted changes"

// Error says why the commit did not land and which branch keeps it.
func (e *ConflictError) Error() string {
	where := ""
	if len(e.Paths) > 0 {
		where = " (" + strings.Join(e.Paths, ", ") + ")"
	}
	return fmt.Sprintf("cannot land: %s%s; the commit is kept on branch %s", e.Reason, where, e.Branch)
}

// LockedError is returned by Lock when another live process holds the
// repository lock.
type LockedError struct {
	PID     int
	Command string // what the holder is running, as written in the lock file
}

// Error names the process that holds the lock.
func (e *LockedError) Error() string {
	return fmt.Sprintf("another codemachine (pid %d, %s) is running in this repository", e.PID, e.Command)
}
