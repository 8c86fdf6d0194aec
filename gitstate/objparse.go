package gitstate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
)

// This file decodes the commit, tree and tag objects gitstate reads, in
// place of go-git's plumbing/object. That package links ProtonMail's
// OpenPGP (for signature checks codemachine never makes), cloudflare's
// CIRCL curves and a diff library, and Go initialises every linked package
// before main, in every command (docs/benchmarks.md). The decoding follows
// git's (commit.c, tag.c) and go-git's reading of the same bytes, which
// the tests compare against git.

// errMalformedObject is an object whose content is not what its type says.
var errMalformedObject = errors.New("malformed object")

// commitObj is what gitstate reads of a commit object.
type commitObj struct {
	Hash         plumbing.Hash
	TreeHash     plumbing.Hash
	ParentHashes []plumbing.Hash
	Author       Signature
	Committer    Signature
	Message      string
}

// treeObj is a decoded tree object, its entries in the object's order.
type treeObj struct {
	Hash    plumbing.Hash
	Entries []treeObjEntry
}

// treeObjEntry is one entry of a tree object.
type treeObjEntry struct {
	Name string
	Mode filemode.FileMode
	Hash plumbing.Hash
}

// objectBytes is the content of object h of type t. kept says it is the
// in-house reader's own copy (objectCache), which the caller must not
// change.
func (g *gitRepo) objectBytes(t plumbing.ObjectType, h plumbing.Hash) (data []byte, kept bool, err error) {
	o, err := g.Storer.EncodedObject(t, h)
	if err != nil {
		return nil, false, err
	}
	if ro, ok := o.(*readObject); ok {
		return ro.data, true, nil
	}
	rd, err := o.Reader()
	if err != nil {
		return nil, false, err
	}
	defer rd.Close()
	data, err = io.ReadAll(rd)
	return data, false, err
}

// BlobObject is the content of blob h, the caller's to keep and change.
func (g *gitRepo) BlobObject(h plumbing.Hash) ([]byte, error) {
	data, kept, err := g.objectBytes(plumbing.BlobObject, h)
	if kept {
		data = bytes.Clone(data)
	}
	return data, err
}

// CommitObject reads and decodes commit h.
func (g *gitRepo) CommitObject(h plumbing.Hash) (*commitObj, error) {
	data, _, err := g.objectBytes(plumbing.CommitObject, h)
	if err != nil {
		return nil, err
	}
	c, err := parseCommit(data)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", h, err)
	}
	c.Hash = h
	return c, nil
}

// TreeObject reads and decodes tree h.
func (g *gitRepo) TreeObject(h plumbing.Hash) (*treeObj, error) {
	data, _, err := g.objectBytes(plumbing.TreeObject, h)
	if err != nil {
		return nil, err
	}
	entries, err := parseTree(data)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", h, err)
	}
	return &treeObj{Hash: h, Entries: entries}, nil
}

// parseCommit decodes a commit object's content as git does: the tree
// header first, then the parents' lines, which must follow it without a
// gap, then the author and the committer, each only at its place (git
// ignores a header out of its place); the message is everything after the
// first empty line. Other headers (encoding, gpgsig, mergetag) are
// skipped.
func parseCommit(data []byte) (*commitObj, error) {
	head, msg, found := bytes.Cut(data, []byte("\n\n"))
	if !found && bytes.HasSuffix(data, []byte("\n")) {
		head = data[:len(data)-1]
	}
	if len(data) == 0 || data[0] == '\n' {
		return nil, fmt.Errorf("%w: missing tree header", errMalformedObject)
	}
	c := &commitObj{Message: string(msg)}
	lines := bytes.Split(head, []byte("\n"))
	key, value := splitHeader(lines[0])
	if key != "tree" {
		return nil, fmt.Errorf("%w: tree header must be first", errMalformedObject)
	}
	var err error
	if c.TreeHash, err = parseHexID(value, "tree"); err != nil {
		return nil, err
	}
	lines = lines[1:]
	for len(lines) > 0 {
		key, value := splitHeader(lines[0])
		if key != "parent" {
			break
		}
		p, err := parseHexID(value, "parent")
		if err != nil {
			return nil, err
		}
		c.ParentHashes = append(c.ParentHashes, p)
		lines = lines[1:]
	}
	if len(lines) > 0 {
		if key, value := splitHeader(lines[0]); key == "author" {
			c.Author = parseSignature(value)
			lines = lines[1:]
		}
	}
	if len(lines) > 0 {
		if key, value := splitHeader(lines[0]); key == "committer" {
			c.Committer = parseSignature(value)
		}
	}
	return c, nil
}

// splitHeader is a header line's name (up to the first space) and value.
func splitHeader(line []byte) (string, []byte) {
	key, value, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return string(line), nil
	}
	return string(key), value
}

// parseHexID reads the object id a header names.
func parseHexID(b []byte, header string) (plumbing.Hash, error) {
	if !plumbing.IsHash(string(b)) {
		return plumbing.ZeroHash, fmt.Errorf("%w: bad %s id %q", errMalformedObject, header, b)
	}
	return plumbing.NewHash(string(b)), nil
}

// parseSignature reads "Name <email> seconds +zone". What cannot be read
// is left empty: git shows such a commit rather than refuse it, and so
// does codemachine (a time without a zone is UTC).
func parseSignature(b []byte) Signature {
	var s Signature
	open, end := bytes.LastIndexByte(b, '<'), bytes.LastIndexByte(b, '>')
	if open < 0 || end < open {
		return s
	}
	s.Name = string(bytes.Trim(b[:open], " "))
	s.Email = string(b[open+1 : end])
	if end+2 >= len(b) {
		return s
	}
	rest := b[end+2:]
	secs, zone, _ := bytes.Cut(rest, []byte{' '})
	ts, err := strconv.ParseInt(string(secs), 10, 64)
	if err != nil {
		return s
	}
	s.When = time.Unix(ts, 0).In(time.UTC)
	if len(zone) < 5 {
		return s
	}
	hours, err1 := strconv.ParseInt(string(zone[:3]), 10, 64)
	mins, err2 := strconv.ParseInt(string(zone[3:5]), 10, 64)
	if err1 != nil || err2 != nil {
		return s
	}
	if zone[0] == '-' {
		// git's sign is the zone's, "-0030" included (go-git reads that
		// one as +00:30).
		mins = -mins
	}
	s.When = s.When.In(time.FixedZone("", int(hours*3600+mins*60)))
	return s
}

// parseTree decodes a tree object's entries ("mode name\0" and 20 bytes of
// id each). A mode is read as git reads it: its file type decides, so a
// legacy 100664 is a regular file.
func parseTree(data []byte) ([]treeObjEntry, error) {
	var out []treeObjEntry
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		if sp < 0 {
			return nil, fmt.Errorf("%w: tree entry without a mode terminator", errMalformedObject)
		}
		mode, err := strconv.ParseUint(string(data[:sp]), 8, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: tree entry mode %q", errMalformedObject, data[:sp])
		}
		data = data[sp+1:]
		nul := bytes.IndexByte(data, 0)
		switch {
		case nul < 0:
			return nil, fmt.Errorf("%w: tree entry without a name terminator", errMalformedObject)
		case nul == 0:
			return nil, fmt.Errorf("%w: tree entry with an empty name", errMalformedObject)
		case len(data) < nul+1+len(plumbing.ZeroHash):
			return nil, fmt.Errorf("%w: tree entry with a truncated id", errMalformedObject)
		}
		e := treeObjEntry{Name: string(data[:nul]), Mode: canonicalMode(filemode.FileMode(mode))}
		copy(e.Hash[:], data[nul+1:])
		out = append(out, e)
		data = data[nul+1+len(plumbing.ZeroHash):]
	}
	return out, nil
}

// canonicalMode is the mode git uses for an entry's file type.
func canonicalMode(m filemode.FileMode) filemode.FileMode {
	switch m & 0o170000 {
	case 0o040000:
		return filemode.Dir
	case 0o100000:
		if m&0o111 != 0 {
			return filemode.Executable
		}
		return filemode.Regular
	case 0o120000:
		return filemode.Symlink
	default:
		return filemode.Submodule
	}
}

// peelTag is the commit an annotated tag h points at; ok is false when h
// is no tag object. A tag of anything else than a commit is an error.
func (g *gitRepo) peelTag(h plumbing.Hash) (commit plumbing.Hash, ok bool, err error) {
	data, _, err := g.objectBytes(plumbing.TagObject, h)
	if err != nil {
		return plumbing.ZeroHash, false, nil
	}
	target, typ, err := parseTagTarget(data)
	if err != nil {
		return plumbing.ZeroHash, false, nil
	}
	if typ != plumbing.CommitObject {
		return plumbing.ZeroHash, true, fmt.Errorf("tag %s: points at a %s, not a commit", h, typ)
	}
	c, err := g.CommitObject(target)
	if err != nil {
		return plumbing.ZeroHash, true, err
	}
	return c.Hash, true, nil
}

// parseTagTarget reads the object, type and tag headers a tag object
// starts with, in that order, as git requires them.
func parseTagTarget(data []byte) (plumbing.Hash, plumbing.ObjectType, error) {
	lines := bytes.SplitN(data, []byte("\n"), 4)
	if len(lines) < 3 {
		return plumbing.ZeroHash, plumbing.InvalidObject, fmt.Errorf("%w: a tag without its headers", errMalformedObject)
	}
	key, value := splitHeader(lines[0])
	if key != "object" {
		return plumbing.ZeroHash, plumbing.InvalidObject, fmt.Errorf("%w: object header must be first", errMalformedObject)
	}
	target, err := parseHexID(value, "object")
	if err != nil {
		return plumbing.ZeroHash, plumbing.InvalidObject, err
	}
	key, value = splitHeader(lines[1])
	if key != "type" {
		return plumbing.ZeroHash, plumbing.InvalidObject, fmt.Errorf("%w: type header must follow object", errMalformedObject)
	}
	typ, err := plumbing.ParseObjectType(string(value))
	if err != nil {
		return plumbing.ZeroHash, plumbing.InvalidObject, fmt.Errorf("%w: %w", errMalformedObject, err)
	}
	if key, _ := splitHeader(lines[2]); key != "tag" {
		return plumbing.ZeroHash, plumbing.InvalidObject, fmt.Errorf("%w: tag header must follow type", errMalformedObject)
	}
	return target, typ, nil
}
