package gitstate

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// The status of one directory in the process. Every codemachine run asks
// which files under .codemachine/ differ from HEAD (uncommitted workflow
// edits, which it does not use); git status for that was a git process in
// every run, the only one of a run that lands nothing. statusUnder answers
// it from the user's index, HEAD's tree and an lstat of the directory,
// under the in-process stage's conditions (stagefast.go): where git could
// see more (content conversion, ignore patterns beyond plain names and *,
// another index format, a nested repository, a special file), it declines
// and git status answers.

// statusUnder lists, sorted, the paths under dir (a slash path relative to
// the top) that differ from HEAD: staged, unstaged or untracked and not
// ignored. errStageByGit where git must say.
func (r *Repo) statusUnder(ctx context.Context, dir string) ([]string, error) {
	dir = path.Clean(dir)
	if dir == "." || dir == ".." || strings.HasPrefix(dir, "../") || path.IsAbs(dir) || r.root == "" {
		return nil, errStageByGit
	}
	if _, set := r.lookupEnv("GIT_INDEX_FILE"); set {
		return nil, errStageByGit
	}
	rules, err := r.stageRulesFor(ctx)
	if err != nil {
		return nil, errStageByGit
	}
	head, err := r.Head()
	if err != nil || head.Commit == "" {
		return nil, errStageByGit
	}
	idx, err := readIndex(filepath.Join(r.gitDir, "index"))
	if err != nil {
		return nil, errStageByGit
	}
	st := &dirStatus{r: r, dir: dir, changed: map[string]bool{}, tracked: map[string]*indexEntry{}}
	if err := st.staged(head.Commit, idx); err != nil {
		return nil, err
	}
	if err := st.unstaged(idx); err != nil {
		return nil, err
	}
	if err := st.untracked(rules); err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(st.changed))
	for p := range st.changed {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths, nil
}

// dirStatus is one statusUnder.
type dirStatus struct {
	r       *Repo
	dir     string
	changed map[string]bool        // the answer
	tracked map[string]*indexEntry // the index's entries under dir
}

// staged compares the index's entries under the directory with HEAD's.
func (s *dirStatus) staged(commit string, idx *gitIndex) error {
	tree, err := s.r.TreeFS(commit)
	if err != nil {
		return errStageByGit
	}
	headFiles := map[string]treeObjEntry{}
	err = tree.(*TreeFS).listEntries(s.dir, func(p string, e treeObjEntry) { headFiles[p] = e })
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errStageByGit
	}
	if _, ok := headFiles[s.dir]; ok {
		return errStageByGit // the directory is a file in HEAD
	}
	prefix := s.dir + "/"
	for i := range idx.entries {
		e := &idx.entries[i]
		if e.name == s.dir {
			return errStageByGit // a file in the index
		}
		if !strings.HasPrefix(e.name, prefix) {
			continue
		}
		if e.mode != 0o100644 && e.mode != 0o100755 && e.mode != 0o120000 {
			return errStageByGit // a submodule
		}
		s.tracked[e.name] = e
		h, ok := headFiles[e.name]
		if !ok || uint32(h.Mode) != e.mode || h.Hash != e.hash {
			s.changed[e.name] = true
		}
	}
	for p := range headFiles {
		if s.tracked[p] == nil {
			s.changed[p] = true
		}
	}
	return nil
}

// unstaged compares the worktree's files with the index's entries: by
// lstat data, as git does, and by content where that does not settle it
// (the entry is as new as the index file: racily clean).
func (s *dirStatus) unstaged(idx *gitIndex) error {
	racy := idx.mtime.Unix()
	realDirs := map[string]bool{}
	for name, e := range s.tracked {
		if s.changed[name] {
			continue
		}
		if !s.underRealDirs(path.Dir(name), realDirs) {
			s.changed[name] = true // beyond a symbolic link: git takes it for deleted
			continue
		}
		abs := filepath.Join(s.r.root, filepath.FromSlash(name))
		fi, err := os.Lstat(abs)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			s.changed[name] = true // deleted
			continue
		}
		if err != nil {
			return errStageByGit
		}
		if fi.IsDir() {
			s.changed[name] = true // replaced by a directory, whose files untracked lists
			continue
		}
		cur, err := statEntry(name, fi)
		if err != nil {
			return err
		}
		if sameStat(e, &cur) && int64(e.mtimeS) < racy {
			continue
		}
		if cur.mode != e.mode {
			s.changed[name] = true
			continue
		}
		if fi.Size() > stageMaxFile {
			return errStageByGit
		}
		data, err := readContent(abs, cur.mode)
		if err != nil {
			return errStageByGit
		}
		if blobID(data) != e.hash {
			s.changed[name] = true
		}
	}
	return nil
}

// underRealDirs reports whether dir (relative) and each directory above
// it is a directory, not a symbolic link to one, with the answers kept in
// seen.
func (s *dirStatus) underRealDirs(dir string, seen map[string]bool) bool {
	if dir == "." || dir == "" {
		return true
	}
	if ok, found := seen[dir]; found {
		return ok
	}
	fi, err := os.Lstat(filepath.Join(s.r.root, filepath.FromSlash(dir)))
	ok := err == nil && fi.IsDir() && s.underRealDirs(path.Dir(dir), seen)
	seen[dir] = ok
	return ok
}

// untracked adds the files under the directory that the index does not
// have and no ignore file excludes. The ignore and attributes files of the
// directories above it count as they do for git.
func (s *dirStatus) untracked(rules stageRules) error {
	w := &stager{root: s.r.root}
	for _, f := range []string{rules.infoExclude, rules.excludesFile} {
		if f == "" {
			continue
		}
		l, err := parseIgnore(f, "")
		if err != nil {
			return errStageByGit
		}
		w.ig.files = append(w.ig.files, l)
	}
	parts := strings.Split(s.dir, "/")
	for i := range parts {
		base := strings.Join(parts[:i], "/")
		absBase := filepath.Join(s.r.root, filepath.FromSlash(base))
		l, err := parseIgnore(filepath.Join(absBase, ".gitignore"), base)
		if err != nil {
			return errStageByGit
		}
		w.ig.dirs = append(w.ig.dirs, l)
		if err := checkAttributesIfThere(filepath.Join(absBase, ".gitattributes")); err != nil {
			return errStageByGit
		}
		sub := strings.Join(parts[:i+1], "/")
		fi, err := os.Lstat(filepath.Join(s.r.root, filepath.FromSlash(sub)))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil // nothing there: nothing untracked
		}
		if err != nil || !fi.IsDir() {
			return errStageByGit // a file or a link on the way: git's rules
		}
		if w.ig.excluded(sub, true) {
			return nil // git does not look into an ignored directory
		}
	}
	return s.walkUntracked(w, s.dir)
}

// walkUntracked adds the untracked files of the directory rel and below.
func (s *dirStatus) walkUntracked(w *stager, rel string) error {
	abs := filepath.Join(s.r.root, filepath.FromSlash(rel))
	names, err := sortedNames(abs)
	if err != nil {
		return err
	}
	l, err := parseIgnore(filepath.Join(abs, ".gitignore"), rel)
	if err != nil {
		return errStageByGit
	}
	w.ig.dirs = append(w.ig.dirs, l)
	defer func() { w.ig.dirs = w.ig.dirs[:len(w.ig.dirs)-1] }()
	for _, n := range names {
		if strings.EqualFold(n, ".git") || IsGitAlias(n) || IsGitmodulesAlias(n) {
			return errStageByGit // a nested repository, or a name git treats apart
		}
		if strings.EqualFold(n, ".gitattributes") {
			if err := checkAttributes(filepath.Join(abs, n)); err != nil {
				return errStageByGit
			}
		}
		child := rel + "/" + n
		fi, err := os.Lstat(filepath.Join(abs, n))
		if err != nil {
			return errStageByGit
		}
		switch {
		case fi.IsDir():
			if !w.ig.excluded(child, true) {
				if err := s.walkUntracked(w, child); err != nil {
					return err
				}
			}
		case s.tracked[child] != nil, w.ig.excluded(child, false):
		case !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0:
			return errStageByGit // a fifo, a socket, a device
		default:
			s.changed[child] = true
		}
	}
	return nil
}

// checkAttributesIfThere is checkAttributes for a file that may be
// missing.
func checkAttributesIfThere(p string) error {
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	return checkAttributes(p)
}
