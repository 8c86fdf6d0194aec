package gitstate

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

// gitObjects is every object of the repository at dir as git reads it:
// type and content by id (git cat-file --batch-all-objects --batch).
func gitObjects(t *testing.T, dir string) map[plumbing.Hash]baseObj {
	t.Helper()
	cmd := exec.Command("git", "cat-file", "--batch-all-objects", "--batch")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git cat-file: %v", err)
	}
	objs := map[plumbing.Hash]baseObj{}
	br := bufio.NewReader(bytes.NewReader(out))
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("cat-file line %q", line)
		}
		n, _ := strconv.Atoi(f[2])
		data := make([]byte, n+1) // and the newline after it
		if _, err := io.ReadFull(br, data); err != nil {
			t.Fatal(err)
		}
		typ, err := plumbing.ParseObjectType(f[1])
		if err != nil {
			t.Fatal(err)
		}
		objs[plumbing.NewHash(f[0])] = baseObj{typ: typ, data: data[:n]}
	}
}

// checkAllObjects reads every object of the repository at dir in-process
// and compares it with git's: the in-house reader must answer each one
// itself (no fallback). It returns how many there were.
func checkAllObjects(t *testing.T, dir string) int {
	t.Helper()
	want := gitObjects(t, dir)
	common := git(t, dir, "rev-parse", "--path-format=absolute", "--git-common-dir")
	o := newObjReader(common)
	defer o.close()
	for h, w := range want {
		typ, data, err := o.read(h)
		if err != nil {
			t.Fatalf("read %s (%s): %v", h, w.typ, err)
		}
		if typ != w.typ || !bytes.Equal(data, w.data) {
			t.Fatalf("read %s: got %s of %d bytes, git has %s of %d bytes", h, typ, len(data), w.typ, len(w.data))
		}
	}
	if _, _, err := o.read(plumbing.NewHash(strings.Repeat("ab", 20))); err != errObjFallback {
		t.Fatalf("a missing object: %v, want errObjFallback", err)
	}
	return len(want)
}

// deltaKinds counts the pack entries that are deltas, as git verify-pack
// shows them (an entry with a base id is a delta).
func deltaKinds(t *testing.T, dir string) int {
	t.Helper()
	idx, err := filepath.Glob(filepath.Join(dir, ".git", "objects", "pack", "*.idx"))
	if err != nil || len(idx) == 0 {
		t.Fatalf("no pack: %v", err)
	}
	n := 0
	for _, p := range idx {
		for _, line := range strings.Split(git(t, dir, "verify-pack", "-v", p), "\n") {
			if f := strings.Fields(line); len(f) == 7 && len(f[6]) == 40 {
				n++
			}
		}
	}
	return n
}

// objHistory makes a history in which files change a little at each
// commit, so that a repack stores most versions as deltas.
func objHistory(t *testing.T, dir string, commits int) {
	t.Helper()
	for c := 0; c < commits; c++ {
		for f := 0; f < 20; f++ {
			var b strings.Builder
			for l := 0; l < 200; l++ {
				fmt.Fprintf(&b, "file %d line %d of a text long enough to be worth a delta\n", f, l)
				if l == c*7%200 {
					fmt.Fprintf(&b, "changed in commit %d\n", c)
				}
			}
			write(t, dir, fmt.Sprintf("d%d/f%02d.txt", f%3, f), b.String())
		}
		commitAll(t, dir, fmt.Sprintf("commit %d", c))
	}
}

func TestObjReaderMatchesGit(t *testing.T) {
	dir, _ := newRepo(t, map[string]string{"README": "hello\n"})
	objHistory(t, dir, 12)
	// Loose objects only.
	checkAllObjects(t, dir)

	// One pack with offset deltas, made by gc, then loose objects beside it.
	git(t, dir, "gc", "-q", "--aggressive")
	if deltaKinds(t, dir) == 0 {
		t.Fatal("gc made no deltas")
	}
	objHistory(t, dir, 3)
	checkAllObjects(t, dir)

	// A pack with REF_DELTA entries (deltas naming their base by id).
	git(t, dir, "-c", "repack.useDeltaBaseOffset=false", "repack", "-a", "-d", "-q", "-f", "--depth=50", "--window=50")
	if deltaKinds(t, dir) == 0 {
		t.Fatal("repack made no deltas")
	}
	n := checkAllObjects(t, dir)

	// Several packs: new commits packed incrementally beside the big one.
	objHistory(t, dir, 3)
	git(t, dir, "repack", "-d", "-q")
	if m := checkAllObjects(t, dir); m <= n {
		t.Fatalf("%d objects after more commits, %d before", m, n)
	}
}

func TestApplyDeltaRejectsMalformed(t *testing.T) {
	base := []byte("0123456789")
	for name, delta := range map[string][]byte{
		"wrong base size":  {9, 3, 0x90, 3},
		"copy past base":   {10, 4, 0x91, 8, 4},
		"reserved opcode":  {10, 1, 0},
		"truncated insert": {10, 3, 3, 'a'},
		"short result":     {10, 4, 0x90, 3},
	} {
		if _, err := applyDelta(base, delta); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	got, err := applyDelta(base, []byte{10, 6, 0x91, 2, 3, 3, 'a', 'b', 'c'})
	if err != nil || string(got) != "234abc" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestRefFastMatchesGit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "1\n"})
	first := git(t, dir, "rev-parse", "HEAD")
	commitAll(t, dir, "second")
	git(t, dir, "branch", "packed")
	git(t, dir, "tag", "v1")
	git(t, dir, "pack-refs", "--all")
	commitAll(t, dir, "third")                             // main: loose again, over its packed value
	git(t, dir, "update-ref", "refs/codemachine/x", first) // loose only
	git(t, dir, "symbolic-ref", "refs/heads/alias", "refs/heads/packed")
	for _, name := range []string{"refs/heads/main", "refs/heads/packed", "refs/tags/v1", "refs/codemachine/x", "refs/heads/alias", "refs/heads/none"} {
		want := ""
		cmd := exec.Command("git", "rev-parse", "--verify", "--quiet", name)
		cmd.Dir = dir
		if out, err := cmd.Output(); err == nil {
			want = strings.TrimSpace(string(out))
		}
		got, ok := refFast(r.GitDir(), r.CommonDir(), name)
		if !ok || got != want {
			t.Errorf("%s: got %q (ok %v), git says %q", name, got, ok, want)
		}
	}
	if _, ok := refFast(r.GitDir(), r.CommonDir(), "HEAD"); ok {
		t.Error("HEAD is not a refs/ name: go-git answers it")
	}

	// A linked worktree's HEAD and a detached HEAD, read through Head().
	wt := filepath.Join(t.TempDir(), "wt")
	git(t, dir, "worktree", "add", "-q", "-b", "side", wt, "packed")
	w, err := Open(wt)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := w.Head(); err != nil || h.Branch != "side" || h.Commit != git(t, wt, "rev-parse", "HEAD") {
		t.Fatalf("worktree head %+v, %v", h, err)
	}
	git(t, dir, "checkout", "-q", "--detach", first)
	if h, err := r.Head(); err != nil || h.Branch != "" || h.Commit != first {
		t.Fatalf("detached head %+v, %v", h, err)
	}
	// Objects read through a linked worktree's repository are the shared ones.
	if got := checkAllObjects(t, wt); got == 0 {
		t.Fatal("no objects")
	}
	data, err := w.ReadFile("HEAD", "a")
	if err != nil || string(data) != "1\n" {
		t.Fatalf("read a in the worktree: %q, %v", data, err)
	}
}

// What the in-house reader does not answer (here: it is closed, as it is
// when the repository is reopened) is read by go-git.
func TestFastStorageFallsBackToGoGit(t *testing.T) {
	dir, _ := newRepo(t, map[string]string{"a": "shared\n"})
	git(t, dir, "gc", "-q")
	g, err := openGitRepo(filepath.Join(dir, ".git"), filepath.Join(dir, ".git"))
	if err != nil {
		t.Fatal(err)
	}
	h := plumbing.NewHash(git(t, dir, "rev-parse", "HEAD:a"))
	o, err := g.Storer.EncodedObject(plumbing.BlobObject, h)
	if _, inHouse := o.(*readObject); err != nil || !inHouse {
		t.Fatalf("in-house: %T, %v", o, err)
	}
	rd, err := o.Reader()
	if err != nil {
		t.Fatal(err)
	}
	if data, err := io.ReadAll(rd); err != nil || string(data) != "shared\n" || o.Size() != 7 {
		t.Fatalf("in-house read %q, %v", data, err)
	}
	g.close()
	if _, _, err := g.Storer.objs.read(h); err != errObjFallback {
		t.Fatalf("closed reader: %v", err)
	}
	// The blob read before stays kept; the commit, never read, is go-git's.
	if o, err := g.Storer.EncodedObject(plumbing.BlobObject, h); err != nil || o.Hash() != h {
		t.Fatalf("kept blob: %v", err)
	}
	c := plumbing.NewHash(git(t, dir, "rev-parse", "HEAD"))
	o, err = g.Storer.EncodedObject(plumbing.CommitObject, c)
	if _, inHouse := o.(*readObject); err != nil || inHouse || o.Hash() != c {
		t.Fatalf("go-git: %v", err)
	}
	if _, err := g.Storer.EncodedObject(plumbing.TreeObject, h); err == nil {
		t.Fatal("a blob read as a tree")
	}
	if _, err := g.Storer.EncodedObject(plumbing.TreeObject, c); err == nil {
		t.Fatal("a commit read as a tree")
	}
}

// packBytes is an in-memory pack file for the fuzz target.
type packBytes struct{ *bytes.Reader }

func (packBytes) Close() error { return nil }

// FuzzApplyDelta: any delta against any base is applied or refused,
// never a panic, and what is applied has the size the delta says.
func FuzzApplyDelta(f *testing.F) {
	f.Add([]byte("0123456789"), []byte{10, 6, 0x91, 2, 3, 3, 'a', 'b', 'c'})
	f.Add([]byte{}, []byte{0, 0})
	f.Fuzz(func(t *testing.T, base, delta []byte) {
		out, err := applyDelta(base, delta)
		if err != nil {
			return
		}
		_, rest, _ := deltaSize(delta)
		if want, _, _ := deltaSize(rest); uint64(len(out)) != want {
			t.Fatalf("%d bytes, the delta says %d", len(out), want)
		}
	})
}

// FuzzReadPackEntry: any bytes at a pack entry's place are read or
// refused, never a panic or an unbounded allocation.
func FuzzReadPackEntry(f *testing.F) {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte("hello\n"))
	zw.Close()
	f.Add(append([]byte{0x36}, z.Bytes()...))                              // a blob of 6 bytes
	f.Add(append([]byte{0x6a, 0x01}, z.Bytes()...))                        // an offset delta
	f.Add(append(append([]byte{0x7a}, make([]byte, 20)...), z.Bytes()...)) // a ref delta
	f.Fuzz(func(t *testing.T, entry []byte) {
		pack := append([]byte("PACK\x00\x00\x00\x02\x00\x00\x00\x01"), entry...)
		p := &packReader{opened: true, bad: true, pack: packBytes{bytes.NewReader(pack)}, packSize: int64(len(pack))}
		o := &objReader{dir: t.TempDir(), listed: true, packs: []*packReader{p}, bases: map[baseKey]baseObj{}}
		_, _, _ = o.readPacked(p, packHdrLen, 0)
	})
}

// TestReadsThroughAlternates: a repository that borrows its objects from
// another (git clone --shared) is read, and lands a step, like any other.
func TestReadsThroughAlternates(t *testing.T) {
	src, _ := newRepo(t, map[string]string{"a.txt": "a\n"})
	dir := filepath.Join(t.TempDir(), "shared")
	git(t, filepath.Dir(dir), "clone", "-q", "--shared", src, dir)
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := r.ReadFile("HEAD", "a.txt")
	if err != nil || string(data) != "a\n" {
		t.Fatalf("ReadFile = %q, %v", data, err)
	}
	base := git(t, dir, "rev-parse", "HEAD")
	branch := git(t, dir, "branch", "--show-current")
	c := stepCommit(t, r, base, map[string]string{"a.txt": "step\n"}, "step")
	if _, err := r.Land(t.Context(), branch, base, c, LandOptions{}); err != nil {
		t.Fatal(err)
	}
	if read(t, dir, "a.txt") != "step\n" || statusShort(t, dir) != "" {
		t.Errorf("not landed cleanly: %q", statusShort(t, dir))
	}
}

// TestObjectCacheKeepsWithinItsLimit: the kept objects never exceed the
// limit, the least recently used go first, and big objects are not kept.
func TestObjectCacheKeepsWithinItsLimit(t *testing.T) {
	var c objectCache
	obj := func(i, size int) *readObject {
		data := bytes.Repeat([]byte{byte(i)}, size)
		return &readObject{h: plumbing.ComputeHash(plumbing.BlobObject, data), typ: plumbing.BlobObject, data: data}
	}
	big := obj(0, objectCacheMaxObject+1)
	c.add(big)
	if c.get(big.h) != nil {
		t.Error("an object over the size limit was kept")
	}
	const size = 100 << 10
	n := objectCacheLimit/size + 10
	first := obj(1, size)
	c.add(first)
	for i := 2; i <= n; i++ {
		c.add(obj(i, size))
		c.get(first.h) // keep the first one in use
	}
	if c.bytes > objectCacheLimit {
		t.Errorf("kept %d bytes, limit %d", c.bytes, objectCacheLimit)
	}
	if c.get(first.h) == nil {
		t.Error("the most recently used object went")
	}
	if c.get(obj(2, size).h) != nil {
		t.Error("the least recently used object stayed")
	}
	if got := c.get(obj(n, size).h); got == nil || !bytes.Equal(got.data, obj(n, size).data) {
		t.Error("the last object added is not kept")
	}
}
