package orchestrator

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/codemachine/codemachine/internal/lazyre"
)

// runIDPattern matches what newRunID makes, so that a sweep of the
// temporary directories never takes anything else that lives beside them
// (a text merge's scratch directory, say).
var runIDPattern = lazyre.New(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$`)

// runTmpDir is the run's directory of TMPDIRs: .git/codemachine/tmp/<run>.
func (o *Orchestrator) runTmpDir(run string) string {
	return filepath.Join(o.repo.LocalDir(), "tmp", run)
}

// tmpDir is the unit's TMPDIR: a directory of the run's, shared by the
// run's units that run under the same sandbox policy, so that they can
// meet there: <run>/off for unconfined steps, <run>/sandbox-<hash of the
// writable paths> for sandboxed ones. A step may write its TMPDIR, so one
// shared with a step of another policy would let a more confined step
// leave there what a less confined one then runs (a sandboxed step's
// script for a sandbox: off step).
func (j *job) tmpDir() string {
	name := "off"
	if j.sandboxed() {
		writable := slices.Clone(j.sandbox.Writable)
		slices.Sort(writable)
		sum := sha256.Sum256([]byte(strings.Join(writable, "\x00")))
		name = "sandbox-" + hex.EncodeToString(sum[:6])
	}
	return filepath.Join(j.o.runTmpDir(j.rs.id), name)
}

// sweepRunTmp removes the temporary directories of earlier runs, keeping
// the current run's. The caller holds the repository lock, so no other run
// is using one: a finished run's directory is left until the next run for
// whoever wants to look at what its steps left there, and one whose run
// was killed would otherwise stay forever. Best effort: a directory that
// cannot be removed is tried again by the next run.
func (o *Orchestrator) sweepRunTmp(current string) {
	root := filepath.Join(o.repo.LocalDir(), "tmp")
	if fi, err := os.Lstat(root); err == nil && !fi.IsDir() {
		// Only codemachine writes there: a file or a link in the place of
		// the directory (a hand's doing) would leave every step without
		// its TMPDIR, to write the caller's, which the sandbox keeps
		// read-only ("mkdir /tmp/go-build...: read-only file system"), or
		// through the link, wherever it leads.
		_ = os.Remove(root)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Name() == current || !e.IsDir() || !runIDPattern().MatchString(e.Name()) {
			continue
		}
		removeTree(filepath.Join(root, e.Name()))
	}
}

// removeTree removes dir and everything below it, also where a step took
// the write permission away from a directory of its own (os.RemoveAll
// cannot empty one then). Symbolic links are removed, never followed.
func removeTree(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}
