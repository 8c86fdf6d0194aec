package gitstate

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A landing moves the user's checked-out branch together with their files
// and index, and must hold the index.lock while it does, as git itself
// would: otherwise a commit of the user's could slip in between the file
// update and the ref update. git never waits for an index.lock (a git add
// that finds it fails at once), so the time the lock is held is the time
// in which the user's own git commands fail. The staged switch keeps that
// time down to moving files and swapping the ref:
//
//   - prepared without the lock: a copy of the user's index is checked
//     against their working tree (read-tree -n: nothing of theirs would be
//     overwritten), then the new files are written into a staging
//     directory beside the repository, building the new index in the copy:
//     in the process where its stricter rules vouch for the check
//     (switch_inprocess.go), else by git;
//   - installed under the lock: if the user's index and the changed files
//     are as they were when checked, the staged files are renamed into
//     place (the replaced ones aside, to put back if the ref moved), the
//     ref is swapped, and the new index renamed over the lock.
//
// Whatever the preparation cannot vouch for (the index or a file changed
// meanwhile, a submodule, another file system) falls back to switchCheckout's
// update under the lock, which decides exactly as before.

// errNotStaged says the staged switch does not apply; the caller updates
// under the lock instead.
var errNotStaged = errors.New("the staged switch does not apply")

// errStagedStale says the user's index or files changed between the
// preparation and the lock: prepare again.
var errStagedStale = errors.New("the index or the working tree changed since the switch was prepared")

// stagedAttempts is how often a preparation overtaken by the user's own
// changes is redone before the update falls back to holding the lock
// throughout.
const stagedAttempts = 4

// fileStamp is what lstat says of a path, enough to tell that it did not
// change (a rewrite changes ctime even when size and mtime are kept).
type fileStamp struct {
	exists bool
	mode   fs.FileMode
	size   int64
	mtime  time.Time
	ctime  syscall.Timespec
	ino    uint64
}

func stampOf(path string) (fileStamp, error) {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fileStamp{}, nil
	}
	if err != nil {
		return fileStamp{}, err
	}
	s := fileStamp{exists: true, mode: st.Mode(), size: st.Size(), mtime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.ctime, s.ino = sys.Ctim, sys.Ino
	}
	return s, nil
}

// stagedSwitch is one prepared landing.
type stagedSwitch struct {
	r      *Repo
	co     checkout
	cas    refUpdate
	from   string // the old commit
	index  string // the user's index
	tmp    string // the new index, built from a snapshot of the user's
	digest [sha256.Size]byte
	// snapshot is the user's index as prepared against, written at
	// snapshotTime.
	snapshot     []byte
	snapshotTime time.Time
	staging      string // the new files: as git wrote them, or flat (stagedFile)
	flat         bool   // staged in-process, each file under its flat name
	aside        string // the replaced files, while the ref is not yet swapped
	changes      []Change
	stamps       map[string]fileStamp // the changed paths when they were checked
	staged       []indexEntry         // the new entries, when prepared in-process
	private      bool                 // a pooled worktree's index: no git of the user's writes it
	pooled       bool                 // staging may go back to the repository's pool (stagingPool)
	refs         *refSettings         // for the in-process ref swap; nil: git update-ref
}

// switchStaged lands cas on co's checkout with the staged switch; it
// returns errNotStaged when the caller must update under the lock.
func (r *Repo) switchStaged(ctx context.Context, co checkout, cas refUpdate) error {
	if cas.old == "" {
		return errNotStaged
	}
	for attempt := 0; attempt < stagedAttempts; attempt++ {
		s := &stagedSwitch{r: r, co: co, cas: cas, from: cas.old, index: filepath.Join(co.gitDir, "index")}
		err := s.prepare(ctx)
		if err == nil {
			err = s.install(ctx)
		}
		s.cleanup()
		if !errors.Is(err, errStagedStale) {
			return err
		}
	}
	return errNotStaged
}

// prepare checks and stages the update without taking the user's lock.
func (s *stagedSwitch) prepare(ctx context.Context) error {
	r := s.r
	changes, err := r.diffTreesInProcess(s.cas.old, s.cas.new)
	if err != nil {
		return fmt.Errorf("diff %s %s: %w", short(s.cas.old), short(s.cas.new), err)
	}
	for _, c := range changes {
		if c.OldMode == "160000" || c.NewMode == "160000" {
			return errNotStaged // submodules: let read-tree handle them in place
		}
	}
	if inWay, err := untrackedInWay(s.co.root, changes); err != nil || len(inWay) > 0 {
		return errNotStaged // the update under the lock checks again and reports
	}
	s.changes = changes
	if s.refs, err = r.refSettingsFor(ctx); err != nil {
		return err
	}
	if s.tmp, err = r.tempPath("switch-index"); err != nil {
		return err
	}
	if err := s.snapshotIndex(); err != nil {
		return err
	}
	if s.stamps, err = s.stampChanges(); err != nil {
		return err
	}
	if s.staging, err = s.stagingDir(); err != nil {
		return err
	}
	s.flat, s.aside = true, s.staging
	if err := s.prepareInProcess(ctx); !errors.Is(err, errStageByGit) {
		return err
	}
	// git decides: from an empty staging directory, the files it writes
	// there under their paths, the replaced ones aside in another.
	s.flat, s.aside = false, s.staging+".aside"
	if err := os.RemoveAll(s.staging); err != nil {
		return fmt.Errorf("empty the staging directory: %w", err)
	}
	if err := os.Mkdir(s.staging, 0o700); err != nil {
		return fmt.Errorf("make a staging directory: %w", err)
	}
	if err := s.writeSnapshot(); err != nil {
		return err
	}
	opts := runOpts{Dir: s.co.root, Env: []string{"GIT_INDEX_FILE=" + s.tmp}}
	check := []string{"read-tree", "-m", "-u", "-n", s.from, s.cas.new}
	if _, err := r.run(ctx, opts, false, check); err != nil {
		// Stat data alone may differ: refresh those paths in the copy and
		// check once more; anything still refused is for the update under
		// the lock to decide and report.
		if rerr := r.refreshPaths(ctx, opts, s.cas.old, s.cas.new); rerr != nil {
			return errNotStaged
		}
		if _, err := r.run(ctx, opts, false, check); err != nil {
			return errNotStaged
		}
	}
	opts.Env = append(opts.Env, "GIT_WORK_TREE="+s.staging)
	if _, err := r.run(ctx, opts, false, []string{"read-tree", "-m", "-u", s.from, s.cas.new}); err != nil {
		return errNotStaged
	}
	return nil
}

// snapshotIndex reads the user's index and remembers it, with its
// modification time and digest. The in-process preparation builds the new
// index from it; git's works on a copy (writeSnapshot).
func (s *stagedSwitch) snapshotIndex() error {
	f, err := os.Open(s.index)
	if errors.Is(err, fs.ErrNotExist) {
		return errNotStaged
	}
	if err != nil {
		return fmt.Errorf("read the index: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read the index: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("read the index: %w", err)
	}
	s.digest = indexDigest(data)
	s.snapshot, s.snapshotTime = data, st.ModTime()
	return nil
}

// writeSnapshot copies the snapshot of the user's index to tmp, keeping
// its modification time, so that git's racy-file detection judges the
// same.
func (s *stagedSwitch) writeSnapshot() error {
	if err := os.WriteFile(s.tmp, s.snapshot, 0o644); err != nil {
		return fmt.Errorf("copy the index: %w", err)
	}
	if err := os.Chtimes(s.tmp, s.snapshotTime, s.snapshotTime); err != nil {
		return fmt.Errorf("copy the index: %w", err)
	}
	return nil
}

// stampChanges lstats every path the update changes.
func (s *stagedSwitch) stampChanges() (map[string]fileStamp, error) {
	stamps := make(map[string]fileStamp, len(s.changes))
	for _, c := range s.changes {
		st, err := stampOf(s.worktreePath(c.Path))
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", c.Path, err)
		}
		stamps[c.Path] = st
	}
	return stamps, nil
}

// stagingDir makes an empty directory for the staged files on the working
// tree's file system (the files are renamed into place from it), or takes
// one an earlier switch of the run emptied (PoolStaging).
func (s *stagedSwitch) stagingDir() (string, error) {
	if dir, ok := s.r.staging.take(); ok {
		if !sameDevice(dir, s.co.root) {
			s.r.staging.put(dir)
			return "", errNotStaged
		}
		s.pooled = true
		return dir, nil
	}
	base, err := s.r.tempPath("switch-stage")
	if err != nil {
		return "", err
	}
	if !s.r.adoptSpareStaging(base) {
		if err := os.Mkdir(base, 0o700); err != nil {
			return "", fmt.Errorf("make a staging directory: %w", err)
		}
	}
	if !sameDevice(base, s.co.root) {
		_ = os.Remove(base)
		return "", errNotStaged
	}
	s.pooled = true
	return base, nil
}

// stagingPool keeps emptied staging directories for the next switch while
// a run goes on (Repo.PoolStaging): a landing and a pooled worktree's move
// each made one and removed it, and on a busy ext4 each directory made
// costs a new inode and each removed one slows the ones made after it.
// A directory is named by its process like any other (removeStaleStaging
// removes it once that process is gone, a kill -9 say), and one in the
// pool holds nothing.
type stagingPool struct {
	mu   sync.Mutex
	runs int      // PoolStaging callers not done yet; 0: no pooling
	free []string // empty staging directories
}

// take is an empty staging directory from the pool.
func (p *stagingPool) take() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		return "", false
	}
	dir := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return dir, true
}

// put keeps dir for the next switch when a run is going on and dir could
// be emptied; it reports whether it did (otherwise dir is the caller's to
// remove).
func (p *stagingPool) put(dir string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runs == 0 || emptyDir(dir) != nil {
		return false
	}
	p.free = append(p.free, dir)
	return true
}

// emptyDir removes everything in dir, leaving dir.
func emptyDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// PoolStaging keeps the staging directories of switches (landings, moves
// of pooled worktrees) for the next switch until the returned function is
// called, which removes them: a run calls it for its length.
func (r *Repo) PoolStaging() (done func()) {
	p := &r.staging
	p.mu.Lock()
	p.runs++
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.runs--; p.runs > 0 {
				return
			}
			for i, dir := range p.free {
				if i == 0 && r.keepSpareStaging(dir) {
					continue
				}
				_ = os.RemoveAll(dir)
			}
			p.free = nil
		})
	}
}

// spareStaging is the name under LocalDir of the empty staging directory
// a run leaves for the next one (keepSpareStaging): a run is often a
// process of its own, and making and removing a directory per run costs a
// new inode on a busy ext4 (stagingPool). It has no process in its name,
// so removeStaleStaging leaves it; a switch renames it to its own name
// before it puts anything in it, so that a kill leaves what it held to
// removeStaleStaging like any other.
const spareStaging = "switch-stage-spare"

// keepSpareStaging renames dir, an emptied staging directory, to the
// spare one; false when there is one already (it is the caller's to
// remove then).
func (r *Repo) keepSpareStaging(dir string) bool {
	spare := filepath.Join(r.LocalDir(), spareStaging)
	if _, err := os.Lstat(spare); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	return os.Rename(dir, spare) == nil
}

// adoptSpareStaging renames the spare staging directory to dir, which
// does not exist, and reports whether dir is now a directory as
// stagingDir makes one: private to this user, not a link, empty.
// Anything else taken over is removed again (a rename takes only one
// switch's claim on the spare, of any number of processes).
func (r *Repo) adoptSpareStaging(dir string) bool {
	if os.Rename(filepath.Join(r.LocalDir(), spareStaging), dir) != nil {
		return false
	}
	st, err := os.Lstat(dir)
	if err == nil && st.IsDir() && st.Mode().Perm() == 0o700 && ownedByMe(st) {
		if names, err := readDirNames(dir); err == nil && len(names) == 0 {
			return true
		}
	}
	_ = os.RemoveAll(dir)
	return false
}

// readDirNames are the names in dir.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func sameDevice(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	if errA != nil || errB != nil {
		return false
	}
	da, okA := sa.Sys().(*syscall.Stat_t)
	db, okB := sb.Sys().(*syscall.Stat_t)
	return okA && okB && da.Dev == db.Dev
}

func (s *stagedSwitch) worktreePath(p string) string {
	return filepath.Join(s.co.root, filepath.FromSlash(p))
}

// install takes the user's index lock and, if nothing changed since
// prepare, moves the staged files into place, swaps the ref and installs
// the new index.
func (s *stagedSwitch) install(ctx context.Context) error {
	r := s.r
	r.settleIndex(s.co, s.index)
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.hook("before-lock")
	journal := &switchJournal{Root: s.co.root, Index: s.index, Tmp: s.tmp, Ref: s.cas.ref, Old: s.cas.old, New: s.cas.new, Staging: s.staging, Aside: s.aside,
		Prior: s.tmp + ".prior", Msg: s.cas.msg}
	if err := r.beginSwitch(ctx, journal); err != nil {
		return err
	}
	defer func() {
		_ = os.Remove(journal.Prior)
		_ = os.Remove(journal.lock())
		_ = r.removeJournal()
	}()
	// From here on the working tree, the index and the ref must end up
	// consistent.
	ctx = context.WithoutCancel(ctx)
	if !s.co.on(s.cas.ref) {
		return errCheckoutMoved
	}
	if err := s.unchanged(); err != nil {
		return err
	}
	if tip, err := r.refHash(s.cas.ref); err == nil && tip != s.cas.old {
		return fmt.Errorf("update %s: %w (it is at %s)", s.cas.ref, ErrRefMoved, short(tip))
	}
	moved, err := s.moveIntoPlace()
	if err != nil {
		if uerr := s.undoMoves(moved); uerr != nil {
			return fmt.Errorf("update the working tree: %w; and restoring it failed: %v", err, uerr)
		}
		return fmt.Errorf("update the working tree: %w", err)
	}
	r.hook("before-ref-update")
	if err := s.asideUnchanged(); err != nil {
		if uerr := s.undoMoves(moved); uerr != nil {
			return fmt.Errorf("%w; and restoring the working tree failed: %v", err, uerr)
		}
		return err
	}
	// The new index goes in before the ref moves (priorindex.go).
	r.hook("before-index")
	if err := installIndex(s.tmp, s.index, journal.Prior); err != nil {
		if uerr := s.undoMoves(moved); uerr != nil {
			return fmt.Errorf("%w; and restoring the working tree failed: %v", err, uerr)
		}
		return err
	}
	if err := r.swapRef(ctx, s.cas, journal.env(), s.refs); err != nil {
		if uerr := takeBackIndex(s.tmp, s.index, journal.Prior); uerr != nil {
			return fmt.Errorf("%w; and restoring the index failed: %v", err, uerr)
		}
		if uerr := s.undoMoves(moved); uerr != nil {
			return fmt.Errorf("%w; and restoring the working tree failed: %v", err, uerr)
		}
		return err
	}
	r.hook("ref-updated")
	return nil
}

// unchanged reports errStagedStale when a changed path is not as prepare
// found it, or the user's index is not and the new one cannot be made
// again from it (rebuildIndex). An index written since the wait before the
// lock is never waited for holding the lock (the user's next git command,
// a commit after an add, would fail on it): the switch is prepared again.
func (s *stagedSwitch) unchanged() error {
	if err := s.filesUnchanged(); err != nil {
		return err
	}
	digest, err := indexFileDigest(s.index)
	if err != nil {
		return errStagedStale
	}
	_, fresh := s.r.indexUnsettled(s.co, s.index)
	if digest == s.digest && (!fresh || s.private) {
		return nil
	}
	return s.rebuildIndex()
}

// indexDigest identifies an index file's content: its trailing checksum,
// which git computes over everything before it, or, where it is zeros
// (index.skipHash), a hash of the content. Comparing trailers spares
// reading and hashing the whole index under the lock (ten megabytes at
// 100,000 files).
func indexDigest(data []byte) [sha256.Size]byte {
	var d [sha256.Size]byte
	if len(data) >= indexTrailer {
		if trailer := data[len(data)-indexTrailer:]; !allZero(trailer) {
			copy(d[:], trailer)
			return d
		}
	}
	return sha256.Sum256(data)
}

// indexTrailer is how many of an index's last bytes indexDigest compares:
// all of a SHA-1 checksum, the end of a SHA-256 one.
const indexTrailer = 20

// indexFileDigest is indexDigest of the index file at path, reading only
// its trailer when that is a checksum.
func indexFileDigest(path string) ([sha256.Size]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	if st.Size() >= indexTrailer {
		trailer := make([]byte, indexTrailer)
		if _, err := f.ReadAt(trailer, st.Size()-indexTrailer); err != nil {
			return [sha256.Size]byte{}, err
		}
		if !allZero(trailer) {
			return indexDigest(trailer), nil
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return indexDigest(data), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// filesUnchanged reports errStagedStale when a changed path is not as
// prepare found it.
func (s *stagedSwitch) filesUnchanged() error {
	now, err := s.stampChanges()
	if err != nil {
		return err
	}
	for p, st := range now {
		if st != s.stamps[p] {
			return errStagedStale
		}
	}
	return nil
}

// asideUnchanged reports errStagedStale when a file moved aside is not as
// the check under the lock found it: a write of the user's reached it
// between that check and its move (or through a descriptor opened
// before), and would be lost with it. The rename changed its ctime (and,
// for a file an overlay file system copies up, may change its inode), so
// its mode, size and mtime are compared.
func (s *stagedSwitch) asideUnchanged() error {
	for _, c := range s.changes {
		was := s.stamps[c.Path]
		if !was.exists || was.mode.IsDir() {
			continue
		}
		now, err := stampOf(asideFile(s.aside, c.Path))
		if err != nil {
			return err
		}
		if now.exists != was.exists || now.mode != was.mode || now.size != was.size || !now.mtime.Equal(was.mtime) {
			return errStagedStale
		}
	}
	return nil
}

// move is one rename done by moveIntoPlace, to be reversed if needed;
// made are the directories it created for it, outermost first.
type move struct {
	from, to string
	made     []string
}

// mkdirFor creates the missing directories above path and returns them,
// outermost first.
func mkdirFor(path string) ([]string, error) {
	var missing []string
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		if _, err := os.Lstat(dir); err == nil || dir == filepath.Dir(dir) {
			break
		}
		missing = append([]string{dir}, missing...)
	}
	for _, d := range missing {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	return missing, nil
}

// moveIntoPlace puts the replaced and deleted files aside, removes the
// directories that deletions leave empty (as git does), then renames the
// staged files into place. It returns the renames it did, in order.
func (s *stagedSwitch) moveIntoPlace() ([]move, error) {
	if s.aside == "" {
		return nil, errors.New("no directory to put the replaced files aside")
	}
	var moved []move
	rename := func(from, to string) error {
		made, err := mkdirFor(to)
		if err == nil {
			err = os.Rename(from, to)
		}
		if err != nil {
			removeDirs(made)
			return err
		}
		moved = append(moved, move{from, to, made})
		return nil
	}
	for _, c := range s.changes {
		// A directory where the new commit has a file is emptied by the
		// deletions below it (git checked that nothing untracked is in
		// it) and removed with them.
		if st := s.stamps[c.Path]; !st.exists || st.mode.IsDir() {
			continue
		}
		if err := rename(s.worktreePath(c.Path), asideFile(s.aside, c.Path)); err != nil {
			return moved, err
		}
		if c.NewMode == "" {
			s.removeEmptyParents(c.Path)
		}
	}
	for _, c := range s.changes {
		if c.NewMode == "" {
			continue
		}
		staged := s.stagedFile(c.Path)
		if _, err := os.Lstat(staged); errors.Is(err, fs.ErrNotExist) {
			continue // not checked out (outside a sparse checkout)
		}
		if err := rename(staged, s.worktreePath(c.Path)); err != nil {
			return moved, err
		}
	}
	return moved, nil
}

// removeEmptyParents removes the directories above a deleted path that are
// left empty, up to the top of the checkout.
func (s *stagedSwitch) removeEmptyParents(p string) {
	for dir := filepath.Dir(s.worktreePath(p)); dir != s.co.root && strings.HasPrefix(dir, s.co.root+string(filepath.Separator)); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			return
		}
	}
}

// undoMoves reverses renames, last first.
func (s *stagedSwitch) undoMoves(moved []move) error {
	var first error
	for i := len(moved) - 1; i >= 0; i-- {
		m := moved[i]
		if err := os.MkdirAll(filepath.Dir(m.from), 0o755); err != nil && first == nil {
			first = err
		}
		if err := os.Rename(m.to, m.from); err != nil && first == nil {
			first = err
		}
		removeDirs(m.made)
	}
	return first
}

// removeDirs removes the empty ones of dirs, innermost first.
func removeDirs(dirs []string) {
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i])
	}
}

// stagedFile is where the new content of path is staged. Staged
// in-process, each file is directly in the staging directory under a flat
// name: no directory is made for it (on a busy ext4 each new inode costs
// 0.3-1 ms). git writes the files under their paths.
func (s *stagedSwitch) stagedFile(path string) string {
	if s.flat {
		return filepath.Join(s.staging, "s-"+flatName(path))
	}
	return filepath.Join(s.staging, filepath.FromSlash(path))
}

// asideFile is where a replaced or deleted file of path is put, in the
// directory aside: under a flat name, which no staged file has.
func asideFile(aside, path string) string {
	return filepath.Join(aside, "a-"+flatName(path))
}

// flatName is a file name for path, different for each path: the path
// with % and / escaped, or, where that would be too long a name, a hash.
func flatName(path string) string {
	escaped := strings.NewReplacer("%", "%25", "/", "%2F").Replace(path)
	if len(escaped) <= 200 {
		return "p-" + escaped
	}
	return fmt.Sprintf("h-%x", sha256.Sum256([]byte(path)))
}

// cleanup removes what the switch left beside the repository; its
// staging directory, emptied, may go back to the pool instead.
func (s *stagedSwitch) cleanup() {
	if s.staging != "" && !(s.pooled && s.r.staging.put(s.staging)) {
		_ = os.RemoveAll(s.staging)
	}
	if s.aside != "" && s.aside != s.staging {
		_ = os.RemoveAll(s.aside)
	}
	if s.tmp != "" {
		_ = os.Remove(s.tmp)
		_ = os.Remove(s.tmp + ".lock")
	}
}

// removeStaleStaging removes what switches whose process is gone left under
// LocalDir: staging directories and index copies (killed while preparing,
// before any journal existed) and the temporary files of locks.
func (r *Repo) removeStaleStaging() {
	ents, err := os.ReadDir(r.LocalDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "switch-stage-") && !strings.HasPrefix(name, "switch-index-") && !strings.HasPrefix(name, "lock-tmp-") ||
			name == spareStaging {
			continue
		}
		// prefix-word-PID-...
		fields := strings.Split(strings.TrimSuffix(name, ".aside"), "-")
		if len(fields) < 4 {
			continue
		}
		pid, err := strconv.Atoi(fields[2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); (err == nil || errors.Is(err, syscall.EPERM)) && !procDead(pid) {
			continue // alive
		}
		_ = os.RemoveAll(filepath.Join(r.LocalDir(), name))
	}
}
