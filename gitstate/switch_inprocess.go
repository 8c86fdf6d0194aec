package gitstate

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
)

// The staged switch's preparation in the process: the check git's
// read-tree -m -u -n makes, and the new files and index that read-tree
// -m -u writes into the staging directory, done without starting git
// whenever the check can be vouched for by the rules below, which are
// stricter than git's own:
//
//   - every changed path is, in the user's index, exactly what the old
//     commit has (or absent with it), and its file is up to date with that
//     entry by stat data that is not racy, or by content;
//   - a path the new commit adds has no file, directory or index entry in
//     the way, and no tracked file stands where one of its directories goes;
//   - nothing converts content on checkout (the same configuration and
//     attribute rules as the in-process stage), no submodule, no index
//     entry or extension this package does not read exactly.
//
// Anything else (a user's change in the way included) returns
// errStageByGit and git decides, exactly as before.

// prepareInProcess stages the switch in s.staging and writes the new index
// to s.tmp; errStageByGit when git must do it.
func (s *stagedSwitch) prepareInProcess(ctx context.Context) error {
	if _, err := s.r.stageRulesFor(ctx); err != nil {
		return errStageByGit
	}
	idx, err := parseIndex(s.snapshot, s.snapshotTime)
	if err != nil {
		return errStageByGit
	}
	for i := range idx.entries {
		if idx.entries[i].mode == 0o160000 {
			return errStageByGit
		}
	}
	if err := s.checkInProcess(idx); err != nil {
		return err
	}
	entries, err := s.writeStaged(ctx, idx)
	if err != nil {
		return err
	}
	if err := s.writeSwitchIndex(idx, entries); err != nil {
		return err
	}
	s.staged = entries
	return nil
}

// rebuildIndex is called under the lock when the user's index changed
// since the switch was prepared in-process (a git add of theirs, say): if
// the changed paths' entries are still the old commit's and the index was
// not just written whole (a checkout, reset or commit writes a complete
// cache tree, and a checkout moves HEAD only after releasing the lock),
// the new index is made again from the index as it is now.
func (s *stagedSwitch) rebuildIndex() error {
	if s.staged == nil {
		return errStagedStale // prepared by git
	}
	idx, err := readIndex(s.index)
	if err != nil {
		return errStagedStale
	}
	if _, fresh := s.r.indexUnsettled(s.co, s.index); fresh {
		if _, whole := idx.trees[""]; whole {
			return errStagedStale
		}
	}
	for i := range idx.entries {
		if idx.entries[i].mode == 0o160000 {
			return errStagedStale
		}
	}
	if err := s.entriesAllow(idx, nil); err != nil {
		return errStagedStale
	}
	if err := s.writeSwitchIndex(idx, s.staged); err != nil {
		return errStagedStale
	}
	return nil
}

// checkInProcess is read-tree -n's check, by the stricter rules above.
func (s *stagedSwitch) checkInProcess(idx *gitIndex) error {
	if changesNest(s.changes) {
		return errStageByGit // a file becomes a directory or the other way round
	}
	byName := make(map[string]*indexEntry, len(idx.entries))
	for i := range idx.entries {
		byName[idx.entries[i].name] = &idx.entries[i]
	}
	checkedDirs := map[string]bool{}
	for _, c := range s.changes {
		if isAttributesFile(c.Path) {
			return errStageByGit
		}
		if err := s.checkDirs(c.Path, byName, checkedDirs); err != nil {
			return err
		}
		if c.OldMode == "" {
			if _, err := os.Lstat(s.worktreePath(c.Path)); !errors.Is(err, fs.ErrNotExist) {
				return errStageByGit // in the way (or unreadable): git decides
			}
		}
	}
	return s.entriesAllow(idx, byName)
}

// entriesAllow checks the index's entries of the changed paths: each is
// the old commit's (or absent with it, nothing staged below it), and the
// file of each is up to date with it.
func (s *stagedSwitch) entriesAllow(idx *gitIndex, byName map[string]*indexEntry) error {
	if byName == nil {
		byName = make(map[string]*indexEntry, len(idx.entries))
		for i := range idx.entries {
			byName[idx.entries[i].name] = &idx.entries[i]
		}
	}
	for _, c := range s.changes {
		e := byName[c.Path]
		if c.OldMode == "" {
			if e != nil || entriesUnder(idx.entries, c.Path) {
				return errStageByGit
			}
			continue
		}
		if e == nil || !entryIs(e, c.OldMode, c.OldHash) {
			return errStageByGit // the user staged something here
		}
		if !s.upToDate(e, idx) {
			return errStageByGit
		}
	}
	return nil
}

// checkDirs checks the directories above p: each one there is a real
// directory, not a tracked file, and none holds a .gitattributes that
// could convert content.
func (s *stagedSwitch) checkDirs(p string, byName map[string]*indexEntry, checked map[string]bool) error {
	for d := path.Dir(p); ; d = path.Dir(d) {
		if d == "." {
			d = ""
		}
		if checked[d] {
			return nil
		}
		checked[d] = true
		attrs := path.Join(d, ".gitattributes")
		_, tracked := byName[attrs]
		if _, err := os.Lstat(s.worktreePath(attrs)); err == nil {
			if checkAttributes(s.worktreePath(attrs)) != nil {
				return errStageByGit
			}
		} else if tracked || !errors.Is(err, fs.ErrNotExist) {
			return errStageByGit // git would read the index's copy
		}
		if d == "" {
			return nil
		}
		if byName[d] != nil {
			return errStageByGit
		}
		st, err := os.Lstat(s.worktreePath(d))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil, !st.IsDir():
			return errStageByGit
		}
	}
}

// upToDate reports whether the file of entry e is as the entry says: by
// stat data written before the index (not racy), or by its content.
func (s *stagedSwitch) upToDate(e *indexEntry, idx *gitIndex) bool {
	st, err := os.Lstat(s.worktreePath(e.name))
	if err != nil {
		return false
	}
	now, err := statEntry(e.name, st)
	if err != nil || now.mode != e.mode {
		return false
	}
	if sameStat(e, &now) && int64(e.mtimeS) < idx.mtime.Unix() {
		return true
	}
	data, err := readContent(s.worktreePath(e.name), e.mode)
	return err == nil && blobID(data) == e.hash
}

// writeStaged writes the new commit's files of every added or modified
// path into the staging directory and returns their index entries.
func (s *stagedSwitch) writeStaged(ctx context.Context, idx *gitIndex) ([]indexEntry, error) {
	var out []indexEntry
	for _, c := range s.changes {
		if c.NewMode == "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		mode, err := strconv.ParseUint(c.NewMode, 8, 32)
		if err != nil {
			return nil, errStageByGit
		}
		data, err := s.r.blobBytes(c.NewHash)
		if err != nil {
			return nil, fmt.Errorf("read %s of %s: %w", c.Path, short(s.cas.new), err)
		}
		abs := s.stagedFile(c.Path)
		if err := writeCheckedOut(abs, uint32(mode), data); err != nil {
			return nil, fmt.Errorf("stage %s: %w", c.Path, err)
		}
		st, err := os.Lstat(abs)
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", c.Path, err)
		}
		e, err := statEntry(c.Path, st)
		if err != nil {
			return nil, errStageByGit
		}
		e.mode = uint32(mode)
		if _, err := hex.Decode(e.hash[:], []byte(c.NewHash)); err != nil {
			return nil, errStageByGit
		}
		out = append(out, e)
	}
	return out, nil
}

// writeSwitchIndex writes the user's index with the changed paths replaced
// by the staged entries to s.tmp, with a cache tree valid throughout.
func (s *stagedSwitch) writeSwitchIndex(idx *gitIndex, staged []indexEntry) error {
	changed := make(map[string]bool, len(s.changes))
	st := &stager{r: s.r, root: s.co.root, touched: map[string]bool{}, racy: idx.mtime.Unix()}
	// Sized up front: an entry is about 100 bytes, and growing a list of
	// 100,000 of them by appending copied it over and over (a third of
	// this function's time at that size).
	st.out = make([]indexEntry, 0, len(idx.entries)+len(staged))
	for _, c := range s.changes {
		changed[c.Path] = true
		st.touch(c.Path)
	}
	for _, e := range idx.entries {
		if !changed[e.name] {
			st.out = append(st.out, e)
		}
	}
	st.out = append(st.out, staged...)
	sort.Slice(st.out, func(i, j int) bool { return st.out[i].name < st.out[j].name })
	root, err := st.writeTrees(idx.trees)
	if err != nil {
		return err
	}
	// The entries carried over keep git's promise about racy ones (the
	// staged ones are not in the working tree yet, so they are skipped:
	// they are newer than nothing the index says).
	st.smudgeRacy()
	if err := os.WriteFile(s.tmp, encodeIndex(idx.version, st.out, root), 0o644); err != nil {
		return fmt.Errorf("write the new index: %w", err)
	}
	return nil
}

// writeCheckedOut writes a file as git's checkout does: the mode's
// permissions under the umask, or a symbolic link.
func writeCheckedOut(abs string, mode uint32, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(abs), 0o777); err != nil {
		return err
	}
	switch mode {
	case 0o120000:
		return os.Symlink(string(data), abs)
	case 0o100755, 0o100644:
	default:
		return errStageByGit
	}
	perm := os.FileMode(0o666)
	if mode == 0o100755 {
		perm = 0o777
	}
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// blobBytes is the content of a blob.
func (r *Repo) blobBytes(id string) ([]byte, error) {
	var data []byte
	err := r.goGit(func(g *gitRepo) error {
		var err error
		data, err = g.BlobObject(plumbing.NewHash(id))
		return err
	})
	return data, err
}

// entryIs reports whether an index entry has the given mode and id.
func entryIs(e *indexEntry, mode, id string) bool {
	return strconv.FormatUint(uint64(e.mode), 8) == mode && hex.EncodeToString(e.hash[:]) == id
}

// entriesUnder reports whether any entry (sorted) lies under directory p.
func entriesUnder(entries []indexEntry, p string) bool {
	prefix := p + "/"
	i := sort.Search(len(entries), func(i int) bool { return entries[i].name >= prefix })
	return i < len(entries) && strings.HasPrefix(entries[i].name, prefix)
}

// changesNest reports whether one changed path is a directory above
// another.
func changesNest(changes []Change) bool {
	paths := make(map[string]bool, len(changes))
	for _, c := range changes {
		paths[c.Path] = true
	}
	for _, c := range changes {
		for d := path.Dir(c.Path); d != "."; d = path.Dir(d) {
			if paths[d] {
				return true
			}
		}
	}
	return false
}

// isAttributesFile reports whether p is a .gitattributes or .gitmodules
// file, which change how other files are checked out.
func isAttributesFile(p string) bool {
	b := path.Base(p)
	return strings.EqualFold(b, ".gitattributes") || strings.EqualFold(b, ".gitmodules")
}
