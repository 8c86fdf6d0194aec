package orchestrator

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/codemachine/codemachine/internal/lazyre"
)

// runIDPattern matches what newRunID makes, so that a sweep of the
// temporary directories never takes anything else that lives beside them
// (a text merge's scratch directory, say).
var runIDPattern = lazyre.New(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$`)

// tmpNamePattern matches the names tmpDir gives a run's TMPDIRs.
var tmpNamePattern = lazyre.New(`^(off|sandbox-[0-9a-f]{12})$`)

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
//
// The newest earlier directory that holds nothing (reusableTmp) is renamed
// to the current run's instead: on ext4 each directory made and removed
// costs a new inode, and without a journal every new inode of the next
// minute searches past the freed ones, so a run of one step paid about as
// much for its empty TMPDIRs as for its step's objects.
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
	target := filepath.Join(root, current)
	_, err = os.Lstat(target)
	adopt := errors.Is(err, fs.ErrNotExist)
	// Newest first: run ids sort by their time.
	for _, e := range slices.Backward(entries) {
		if e.Name() == current || !e.IsDir() || !runIDPattern().MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if adopt && reusableTmp(dir) && os.Rename(dir, target) == nil {
			adopt = false
			continue
		}
		removeTree(dir)
	}
}

// reusableTmp reports whether dir, a run's directory of TMPDIRs, is as good
// as a new one: nothing in it but empty TMPDIRs of tmpDir's names, each a
// plain directory as mkdir made it (see plainTmpDir). Anything a step left
// there, or changed about a directory, has it removed as before.
func reusableTmp(dir string) bool {
	if !plainTmpDir(dir) {
		return false
	}
	names, err := readNames(dir, -1)
	if err != nil {
		return false
	}
	for _, n := range names {
		sub := filepath.Join(dir, n)
		if !tmpNamePattern().MatchString(n) || !plainTmpDir(sub) {
			return false
		}
		if inner, err := readNames(sub, 1); err != nil || len(inner) != 0 {
			return false
		}
	}
	return true
}

// readNames lists up to n names of the directory p (all for n <= 0).
func readNames(p string, n int) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(n)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return names, err
}

// plainTmpDir reports whether p is a directory (not a link to one) of this
// user's that only its owner may write and that its owner may use, without
// set-id or sticky bits or an access control list: a step may chmod or
// setfacl its TMPDIR, and the next run's steps must not find it shared or
// closed to them.
func plainTmpDir(p string) bool {
	st, err := os.Lstat(p)
	if err != nil || !st.IsDir() {
		return false
	}
	m := st.Mode()
	if m&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 || m.Perm()&0o700 != 0o700 || m.Perm()&0o022 != 0 {
		return false
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != os.Getuid() {
		return false
	}
	buf := make([]byte, 1024)
	n, err := unix.Llistxattr(p, buf)
	switch {
	case errors.Is(err, unix.ENOTSUP):
		return true // no extended attributes there, so no ACL
	case err != nil:
		return false // ERANGE too: more attributes than an untouched directory has
	}
	for name := range strings.SplitSeq(string(buf[:n]), "\x00") {
		if strings.HasPrefix(name, "system.posix_acl_") {
			return false
		}
	}
	return true
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
