package gitstate

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// UnmergedError is returned by CheckUnmerged and ResetBranch when a
// checkout of the branch is in the middle of a merge (or a cherry-pick,
// revert or stash pop) that left conflicts: git refuses to move such an
// index forward, or to stash it, so nothing could land on the branch, nor
// could it be reset, until the user settles them.
type UnmergedError struct {
	Branch string
	Dir    string   // the checkout's root
	Paths  []string // the unmerged paths, sorted
	// Abort abandons the operation that left the conflicts ("git merge
	// --abort"); "" when none is in progress (a git stash pop's).
	Abort string
}

// Error says which files are unmerged and what to do, on one line.
func (e *UnmergedError) Error() string {
	paths := e.Paths
	more := ""
	if len(paths) > 5 {
		paths, more = paths[:5], fmt.Sprintf(" and %d more", len(e.Paths)-5)
	}
	todo := "resolve them and commit (or " + e.Abort + ") first"
	if e.Abort == "" {
		todo = "resolve them (edit, then git add) or take a side (git checkout HEAD -- FILE) first"
	}
	return fmt.Sprintf("the checkout of %s in %s has unresolved merge conflicts in %s%s: %s",
		e.Branch, e.Dir, strings.Join(paths, ", "), more, todo)
}

// CheckUnmerged returns an *UnmergedError when a worktree of the user's
// with branch checked out has unmerged index entries.
func (r *Repo) CheckUnmerged(ctx context.Context, branch string) error {
	cos, err := r.checkoutsOn("refs/heads/" + branch)
	if err != nil {
		return err
	}
	for _, co := range cos {
		paths, err := r.unmergedIn(ctx, co)
		if err != nil {
			return fmt.Errorf("list unmerged files in %s: %w", co.root, err)
		}
		if len(paths) > 0 {
			return &UnmergedError{Branch: branch, Dir: co.root, Paths: paths, Abort: co.abortCommand()}
		}
	}
	return nil
}

// unmergedIn lists the unmerged paths of a checkout's index, read in
// process (a run starts no git process to learn there are none); by git
// for an index it does not read (version 4, a split index).
func (r *Repo) unmergedIn(ctx context.Context, co checkout) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(co.gitDir, "index"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no index yet: nothing is staged, let alone unmerged
	}
	if err != nil {
		return nil, err
	}
	if paths, ok := unmergedEntries(data); ok {
		return paths, nil
	}
	out, err := r.readWith(ctx, runOpts{Dir: co.root}, "ls-files", "--unmerged", "-z")
	if err != nil {
		return nil, err
	}
	var paths []string
	for rec := range strings.SplitSeq(out, "\x00") {
		// "MODE HASH STAGE\tPATH", one record per stage of a path.
		if _, path, ok := strings.Cut(rec, "\t"); ok {
			paths = appendNew(paths, path)
		}
	}
	return paths, nil
}

// unmergedEntries lists the paths of the entries of an index file (version
// 2 or 3) in a stage other than 0; ok is false for anything else.
func unmergedEntries(data []byte) (paths []string, ok bool) {
	if len(data) < 12 || string(data[:4]) != "DIRC" {
		return nil, false
	}
	version := binary.BigEndian.Uint32(data[4:8])
	if version != 2 && version != 3 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint32(data[8:12]))
	off := 12
	for range n {
		fixed := 62
		if off+fixed > len(data) {
			return nil, false
		}
		flags := binary.BigEndian.Uint16(data[off+60:])
		if flags&0x4000 != 0 {
			fixed += 2 // extended flags (version 3)
		}
		end := bytes.IndexByte(data[min(off+fixed, len(data)):], 0)
		if end < 0 {
			return nil, false
		}
		if (flags>>12)&3 != 0 {
			paths = appendNew(paths, string(data[off+fixed:off+fixed+end]))
		}
		// Entries are NUL-padded to a multiple of 8 bytes, at least one NUL.
		off += (fixed + end + 8) &^ 7
	}
	return paths, true
}

// appendNew appends path unless it is the last one: the index and git
// ls-files list the stages of a path one after another.
func appendNew(paths []string, path string) []string {
	if len(paths) > 0 && paths[len(paths)-1] == path {
		return paths
	}
	return append(paths, path)
}

// unmergedPaths are the paths of the unmerged entries of a status.
func unmergedPaths(entries []StatusEntry) []string {
	var paths []string
	for _, e := range entries {
		if e.Unmerged {
			paths = append(paths, e.Path)
		}
	}
	return paths
}
