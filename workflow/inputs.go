package workflow

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"
)

// ResolveInputs returns the files matching the patterns, sorted by path and
// without duplicates, each with its git blob id. A literal pattern that
// names a directory stands for every file under it; a pattern that matches
// nothing contributes nothing (an input not written yet). .git is never
// looked into. Hashes come from fsys when it implements BlobHasher (a
// commit's tree knows them without reading the files), else from reading
// the files.
func ResolveInputs(fsys fs.FS, patterns []string) ([]InputFile, error) {
	return resolveFiles(fsys, patterns, true)
}

// resolveFiles is ResolveInputs; with wholeTrees false every file is
// listed on its own even where a tree id could stand for a directory (a
// glob fan-out needs each file's blob id).
func resolveFiles(fsys fs.FS, patterns []string, wholeTrees bool) ([]InputFile, error) {
	if lister, ok := fsys.(FileLister); ok {
		return resolveListed(lister, patterns, wholeTrees)
	}
	rfs := repoFS{fsys}
	seen := map[string]bool{}
	var paths []string
	addPath := func(p string) {
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	for _, pat := range patterns {
		clean, msg := checkGlob(pat)
		if msg != "" {
			return nil, fmt.Errorf("input %q: %s", pat, msg)
		}
		if !hasMeta(clean) {
			// The common case, a named file: one stat, no directory
			// reads.
			info, err := rfs.Stat(clean)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				continue
			case err != nil:
				return nil, fmt.Errorf("input %q: %w", pat, err)
			case !info.IsDir():
				addPath(clean)
				continue
			}
			err = fs.WalkDir(rfs, clean, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.IsDir() {
					addPath(p)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("input %q: %w", pat, err)
			}
			continue
		}
		// doublestar walks only below the pattern's literal prefix.
		err := doublestar.GlobWalk(rfs, clean, func(p string, d fs.DirEntry) error {
			if !d.IsDir() {
				addPath(p)
			}
			return nil
		}, doublestar.WithFilesOnly(), doublestar.WithNoFollow(), doublestar.WithFailOnIOErrors())
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", pat, err)
		}
	}
	slices.Sort(paths)
	hasher, _ := fsys.(BlobHasher)
	out := make([]InputFile, 0, len(paths))
	for _, p := range paths {
		var h string
		var err error
		if !utf8.ValidString(p) && hasher == nil {
			// os.DirFS opens no name that is not UTF-8 (fs.ValidPath):
			// listed without its blob id, for the glob fan-out to refuse
			// as a task (checkTaskID) as a commit's tree, which reads it,
			// does.
			out = append(out, InputFile{Path: p})
			continue
		}
		if hasher != nil {
			h, err = hasher.BlobHash(p)
		} else {
			h, err = hashFile(fsys, p)
		}
		if errors.Is(err, errIsDir) || errors.Is(err, ErrNotRegular) {
			continue // a symlink to a directory, a named pipe: no file of git's
		}
		if err != nil {
			return nil, fmt.Errorf("hash input %s: %w", p, err)
		}
		out = append(out, InputFile{Path: p, Hash: h})
	}
	return out, nil
}

// TreeHasher is implemented by file systems that know a directory's git
// tree id (a commit's tree). An input that takes a whole directory (a
// literal directory, or DIR/**) then contributes that one id instead of a
// line per file: the tree id stands for exactly the same list of paths and
// blob ids, and costs one lookup instead of reading every subdirectory,
// which is what keeps status and every step's load fast on large inputs.
type TreeHasher interface {
	// TreeHash returns the git tree id of directory name; fs.ErrNotExist
	// when it is absent, an error when it is not a directory.
	TreeHash(name string) (string, error)
}

// WholeTreePrefix marks an InputFile that stands for a whole directory:
// its Path is the directory with a trailing slash and its Hash this prefix
// followed by the directory's git tree id.
const WholeTreePrefix = "tree:"

// FileLister is implemented by file systems that can list every file
// under a directory with its git blob id in one pass (a commit's tree), so
// that resolving a step's inputs reads each directory once and hashes
// nothing: status has to fingerprint every step.
type FileLister interface {
	// ListFiles calls fn for every file (or symlink) at or below name, in
	// no particular order; name "." is the root. A missing name is
	// fs.ErrNotExist.
	ListFiles(name string, fn func(path, hash string)) error
}

// wholeDir reports whether pattern takes every file under one directory:
// DIR/** (or a literal name, which may be a directory), and which.
func wholeDir(pattern string) (string, bool) {
	if dir, ok := strings.CutSuffix(pattern, "/**"); ok && !hasMeta(dir) {
		return dir, true
	}
	return pattern, !hasMeta(pattern)
}

// resolveListed is ResolveInputs through a FileLister: each pattern's
// literal prefix is listed and its files matched against the pattern.
func resolveListed(lister FileLister, patterns []string, wholeTrees bool) ([]InputFile, error) {
	found := map[string]string{}
	var hasher TreeHasher
	if wholeTrees {
		hasher, _ = lister.(TreeHasher)
	}
	for _, pat := range patterns {
		clean, msg := checkGlob(pat)
		if msg != "" {
			return nil, fmt.Errorf("input %q: %s", pat, msg)
		}
		if dir, whole := wholeDir(clean); whole && hasher != nil && dir != "." {
			id, err := hasher.TreeHash(dir)
			switch {
			case err == nil:
				found[dir+"/"] = WholeTreePrefix + id
				continue
			case errors.Is(err, fs.ErrNotExist):
				continue
			}
			// Not a directory (a file named like one): list it below.
		}
		base, match := clean, func(string) bool { return true }
		if hasMeta(clean) {
			base, _ = doublestar.SplitPattern(clean)
			match = func(p string) bool {
				ok, _ := doublestar.Match(clean, p)
				return ok
			}
		}
		err := lister.ListFiles(base, func(p, hash string) {
			if p == ".git" || strings.HasPrefix(p, ".git/") || !match(p) {
				return
			}
			found[p] = hash
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("input %q: %w", pat, err)
		}
	}
	out := make([]InputFile, 0, len(found))
	for p, h := range found {
		out = append(out, InputFile{Path: p, Hash: h})
	}
	slices.SortFunc(out, func(a, b InputFile) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

var errIsDir = errors.New("is a directory")

// copyBufs saves hashFile a 32 KiB allocation per file: a status check
// hashes every input of every step.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// onlyReader hides a file's WriterTo so that io.CopyBuffer uses the
// pooled buffer.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// hashFile computes a file's git blob id, streaming it so that a large
// input does not have to fit in memory. A symbolic link is hashed as git
// stores it, as its target path, when fsys can tell (os.DirFS can).
func hashFile(fsys fs.FS, name string) (string, error) {
	if rl, ok := fsys.(fs.ReadLinkFS); ok {
		info, err := rl.Lstat(name)
		if err != nil {
			return "", err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := rl.ReadLink(name)
			if err != nil {
				return "", err
			}
			return BlobID([]byte(target)), nil
		}
		if !info.IsDir() && !info.Mode().IsRegular() {
			// Opening a named pipe would wait for a writer; git keeps
			// none of these.
			return "", ErrNotRegular
		}
	}
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	if info.IsDir() {
		return "", errIsDir
	}
	h := sha1.New()
	h.Write([]byte("blob " + strconv.FormatInt(info.Size(), 10) + "\x00"))
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	n, err := io.CopyBuffer(h, onlyReader{f}, *buf)
	if err != nil {
		return "", err
	}
	if n != info.Size() {
		return "", fmt.Errorf("%s changed while it was read", name)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// BlobID returns the git blob id of content: what `git hash-object` prints.
func BlobID(content []byte) string {
	h := sha1.New()
	h.Write([]byte("blob " + strconv.Itoa(len(content)) + "\x00"))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

// CacheFS wraps fsys for one pass over many steps (a status check, the
// planning of a run): each file's blob id is computed once and each
// directory listed once, however many steps' inputs touch them. It does not
// notice edits, so make a new one per pass. The result implements
// BlobHasher; when fsys does too, its answers are cached.
func CacheFS(fsys fs.FS) fs.FS {
	return &cacheFS{fsys: fsys, hashes: map[string]string{}, dirs: map[string][]fs.DirEntry{}}
}

type cacheFS struct {
	fsys   fs.FS
	mu     sync.Mutex
	hashes map[string]string
	dirs   map[string][]fs.DirEntry
}

// BlobHash returns the cached blob id of name, computing it on first use.
func (c *cacheFS) BlobHash(name string) (string, error) {
	c.mu.Lock()
	h, ok := c.hashes[name]
	c.mu.Unlock()
	if ok {
		return h, nil
	}
	var err error
	if bh, isHasher := c.fsys.(BlobHasher); isHasher {
		h, err = bh.BlobHash(name)
	} else {
		h, err = hashFile(c.fsys, name)
	}
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.hashes[name] = h
	c.mu.Unlock()
	return h, nil
}

// ReadDir implements fs.ReadDirFS with a cache; errors are not cached.
func (c *cacheFS) ReadDir(name string) ([]fs.DirEntry, error) {
	c.mu.Lock()
	entries, ok := c.dirs[name]
	c.mu.Unlock()
	if ok {
		return slices.Clone(entries), nil
	}
	entries, err := fs.ReadDir(c.fsys, name)
	if err != nil {
		return entries, err
	}
	c.mu.Lock()
	c.dirs[name] = entries
	c.mu.Unlock()
	return slices.Clone(entries), nil
}

// Open opens name in the wrapped file system.
func (c *cacheFS) Open(name string) (fs.File, error) { return c.fsys.Open(name) }

// Stat implements fs.StatFS.
func (c *cacheFS) Stat(name string) (fs.FileInfo, error) { return fs.Stat(c.fsys, name) }

// ReadFile implements fs.ReadFileFS.
func (c *cacheFS) ReadFile(name string) ([]byte, error) { return fs.ReadFile(c.fsys, name) }

// ReadLink implements fs.ReadLinkFS when the wrapped file system can.
func (c *cacheFS) ReadLink(name string) (string, error) { return fs.ReadLink(c.fsys, name) }

// Lstat implements fs.ReadLinkFS when the wrapped file system can.
func (c *cacheFS) Lstat(name string) (fs.FileInfo, error) { return fs.Lstat(c.fsys, name) }

// MatchesInputs reports whether the file path is one that the input
// patterns (as a step lists them) take: a glob's match, a literal file,
// or a file under a literal directory.
func MatchesInputs(patterns []string, p string) bool {
	for _, pat := range patterns {
		clean, msg := checkGlob(pat)
		if msg != "" {
			continue
		}
		if !hasMeta(clean) {
			if p == clean || strings.HasPrefix(p, clean+"/") {
				return true
			}
			continue
		}
		if ok, _ := doublestar.Match(clean, p); ok {
			return true
		}
	}
	return false
}
