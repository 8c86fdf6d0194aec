package gitstate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// UsesCache holds the git repositories that workflows import (uses:
// GIT_URL@REF, init --template), one bare repository per URL, under
// .git/codemachine/cache/uses/. Every commit a workflow is pinned to is
// kept there under refs/pins/, so that a pinned import is read offline.
// It is safe for concurrent use.
type UsesCache struct {
	dir   string
	mu    sync.Mutex // one fetch at a time: they share FETCH_HEAD
	repos map[string]*Repo
	// rebuilt are the URLs whose repository this process made again for
	// a damaged object: another commit of theirs read afterwards is
	// fetched into the new one, which the files already handed out of
	// it read from.
	rebuilt map[string]bool
}

// UsesCache returns the repository's cache of imported repositories.
func (r *Repo) UsesCache() *UsesCache {
	return NewUsesCache(filepath.Join(r.commonDir, "codemachine", "cache", "uses"))
}

// NewUsesCache returns the cache kept in dir (created when first needed).
func NewUsesCache(dir string) *UsesCache {
	return &UsesCache{dir: dir, repos: map[string]*Repo{}, rebuilt: map[string]bool{}}
}

// FetchError is a failed fetch of an imported repository: git's own
// message, on one line. Its text leaves the repository to the caller's
// context ("uses: URL@REF: ...").
type FetchError struct {
	URL, Ref string
	Msg      string
}

// Error gives git fetch's own message.
func (e *FetchError) Error() string {
	return "git fetch failed: " + e.Msg
}

// repo returns the cache's bare repository for url, creating it.
func (c *UsesCache) repo(ctx context.Context, url string) (*Repo, error) {
	if r := c.repos[url]; r != nil {
		return r, nil
	}
	dir := filepath.Join(c.dir, c.key(url)+".git")
	r := &Repo{root: dir, gitDir: dir, commonDir: dir, env: []string{"GIT_DIR=" + dir}}
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		if err := c.create(ctx, dir, url); err != nil {
			return nil, fmt.Errorf("uses cache: %w", err)
		}
	}
	c.repos[url] = r
	return r, nil
}

// key names the cache's repository for url.
func (c *UsesCache) key(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:8])
}

// lockSource takes the lock, across processes, on what writes the cache's
// repository for url: its fetches (each rewrites FETCH_HEAD, which
// Resolve then reads) and pins. Another codemachine fetching the same
// source is waited for, as long as ctx allows.
func (c *UsesCache) lockSource(ctx context.Context, url string) (unlock func(), err error) {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("uses cache: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(c.dir, c.key(url)+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("uses cache: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("uses cache: lock: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("uses cache: waiting for another fetch of %s: %w", url, context.Cause(ctx))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// create makes the bare repository dir for url: made beside it and
// renamed into place, so that another codemachine creating the same one at
// the same time finds either none or a whole one, and the one that loses
// the rename uses the winner's.
func (c *UsesCache) create(ctx context.Context, dir, url string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".new-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fresh := &Repo{root: tmp, gitDir: tmp, commonDir: tmp, env: []string{"GIT_DIR=" + tmp}}
	if _, err := fresh.git(ctx, "init", "--quiet", "--bare", tmp); err != nil {
		return err
	}
	// What the cache is of, for a person looking at it.
	_ = os.WriteFile(filepath.Join(tmp, "description"), []byte(url+"\n"), 0o644)
	// An empty directory in the way (an earlier version made it before
	// its git init) goes; a full one is someone else's whole repository.
	_ = os.Remove(dir)
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "HEAD")); serr == nil {
			return nil
		}
		return err
	}
	return nil
}

// Resolve fetches ref (a branch, tag or commit) of the repository at url
// and returns the commit it names now, kept in the cache. A failure is a
// *FetchError.
func (c *UsesCache) Resolve(ctx context.Context, url, ref string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	unlock, err := c.lockSource(ctx, url)
	if err != nil {
		return "", err
	}
	defer unlock()
	r, err := c.repo(ctx, url)
	if err != nil {
		return "", err
	}
	if r, err = c.fetch(ctx, url, r, url, ref); err != nil {
		return "", fetchError(url, ref, err)
	}
	commit, err := r.read(ctx, "rev-parse", "--verify", "--quiet", "FETCH_HEAD^{commit}")
	if err != nil {
		return "", &FetchError{URL: url, Ref: ref, Msg: "it names no commit"}
	}
	commit = trimNL(commit)
	return commit, c.keep(ctx, r, commit)
}

// keep makes commit reachable in r, so that no gc drops it.
func (c *UsesCache) keep(ctx context.Context, r *Repo, commit string) error {
	if _, err := r.git(ctx, "update-ref", "refs/pins/"+commit, commit); err != nil {
		return fmt.Errorf("uses cache: %w", err)
	}
	return nil
}

// Has reports whether the cache holds commit of url, which can then be
// read offline.
func (c *UsesCache) Has(ctx context.Context, url, commit string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.has(ctx, url, commit)
}

func (c *UsesCache) has(ctx context.Context, url, commit string) bool {
	if _, err := os.Stat(c.dir); err != nil {
		return false
	}
	r, err := c.repo(ctx, url)
	if err != nil {
		return false
	}
	_, err = r.read(ctx, "cat-file", "-e", commit+"^{commit}")
	return err == nil
}

// Ensure makes the cache hold commit of url: nothing to do when it does
// (no network), else it is fetched, by its id, or failing that with every
// branch and tag of url. A failure is a *FetchError.
func (c *UsesCache) Ensure(ctx context.Context, url, ref, commit string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.has(ctx, url, commit) {
		return nil
	}
	unlock, err := c.lockSource(ctx, url)
	if err != nil {
		return err
	}
	defer unlock()
	return c.ensureLocked(ctx, url, ref, commit)
}

// ensureLocked is Ensure for a caller that holds c.mu and the source's
// lock.
func (c *UsesCache) ensureLocked(ctx context.Context, url, ref, commit string) error {
	r, err := c.repo(ctx, url)
	if err != nil {
		return err
	}
	r, ferr := c.fetch(ctx, url, r, url, commit)
	if ferr != nil || !c.has(ctx, url, commit) {
		// A server that does not serve commits by id: fetch what it
		// has, the commit may be among it.
		_, ferr = r.git(ctx, "fetch", "--quiet", "--no-tags", url, "+refs/heads/*:refs/fetched/heads/*", "+refs/tags/*:refs/fetched/tags/*")
		if ferr == nil && !c.has(ctx, url, commit) {
			return &FetchError{URL: url, Ref: ref, Msg: fmt.Sprintf("the pinned commit %s is not in the repository any more (codemachine run --update-uses pins %s again)", commit, ref)}
		}
	}
	if ferr != nil {
		return fetchError(url, ref, ferr)
	}
	return c.keep(ctx, r, commit)
}

// fetch runs git fetch --quiet --no-tags args in r, the cache's repository
// for url. One that git no longer takes for a repository (a damaged HEAD,
// config or objects directory), or that holds a corrupt object, is made
// again, once, and fetched into: it
// is a cache, nothing but codemachine writes it, and every command would
// otherwise stop on "not a git repository" until someone removed it. The
// repository fetched into is returned.
func (c *UsesCache) fetch(ctx context.Context, url string, r *Repo, args ...string) (*Repo, error) {
	args = append([]string{"fetch", "--quiet", "--no-tags"}, args...)
	_, err := r.git(ctx, args...)
	var ge *GitError
	if err == nil || !errors.As(err, &ge) || !cacheDamaged(ge.Stderr, r.gitDir) {
		return r, err
	}
	if rmErr := os.RemoveAll(r.gitDir); rmErr != nil {
		return r, err
	}
	delete(c.repos, url)
	fresh, cerr := c.repo(ctx, url)
	if cerr != nil {
		return r, err
	}
	_, err = fresh.git(ctx, args...)
	return fresh, err
}

// cacheDamaged tells, from what a failed git fetch into the cache's
// repository dir said, that the repository itself is damaged, not the
// source or the network: git no longer takes it for a repository (a
// damaged HEAD or config, its objects directory gone), or an object
// stored in it is corrupt (a loose object cut short or overwritten, a
// damaged pack), which git refuses to fetch past. A corrupt object of
// the source (a file:// one names its own path) is the source's: the
// cache, which may hold pinned commits the source cannot give again, is
// kept.
func cacheDamaged(stderr, dir string) bool {
	if strings.Contains(stderr, "not a git repository") || strings.Contains(stderr, "bad config line") {
		return true
	}
	if !strings.Contains(stderr, dir) {
		return false
	}
	for _, s := range []string{"is corrupt", "corrupt loose object", "unable to unpack", "bad object", "invalid object"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// TreeFS returns the files of commit of url, which the cache must hold
// (Resolve, Ensure). The cache checks no more than that it holds the
// commit (checking every object would cost each command a git process):
// a file that cannot be read for a damaged object (cut short, overwritten)
// makes the cache's repository again, fetched anew, once, and the read is
// tried again, so that a damaged cache heals instead of failing every
// command until someone removes it.
func (c *UsesCache) TreeFS(ctx context.Context, url, commit string) (fs.FS, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.repo(ctx, url)
	if err != nil {
		return nil, err
	}
	fsys, err := r.TreeFS(commit)
	if err != nil {
		return nil, err
	}
	return &cacheFS{c: c, ctx: ctx, url: url, commit: commit, fsys: fsys}, nil
}

// rebuild makes the cache's repository for url again, from nothing, and
// fetches commit into it: the answer to a damaged object in it.
func (c *UsesCache) rebuild(ctx context.Context, url, commit string) (fs.FS, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	unlock, err := c.lockSource(ctx, url)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !c.rebuilt[url] {
		c.rebuilt[url] = true
		delete(c.repos, url)
		if err := os.RemoveAll(filepath.Join(c.dir, c.key(url)+".git")); err != nil {
			return nil, fmt.Errorf("uses cache: remove the damaged copy of %s: %w", url, err)
		}
	}
	if !c.has(ctx, url, commit) {
		if err := c.ensureLocked(ctx, url, commit, commit); err != nil {
			return nil, err
		}
	}
	r, err := c.repo(ctx, url)
	if err != nil {
		return nil, err
	}
	return r.TreeFS(commit)
}

// cacheFS is the files of a commit in the cache, made again from the
// source when one of its objects turns out damaged (UsesCache.TreeFS).
type cacheFS struct {
	c           *UsesCache
	ctx         context.Context
	url, commit string

	mu       sync.Mutex
	fsys     fs.FS
	repaired bool
}

var (
	_ fs.ReadFileFS = (*cacheFS)(nil)
	_ fs.ReadDirFS  = (*cacheFS)(nil)
	_ fs.StatFS     = (*cacheFS)(nil)
	_ fs.ReadLinkFS = (*cacheFS)(nil)
)

// damagedRead tells a read that failed on the cache's objects from one
// that failed on the path: no such file, a directory read as a file.
func damagedRead(err error) bool {
	return err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrInvalid) &&
		!errors.Is(err, ErrIsDir) && !strings.Contains(err.Error(), "not a directory")
}

// try runs op on the files, and once more on the files fetched anew when
// it failed on a damaged object. The first error stands when the cache
// cannot be made again (offline): it says what is damaged.
func (f *cacheFS) try(op func(fs.FS) error) error {
	f.mu.Lock()
	fsys, repaired := f.fsys, f.repaired
	f.mu.Unlock()
	err := op(fsys)
	if !damagedRead(err) || repaired {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.repaired {
		f.repaired = true
		fresh, rerr := f.c.rebuild(f.ctx, f.url, f.commit)
		if rerr != nil {
			return fmt.Errorf("%w (making the cache of %s again failed too: %w)", err, f.url, rerr)
		}
		f.fsys = fresh
	}
	return op(f.fsys)
}

func (f *cacheFS) Open(name string) (file fs.File, err error) {
	err = f.try(func(fsys fs.FS) (e error) { file, e = fsys.Open(name); return e })
	return file, err
}

func (f *cacheFS) ReadFile(name string) (data []byte, err error) {
	err = f.try(func(fsys fs.FS) (e error) { data, e = fs.ReadFile(fsys, name); return e })
	return data, err
}

func (f *cacheFS) ReadDir(name string) (entries []fs.DirEntry, err error) {
	err = f.try(func(fsys fs.FS) (e error) { entries, e = fs.ReadDir(fsys, name); return e })
	return entries, err
}

func (f *cacheFS) Stat(name string) (info fs.FileInfo, err error) {
	err = f.try(func(fsys fs.FS) (e error) { info, e = fs.Stat(fsys, name); return e })
	return info, err
}

// Lstat keeps the tree's symbolic links visible: the workflow refuses
// definition files committed as links.
func (f *cacheFS) Lstat(name string) (info fs.FileInfo, err error) {
	err = f.try(func(fsys fs.FS) (e error) { info, e = fs.Lstat(fsys, name); return e })
	return info, err
}

func (f *cacheFS) ReadLink(name string) (target string, err error) {
	err = f.try(func(fsys fs.FS) (e error) { target, e = fs.ReadLink(fsys, name); return e })
	return target, err
}

// fetchError turns a failed git fetch into a one-line *FetchError: git's
// first "fatal:" or "error:" line.
func fetchError(url, ref string, err error) error {
	var ge *GitError
	if !errors.As(err, &ge) {
		return &FetchError{URL: url, Ref: ref, Msg: err.Error()}
	}
	msg := ""
	for _, line := range strings.Split(ge.Stderr, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "fatal: "); ok {
			msg = rest
			break
		}
		if rest, ok := strings.CutPrefix(line, "error: "); ok && msg == "" {
			msg = rest
		}
	}
	if msg == "" {
		msg = firstLine(ge.Stderr)
	}
	if msg == "" {
		msg = fmt.Sprintf("git fetch exited with code %d", ge.ExitCode)
	}
	return &FetchError{URL: url, Ref: ref, Msg: msg}
}
