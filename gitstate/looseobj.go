package gitstate

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
)

// Objects written in-process. A git object is content-addressed: writing
// one is safe beside any git process, and git itself writes them so, each
// in a temporary file renamed to its name once complete. codemachine writes
// the blobs and trees of a landing's bookkeeping (state.yaml, the plan's
// ticked box) itself instead of starting hash-object, read-tree,
// update-index and write-tree for them; refs still move only through git
// (update-ref, which honours ref locks and writes the reflog).

// errObjectsByGit says an object must be written by git: the repository
// is not a plain SHA-1 one with its objects in its own directory.
var errObjectsByGit = errors.New("objects are written by git here")

// objectsDir is where loose objects go, or errObjectsByGit.
func (r *Repo) objectsDir() (string, error) {
	r.objOnce.Do(func() {
		if os.Getenv("GIT_OBJECT_DIRECTORY") != "" {
			return
		}
		format, shared := "", ""
		err := r.goGit(func(g *gitRepo) error {
			cfg, err := g.Config()
			if err != nil {
				return err
			}
			format = cfg.Raw.Section("extensions").Option("objectformat")
			shared = cfg.Raw.Section("core").Option("sharedrepository")
			return nil
		})
		if err == nil && (format == "" || strings.EqualFold(format, "sha1")) && shared == "" {
			r.objDir = filepath.Join(r.commonDir, "objects")
		}
	})
	if r.objDir == "" {
		return "", errObjectsByGit
	}
	return r.objDir, nil
}

// writeObject writes an object of type typ ("blob", "tree") as git does:
// zlib-compressed behind its header, in a temporary file in its directory,
// synced where git would sync it (syncObjects), then renamed to its id.
// An object that is already there is only freshened (its time set to now, as git does, so a concurrent gc that is
// pruning sees it as new).
func (r *Repo) writeObject(typ string, data []byte) (string, error) {
	dir, err := r.objectsDir()
	if err != nil {
		return "", err
	}
	header := typ + " " + strconv.Itoa(len(data)) + "\x00"
	h := sha1.New()
	h.Write([]byte(header))
	h.Write(data)
	id := hex.EncodeToString(h.Sum(nil))
	sub := filepath.Join(dir, id[:2])
	final := filepath.Join(sub, id[2:])
	if _, err := os.Stat(final); err == nil {
		now := time.Now()
		_ = os.Chtimes(final, now, now)
		return id, nil
	}
	var buf bytes.Buffer
	zw := zlibWriters.Get().(*zlib.Writer)
	zw.Reset(&buf)
	_, _ = zw.Write([]byte(header))
	_, _ = zw.Write(data)
	err = zw.Close()
	zlibWriters.Put(zw)
	if err != nil {
		return "", fmt.Errorf("write object %s: %w", id, err)
	}
	// A user's git gc prunes empty objects/xx/ directories, and with
	// --prune=now temporary files of any age, between any two of the
	// calls below: what it removed is made again (git retries the same
	// way), a few times.
	for range objectWriteTries {
		if err = r.writeLoose(sub, final, buf.Bytes()); !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("write object %s: %w", id, err)
	}
	return id, nil
}

// zlibWriters are reused: a zlib writer's state is over half a megabyte,
// and a step writes several objects.
var zlibWriters = sync.Pool{New: func() any { return zlib.NewWriter(nil) }}

// writeLoose writes one compressed object into dir as final: a temporary
// file, created read-only as git creates it, synced where git would sync
// it, renamed.
func (r *Repo) writeLoose(dir, final string, compressed []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.hook("object-dir-made")
	tmp := filepath.Join(dir, "tmp_obj_"+strconv.FormatUint(rand.Uint64(), 36))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	_, err = f.Write(compressed)
	if err == nil && r.syncObjects() {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// rawEntry is one entry of a tree object.
type rawEntry struct {
	name string
	mode string // "100644", "100755", "120000", "160000", "40000"
	hash string
}

const treeMode = "40000"

// emptyTreeSHA1 is the id of the tree with nothing in it.
const emptyTreeSHA1 = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

// encodeTree is a tree object's content: its entries in git's order
// (names compared as if a tree's had a trailing slash).
func encodeTree(entries []rawEntry) ([]byte, error) {
	key := func(e rawEntry) string {
		if e.mode == treeMode {
			return e.name + "/"
		}
		return e.name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	var b bytes.Buffer
	for _, e := range entries {
		raw, err := hex.DecodeString(e.hash)
		if err != nil || len(raw) != sha1.Size {
			return nil, fmt.Errorf("tree entry %s: bad id %q", e.name, e.hash)
		}
		b.WriteString(e.mode)
		b.WriteByte(' ')
		b.WriteString(e.name)
		b.WriteByte(0)
		b.Write(raw)
	}
	return b.Bytes(), nil
}

// readTreeEntries are the entries of the tree id, or of the commit id's
// tree; none for "".
func (r *Repo) readTreeEntries(id string) ([]rawEntry, error) {
	if id == "" || id == emptyTreeSHA1 {
		// git knows the empty tree without having it in the database.
		return nil, nil
	}
	var out []rawEntry
	err := r.goGit(func(g *gitRepo) error {
		h := plumbing.NewHash(id)
		if c, err := g.CommitObject(h); err == nil {
			h = c.TreeHash
		}
		t, err := g.TreeObject(h)
		if err != nil {
			return err
		}
		for _, e := range t.Entries {
			out = append(out, rawEntry{name: e.Name, mode: gitMode(e.Mode), hash: e.Hash.String()})
		}
		return nil
	})
	return out, err
}

// gitMode is a mode as a tree object spells it.
func gitMode(m filemode.FileMode) string {
	if m == filemode.Dir {
		return treeMode
	}
	return strconv.FormatUint(uint64(m), 8)
}

// overlayInProcess is OverlayTree with the objects written in-process: only
// the trees on the changed paths are read and written. ok is false where
// it leaves the work to git and its rules: tree given as a revision, not
// an id, a path both set and used as a
// directory, a mode other than a file's, an executable's, a symbolic
// link's or a submodule's.
func (r *Repo) overlayInProcess(tree string, files map[string]Blob) (string, bool, error) {
	if !isHash(tree) {
		return "", false, nil // a revision: git reads it
	}
	for _, b := range files {
		switch b.Mode {
		case "", "100644", "100755", "120000", "160000":
		default:
			return "", false, nil
		}
	}
	id, empty, ok, err := r.overlayDir(tree, files)
	if err != nil || !ok {
		return "", ok, err
	}
	if empty {
		id, err = r.writeObject("tree", nil)
	}
	return id, err == nil, err
}

// overlayDir applies files (paths relative to this directory) to the tree
// base: the new tree's id, or empty when nothing is left in it.
func (r *Repo) overlayDir(base string, files map[string]Blob) (id string, empty, ok bool, err error) {
	direct := map[string]Blob{}
	sub := map[string]map[string]Blob{}
	for p, b := range files {
		first, rest, nested := strings.Cut(p, "/")
		if !nested {
			direct[first] = b
			continue
		}
		if sub[first] == nil {
			sub[first] = map[string]Blob{}
		}
		sub[first][rest] = b
	}
	for name := range direct {
		if sub[name] != nil {
			return "", false, false, nil
		}
	}
	entries, err := r.readTreeEntries(base)
	if err != nil {
		return "", false, false, fmt.Errorf("overlay %s: %w", base, err)
	}
	byName := map[string]rawEntry{}
	for _, e := range entries {
		byName[e.name] = e
	}
	for name, b := range direct {
		if b.Hash == "" {
			delete(byName, name)
			continue
		}
		mode := b.Mode
		if mode == "" {
			mode = "100644"
		}
		byName[name] = rawEntry{name: name, mode: mode, hash: b.Hash}
	}
	for name, changes := range sub {
		subBase := ""
		if e, found := byName[name]; found && e.mode == treeMode {
			subBase = e.hash
		}
		h, subEmpty, subOK, err := r.overlayDir(subBase, changes)
		if err != nil || !subOK {
			return "", false, subOK, err
		}
		if subEmpty {
			delete(byName, name)
		} else {
			byName[name] = rawEntry{name: name, mode: treeMode, hash: h}
		}
	}
	if len(byName) == 0 {
		return "", true, true, nil
	}
	out := make([]rawEntry, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	data, err := encodeTree(out)
	if err != nil {
		return "", false, false, err
	}
	id, err = r.writeObject("tree", data)
	return id, false, err == nil, err
}

// mergeDisjoint is the three-way merge of theirs into ours (base is their
// merge base) where the two sides changed different files, done in-process:
// theirs' changes written onto ours' tree. ok is false, and git merge-tree
// is for it, whenever the merge is anything more: a path changed on both
// sides (except the replaced ones, whose ours version is kept: the caller
// rewrites them), a path one side changed under or above a file the other
// changed, or any file deleted on either side (git's rename and directory
// rename detection could then move the other side's files).
func (r *Repo) mergeDisjoint(base, ours, theirs string, replaced []string) (string, bool, error) {
	if _, err := r.objectsDir(); err != nil || base == "" || !isHash(base) || !isHash(ours) || !isHash(theirs) {
		return "", false, nil
	}
	theirsCh, err := r.diffTreesInProcess(base, theirs)
	if err != nil {
		return "", false, nil
	}
	oursCh, err := r.diffTreesInProcess(base, ours)
	if err != nil {
		return "", false, nil
	}
	skip := map[string]bool{}
	for _, p := range replaced {
		skip[p] = true
	}
	touched := map[string]bool{} // ours' changed paths and their directories
	for _, c := range oursCh {
		if c.Status == 'D' && !skip[c.Path] {
			return "", false, nil
		}
		for p := c.Path; ; {
			touched[p] = true
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				break
			}
			p = p[:i]
		}
	}
	files := map[string]Blob{}
	for _, c := range theirsCh {
		if skip[c.Path] {
			continue
		}
		if c.Status == 'D' || touched[c.Path] {
			return "", false, nil
		}
		for p := c.Path; strings.Contains(p, "/"); {
			p = p[:strings.LastIndexByte(p, '/')]
			if touched[p] && !isDirIn(oursCh, p) {
				return "", false, nil
			}
		}
		files[c.Path] = Blob{Hash: c.NewHash, Mode: c.NewMode}
	}
	return r.overlayInProcess(ours, files)
}

// isDirIn reports whether dir is only a directory of the changed paths
// (no change is to a file called dir itself).
func isDirIn(changes []Change, dir string) bool {
	for _, c := range changes {
		if c.Path == dir {
			return false
		}
	}
	return true
}
