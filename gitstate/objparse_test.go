package gitstate

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

const (
	oidA = "1111111111111111111111111111111111111111"
	oidB = "2222222222222222222222222222222222222222"
	oidC = "3333333333333333333333333333333333333333"
)

// commitSamples are commit objects as git writes them, and as it tolerates
// them: signatures, merge tags, encodings, headers out of their place.
var commitSamples = []string{
	"tree " + oidA + "\nauthor A U <a@x> 1700000000 +0100\ncommitter C O <c@x> 1700000001 -0230\n\nsubject\n\nbody\n",
	"tree " + oidA + "\nparent " + oidB + "\nparent " + oidC + "\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 2 +1400\n\nmerge\n",
	"tree " + oidA + "\nparent " + oidB + "\nauthor A <a@x> 1700000000 +0000\ncommitter C <c@x> 1700000000 +0000\n" +
		"gpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEE\n -----END PGP SIGNATURE-----\n\nsigned\n",
	"tree " + oidA + "\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 2 +0000\nmergetag object " + oidB + "\n type commit\n tag v1\n\nmsg",
	"tree " + oidA + "\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 2 +0000\nencoding ISO-8859-1\n\n\n\nleading blank lines\n",
	"tree " + oidA + "\ncommitter C <c@x> 2 +0000\nauthor A <a@x> 1 +0000\n\nauthor after committer",
	"tree " + oidA + "\nauthor A <a@x> 1 +0000\nparent " + oidB + "\ncommitter C <c@x> 2 +0000\n\nparent out of place",
	"tree " + oidA + "\nauthor A <a@x> 1 +0000\nauthor B <b@x> 3 +0000\ncommitter C <c@x> 2 +0000\n\ntwo authors",
	"tree " + oidA + "\nauthor  Spaced  Name  <a@x> 1 +0000\ncommitter <> 2\n\nodd identities",
	"tree " + oidA + "\nauthor No Date <a@x>\ncommitter Bad <c@x> notanumber +0000\n\nno dates",
	"tree " + oidA + "\nauthor A <a@x> 1 +05\ncommitter C <c@x> 2 +0530 trailing\n\nshort zone",
	"tree " + oidA + "\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 2 +0000",
	"tree " + oidA + "\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 2 +0000\n",
	"tree " + oidA,
	"tree " + oidA + "\n\n",
	"tree " + oidA + "\nx-custom line one\n continued\n\nextra header",
	"tree " + oidA + "\nauthor A <a@x> 1 +0000\ncommitter C <c@x> 2 +0000\n\r\n\nCR line",
	// Malformed: refused by both.
	"",
	"\ntree " + oidA + "\n",
	"parent " + oidB + "\ntree " + oidA + "\n\n",
	"tree 123\n\n",
	"tree " + oidA + "\nparent nothex\n\n",
}

// The commit decoder reads what go-git's did, field by field.
func TestParseCommitMatchesGoGit(t *testing.T) {
	for i, s := range commitSamples {
		t.Run(fmt.Sprint(i), func(t *testing.T) { compareCommit(t, []byte(s)) })
	}
}

func compareCommit(t *testing.T, data []byte) {
	t.Helper()
	h := plumbing.ComputeHash(plumbing.CommitObject, data)
	var want object.Commit
	wantErr := want.Decode(&readObject{h: h, typ: plumbing.CommitObject, data: data})
	got, err := parseCommit(data)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%q: error %v, go-git's %v", data, err, wantErr)
	}
	if err != nil {
		return
	}
	if got.TreeHash != want.TreeHash || fmt.Sprint(got.ParentHashes) != fmt.Sprint(want.ParentHashes) || got.Message != want.Message {
		t.Fatalf("%q:\n got tree %s parents %v message %q\nwant tree %s parents %v message %q",
			data, got.TreeHash, got.ParentHashes, got.Message, want.TreeHash, want.ParentHashes, want.Message)
	}
	for _, p := range []struct {
		name string
		got  Signature
		want object.Signature
	}{{"author", got.Author, want.Author}, {"committer", got.Committer, want.Committer}} {
		g, w := p.got, p.want
		if g.Name != w.Name || g.Email != w.Email || !g.When.Equal(w.When) {
			t.Fatalf("%q: %s %+v, go-git's %+v", data, p.name, g, w)
		}
		_, gOff := g.When.Zone()
		_, wOff := w.When.Zone()
		if gOff != wOff && !(gOff == -wOff && strings.Contains(string(data), " -00")) {
			t.Fatalf("%q: %s zone %d, go-git's %d", data, p.name, gOff, wOff)
		}
	}
}

// FuzzParseCommit: on any bytes, the commit decoder agrees with go-git's.
func FuzzParseCommit(f *testing.F) {
	for _, s := range commitSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { compareCommit(t, data) })
}

// treeSample is a tree object of the given "mode name id" entries.
func treeSample(entries ...string) []byte {
	var b bytes.Buffer
	for _, e := range entries {
		f := strings.Fields(e)
		b.WriteString(f[0] + " " + f[1] + "\x00")
		id := plumbing.NewHash(f[2])
		b.Write(id[:])
	}
	return b.Bytes()
}

var treeSamples = [][]byte{
	treeSample("100644 a "+oidA, "100755 b "+oidB, "120000 c "+oidC, "160000 d "+oidA, "40000 e "+oidB),
	treeSample("100664 legacy "+oidA, "40755 olddir "+oidB, "644 odd "+oidC, "0100644 zero "+oidA),
	{},
	// Malformed: refused by both.
	[]byte("100644 a"),
	[]byte("100644 a\x00short"),
	append([]byte("100644 \x00"), make([]byte, 20)...),
	append([]byte("10x644 a\x00"), make([]byte, 20)...),
	append([]byte(" a\x00"), make([]byte, 20)...),
}

// The tree decoder reads what go-git's did.
func TestParseTreeMatchesGoGit(t *testing.T) {
	for i, s := range treeSamples {
		t.Run(fmt.Sprint(i), func(t *testing.T) { compareTree(t, s) })
	}
}

func compareTree(t *testing.T, data []byte) {
	t.Helper()
	h := plumbing.ComputeHash(plumbing.TreeObject, data)
	var want object.Tree
	wantErr := want.Decode(&readObject{h: h, typ: plumbing.TreeObject, data: data})
	got, err := parseTree(data)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%q: error %v, go-git's %v", data, err, wantErr)
	}
	if err != nil {
		return
	}
	if len(got) != len(want.Entries) {
		t.Fatalf("%q: %d entries, go-git's %d", data, len(got), len(want.Entries))
	}
	for i, e := range want.Entries {
		if g := got[i]; g.Name != e.Name || g.Mode != e.Mode || g.Hash != e.Hash {
			t.Fatalf("%q: entry %d %+v, go-git's %+v", data, i, g, e)
		}
	}
}

// FuzzParseTree: on any bytes, the tree decoder agrees with go-git's.
func FuzzParseTree(f *testing.F) {
	for _, s := range treeSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { compareTree(t, data) })
}

// hashObject writes content as an object of type typ with git, as it is
// (--literally: git would refuse some of these as commits).
func hashObject(t *testing.T, dir, typ, content string) string {
	t.Helper()
	cmd := exec.Command("git", "hash-object", "--literally", "-w", "-t", typ, "--stdin")
	cmd.Dir, cmd.Stdin = dir, strings.NewReader(content)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git hash-object: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// isoStrict is git's %aI: RFC 3339 with +00:00 for UTC, not Z.
const isoStrict = "2006-01-02T15:04:05-07:00"

// Commits, trees and tags read in-process say what git says of them.
func TestObjectsReadAsGitDoes(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "1\n", "d/b": "2\n"})
	git(t, dir, "update-index", "--chmod=+x", "a")
	git(t, dir, "commit", "-qm", "exec")
	tree := git(t, dir, "rev-parse", "HEAD^{tree}")
	head := git(t, dir, "rev-parse", "HEAD")
	sig := "-----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEE\n -----END PGP SIGNATURE-----"
	contents := []string{
		"tree " + tree + "\nparent " + head + "\nauthor Zoe Z <z@x> 1700000000 -0030\ncommitter Cy <c@x> 1700000100 +0545\n" +
			"gpgsig " + sig + "\n\nsigned, from a zone west of UTC by half an hour\n\nbody: line\n",
		"tree " + tree + "\nparent " + head + "\nauthor A <a@x> 1600000000 -1100\ncommitter C <c@x> 1600000000 +0000\n" +
			"encoding ISO-8859-1\nmergetag object " + head + "\n type commit\n tag v0\n\n\nleading blank line\n",
	}
	var commits []string
	for _, content := range contents {
		c := hashObject(t, dir, "commit", content)
		commits = append(commits, c)
		got, err := r.CommitInfo(c)
		if err != nil {
			t.Fatal(err)
		}
		gotTree, err := r.TreeOf(c)
		if err != nil {
			t.Fatal(err)
		}
		gotLines := []string{gotTree, strings.Join(got.Parents, " "), got.Author.Name, got.Author.Email, got.Author.When.Format(isoStrict),
			got.Committer.Name, got.Committer.Email, got.Committer.When.Format(isoStrict)}
		want := git(t, dir, "log", "-1", "--format=%T%n%P%n%an%n%ae%n%aI%n%cn%n%ce%n%cI", c)
		if strings.Join(gotLines, "\n") != want {
			t.Errorf("commit %s:\n got %q\nwant %q", c, gotLines, strings.Split(want, "\n"))
		}
		if _, msg, _ := strings.Cut(content, "\n\n"); got.Message != msg {
			t.Errorf("commit %s: message %q, want %q", c, got.Message, msg)
		}
	}
	git(t, dir, "tag", "-a", "-m", "annotated", "v1", commits[0])
	git(t, dir, "tag", "-a", "-m", "of a tree", "vtree", tree)
	// An annotated tag is the commit it tags; a tag of a tree is git's to
	// answer (it names no commit).
	if got, err := r.ResolveRev("v1"); err != nil || got != commits[0] {
		t.Errorf("v1 resolves to %q, %v; want %s", got, err, commits[0])
	}
	if _, err := r.ResolveRev("vtree"); err == nil {
		t.Error("a tag of a tree resolved as a commit")
	}
	// Tree entries: their modes and ids as git lists them.
	var lines []string
	err := r.goGit(func(g *gitRepo) error {
		for _, id := range []string{tree, git(t, dir, "rev-parse", "HEAD:d")} {
			to, err := g.TreeObject(plumbing.NewHash(id))
			if err != nil {
				return err
			}
			for _, e := range to.Entries {
				kind := "blob"
				if e.Mode == filemode.Dir {
					kind = "tree"
				}
				lines = append(lines, fmt.Sprintf("%s %s %s\t%s", gitMode(e.Mode), kind, e.Hash, e.Name))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := git(t, dir, "ls-tree", tree) + "\n" + git(t, dir, "ls-tree", "HEAD:d")
	want = strings.ReplaceAll(want, "040000 tree", "40000 tree")
	if got := strings.Join(lines, "\n"); got != want {
		t.Errorf("trees:\n got %s\nwant %s", got, want)
	}
}
