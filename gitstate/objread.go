package gitstate

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"container/list"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/codemachine/codemachine/internal/fastread"
)

// objReader reads git objects straight from a repository's object
// directory: loose objects (zlib), and packs, where an object is found
// through its pack's .idx by the fanout table and a binary search over the
// sorted ids read with ReadAt, and read from the pack with its delta chain
// (OFS_DELTA and REF_DELTA) applied. Reading one object costs a handful
// of small reads; go-git decodes every entry of a pack index on first use
// (about half of a status's own time at 10k objects).
//
// It answers only the plain cases: an object it cannot find (an alternate
// object store, a pack written after the packs were listed), a pack index
// of another version, or anything malformed is errObjFallback, and the
// caller asks go-git, which stays the authority.
type objReader struct {
	dir string // <common dir>/objects

	mu     sync.Mutex
	closed bool
	listed bool
	packs  []*packReader
	zr     io.ReadCloser // a zlib reader, reset for each stream
	// bases holds delta bases read from packs, by pack and offset: in a
	// pack, trees and blobs are deltas of each other, often of the same
	// base.
	bases     map[baseKey]baseObj
	baseBytes int
}

type baseKey struct {
	pack *packReader
	off  int64
}

type baseObj struct {
	typ  plumbing.ObjectType
	data []byte
}

// basesLimit bounds the bytes of cached delta bases.
const basesLimit = 32 << 20

// maxDeflateRatio bounds how many times bigger than its compressed bytes
// an entry's content can be (deflate's limit is about 1032).
const maxDeflateRatio = 1100

// maxDeltaDepth bounds a delta chain (git's own default depth is 50, an
// aggressive repack 250).
const maxDeltaDepth = 10000

// errObjFallback says the in-house reader does not answer: go-git does.
var errObjFallback = errors.New("object not read in-process")

func newObjReader(commonDir string) *objReader {
	return &objReader{dir: filepath.Join(commonDir, "objects"), bases: map[baseKey]baseObj{}}
}

// close closes the pack files; a later read falls back.
func (o *objReader) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	for _, p := range o.packs {
		p.close()
	}
	o.packs, o.bases = nil, nil
}

// read returns the type and content of object h.
func (o *objReader) read(h plumbing.Hash) (plumbing.ObjectType, []byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, nil, errObjFallback
	}
	return o.readLocked(h, 0)
}

func (o *objReader) readLocked(h plumbing.Hash, depth int) (plumbing.ObjectType, []byte, error) {
	if depth > maxDeltaDepth {
		return 0, nil, errObjFallback
	}
	typ, data, err := o.readLoose(h)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return typ, data, err
	}
	if !o.listed {
		o.listPacks()
	}
	for _, p := range o.packs {
		off, found, err := p.find(h)
		if err != nil {
			return 0, nil, err
		}
		if found {
			return o.readPacked(p, off, depth)
		}
	}
	return 0, nil, errObjFallback
}

// readLoose reads a loose object; an error wrapping os.ErrNotExist when
// there is none.
func (o *objReader) readLoose(h plumbing.Hash) (plumbing.ObjectType, []byte, error) {
	s := h.String()
	raw, err := fastread.ReadFile(filepath.Join(o.dir, s[:2], s[2:]))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil, err
		}
		return 0, nil, errObjFallback
	}
	data, err := o.inflate(bytes.NewReader(raw), -1)
	if err != nil {
		return 0, nil, errObjFallback
	}
	head, body, ok := bytes.Cut(data, []byte{0})
	if !ok {
		return 0, nil, errObjFallback
	}
	name, size, ok := strings.Cut(string(head), " ")
	n, err := strconv.Atoi(size)
	if !ok || err != nil || n != len(body) {
		return 0, nil, errObjFallback
	}
	typ, err := plumbing.ParseObjectType(name)
	if err != nil || !typ.Valid() || typ == plumbing.OFSDeltaObject || typ == plumbing.REFDeltaObject {
		return 0, nil, errObjFallback
	}
	return typ, body, nil
}

// inflate decompresses one zlib stream from r: exactly size bytes, or the
// whole stream when size < 0.
func (o *objReader) inflate(r io.Reader, size int64) ([]byte, error) {
	var err error
	if o.zr == nil {
		o.zr, err = zlib.NewReader(r)
	} else {
		err = o.zr.(zlib.Resetter).Reset(r, nil)
	}
	if err != nil {
		o.zr = nil
		return nil, err
	}
	if size < 0 {
		return io.ReadAll(o.zr)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(o.zr, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// listPacks finds the packs: each objects/pack/pack-*.idx with its .pack.
func (o *objReader) listPacks() {
	o.listed = true
	dir := filepath.Join(o.dir, "pack")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if base, ok := strings.CutSuffix(name, ".idx"); ok && strings.HasPrefix(base, "pack-") {
			o.packs = append(o.packs, &packReader{idxPath: filepath.Join(dir, name), packPath: filepath.Join(dir, base+".pack")})
		}
	}
}

// Pack object types (git's OBJ_*).
const (
	packCommit   = 1
	packTree     = 2
	packBlob     = 3
	packTag      = 4
	packOfsDelta = 6
	packRefDelta = 7
)

// readPacked reads the object at off in pack p, applying its delta chain.
func (o *objReader) readPacked(p *packReader, off int64, depth int) (plumbing.ObjectType, []byte, error) {
	if b, ok := o.bases[baseKey{p, off}]; ok {
		return b.typ, b.data, nil
	}
	if depth > maxDeltaDepth {
		return 0, nil, errObjFallback
	}
	br := bufio.NewReaderSize(io.NewSectionReader(p.pack, off, p.packSize-off), 4096)
	kind, size, err := readEntryHeader(br)
	if err != nil || size > (p.packSize-off)*maxDeflateRatio {
		// No deflate stream inflates more than about 1032 times.
		return 0, nil, errObjFallback
	}
	var base func() (plumbing.ObjectType, []byte, error)
	switch kind {
	case packCommit, packTree, packBlob, packTag:
		data, err := o.inflate(br, size)
		if err != nil {
			return 0, nil, errObjFallback
		}
		return plumbing.ObjectType(kind), data, nil
	case packOfsDelta:
		rel, err := readOfsDeltaOffset(br)
		if err != nil || rel <= 0 || rel > off {
			return 0, nil, errObjFallback
		}
		base = func() (plumbing.ObjectType, []byte, error) {
			typ, data, err := o.readPacked(p, off-rel, depth+1)
			if err == nil {
				o.keepBase(p, off-rel, typ, data)
			}
			return typ, data, err
		}
	case packRefDelta:
		var h plumbing.Hash
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return 0, nil, errObjFallback
		}
		base = func() (plumbing.ObjectType, []byte, error) { return o.readLocked(h, depth+1) }
	default:
		return 0, nil, errObjFallback
	}
	delta, err := o.inflate(br, size)
	if err != nil {
		return 0, nil, errObjFallback
	}
	typ, src, err := base()
	if err != nil {
		return 0, nil, err
	}
	data, err := applyDelta(src, delta)
	if err != nil {
		return 0, nil, errObjFallback
	}
	return typ, data, nil
}

// keepBase remembers the object at off in p, a delta's base.
func (o *objReader) keepBase(p *packReader, off int64, typ plumbing.ObjectType, data []byte) {
	if _, ok := o.bases[baseKey{p, off}]; ok {
		return
	}
	if o.baseBytes+len(data) > basesLimit {
		clear(o.bases)
		o.baseBytes = 0
	}
	o.bases[baseKey{p, off}] = baseObj{typ, data}
	o.baseBytes += len(data)
}

// readEntryHeader reads a pack entry's type and inflated size.
func readEntryHeader(br io.ByteReader) (int, int64, error) {
	c, err := br.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	kind, size := int(c>>4)&7, int64(c&15)
	for shift := 4; c&0x80 != 0; shift += 7 {
		if shift > 56 {
			return 0, 0, errObjFallback
		}
		if c, err = br.ReadByte(); err != nil {
			return 0, 0, err
		}
		size |= int64(c&0x7f) << shift
	}
	return kind, size, nil
}

// readOfsDeltaOffset reads how far before the entry its base starts, in
// git's offset encoding (each continuation adds one before shifting).
func readOfsDeltaOffset(br io.ByteReader) (int64, error) {
	c, err := br.ReadByte()
	if err != nil {
		return 0, err
	}
	rel := int64(c & 0x7f)
	for c&0x80 != 0 {
		if rel >= 1<<55 {
			return 0, errObjFallback
		}
		if c, err = br.ReadByte(); err != nil {
			return 0, err
		}
		rel = (rel+1)<<7 | int64(c&0x7f)
	}
	return rel, nil
}

// applyDelta applies a git delta (the pack format's copy and insert
// instructions) to base.
func applyDelta(base, delta []byte) ([]byte, error) {
	srcSize, delta, ok := deltaSize(delta)
	if !ok || srcSize != uint64(len(base)) {
		return nil, errors.New("delta: base size mismatch")
	}
	dstSize, delta, ok := deltaSize(delta)
	if !ok || dstSize > 1<<40 {
		return nil, errors.New("delta: bad result size")
	}
	// The size is the delta's word: a malformed one must not allocate
	// more than the instructions could write.
	out := make([]byte, 0, min(dstSize, uint64(len(base)+len(delta))))
	for len(delta) > 0 {
		c := delta[0]
		delta = delta[1:]
		switch {
		case c&0x80 != 0:
			var off, n uint64
			for i := 0; i < 7; i++ {
				if c&(1<<i) == 0 {
					continue
				}
				if len(delta) == 0 {
					return nil, errors.New("delta: truncated copy")
				}
				if i < 4 {
					off |= uint64(delta[0]) << (8 * i)
				} else {
					n |= uint64(delta[0]) << (8 * (i - 4))
				}
				delta = delta[1:]
			}
			if n == 0 {
				n = 0x10000
			}
			if off+n > uint64(len(base)) || uint64(len(out))+n > dstSize {
				return nil, errors.New("delta: copy out of range")
			}
			out = append(out, base[off:off+n]...)
		case c != 0:
			if int(c) > len(delta) || uint64(len(out))+uint64(c) > dstSize {
				return nil, errors.New("delta: truncated insert")
			}
			out = append(out, delta[:c]...)
			delta = delta[c:]
		default:
			return nil, errors.New("delta: reserved instruction 0")
		}
	}
	if uint64(len(out)) != dstSize {
		return nil, errors.New("delta: result size mismatch")
	}
	return out, nil
}

// deltaSize reads one of a delta's two leading sizes (7 bits a byte, low
// bits first).
func deltaSize(b []byte) (uint64, []byte, bool) {
	var v uint64
	for i, shift := 0, 0; i < len(b) && shift < 64; i, shift = i+1, shift+7 {
		v |= uint64(b[i]&0x7f) << shift
		if b[i]&0x80 == 0 {
			return v, b[i+1:], true
		}
	}
	return 0, nil, false
}

// readAtCloser is a pack's file.
type readAtCloser interface {
	io.ReaderAt
	io.Closer
}

// packReader is one pack and its version 2 index, opened on first use.
type packReader struct {
	idxPath, packPath string

	opened   bool
	bad      bool // not a pack this reader reads: always falls back
	idx      *os.File
	pack     readAtCloser
	packSize int64
	n        int64 // objects in the pack
	fanout   [256]uint32
}

const (
	idxHeader  = 8         // magic and version
	idxNames   = 8 + 256*4 // where the sorted ids start
	idxBulkMax = 2048      // a fanout bucket up to this many ids is read whole
	idxMagic   = "\xfftOc" // version 2 and later
	hashLen    = 20        // a SHA-1 id
	packMagic  = "PACK"
	packHdrLen = 12
)

func (p *packReader) open() {
	p.opened = true
	p.bad = true
	idx, err := os.Open(p.idxPath)
	if err != nil {
		return
	}
	var head [idxNames]byte
	if _, err := idx.ReadAt(head[:], 0); err != nil || string(head[:4]) != idxMagic || binary.BigEndian.Uint32(head[4:8]) != 2 {
		idx.Close()
		return
	}
	for i := range p.fanout {
		p.fanout[i] = binary.BigEndian.Uint32(head[idxHeader+4*i:])
		if i > 0 && p.fanout[i] < p.fanout[i-1] {
			idx.Close()
			return
		}
	}
	p.n = int64(p.fanout[255])
	pack, err := os.Open(p.packPath)
	if err != nil {
		idx.Close()
		return
	}
	var ph [packHdrLen]byte
	st, serr := pack.Stat()
	if _, err := pack.ReadAt(ph[:], 0); err != nil || serr != nil || string(ph[:4]) != packMagic ||
		(binary.BigEndian.Uint32(ph[4:8]) != 2 && binary.BigEndian.Uint32(ph[4:8]) != 3) ||
		int64(binary.BigEndian.Uint32(ph[8:12])) != p.n {
		idx.Close()
		pack.Close()
		return
	}
	p.idx, p.pack, p.packSize, p.bad = idx, pack, st.Size(), false
}

func (p *packReader) close() {
	if p.idx != nil {
		p.idx.Close()
		p.pack.Close()
	}
	p.bad = true
}

// find returns the offset of h in the pack, if it is there.
func (p *packReader) find(h plumbing.Hash) (int64, bool, error) {
	if !p.opened {
		p.open()
	}
	if p.bad {
		return 0, false, nil
	}
	lo, hi := int64(0), int64(p.fanout[h[0]])
	if h[0] > 0 {
		lo = int64(p.fanout[h[0]-1])
	}
	if hi <= lo {
		return 0, false, nil
	}
	i, found, err := p.search(h, lo, hi)
	if err != nil || !found {
		return 0, false, err
	}
	var b [8]byte
	if _, err := p.idx.ReadAt(b[:4], idxNames+p.n*hashLen+p.n*4+i*4); err != nil {
		return 0, false, errObjFallback
	}
	off := int64(binary.BigEndian.Uint32(b[:4]))
	if off&0x80000000 != 0 {
		// An offset past 2 GiB: in the table of 8-byte offsets.
		j := off & 0x7fffffff
		if _, err := p.idx.ReadAt(b[:], idxNames+p.n*hashLen+p.n*8+j*8); err != nil {
			return 0, false, errObjFallback
		}
		off = int64(binary.BigEndian.Uint64(b[:]))
	}
	if off < packHdrLen || off >= p.packSize {
		return 0, false, errObjFallback
	}
	return off, true, nil
}

// search finds h among the sorted ids [lo, hi) of the index: a small
// fanout bucket is read whole, a large one probed id by id.
func (p *packReader) search(h plumbing.Hash, lo, hi int64) (int64, bool, error) {
	if hi-lo <= idxBulkMax {
		names := make([]byte, (hi-lo)*hashLen)
		if _, err := p.idx.ReadAt(names, idxNames+lo*hashLen); err != nil {
			return 0, false, errObjFallback
		}
		k := sort.Search(int(hi-lo), func(k int) bool {
			return bytes.Compare(names[k*hashLen:(k+1)*hashLen], h[:]) >= 0
		})
		if k < int(hi-lo) && bytes.Equal(names[k*hashLen:(k+1)*hashLen], h[:]) {
			return lo + int64(k), true, nil
		}
		return 0, false, nil
	}
	var name [hashLen]byte
	for lo < hi {
		mid := lo + (hi-lo)/2
		if _, err := p.idx.ReadAt(name[:], idxNames+mid*hashLen); err != nil {
			return 0, false, errObjFallback
		}
		switch c := bytes.Compare(name[:], h[:]); {
		case c == 0:
			return mid, true, nil
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return 0, false, nil
}

// fastStorage is go-git's storage with objects read by objReader first:
// go-git reads only what objReader leaves to it. An object objReader
// returns is checked against its id (its content hashed as git does).
//
// The objects it has checked are kept (objectCache): a step reads the same
// trees (the tip's root, .codemachine/) several times, and an object's
// content never changes under its id.
type fastStorage struct {
	*filesystem.Storage
	objs *objReader
	seen objectCache
}

// EncodedObject returns object h (of type t, or any with AnyObject).
func (s *fastStorage) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	o := s.seen.get(h)
	if o == nil {
		if typ, data, err := s.objs.read(h); err == nil && plumbing.ComputeHash(typ, data) == h {
			o = &readObject{h: h, typ: typ, data: data}
			s.seen.add(o)
		}
	}
	switch {
	case o == nil:
		return s.Storage.EncodedObject(t, h)
	case t != plumbing.AnyObject && t != o.typ:
		// As go-git answers an object of another type (ResolveRevision
		// asks whether a commit is a tag).
		return nil, plumbing.ErrObjectNotFound
	}
	return o, nil
}

// objectCache keeps the most recently read objects up to a total size,
// least recently used out first. Objects are immutable under their ids, so
// a kept one is never stale.
type objectCache struct {
	mu    sync.Mutex
	byID  map[plumbing.Hash]*list.Element
	order list.List // of *readObject, most recently used first
	bytes int
}

// objectCacheLimit bounds the bytes kept; objectCacheMaxObject keeps big
// blobs out, which a step reads once if at all.
const (
	objectCacheLimit     = 8 << 20
	objectCacheMaxObject = 256 << 10
)

func (c *objectCache) get(h plumbing.Hash) *readObject {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[h]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*readObject)
}

func (c *objectCache) add(o *readObject) {
	if len(o.data) > objectCacheMaxObject {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil {
		c.byID = map[plumbing.Hash]*list.Element{}
	}
	if _, ok := c.byID[o.h]; ok {
		return
	}
	c.byID[o.h] = c.order.PushFront(o)
	c.bytes += len(o.data)
	for c.bytes > objectCacheLimit {
		last := c.order.Back()
		old := c.order.Remove(last).(*readObject)
		delete(c.byID, old.h)
		c.bytes -= len(old.data)
	}
}

// readObject is an object objReader read: a plumbing.EncodedObject over
// its content, which it does not copy (plumbing.MemoryObject would). It
// is read-only, as every object a storage returns is used.
type readObject struct {
	h    plumbing.Hash
	typ  plumbing.ObjectType
	data []byte
}

func (o *readObject) Hash() plumbing.Hash           { return o.h }
func (o *readObject) Type() plumbing.ObjectType     { return o.typ }
func (o *readObject) SetType(t plumbing.ObjectType) { o.typ = t }
func (o *readObject) Size() int64                   { return int64(len(o.data)) }
func (o *readObject) SetSize(int64)                 {}

// Reader reads the content; it can seek, as a MemoryObject's can.
func (o *readObject) Reader() (io.ReadCloser, error) {
	return readSeekNopCloser{bytes.NewReader(o.data)}, nil
}

// Writer fails: the object is what the repository holds.
func (o *readObject) Writer() (io.WriteCloser, error) {
	return nil, errors.New("an object read from the repository is read-only")
}

type readSeekNopCloser struct{ *bytes.Reader }

func (readSeekNopCloser) Close() error { return nil }

// refFast resolves the full ref name the way git's files backend stores
// it: a loose ref file (per worktree for refs/bisect/, refs/worktree/ and
// refs/rewritten/, shared otherwise), else packed-refs, following
// symbolic refs. ok is false when it cannot tell (a reftable repository, a
// malformed file, a name outside refs/): go-git answers then. hash is ""
// when the ref does not exist.
func refFast(gitDir, commonDir, name string) (hash string, ok bool) {
	for depth := 0; depth < 5; depth++ {
		if !strings.HasPrefix(name, "refs/") || strings.Contains(name, "..") {
			return "", false
		}
		if _, err := os.Stat(filepath.Join(commonDir, "reftable")); err == nil {
			return "", false
		}
		dir := commonDir
		for _, p := range []string{"refs/bisect/", "refs/worktree/", "refs/rewritten/"} {
			if strings.HasPrefix(name, p) {
				dir = gitDir
			}
		}
		data, err := fastread.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				return "", false
			}
			return packedRef(commonDir, name)
		}
		s := strings.TrimSpace(string(data))
		if isHash(s) {
			return s, len(s) == 2*hashLen
		}
		target, sym := strings.CutPrefix(s, "ref: ")
		if !sym {
			return "", false
		}
		name = target
	}
	return "", false
}

// packedRef looks name up in packed-refs.
func packedRef(commonDir, name string) (hash string, ok bool) {
	ok = eachPackedRef(commonDir, func(n, h string) bool {
		if n == name {
			hash = h
			return false
		}
		return true
	})
	if !ok {
		return "", false
	}
	return hash, true
}
