package gitstate

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Staging in the process. Stage is git add -A and git write-tree on the
// worktree's private index; stageInProcess does the same without starting
// git: it reads the index, compares each tracked file's lstat data with the
// index's (as git does), hashes the files that changed and the untracked
// ones that are not ignored, writes their blobs and the trees as loose
// objects (looseobj.go), and writes the new index under its lock file. It
// declines, leaving the work to git, wherever git would do more than that:
// content conversion (core.autocrlf, .gitattributes with text, eol, filter,
// ident or working-tree-encoding, an attributes file: info/attributes, the
// global or the system's, $(prefix)/etc/gitattributes), core.filemode,
// core.symlinks or core.ignorecase changed from a Linux default, ignore
// patterns other than plain names and * (**, ?, [...], backslashes),
// nested repositories and submodules, unmerged, skip-worktree,
// assume-unchanged or intent-to-add entries, files other than regular
// files and symbolic links, files larger than stageMaxFile, an index
// version or extension it does not know, or the index lock held.

// stageMaxFile is the largest file hashed in the process.
const stageMaxFile = 32 << 20

// errStageByGit says the stage is left to git.
var errStageByGit = errors.New("staged by git")

// OversizeFile is a file that Worktree.LimitFiles's function refused,
// left out of the stage unread.
type OversizeFile struct {
	Path string // relative to the worktree, slash-separated
	Size int64
}

// SpecialFileError is a .gitignore or .gitattributes in a worktree that
// is a named pipe, a socket or a device, or a file over MaxPatternFile:
// git add, which reads it without asking what it is, would wait on a pipe
// forever, and reads a .gitignore whole into memory (a sparse one of
// 20 GB costs a step nothing to make), so the stage fails rather than
// leave it to git.
type SpecialFileError struct {
	Path string
	Mode os.FileMode
	Size int64 // of a regular file
}

// Error names the special file and its kind.
func (e *SpecialFileError) Error() string {
	kind := "a special file"
	switch {
	case e.Mode.IsRegular():
		return fmt.Sprintf("%s is %d bytes: git reads it whole for patterns, and one over %d MiB is refused",
			e.Path, e.Size, MaxPatternFile>>20)
	case e.Mode&os.ModeNamedPipe != 0:
		kind = "a named pipe"
	case e.Mode&os.ModeSocket != 0:
		kind = "a socket"
	case e.Mode&os.ModeDevice != 0:
		kind = "a device"
	}
	return fmt.Sprintf("%s is %s: git reads it for patterns and would wait on it", e.Path, kind)
}

// MaxPatternFile is the largest .gitignore or .gitattributes a worktree
// may hold: git's own limit for an attributes file (it ignores a larger
// one), 100 MiB. git reads a .gitignore whole, whatever its size.
const MaxPatternFile = 100 << 20

// isSpecial reports whether m is a named pipe, a socket or a device.
func isSpecial(m os.FileMode) bool {
	return m&(os.ModeNamedPipe|os.ModeSocket|os.ModeDevice|os.ModeCharDevice|os.ModeIrregular) != 0
}

// badPatternFile is the error for the pattern file p (a .gitignore or
// .gitattributes) that st describes when it is special or over
// MaxPatternFile, nil otherwise.
func badPatternFile(p string, st os.FileInfo) *SpecialFileError {
	switch {
	case isSpecial(st.Mode()):
		return &SpecialFileError{Path: p, Mode: st.Mode()}
	case st.Mode().IsRegular() && st.Size() > MaxPatternFile:
		return &SpecialFileError{Path: p, Mode: st.Mode(), Size: st.Size()}
	}
	return nil
}

// indexEntry is one entry of an index file (version 2 or 3, stage 0).
type indexEntry struct {
	ctimeS, ctimeN, mtimeS, mtimeN uint32
	dev, ino, mode, uid, gid, size uint32
	hash                           [20]byte
	name                           string
}

// gitIndex is an index file as stageInProcess reads it.
type gitIndex struct {
	version uint32
	entries []indexEntry
	trees   map[string][20]byte // the valid cached trees (TREE), by directory ("" is the root)
	mtime   time.Time
}

// readIndex reads an index file; errStageByGit for anything it does not
// understand exactly.
func readIndex(p string) (*gitIndex, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	return parseIndex(data, st.ModTime())
}

// indexEntryCount is the number of entries an index file's header gives.
func indexEntryCount(p string) (int, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var head [12]byte
	if _, err := io.ReadFull(f, head[:]); err != nil || string(head[:4]) != "DIRC" {
		return 0, errStageByGit
	}
	return int(binary.BigEndian.Uint32(head[8:12])), nil
}

// parseIndex is readIndex of an index's content, written at mtime.
func parseIndex(data []byte, mtime time.Time) (*gitIndex, error) {
	if len(data) < 12+20 || string(data[:4]) != "DIRC" {
		return nil, errStageByGit
	}
	body, sum := data[:len(data)-20], data[len(data)-20:]
	if want := sha1.Sum(body); !bytes.Equal(want[:], sum) {
		return nil, errStageByGit // index.skipHash, or damaged: git judges
	}
	idx := &gitIndex{version: binary.BigEndian.Uint32(data[4:8]), trees: map[string][20]byte{}, mtime: mtime}
	if idx.version != 2 && idx.version != 3 {
		return nil, errStageByGit
	}
	n := int(binary.BigEndian.Uint32(data[8:12]))
	off := 12
	idx.entries = make([]indexEntry, 0, n)
	for range n {
		e, next, ok := readIndexEntry(body, off)
		if !ok {
			return nil, errStageByGit
		}
		idx.entries = append(idx.entries, e)
		off = next
	}
	for off < len(body) {
		if off+8 > len(body) {
			return nil, errStageByGit
		}
		sig := string(body[off : off+4])
		size := int(binary.BigEndian.Uint32(body[off+4 : off+8]))
		off += 8
		if size < 0 || off+size > len(body) {
			return nil, errStageByGit
		}
		ext := body[off : off+size]
		off += size
		switch {
		case sig == "TREE":
			if _, err := parseCacheTree(ext, "", idx.trees); err != nil {
				return nil, errStageByGit
			}
		case sig[0] >= 'A' && sig[0] <= 'Z':
			// An optional extension (resolve-undo, untracked cache, ...):
			// git drops or rebuilds them; so does this.
		default:
			return nil, errStageByGit // split index, sparse index, ...
		}
	}
	return idx, nil
}

// readIndexEntry reads the entry at off: only stage 0 entries without
// assume-valid or extended flags are taken.
func readIndexEntry(b []byte, off int) (indexEntry, int, bool) {
	const fixed = 62
	if off+fixed > len(b) {
		return indexEntry{}, 0, false
	}
	u := func(i int) uint32 { return binary.BigEndian.Uint32(b[off+4*i:]) }
	e := indexEntry{ctimeS: u(0), ctimeN: u(1), mtimeS: u(2), mtimeN: u(3), dev: u(4), ino: u(5),
		mode: u(6), uid: u(7), gid: u(8), size: u(9)}
	copy(e.hash[:], b[off+40:off+60])
	flags := binary.BigEndian.Uint16(b[off+60:])
	if flags&0x8000 != 0 || flags&0x4000 != 0 || (flags>>12)&3 != 0 {
		return indexEntry{}, 0, false // assume-valid, extended, unmerged
	}
	name := b[off+fixed:]
	end := bytes.IndexByte(name, 0)
	if end < 0 {
		return indexEntry{}, 0, false
	}
	if l := int(flags & 0xfff); l < 0xfff && l != end {
		return indexEntry{}, 0, false
	}
	e.name = string(name[:end])
	next := off + (fixed+end+8)&^7
	if next > len(b) {
		return indexEntry{}, 0, false
	}
	return e, next, true
}

// parseCacheTree reads one node of the TREE extension (and its subtrees)
// into trees, returning what is left.
func parseCacheTree(b []byte, dir string, trees map[string][20]byte) ([]byte, error) {
	bad := errors.New("bad cache tree")
	nul := bytes.IndexByte(b, 0)
	if nul < 0 {
		return nil, bad
	}
	name := string(b[:nul])
	b = b[nul+1:]
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return nil, bad
	}
	countStr, subStr, ok := strings.Cut(string(b[:nl]), " ")
	if !ok {
		return nil, bad
	}
	b = b[nl+1:]
	count, err1 := strconv.Atoi(countStr)
	subs, err2 := strconv.Atoi(subStr)
	if err1 != nil || err2 != nil || subs < 0 {
		return nil, bad
	}
	p := name
	if dir != "" {
		p = dir + "/" + name
	}
	if count >= 0 {
		if len(b) < 20 {
			return nil, bad
		}
		var h [20]byte
		copy(h[:], b[:20])
		trees[p] = h
		b = b[20:]
	}
	for range subs {
		if b, err1 = parseCacheTree(b, p, trees); err1 != nil {
			return nil, err1
		}
	}
	return b, nil
}

// stageInProcessMaxEntries is the size of index above which git stages:
// its add -A checks the tracked files' stat data on several threads, the
// walk here on one. Measured at 100,000 files (BenchmarkStepOverhead, a
// step in a row): 714 ms a step staged here, 448 ms staged by git.
var stageInProcessMaxEntries = 20000 // a variable for the tests of stagegit.go

// systemAttributes is git's attributes file for the whole machine as a
// git installed under /usr reads it ($(sysconfdir)/gitattributes); a
// variable for the tests.
var systemAttributes = "/etc/gitattributes"

// systemAttributeFiles are the files the git on path (the PATH git runs
// from) may read as the machine's attributes: /etc/gitattributes
// (systemAttributes) and the others of systemConfigDirs.
func (r *Repo) systemAttributeFiles() []string {
	files := []string{systemAttributes}
	for _, dir := range r.sysConfigDirs() {
		files = append(files, filepath.Join(dir, "gitattributes"))
	}
	return files
}

// sysDirsCache is what the repository looked up for a PATH: the PATH
// its git runs with (gitPATH), the git found there and systemConfigDirs'
// answer.
type sysDirsCache struct {
	mu      sync.Mutex
	path    string
	gitPath string
	dirs    []string
	ok      bool
}

// lookups are the repository's lookups for its PATH, made once until
// ForgetLookups: a step read the configuration about a dozen times, and
// each time walked PATH for git (a failed stat of git in every directory
// before its own, about 0.1 ms here). They are returned by value, read
// under the lock: a worker's fetch reads them while its run's goroutine
// may be making them afresh.
func (r *Repo) lookups() (gitPath string, dirs []string) {
	path := r.getenv("PATH")
	r.sysDirs.mu.Lock()
	defer r.sysDirs.mu.Unlock()
	if !r.sysDirs.ok || r.sysDirs.path != path {
		c := &r.sysDirs
		c.path, c.gitPath, c.ok = path, r.outsidePath(path), true
		c.dirs = systemConfigDirs(c.gitPath)
	}
	return r.sysDirs.gitPath, r.sysDirs.dirs
}

// sysConfigDirs is systemConfigDirs for the PATH the repository's git
// runs with.
func (r *Repo) sysConfigDirs() []string {
	_, dirs := r.lookups()
	return dirs
}

// gitPath is the PATH the repository's git runs with, and is found on
// (see outsidePath).
func (r *Repo) gitPath() string {
	gitPath, _ := r.lookups()
	return gitPath
}

// outsidePath is path without its relative entries and without the
// directories inside the repository's working tree or git directory: steps land files in
// the working tree (a bin/git, where direnv's PATH_add bin put it on
// PATH), and the git commands codemachine runs outside the sandbox run in
// a step's worktree. A git found there, or an ssh, gpg or git-lfs the
// real git starts from PATH, would be the step's program, run unconfined.
func (r *Repo) outsidePath(path string) string {
	// The root as given and with its links followed, and so each entry:
	// either way in says it is inside.
	roots := []string{filepath.Clean(r.root)}
	if r.commonDir != "" {
		// Where the steps' worktrees are, when it is not in the
		// working tree (a git directory elsewhere).
		roots = append(roots, filepath.Clean(r.commonDir))
	}
	if r.gitDir == "" {
		// Not found yet (Open runs git to find it, from the directory
		// it was given): any directory above that holds a .git may be
		// the working tree.
		roots = append(roots, candidateRoots(r.root)...)
	}
	var resolved []string
	for _, root := range roots {
		if rr, err := filepath.EvalSymlinks(root); err == nil {
			resolved = append(resolved, rr)
		}
	}
	roots = append(roots, resolved...)
	inside := func(dir string) bool {
		return slices.ContainsFunc(roots, func(root string) bool {
			return dir == root || strings.HasPrefix(dir, root+string(filepath.Separator))
		})
	}
	var keep []string
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) || inside(filepath.Clean(dir)) {
			continue
		}
		if rd, err := filepath.EvalSymlinks(dir); err == nil && inside(rd) {
			continue
		}
		keep = append(keep, dir)
	}
	return strings.Join(keep, string(filepath.ListSeparator))
}

// candidateRoots are the working trees git may find from dir: the
// nearest of dir and its parent directories that holds a .git, where git's
// discovery stops (not the farther ones: a home directory that is a
// repository of dotfiles would take ~/bin off PATH), and the one
// GIT_WORK_TREE names.
func candidateRoots(dir string) []string {
	var out []string
	if wt := os.Getenv("GIT_WORK_TREE"); filepath.IsAbs(wt) {
		out = append(out, filepath.Clean(wt))
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return append(out, d)
		}
		if filepath.Dir(d) == d {
			return out
		}
	}
}

// findGit is the first git program in path's directories, as
// exec.LookPath finds one in PATH.
func findGit(path string) (string, error) {
	return findProgram(path, "git")
}

// findProgram is the first program name in path's directories, as
// exec.LookPath finds one in PATH.
func findProgram(path, name string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		bin := filepath.Join(dir, name)
		if st, err := os.Stat(bin); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return bin, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// ForgetLookups drops what the repository looked up outside it and keeps
// between calls (which git PATH finds, hence where the machine's
// configuration and attributes are): a run calls it as it starts, so that
// a git installed meanwhile counts from the next run on.
func (r *Repo) ForgetLookups() {
	r.sysDirs.mu.Lock()
	r.sysDirs.ok = false
	r.sysDirs.mu.Unlock()
}

// systemConfigDirs are the directories besides /etc where the git on path
// may keep the machine's gitconfig and gitattributes: its $(sysconfdir),
// which git's Makefile makes /etc for prefix /usr and $(prefix)/etc
// otherwise (git 2.42's `git var GIT_ATTR_SYSTEM` prints the attributes
// file; git 2.39 has no way to ask). The prefix is the directory above
// the bin/ that holds git, as PATH names it and with its links resolved
// (Homebrew links PREFIX/bin/git into its Cellar). A directory that is not
// git's costs only a stat, and at most the staging done by git.
func systemConfigDirs(path string) []string {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue // git is not found relative to the directory it runs in
		}
		bin := filepath.Join(dir, "git")
		if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			continue
		}
		paths := []string{bin}
		if resolved, err := filepath.EvalSymlinks(bin); err == nil && resolved != bin {
			paths = append(paths, resolved)
		}
		var dirs []string
		for _, p := range paths {
			if prefix := filepath.Dir(filepath.Dir(p)); prefix != "/usr" {
				dirs = append(dirs, filepath.Join(prefix, "etc"))
			}
		}
		return dirs
	}
	return nil
}

// stageRules is what the configuration says about staging: in-process
// or not, and the ignore files to read.
type stageRules struct {
	excludesFile string // core.excludesFile or its default; "" for none
	infoExclude  string
}

// stageRulesFor returns the rules, or errStageByGit when the
// configuration asks for more than stageInProcess does.
func (r *Repo) stageRulesFor(ctx context.Context) (stageRules, error) {
	if _, err := r.objectsDir(); err != nil {
		return stageRules{}, errStageByGit
	}
	c, err := r.fastConfigFor(ctx)
	if err != nil {
		return stageRules{}, err
	}
	if !c.isBool("core.autocrlf", false) || !c.isBool("core.filemode", true) || !c.isBool("core.symlinks", true) ||
		!c.isBool("core.ignorecase", false) || !c.isBool("core.precomposeunicode", false) ||
		!c.isBool("core.sparsecheckout", false) || !c.isBool("core.splitindex", false) ||
		!c.isBool("core.protectntfs", false) || !c.isBool("core.protecthfs", false) {
		return stageRules{}, errStageByGit
	}
	for _, k := range []string{"core.bigfilethreshold", "core.attributesfile", "core.eol"} {
		if _, set := c.get(k); set {
			return stageRules{}, errStageByGit
		}
	}
	xdg := r.getenv("XDG_CONFIG_HOME")
	if home := r.getenv("HOME"); xdg == "" && home != "" {
		xdg = filepath.Join(home, ".config")
	}
	attrFiles := []string{filepath.Join(r.commonDir, "info", "attributes")}
	// The system's attributes, beside the system configuration, unless
	// git is told to skip them; where one is there, git converts what it
	// says for every repository of the machine.
	if v := r.getenv("GIT_ATTR_NOSYSTEM"); v == "" || normalizeBool(v) != "true" {
		attrFiles = append(attrFiles, r.systemAttributeFiles()...)
	}
	rules := stageRules{infoExclude: filepath.Join(r.commonDir, "info", "exclude")}
	if xdg != "" {
		attrFiles = append(attrFiles, filepath.Join(xdg, "git", "attributes"))
		rules.excludesFile = filepath.Join(xdg, "git", "ignore")
	}
	for _, f := range attrFiles {
		if _, err := os.Lstat(f); err == nil {
			return stageRules{}, errStageByGit
		}
	}
	if v, set := c.get("core.excludesfile"); set {
		if rules.excludesFile = r.expandPath(v); rules.excludesFile == "" {
			return stageRules{}, errStageByGit
		}
	}
	return rules, nil
}

// convertingAttrs are the attributes under which git add changes a file's
// content (or may: a filter, line endings, an encoding, $Id$).
var convertingAttrs = map[string]bool{"text": true, "eol": true, "crlf": true, "filter": true, "ident": true,
	"working-tree-encoding": true}

// checkAttributes reads a .gitattributes file: errStageByGit unless none
// of its lines sets an attribute that changes what git add stores (unset
// ones, -text or the binary macro, change nothing), defines a macro, or
// quotes its pattern.
func checkAttributes(p string) error {
	st, err := os.Lstat(p)
	if err == nil {
		if se := badPatternFile(p, st); se != nil {
			return se
		}
	}
	if err != nil || !st.Mode().IsRegular() {
		return errStageByGit
	}
	data, err := os.ReadFile(p)
	if err != nil || bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		return errStageByGit
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if strings.HasPrefix(fields[0], "[attr]") || strings.HasPrefix(fields[0], "\"") {
			return errStageByGit
		}
		for _, a := range fields[1:] {
			if strings.HasPrefix(a, "-") || strings.HasPrefix(a, "!") {
				continue // unset or unspecified: no conversion without core.autocrlf
			}
			name, _, _ := strings.Cut(a, "=")
			if convertingAttrs[name] {
				return errStageByGit
			}
		}
	}
	return nil
}

// ignorePattern is one line of an ignore file, of the forms handled here.
type ignorePattern struct {
	pattern  string
	negated  bool
	dirOnly  bool
	anchored bool   // matched against the path from base, else the name
	base     string // the directory of the ignore file ("" for the top)
}

// ignoreList is the patterns of one file.
type ignoreList []ignorePattern

// parseIgnore reads an ignore file whose patterns apply under base; a
// missing file has none.
func parseIgnore(p, base string) (ignoreList, error) {
	st, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err == nil {
		if se := badPatternFile(p, st); se != nil {
			return nil, se
		}
	}
	if err != nil || !st.Mode().IsRegular() {
		return nil, errStageByGit // a symbolic link, a directory: git's rules
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, errStageByGit
	}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		return nil, errStageByGit
	}
	var out ignoreList
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimRight(line, " ")
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.ContainsAny(line, "\r\\[?\x00") || strings.Contains(line, "**") {
			return nil, errStageByGit
		}
		pat := ignorePattern{base: base}
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			pat.negated, line = true, rest
		}
		if rest, ok := strings.CutSuffix(line, "/"); ok {
			pat.dirOnly, line = true, rest
		}
		if strings.Contains(line, "/") {
			pat.anchored = true
			line = strings.TrimPrefix(line, "/")
		}
		if line == "" || strings.HasSuffix(line, "/") || strings.Contains(line, "//") {
			return nil, errStageByGit
		}
		pat.pattern = line
		out = append(out, pat)
	}
	return out, nil
}

// match reports whether the list decides rel (a path from the top): found,
// and then whether it is excluded. The last matching line wins.
func (l ignoreList) match(rel string, isDir bool) (found, excluded bool) {
	for i := len(l) - 1; i >= 0; i-- {
		p := l[i]
		if p.dirOnly && !isDir {
			continue
		}
		sub := rel
		if p.base != "" {
			var ok bool
			if sub, ok = strings.CutPrefix(rel, p.base+"/"); !ok {
				continue
			}
		}
		target := sub
		if !p.anchored {
			target = path.Base(sub)
		}
		if ok, _ := path.Match(p.pattern, target); ok {
			return true, !p.negated
		}
	}
	return false, false
}

// ignorer decides what is ignored with git's precedence: the .gitignore
// files from the path's directory up to the top, then info/exclude, then
// core.excludesFile.
type ignorer struct {
	dirs  []ignoreList // the .gitignore files of the directories being walked, top first
	files []ignoreList // info/exclude, then core.excludesFile
}

func (ig *ignorer) excluded(rel string, isDir bool) bool {
	for i := len(ig.dirs) - 1; i >= 0; i-- {
		if found, ex := ig.dirs[i].match(rel, isDir); found {
			return ex
		}
	}
	for _, l := range ig.files {
		if found, ex := l.match(rel, isDir); found {
			return ex
		}
	}
	return false
}

// stager is one in-process stage of a worktree.
type stager struct {
	r       *Repo
	root    string
	tracked map[string]*indexEntry // the index's entries by path
	dirs    map[string]bool        // directories with tracked files
	seen    map[string]bool        // tracked paths found in the worktree
	touched map[string]bool        // directories ("" the top) with an entry added, removed or changed
	out     []indexEntry           // the new index's entries
	ig      ignorer
	racy    int64 // the index file's mtime, seconds: entries at or after it are hashed again
	// tooLarge, when set, says which files may not be staged (see
	// Worktree.LimitFiles); leftOut are those it refused.
	tooLarge func(rel string, size int64) bool
	leftOut  []OversizeFile
}

// stageInProcess stages the worktree in its private index as git add -A
// would and returns the tree git write-tree would; errStageByGit when git
// must do it (see the top of this file). The index is written last, under
// its lock: until then nothing but objects has been written.
func (w *Worktree) stageInProcess(ctx context.Context) (string, error) {
	r := w.repo
	rules, err := r.stageRulesFor(ctx)
	if err != nil {
		return "", err
	}
	mu := r.writerFor(w.path)
	mu.Lock()
	defer mu.Unlock()
	lock := w.index + ".lock"
	lf, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return "", errStageByGit // held: git waits for it
	}
	done := false
	defer func() {
		if !done {
			lf.Close()
			os.Remove(lock)
		}
	}()
	if n, err := indexEntryCount(w.index); err != nil || n > stageInProcessMaxEntries {
		return "", errStageByGit // before the whole index is hashed and parsed for nothing
	}
	idx, err := readIndex(w.index)
	if err != nil {
		return "", errStageByGit
	}
	s, err := w.newStager(idx)
	if err != nil {
		return "", err
	}
	for _, f := range []string{rules.infoExclude, rules.excludesFile} {
		if f == "" {
			continue
		}
		l, err := parseIgnore(f, "")
		if err != nil {
			return "", err
		}
		s.ig.files = append(s.ig.files, l)
	}
	if err := s.walk(""); err != nil {
		return "", err
	}
	for name := range s.tracked {
		if !s.seen[name] {
			s.touch(name) // removed
		}
	}
	sort.Slice(s.out, func(i, j int) bool { return s.out[i].name < s.out[j].name })
	root, err := s.writeTrees(idx.trees)
	if err != nil {
		return "", err
	}
	s.smudgeRacy()
	data := encodeIndex(idx.version, s.out, root)
	if _, err := lf.Write(data); err != nil {
		return "", errStageByGit
	}
	if err := lf.Close(); err != nil {
		return "", errStageByGit
	}
	if err := os.Rename(lock, w.index); err != nil {
		return "", errStageByGit
	}
	done = true
	w.leftOut = s.leftOut
	return hex.EncodeToString(root.hash[:]), nil
}

// newStager is the stager of the worktree's index idx: errStageByGit for
// an entry it does not stage as git would (gitlinks, a missing
// .gitattributes, a .gitmodules).
func (w *Worktree) newStager(idx *gitIndex) (*stager, error) {
	s := &stager{r: w.repo, root: w.path, tracked: make(map[string]*indexEntry, len(idx.entries)),
		dirs: map[string]bool{}, seen: map[string]bool{}, touched: map[string]bool{}, racy: idx.mtime.Unix(),
		tooLarge: w.tooLarge, out: make([]indexEntry, 0, len(idx.entries)+8)}
	for i := range idx.entries {
		e := &idx.entries[i]
		switch e.mode {
		case 0o100644, 0o100755, 0o120000:
		default:
			return nil, errStageByGit // gitlinks
		}
		if b := path.Base(e.name); strings.EqualFold(b, ".gitattributes") || strings.EqualFold(b, ".gitmodules") {
			// git reads a tracked .gitattributes from the index when
			// the file is gone: only one that is there is read here.
			if _, err := os.Lstat(filepath.Join(w.path, filepath.FromSlash(e.name))); b != ".gitattributes" || err != nil {
				return nil, errStageByGit
			}
		}
		s.tracked[e.name] = e
		for d := path.Dir(e.name); d != "."; d = path.Dir(d) {
			if s.dirs[d] {
				break
			}
			s.dirs[d] = true
		}
	}
	return s, nil
}

// walk stages the directory dir (relative, "" for the top) and what is
// under it. Its entries are looked at relative to the directory, opened
// once (fstatat): an lstat of each file by its absolute path walked every
// directory above it again, about half of the stage's time at 1,000 files
// in a pooled worktree ten directories down.
func (s *stager) walk(dir string) error {
	abs := filepath.Join(s.root, filepath.FromSlash(dir))
	names, err := sortedNames(abs)
	if err != nil {
		return err
	}
	d, err := os.OpenRoot(abs)
	if err != nil {
		return errStageByGit
	}
	defer d.Close()
	pushed := false
	for _, n := range names {
		if n == ".gitignore" {
			l, err := parseIgnore(filepath.Join(abs, n), dir)
			if err != nil {
				return err
			}
			s.ig.dirs = append(s.ig.dirs, l)
			pushed = true
		}
	}
	if pushed {
		defer func() { s.ig.dirs = s.ig.dirs[:len(s.ig.dirs)-1] }()
	}
	for _, n := range names {
		if strings.EqualFold(n, ".git") {
			if dir == "" && n == ".git" {
				continue // the scratch repository
			}
			return errStageByGit // a nested repository
		}
		if n == ".gitattributes" {
			if err := checkAttributes(filepath.Join(abs, n)); err != nil {
				return err
			}
		} else if strings.EqualFold(n, ".gitattributes") || strings.EqualFold(n, ".gitmodules") {
			return errStageByGit
		}
		rel := n
		if dir != "" {
			rel = dir + "/" + n
		}
		if (IsGitAlias(n) || IsGitmodulesAlias(n)) && s.tracked[rel] == nil {
			// git refuses it (a .gitmodules alias as a symbolic link):
			// stageWithGit leaves it out and says so, and no tree holding
			// it is written, which git fsck --strict would reject even
			// unreachable.
			return errStageByGit
		}
		st, err := d.Lstat(n)
		if err != nil {
			return errStageByGit
		}
		if err := s.entry(rel, st); err != nil {
			return err
		}
	}
	return nil
}

// sortedNames lists the directory abs, sorted; errStageByGit when it
// cannot be read.
func sortedNames(abs string) ([]string, error) {
	f, err := os.Open(abs)
	if err != nil {
		return nil, errStageByGit
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, errStageByGit
	}
	sort.Strings(names)
	return names, nil
}

// entry stages one path of the worktree, which lstat describes as st.
func (s *stager) entry(rel string, st os.FileInfo) error {
	abs := filepath.Join(s.root, filepath.FromSlash(rel))
	if st.IsDir() {
		ex := s.ig.excluded(rel, true)
		if ex && s.dirs[rel] {
			return errStageByGit // tracked files under an ignored directory
		}
		if ex {
			return nil
		}
		return s.walk(rel)
	}
	old := s.tracked[rel]
	if old == nil && s.ig.excluded(rel, false) {
		return nil
	}
	e, err := statEntry(rel, st)
	if err != nil {
		return err
	}
	if old != nil {
		s.seen[rel] = true
		if sameStat(old, &e) && int64(old.mtimeS) < s.racy {
			s.out = append(s.out, *old)
			return nil
		}
	}
	if s.tooLarge != nil && e.mode != 0o120000 && s.tooLarge(rel, st.Size()) {
		// Left out unread, as git add with the path excluded: a tracked
		// file keeps its entry.
		s.leftOut = append(s.leftOut, OversizeFile{Path: rel, Size: st.Size()})
		if old != nil {
			s.out = append(s.out, *old)
		}
		return nil
	}
	if st.Size() > stageMaxFile {
		return errStageByGit
	}
	data, err := readContent(abs, e.mode)
	if err != nil {
		return errStageByGit
	}
	e.hash = blobID(data)
	if old == nil || old.hash != e.hash {
		if _, err := s.r.writeObject("blob", data); err != nil {
			return err
		}
	}
	if old == nil || old.hash != e.hash || old.mode != e.mode {
		s.touch(rel)
	}
	s.out = append(s.out, e)
	return nil
}

// touch marks the directories of rel as changed: their trees are written
// again, the others' are the index's cached ones.
func (s *stager) touch(rel string) {
	for d := path.Dir(rel); ; d = path.Dir(d) {
		if d == "." {
			d = ""
		}
		if s.touched[d] {
			return
		}
		s.touched[d] = true
		if d == "" {
			return
		}
	}
}

// statEntry is the index entry of a file as lstat describes it, without
// its id; errStageByGit for what is neither a file nor a symbolic link.
func statEntry(rel string, st os.FileInfo) (indexEntry, error) {
	mode := st.Mode()
	var gitMode uint32
	switch {
	case mode.IsRegular() && mode&0o100 != 0:
		gitMode = 0o100755
	case mode.IsRegular():
		gitMode = 0o100644
	case mode&os.ModeSymlink != 0:
		gitMode = 0o120000
	default:
		return indexEntry{}, errStageByGit // a fifo, a socket, a device
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return indexEntry{}, errStageByGit
	}
	return indexEntry{ctimeS: uint32(sys.Ctim.Sec), ctimeN: uint32(sys.Ctim.Nsec), mtimeS: uint32(sys.Mtim.Sec),
		mtimeN: uint32(sys.Mtim.Nsec), dev: uint32(sys.Dev), ino: uint32(sys.Ino), mode: gitMode,
		uid: sys.Uid, gid: sys.Gid, size: uint32(st.Size()), name: rel}, nil
}

// sameStat reports whether an entry's stat data says the file did not
// change (the fields git compares, the device left out).
func sameStat(a, b *indexEntry) bool {
	return a.mode == b.mode && a.size == b.size && a.mtimeS == b.mtimeS && a.mtimeN == b.mtimeN &&
		a.ctimeS == b.ctimeS && a.ctimeN == b.ctimeN && a.ino == b.ino && a.uid == b.uid && a.gid == b.gid
}

// sameStatToTheSecond is sameStat without the nanoseconds, which git
// built without USE_NSEC (the default, Debian's and Ubuntu's git among
// them) does not compare: a file changed within the second of its entry,
// to the same size, looks unchanged to it.
func sameStatToTheSecond(a, b *indexEntry) bool {
	return a.mode == b.mode && a.size == b.size && a.mtimeS == b.mtimeS && a.ctimeS == b.ctimeS &&
		a.ino == b.ino && a.uid == b.uid && a.gid == b.gid
}

// readContent is what git stores of a file: its bytes, or a symbolic
// link's target.
func readContent(abs string, mode uint32) ([]byte, error) {
	if mode == 0o120000 {
		target, err := os.Readlink(abs)
		return []byte(target), err
	}
	return os.ReadFile(abs)
}

// blobID is the id git gives a blob of data.
func blobID(data []byte) [20]byte {
	h := sha1.New()
	h.Write([]byte("blob " + strconv.Itoa(len(data)) + "\x00"))
	h.Write(data)
	var id [20]byte
	copy(id[:], h.Sum(nil))
	return id
}

// treeNode is a directory of the staged tree, as the TREE extension
// records it.
type treeNode struct {
	name  string
	count int // index entries under it
	hash  [20]byte
	subs  []*treeNode
}

// writeTrees writes the trees of the staged entries (those the old index
// cached with the same id are there already) and returns the root.
func (s *stager) writeTrees(cached map[string][20]byte) (*treeNode, error) {
	node, rest, err := s.writeTree(s.out, "", "", cached)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errStageByGit
	}
	return node, nil
}

// writeTree writes the tree of the directory dir, whose entries start
// entries (sorted), and returns what follows them.
func (s *stager) writeTree(entries []indexEntry, dir, name string, cached map[string][20]byte) (*treeNode, []indexEntry, error) {
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	node := &treeNode{name: name}
	// Nothing under a directory the index cached a tree for changed: that
	// tree is its tree, and its entries are only counted (the cache tree
	// records counts and subtrees), not encoded again.
	c, reuse := cached[dir]
	reuse = reuse && !s.touched[dir]
	var raw []rawEntry
	for len(entries) > 0 && strings.HasPrefix(entries[0].name, prefix) {
		rest := entries[0].name[len(prefix):]
		first, _, nested := strings.Cut(rest, "/")
		if !nested {
			if !reuse {
				e := entries[0]
				raw = append(raw, rawEntry{name: rest, mode: strconv.FormatUint(uint64(e.mode), 8), hash: hex.EncodeToString(e.hash[:])})
			}
			node.count++
			entries = entries[1:]
			continue
		}
		sub, after, err := s.writeTree(entries, prefix+first, first, cached)
		if err != nil {
			return nil, nil, err
		}
		node.subs = append(node.subs, sub)
		node.count += sub.count
		if !reuse {
			raw = append(raw, rawEntry{name: first, mode: treeMode, hash: hex.EncodeToString(sub.hash[:])})
		}
		entries = after
	}
	if reuse {
		node.hash = c
		return node, entries, nil
	}
	data, err := encodeTree(raw)
	if err != nil {
		return nil, nil, err
	}
	h := sha1.New()
	h.Write([]byte("tree " + strconv.Itoa(len(data)) + "\x00"))
	h.Write(data)
	copy(node.hash[:], h.Sum(nil))
	if c, ok := cached[dir]; !ok || c != node.hash {
		if _, err := s.r.writeObject("tree", data); err != nil {
			return nil, nil, err
		}
	}
	return node, entries, nil
}

// smudgeRacy does what git does before it writes an index: an entry
// modified in the second of the index read or later, whose file still
// looks as the entry says (to the second: see sameStatToTheSecond) but
// whose content is no longer the entry's (a change made while the stage
// ran, or since the index was last written, within the same second and of
// the same size), is written with size 0, so that whoever reads the index
// next compares its content.
func (s *stager) smudgeRacy() {
	for i := range s.out {
		e := &s.out[i]
		if int64(e.mtimeS) < s.racy {
			continue
		}
		abs := filepath.Join(s.root, filepath.FromSlash(e.name))
		st, err := os.Lstat(abs)
		if err != nil {
			continue // changed: seen as such
		}
		now, err := statEntry(e.name, st)
		if err != nil || !sameStatToTheSecond(e, &now) {
			continue
		}
		data, err := readContent(abs, e.mode)
		if err != nil || blobID(data) != e.hash {
			e.size = 0
		}
	}
}

// encodeIndex is an index file of entries (sorted) with root as its cache
// tree. It appends to one buffer sized up front: an index of 100,000
// entries is written on every landing and every stage, and encoding it
// field by field through encoding/binary's reflection cost more than
// 100 ms.
func encodeIndex(version uint32, entries []indexEntry, root *treeNode) []byte {
	var tree bytes.Buffer
	writeCacheTree(&tree, root)
	size := 12 + 8 + tree.Len() + sha1.Size
	for i := range entries {
		size += (62 + len(entries[i].name) + 8) &^ 7
	}
	be := binary.BigEndian
	b := make([]byte, 0, size)
	b = append(b, "DIRC"...)
	b = be.AppendUint32(b, version)
	b = be.AppendUint32(b, uint32(len(entries)))
	for i := range entries {
		e := &entries[i]
		for _, v := range [10]uint32{e.ctimeS, e.ctimeN, e.mtimeS, e.mtimeN, e.dev, e.ino, e.mode, e.uid, e.gid, e.size} {
			b = be.AppendUint32(b, v)
		}
		b = append(b, e.hash[:]...)
		b = be.AppendUint16(b, uint16(min(len(e.name), 0xfff)))
		b = append(b, e.name...)
		pad := (62+len(e.name)+8)&^7 - (62 + len(e.name))
		for range pad {
			b = append(b, 0)
		}
	}
	b = append(b, "TREE"...)
	b = be.AppendUint32(b, uint32(tree.Len()))
	b = append(b, tree.Bytes()...)
	sum := sha1.Sum(b)
	return append(b, sum[:]...)
}

// writeCacheTree writes node as the TREE extension records it: subtrees in
// git's order (shorter names first, then bytewise).
func writeCacheTree(b *bytes.Buffer, node *treeNode) {
	b.WriteString(node.name)
	b.WriteByte(0)
	b.WriteString(strconv.Itoa(node.count) + " " + strconv.Itoa(len(node.subs)) + "\n")
	b.Write(node.hash[:])
	subs := append([]*treeNode{}, node.subs...)
	sort.Slice(subs, func(i, j int) bool {
		if len(subs[i].name) != len(subs[j].name) {
			return len(subs[i].name) < len(subs[j].name)
		}
		return subs[i].name < subs[j].name
	})
	for _, sub := range subs {
		writeCacheTree(b, sub)
	}
}
