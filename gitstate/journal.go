package gitstate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"go.yaml.in/yaml/v3"

	"github.com/codemachine/codemachine/internal/fastread"
)

// journalFile is the intent of a working-tree switch in progress (a landing
// or a rollback), under LocalDir: written before the user's index.lock is
// taken, removed once the index is installed. A process killed in between
// leaves it for the next command's Recover.
const journalFile = "switch.yaml"

// switchJournal is what Recover needs to complete or undo an interrupted
// switchCheckout, and to tell the lock it made from anyone else's.
type switchJournal struct {
	PID   int    `yaml:"pid"`
	Start string `yaml:"start,omitempty"` // the process's start time (/proc), against pid reuse
	// Marker is the content of the index.lock the switch created: a lock
	// holding anything else is not codemachine's.
	Marker string `yaml:"marker"`
	Root   string `yaml:"root"`  // the checkout's top level
	Index  string `yaml:"index"` // its index
	Tmp    string `yaml:"tmp"`   // the new index being built
	Ref    string `yaml:"ref"`
	Old    string `yaml:"old"` // "" for a branch with no commit yet
	New    string `yaml:"new"`
	Hard   bool   `yaml:"hard,omitempty"`  // a forced rollback: local changes were overwritten
	Saved  string `yaml:"saved,omitempty"` // the commit where a forced rollback saved them
	// Staging holds the files of a staged switch (switch_staged.go) not yet
	// moved into place; Aside the files they replaced, each under its
	// asideFile name (a journal without Aside, of an earlier version, has
	// them in Staging+".aside" under their paths).
	Staging string `yaml:"staging,omitempty"`
	Aside   string `yaml:"aside,omitempty"`
	// Pending: the lock is taken and nothing else has begun (a landing
	// holding the lock while it reads the tip and rebases).
	Pending bool `yaml:"pending,omitempty"`
	// Prior is where the user's index is kept while the new one is
	// installed ahead of the ref (installIndex); Msg is the ref update's
	// reflog message, for Recover to finish the update.
	Prior string `yaml:"prior,omitempty"`
	Msg   string `yaml:"msg,omitempty"`
}

func (j *switchJournal) lock() string { return j.Index + ".lock" }

// switchEnv marks the git processes of a switch, so that Recover can wait
// for those that outlive a killed codemachine (they are not killed with
// it, and finish their work).
const switchEnv = "CODEMACHINE_SWITCH"

func (j *switchJournal) env() string { return switchEnv + "=" + j.Marker[:len(j.Marker)-1] }

// waitProcesses waits, for at most a minute, until no process carries
// the journal's mark in its environment.
func (j *switchJournal) waitProcesses() {
	waitUnmarked([]byte(j.env()+"\x00"), time.Minute)
}

// waitUnmarked waits, for at most limit, until no process has mark (a
// NAME=VALUE entry of its environment, with its NUL) in its environment:
// the git processes a killed codemachine started finish their work and
// remove their own locks.
func waitUnmarked(mark []byte, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		found := false
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			data, err := os.ReadFile("/proc/" + e.Name() + "/environ")
			if err == nil && bytes.Contains(data, mark) {
				found = true
				break
			}
		}
		if !found {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ErrSwitchInterrupted is returned by a switch that would begin while a
// killed codemachine's switch is left unfinished: its journal is what lets
// Recover (the next command that takes the repository lock) finish or undo
// it and remove its index.lock, and is not written over.
var ErrSwitchInterrupted = errors.New("a landing that a killed codemachine began is not finished yet: the next codemachine command that takes the repository lock (codemachine status) finishes or undoes it")

// beginSwitch records the intent and takes the index lock holding j's
// marker, both from one written file linked twice (link(2), so that the
// lock is never a file Recover cannot attribute): the lock's content is the
// journal as first written, whose marker says whose it is (holdsMarker).
// One file instead of two spares a new inode per landing, 0.3-1 ms of
// kernel time on an ext4 that searches its recently freed inodes.
func (r *Repo) beginSwitch(ctx context.Context, j *switchJournal) error {
	j.PID, j.Start = os.Getpid(), procStart(os.Getpid())
	j.Marker = fmt.Sprintf("codemachine-switch-%d-%s\n", j.PID, strconv.FormatInt(tmpSeq.Add(1), 10))
	data, err := yaml.Marshal(j)
	if err != nil {
		return fmt.Errorf("write the journal of the update of %s: %w", j.Ref, err)
	}
	tmp, err := writeLinkTemp(r.LocalDir(), data, r.syncLocal())
	if err != nil {
		return fmt.Errorf("write the journal of the update of %s: %w", j.Ref, err)
	}
	defer os.Remove(tmp)
	if err := r.createJournal(ctx, j, tmp); err != nil {
		return err
	}
	if err := r.createLockFrom(ctx, j.lock(), tmp); err != nil {
		_ = r.removeJournal()
		return err
	}
	return nil
}

// holdsMarker reports whether data, an index.lock's content, is the lock
// of the switch whose marker is marker: the journal that switch first
// wrote (beginSwitch links it as the lock), or, from an earlier version,
// the marker alone. A lock of git's holds an index, which no journal
// parses as.
func holdsMarker(data []byte, marker string) bool {
	if string(data) == marker {
		return true
	}
	var j switchJournal
	return bytes.HasPrefix(data, []byte("pid: ")) && yaml.Unmarshal(data, &j) == nil && j.Marker == marker
}

// createJournal links tmp, the written journal j, as the journal only if
// there is none: the journal is one file per repository, and a switch of
// another process (a worker's look at the remote moves the branch outside
// the repository lock; a run or approve lands meanwhile) must not replace
// it. A live process's journal is waited for, as its index.lock would be;
// a dead one's is left to Recover (ErrSwitchInterrupted): written over, it
// would be lost with the index.lock it names, which then blocked the
// user's git for good. One of this process's own is a leftover (its
// switches are serialized by writeMu) and is replaced.
func (r *Repo) createJournal(ctx context.Context, j *switchJournal, tmp string) error {
	p, err := r.localFile(journalFile)
	if err != nil {
		return err
	}
	wait := r.LockWait
	if wait <= 0 {
		wait = DefaultLockWait
	}
	start, delay := time.Now(), 10*time.Millisecond
	for {
		err := os.Link(tmp, p)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("write %s: %w", p, err)
		}
		var other switchJournal
		switch rerr := r.ReadLocal(journalFile, &other); {
		case errors.Is(rerr, fs.ErrNotExist):
			continue // finished meanwhile
		case rerr != nil:
			return fmt.Errorf("begin the update of %s: %w", j.Ref, rerr)
		case other.PID == os.Getpid():
			return r.WriteLocal(journalFile, j)
		case !other.alive():
			return fmt.Errorf("begin the update of %s: %w", j.Ref, ErrSwitchInterrupted)
		}
		waited := time.Since(start)
		if waited >= wait {
			return &LockHeldError{Cmd: "read-tree", Path: r.RelPath(p), Waited: waited}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", r.RelPath(p), ctx.Err())
		case <-time.After(min(delay, wait-waited)):
		}
		delay = min(2*delay, time.Second)
	}
}

func (r *Repo) removeJournal() error {
	p, err := r.localFile(journalFile)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// procStart is a process's start time in clock ticks since boot (field 22
// of /proc/PID/stat), "" where unknown.
func procStart(pid int) string {
	f := procStat(pid)
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// procStat is /proc/PID/stat's fields after the command name (the first
// is the state), nil where unknown.
func procStat(pid int) []string {
	data, err := fastread.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(data[i+1:]))
}

// procDead reports whether pid has exited but was not reaped yet (a
// zombie): it answers signal 0 and keeps its /proc entry and start time
// until its parent waits for it, which a container's init may never do.
// A codemachine killed with kill -9 has released the repository lock by
// then, and runs nothing more.
func procDead(pid int) bool {
	f := procStat(pid)
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// alive reports whether the journal's process still runs.
func (j *switchJournal) alive() bool {
	if j.PID <= 0 {
		return false
	}
	if j.PID == os.Getpid() {
		return procStart(j.PID) == j.Start && j.Start != ""
	}
	if err := syscall.Kill(j.PID, 0); errors.Is(err, syscall.ESRCH) || procDead(j.PID) {
		return false
	}
	return j.Start == "" || procStart(j.PID) == j.Start
}

// Recovered says what Recover did about an interrupted landing or
// rollback.
type Recovered struct {
	Ref       string // the branch ref it concerned
	Completed bool   // the branch had moved: the index was installed
	Undone    bool   // the branch had not moved: the files it changed were put back
	// Kept are files whose content was neither side's (changed by hand
	// since): left as they are.
	Kept []string
}

// String is one line for the user.
func (rc Recovered) String() string {
	what := "cleaned up"
	switch {
	case rc.Completed:
		what = "completed"
	case rc.Undone:
		what = "undone"
	}
	s := fmt.Sprintf("an interrupted update of %s (its process was killed) was %s", strings.TrimPrefix(rc.Ref, "refs/heads/"), what)
	if len(rc.Kept) > 0 {
		s += "; files changed since were left as they are: " + strings.Join(rc.Kept, ", ")
	}
	return s
}

// SwitchInterrupted reports whether a switch of a checkout was begun and
// not finished: its journal is there, for Recover to complete or undo.
// It only looks: a repository that is not codemachine's gets no
// directory of codemachine's for the asking.
func (r *Repo) SwitchInterrupted() bool {
	_, err := os.Lstat(filepath.Join(r.commonDir, "codemachine", journalFile))
	return err == nil
}

// Recover completes or undoes a landing or rollback whose process died
// halfway (kill -9, a crash, a power cut) and removes the index.lock that
// process made, never a lock of anyone else's. Callers hold the repository
// lock. It returns nil when there was nothing to recover, or when the
// process that wrote the journal still runs.
//
// The branch ref decides: at the new commit the switch got past its
// compare-and-swap, so the working tree and index are at the new commit;
// still at the old commit with the new index installed (and still holding
// the new commit's entries for what the switch changed), only the ref is
// left to move; still at the old commit otherwise, the files the switch
// rewrote are put back (a file is rewritten only when its content is
// exactly the new commit's, so an edit made since is never lost; a forced
// rollback's overwritten changes come back from where it saved them).
func (r *Repo) Recover(ctx context.Context) (*Recovered, error) {
	var j switchJournal
	if err := r.ReadLocal(journalFile, &j); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			r.removeStaleStaging()
			return nil, nil
		}
		// A torn journal cannot be: it is written by rename.
		return nil, fmt.Errorf("recover an interrupted landing: %w", err)
	}
	if j.alive() {
		return nil, nil
	}
	j.waitProcesses()
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if j.Pending {
		// Killed while holding the lock before any file was touched.
		return nil, r.dropPending(&j)
	}
	rc := &Recovered{Ref: j.Ref}
	// A ref lock holding the new commit is the switch's own (its
	// compare-and-swap was cut short before the rename): the ref did not
	// move.
	if err := r.dropRefLock(&j); err != nil {
		return nil, fmt.Errorf("recover an interrupted landing: %w", err)
	}
	tip, err := r.refHash(j.Ref)
	if err != nil {
		return nil, fmt.Errorf("recover an interrupted landing: %w", err)
	}
	if err := r.settleSwitch(ctx, &j, tip, rc); err != nil {
		return nil, fmt.Errorf("recover an interrupted landing: %w", err)
	}
	for _, p := range []string{j.Tmp, j.Tmp + ".lock", j.Prior} {
		if p == "" {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("recover an interrupted landing: %w", err)
		}
	}
	if j.Staging != "" {
		for _, p := range []string{j.Staging, j.Staging + ".aside", j.Aside} {
			if p == "" {
				continue
			}
			if err := os.RemoveAll(p); err != nil {
				return nil, fmt.Errorf("recover an interrupted landing: %w", err)
			}
		}
	}
	if data, err := os.ReadFile(j.lock()); err == nil && holdsMarker(data, j.Marker) {
		if err := os.Remove(j.lock()); err != nil {
			return nil, fmt.Errorf("recover an interrupted landing: %w", err)
		}
	}
	return rc, r.removeJournal()
}

// settleSwitch completes or undoes the switch j records, the branch being
// at tip, and says which in rc.
func (r *Repo) settleSwitch(ctx context.Context, j *switchJournal, tip string, rc *Recovered) error {
	switch {
	case tip == j.New && j.New != j.Old:
		if _, err := os.Stat(j.Tmp); err == nil {
			// A switch of an earlier version, which moved the ref
			// before it installed the index read-tree wrote whole:
			// install it.
			if err := os.Rename(j.Tmp, j.Index); err != nil {
				return fmt.Errorf("install the index: %w", err)
			}
		}
		rc.Completed = true
		if co := (checkout{root: j.Root, gitDir: filepath.Dir(j.Index)}); !co.on(j.Ref) && r.indexHoldsNew(j) {
			// A git checkout of another branch at the same commit wrote
			// its HEAD after the switch had read it under the lock (git
			// writes the index first, HEAD after releasing the lock): the
			// other checkout holds the step's changes, staged.
			kept, err := r.takeSwitchOff(ctx, j)
			if err != nil {
				return err
			}
			rc.Kept = kept
		}
	case tip == j.Old && j.New != j.Old && j.indexInstalled() && r.indexHoldsNew(j):
		// Killed between installing the new index and moving the ref:
		// the files and the index are the new commit's, only the ref is
		// left (priorindex.go).
		cas := newRefUpdate(j.Ref, j.New, j.Old, j.Msg)
		if _, err := r.run(ctx, runOpts{}, true, cas.args); err != nil {
			return refError(j.Ref, err)
		}
		rc.Completed = true
		co := checkout{root: j.Root, gitDir: filepath.Dir(j.Index)}
		if !co.on(j.Ref) {
			// The user removed the stale lock and checked out another
			// branch, which carried the step's changes over, staged: the
			// step is on its branch now, and they come off the other
			// checkout, lest the user's next commit there hold them.
			kept, err := r.takeSwitchOff(ctx, j)
			if err != nil {
				return err
			}
			rc.Kept = kept
		}
	case tip == j.Old || (tip != j.New && !j.indexInstalled()):
		// The branch at another commit with the old index: the user
		// removed the stale lock and committed (or moved the branch)
		// without the files the switch had written. Those are put back
		// where that commit has the old side, as if the branch were
		// still at the old commit.
		keep, err := r.pathsAsOld(j, tip)
		if err != nil {
			return err
		}
		if err := r.restoreAside(j, keep); err != nil {
			return err
		}
		kept, err := r.undoSwitch(j, keep)
		if err != nil {
			return err
		}
		rc.Undone, rc.Kept = true, kept
	}
	return nil
}

// takeSwitchOff takes the changes of j's switch, its new index
// installed, off a checkout that has left j's branch since: where the
// checkout's HEAD has the old side of a changed path, an index entry
// holding the new side is reset to HEAD's, and the file goes back to the
// old side as undoSwitch puts it back (a file changed since is kept and
// returned).
func (r *Repo) takeSwitchOff(ctx context.Context, j *switchJournal) ([]string, error) {
	head, err := r.run(ctx, runOpts{Dir: j.Root}, false, []string{"rev-parse", "-q", "--verify", "HEAD^{commit}"})
	head = strings.TrimSpace(head)
	if err != nil {
		head = "" // an unborn branch: nothing has the old side
	}
	keep, err := r.pathsAsOld(j, head)
	if err != nil {
		return nil, err
	}
	changes, err := r.diffTreesInProcess(j.Old, j.New)
	if err != nil {
		return nil, err
	}
	entries, err := indexHashes(j.Index)
	if err != nil {
		return nil, err
	}
	var list bytes.Buffer
	for _, c := range changes {
		if (keep == nil || keep[c.Path]) && entries[c.Path] == c.NewHash {
			list.WriteString(c.Path)
			list.WriteByte(0)
		}
	}
	if list.Len() > 0 {
		opts := runOpts{Dir: j.Root, Stdin: list.Bytes(), finish: true}
		if _, err := r.run(ctx, opts, true, []string{"--literal-pathspecs", "reset", "-q", head, "--pathspec-from-file=-",
			"--pathspec-file-nul"}); err != nil {
			return nil, fmt.Errorf("unstage the step's changes: %w", err)
		}
	}
	if err := r.restoreAside(j, keep); err != nil {
		return nil, err
	}
	return r.undoSwitch(j, keep)
}

// pathsAsOld is the set of the paths j's switch changes where tip holds
// the old side; nil (every path) where tip is the old commit.
func (r *Repo) pathsAsOld(j *switchJournal, tip string) (map[string]bool, error) {
	if tip == j.Old {
		return nil, nil
	}
	changes, err := r.diffTreesInProcess(j.Old, j.New)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	if tip == "" {
		return out, nil
	}
	fsys, err := r.TreeFS(tip)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		if h, _ := treeEntry(fsys, c.Path); h == c.OldHash {
			out[c.Path] = true
		}
	}
	return out, nil
}

// dropRefLock removes a ref lock holding the journal's new commit: the
// switch's own compare-and-swap, cut short before its rename (the ref did
// not move).
func (r *Repo) dropRefLock(j *switchJournal) error {
	refLock := filepath.Join(r.commonDir, filepath.FromSlash(j.Ref)) + ".lock"
	if data, err := os.ReadFile(refLock); err == nil && strings.TrimSpace(string(data)) == j.New {
		return os.Remove(refLock)
	}
	return nil
}

// dropPending releases the lock of a journal whose switch never began.
func (r *Repo) dropPending(j *switchJournal) error {
	if data, err := os.ReadFile(j.lock()); err == nil && holdsMarker(data, j.Marker) {
		if err := os.Remove(j.lock()); err != nil {
			return fmt.Errorf("recover an interrupted landing: %w", err)
		}
	}
	return r.removeJournal()
}

// undoSwitch puts back the files a switch from Old to New may have
// rewritten before it was killed: each file whose content is the New
// side's gets the Old side's (or, after a forced rollback, the saved
// change's). It returns the files it left alone because their content is
// neither.
func (r *Repo) undoSwitch(j *switchJournal, only map[string]bool) ([]string, error) {
	changes, err := r.diffTreesInProcess(j.Old, j.New)
	if err != nil {
		return nil, err
	}
	type side struct{ hash, mode string }
	want := map[string]side{}
	now := map[string]side{}
	for _, c := range changes {
		want[c.Path] = side{c.OldHash, c.OldMode}
		now[c.Path] = side{c.NewHash, c.NewMode}
	}
	if j.Hard && j.Saved != "" {
		// read-tree --reset rewrote every modified file to New's content.
		savedCommit := j.Saved
		if !isHash(savedCommit) {
			// A journal of an earlier version names the saved ref.
			if savedCommit, err = r.ResolveRev(savedCommit); err != nil {
				return nil, fmt.Errorf("the saved changes %s: %w", j.Saved, err)
			}
		}
		saved, err := r.diffTreesInProcess(j.Old, savedCommit)
		if err != nil {
			return nil, err
		}
		newFS, err := r.TreeFS(j.New)
		if err != nil {
			return nil, err
		}
		for _, c := range saved {
			want[c.Path] = side{c.NewHash, c.NewMode}
			if _, ok := now[c.Path]; !ok {
				h, m := treeEntry(newFS, c.Path)
				now[c.Path] = side{h, m}
			}
		}
	}
	// Removals first, deepest first, so that a path whose type changed
	// (a file where a directory was) is free before it is written.
	paths := make([]string, 0, len(now))
	for p := range now {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(a, b int) bool {
		ra, rb := want[paths[a]].hash == "", want[paths[b]].hash == ""
		if ra != rb {
			return ra
		}
		if ra {
			return paths[a] > paths[b]
		}
		return paths[a] < paths[b]
	})
	var kept []string
	for _, path := range paths {
		if only != nil && !only[path] {
			continue
		}
		n, w := now[path], want[path]
		full := filepath.Join(j.Root, filepath.FromSlash(path))
		cur, err := worktreeBlob(full)
		if err != nil {
			return nil, err
		}
		if cur != n.hash && !r.halfWritten(full, cur, n.hash, w.hash) {
			if cur != w.hash {
				kept = append(kept, path)
			}
			continue
		}
		if cur == w.hash {
			continue
		}
		if err := r.writeBlob(full, w.hash, w.mode); err != nil {
			return nil, err
		}
	}
	return kept, nil
}

// halfWritten reports whether the file at full, with blob id cur, is what
// the switch's git read-tree, killed halfway through writing newHash
// there, leaves: a file that read-tree removed to write it again and had
// not created yet (missing where the old commit has one), or one it had
// begun to write (a strict prefix of the new content, empty included: git
// writes a file from its start). read-tree refuses to overwrite a changed
// or untracked file, so neither is a user's edit made before the switch;
// taking either for one (as "changed since") would leave junk in the
// user's checkout and make the next landing of the same step conflict.
func (r *Repo) halfWritten(full, cur, newHash, oldHash string) bool {
	if cur == "" {
		return oldHash != "" && newHash != ""
	}
	if newHash == "" || cur == "dir" {
		return false
	}
	st, err := os.Lstat(full)
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	data, err := os.ReadFile(full)
	if err != nil {
		return false
	}
	want, err := r.blobBytes(newHash)
	return err == nil && len(data) < len(want) && bytes.HasPrefix(want, data)
}

// restoreAside puts back the files a staged switch had moved aside (the
// ones it replaced or deleted) where their place is empty or holds the
// new commit's content: exactly the user's files, inode and all. What is
// left for undoSwitch are the files the switch added.
func (r *Repo) restoreAside(j *switchJournal, only map[string]bool) error {
	if j.Staging == "" {
		return nil
	}
	changes, err := r.diffTreesInProcess(j.Old, j.New)
	if err != nil {
		return err
	}
	for _, c := range changes {
		if only != nil && !only[c.Path] {
			continue
		}
		from := asideFile(j.Aside, c.Path)
		if j.Aside == "" {
			from = filepath.Join(j.Staging+".aside", filepath.FromSlash(c.Path))
		}
		if _, err := os.Lstat(from); err != nil {
			continue
		}
		to := filepath.Join(j.Root, filepath.FromSlash(c.Path))
		cur, err := worktreeBlob(to)
		if err != nil || (cur != "" && cur != c.NewHash) {
			continue // changed since, or in the way: undoSwitch decides
		}
		if cur != "" {
			if err := os.Remove(to); err != nil {
				return err
			}
		}
		// A directory on the way that is a file of the new commit's is
		// removed by undoSwitch, which then writes the old content.
		if os.MkdirAll(filepath.Dir(to), 0o755) == nil {
			_ = os.Rename(from, to)
		}
	}
	return nil
}

// treeEntry is a path's blob and mode in a tree, "" when absent.
func treeEntry(fsys fs.FS, path string) (hash, mode string) {
	t, ok := fsys.(*TreeFS)
	if !ok {
		return "", ""
	}
	h, err := t.BlobHash(path)
	if err != nil {
		return "", ""
	}
	st, err := fs.Stat(fsys, path)
	if err != nil {
		return h, "100644"
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		return h, "120000"
	case st.Mode()&0o111 != 0:
		return h, "100755"
	}
	return h, "100644"
}

// worktreeBlob is the git blob id of a file in the working tree ("" when
// it is absent), a symlink's being that of its target.
func worktreeBlob(full string) (string, error) {
	st, err := os.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var data []byte
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(full)
		if err != nil {
			return "", err
		}
		data = []byte(t)
	case st.Mode().IsRegular():
		if data, err = os.ReadFile(full); err != nil {
			return "", err
		}
	default:
		return "dir", nil
	}
	return plumbing.ComputeHash(plumbing.BlobObject, data).String(), nil
}

// writeBlob makes full hold blob hash with mode; "" removes it.
func (r *Repo) writeBlob(full, hash, mode string) error {
	if hash == "" {
		if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	var data []byte
	err := r.goGit(func(g *gitRepo) error {
		var err error
		data, err = g.BlobObject(plumbing.NewHash(hash))
		return err
	})
	if err != nil {
		return fmt.Errorf("read blob %s: %w", short(hash), err)
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	_ = os.Remove(full)
	if mode == "120000" {
		return os.Symlink(string(data), full)
	}
	perm := os.FileMode(0o644)
	if mode == "100755" {
		perm = 0o755
	}
	return os.WriteFile(full, data, perm)
}

// linkFile creates path with content, failing with fs.ErrExist when it
// exists: the content is written to a temporary file in tmpDir (on the
// same file system) first, named after this process so that a kill's
// leftover can be told from a live one's (removeStaleStaging).
func linkFile(path, tmpDir string, content []byte) error {
	tmp, err := writeLinkTemp(tmpDir, content, false)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Link(tmp, path)
}

// writeLinkTemp writes content to a new temporary file in tmpDir, named
// after this process (removeStaleStaging), synced when durable, for
// linking into place; the caller removes it.
func writeLinkTemp(tmpDir string, content []byte, durable bool) (string, error) {
	f, err := os.CreateTemp(tmpDir, fmt.Sprintf("lock-tmp-%d-*", os.Getpid()))
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	_, err = f.Write(content)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}
