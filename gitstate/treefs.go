package gitstate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
)

// TreeFS is a read-only fs.FS over the tree of one commit. Directories are
// decoded only when a path reaches into them, so opening one file of a
// 100k-file tree costs a handful of object reads. Submodules appear as empty
// directories, symlinks as files holding their target.
type TreeFS struct {
	repo  *Repo
	root  plumbing.Hash
	mtime time.Time

	mu   sync.Mutex
	dirs map[string]*treeDir // decoded directories by slash path ("." = root)
}

type treeDir struct {
	entries []treeObjEntry // sorted by name
	index   map[string]int
}

var (
	_ fs.ReadFileFS = (*TreeFS)(nil)
	_ fs.ReadDirFS  = (*TreeFS)(nil)
	_ fs.StatFS     = (*TreeFS)(nil)
	_ fs.ReadLinkFS = (*TreeFS)(nil)
)

// ErrIsDir is the error for reading a directory as a file (a committed
// workflow.yaml or state.yaml that is a directory, above all).
var ErrIsDir = errors.New("is a directory")

// TreeFS returns the files of rev (a commit, or the hash of a tree) as an
// fs.FS. Its concrete type is *TreeFS, which also implements BlobHash.
func (r *Repo) TreeFS(rev string) (fs.FS, error) {
	t := &TreeFS{repo: r, dirs: map[string]*treeDir{}}
	if isHash(rev) {
		err := r.goGit(func(g *gitRepo) error {
			o, err := g.Storer.EncodedObject(plumbing.AnyObject, plumbing.NewHash(rev))
			if err != nil || o.Type() != plumbing.TreeObject {
				return err
			}
			t.root = o.Hash()
			return nil
		})
		if err == nil && !t.root.IsZero() {
			return t, nil
		}
	}
	h, err := r.ResolveRev(rev)
	if err != nil {
		return nil, err
	}
	err = r.goGit(func(g *gitRepo) error {
		c, err := g.CommitObject(plumbing.NewHash(h))
		if err != nil {
			return fmt.Errorf("read commit %s: %w", h, err)
		}
		t.root, t.mtime = c.TreeHash, c.Committer.When
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// dir returns the decoded directory at p, decoding its ancestors on the way.
// t.mu must be held.
func (t *TreeFS) dir(p string) (*treeDir, error) {
	if d := t.dirs[p]; d != nil {
		return d, nil
	}
	var hash plumbing.Hash
	if p == "." {
		hash = t.root
	} else {
		e, err := t.entry(p)
		if err != nil {
			return nil, err
		}
		if e.Mode == filemode.Submodule {
			d := &treeDir{}
			t.dirs[p] = d
			return d, nil
		}
		if e.Mode != filemode.Dir {
			return nil, fs.ErrInvalid
		}
		hash = e.Hash
	}
	var d *treeDir
	err := t.repo.goGit(func(g *gitRepo) error {
		tree, err := g.TreeObject(hash)
		if err != nil {
			return fmt.Errorf("read tree %s: %w", hash, err)
		}
		d = &treeDir{entries: tree.Entries, index: make(map[string]int, len(tree.Entries))}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Git orders a directory "a" as "a/": fs.FS wants plain name order.
	slices.SortFunc(d.entries, func(a, b treeObjEntry) int { return strings.Compare(a.Name, b.Name) })
	for i, e := range d.entries {
		d.index[e.Name] = i
	}
	t.dirs[p] = d
	return d, nil
}

// entry finds the tree entry of a non-root path. t.mu must be held.
func (t *TreeFS) entry(p string) (treeObjEntry, error) {
	parent, err := t.dir(path.Dir(p))
	if err != nil {
		if errors.Is(err, fs.ErrInvalid) {
			return treeObjEntry{}, fs.ErrNotExist // a file used as a directory
		}
		return treeObjEntry{}, err
	}
	i, ok := parent.index[path.Base(p)]
	if !ok {
		return treeObjEntry{}, fs.ErrNotExist
	}
	return parent.entries[i], nil
}

// lookup validates name and returns its entry; the root is a synthetic
// directory entry.
func (t *TreeFS) lookup(op, name string) (treeObjEntry, error) {
	if !fs.ValidPath(name) {
		return treeObjEntry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return treeObjEntry{Name: ".", Mode: filemode.Dir, Hash: t.root}, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, err := t.entry(name)
	if err != nil {
		return treeObjEntry{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return e, nil
}

func isDirMode(m filemode.FileMode) bool { return m == filemode.Dir || m == filemode.Submodule }

// Open opens a file or directory of the tree.
func (t *TreeFS) Open(name string) (fs.File, error) {
	e, err := t.lookup("open", name)
	if err != nil {
		return nil, err
	}
	info := &entryInfo{t: t, e: e, name: path.Base(name)}
	if isDirMode(e.Mode) {
		return &dirFile{t: t, name: name, info: info}, nil
	}
	data, err := t.readBlob(e.Hash)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	info.size, info.sized = int64(len(data)), true
	return &blobFile{info: info, Reader: bytes.NewReader(data)}, nil
}

// ReadFile reads a whole file of the tree.
func (t *TreeFS) ReadFile(name string) ([]byte, error) {
	e, err := t.lookup("read", name)
	if err != nil {
		return nil, err
	}
	if isDirMode(e.Mode) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: ErrIsDir}
	}
	data, err := t.readBlob(e.Hash)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return data, nil
}

// ReadDir lists a directory of the tree, sorted by name.
func (t *TreeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	t.mu.Lock()
	d, err := t.dir(name)
	t.mu.Unlock()
	if err != nil {
		if errors.Is(err, fs.ErrInvalid) {
			err = errors.New("not a directory")
		}
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(d.entries))
	for i, e := range d.entries {
		out[i] = &entryInfo{t: t, e: e, name: e.Name}
	}
	return out, nil
}

// Stat describes a file or directory of the tree.
func (t *TreeFS) Stat(name string) (fs.FileInfo, error) {
	e, err := t.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	return &entryInfo{t: t, e: e, name: path.Base(name)}, nil
}

// Lstat is Stat: the tree follows no link.
func (t *TreeFS) Lstat(name string) (fs.FileInfo, error) { return t.Stat(name) }

// ReadLink returns the target a symlink of the tree holds.
func (t *TreeFS) ReadLink(name string) (string, error) {
	e, err := t.lookup("readlink", name)
	if err != nil {
		return "", err
	}
	if e.Mode != filemode.Symlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	data, err := t.readBlob(e.Hash)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(data), nil
}

// BlobHash returns the git blob id of a file (or symlink) without reading
// its content: what fingerprints are made of.
func (t *TreeFS) BlobHash(name string) (string, error) {
	e, err := t.lookup("blobhash", name)
	if err != nil {
		return "", err
	}
	if isDirMode(e.Mode) {
		return "", &fs.PathError{Op: "blobhash", Path: name, Err: ErrIsDir}
	}
	return e.Hash.String(), nil
}

// EntryID identifies what name is in the tree without reading it: its
// mode and object id ("100644 <blob id>", "40000 <tree id>" for a
// directory, whose id covers everything under it). A path the tree does
// not have is an error wrapping fs.ErrNotExist. What a load read is known
// unchanged in another commit when every path it read has the same
// EntryID there.
func (t *TreeFS) EntryID(name string) (string, error) {
	e, err := t.lookup("entryid", name)
	if err != nil {
		return "", err
	}
	return e.Mode.String() + " " + e.Hash.String(), nil
}

func (t *TreeFS) readBlob(h plumbing.Hash) ([]byte, error) {
	var data []byte
	err := t.repo.goGit(func(g *gitRepo) error {
		var err error
		if data, err = g.BlobObject(h); err != nil {
			return fmt.Errorf("read blob %s: %w", h, err)
		}
		return nil
	})
	return data, err
}

func (t *TreeFS) blobSize(h plumbing.Hash) int64 {
	var size int64
	_ = t.repo.goGit(func(g *gitRepo) error {
		o, err := g.Storer.EncodedObject(plumbing.BlobObject, h)
		if err != nil {
			return err
		}
		size = o.Size()
		return nil
	})
	return size
}

// entryInfo is both the fs.FileInfo and the fs.DirEntry of a tree entry.
// The size of a blob is looked up only when asked for (listing a directory
// reads no blob), and then every time, so that an entryInfo shared between
// goroutines needs no lock.
type entryInfo struct {
	t     *TreeFS
	e     treeObjEntry
	name  string
	size  int64
	sized bool // size is known (set once, before the entryInfo is shared)
}

func (i *entryInfo) Name() string { return i.name }
func (i *entryInfo) Size() int64 {
	if i.sized || isDirMode(i.e.Mode) {
		return i.size
	}
	return i.t.blobSize(i.e.Hash)
}
func (i *entryInfo) Mode() fs.FileMode {
	switch i.e.Mode {
	case filemode.Dir, filemode.Submodule:
		return fs.ModeDir | 0o755
	case filemode.Executable:
		return 0o755
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	}
	return 0o644
}
func (i *entryInfo) ModTime() time.Time         { return i.t.mtime }
func (i *entryInfo) IsDir() bool                { return isDirMode(i.e.Mode) }
func (i *entryInfo) Sys() any                   { return i.e }
func (i *entryInfo) Type() fs.FileMode          { return i.Mode().Type() }
func (i *entryInfo) Info() (fs.FileInfo, error) { return i, nil }

type blobFile struct {
	info *entryInfo
	*bytes.Reader
}

func (f *blobFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *blobFile) Close() error               { return nil }

type dirFile struct {
	t       *TreeFS
	name    string
	info    *entryInfo
	entries []fs.DirEntry
	read    bool
	off     int
}

func (f *dirFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *dirFile) Close() error               { return nil }
func (f *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: f.name, Err: ErrIsDir}
}

// ReadDir follows fs.ReadDirFile: n > 0 reads in batches ending with io.EOF.
func (f *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !f.read {
		entries, err := f.t.ReadDir(f.name)
		if err != nil {
			return nil, err
		}
		f.entries, f.read = entries, true
	}
	rest := f.entries[f.off:]
	if n <= 0 {
		f.off = len(f.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	f.off += n
	return rest[:n], nil
}

// ListFiles calls fn for every file and symlink at or below name with its
// blob id, reading each directory's tree once; workflow.ResolveInputs uses
// it to fingerprint inputs without a lookup per file. Submodules are
// skipped.
func (t *TreeFS) ListFiles(name string, fn func(path, hash string)) error {
	return t.listEntries(name, func(p string, e treeObjEntry) { fn(p, e.Hash.String()) })
}

// listEntries is ListFiles with each file's whole tree entry (its mode).
func (t *TreeFS) listEntries(name string, fn func(path string, e treeObjEntry)) error {
	e, err := t.lookup("list", name)
	if err != nil {
		return err
	}
	switch {
	case e.Mode == filemode.Submodule:
		return nil
	case e.Mode != filemode.Dir:
		fn(name, e)
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.listDir(name, fn)
}

// listDir walks the directory at p; t.mu must be held.
func (t *TreeFS) listDir(p string, fn func(path string, e treeObjEntry)) error {
	d, err := t.dir(p)
	if err != nil {
		return err
	}
	for _, e := range d.entries {
		child := e.Name
		if p != "." {
			child = p + "/" + e.Name
		}
		switch e.Mode {
		case filemode.Submodule:
		case filemode.Dir:
			if err := t.listDir(child, fn); err != nil {
				return err
			}
		default:
			fn(child, e)
		}
	}
	return nil
}

// TreeHash returns the git tree id of a directory without reading below
// it: workflow fingerprints a whole-directory input by it.
func (t *TreeFS) TreeHash(name string) (string, error) {
	e, err := t.lookup("treehash", name)
	if err != nil {
		return "", err
	}
	if e.Mode != filemode.Dir {
		return "", &fs.PathError{Op: "treehash", Path: name, Err: errors.New("not a directory")}
	}
	return e.Hash.String(), nil
}
