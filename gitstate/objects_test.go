package gitstate

import (
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHashObjectAndCommitTree(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "1"})
	ctx := t.Context()
	h, err := r.HashObject(ctx, []byte("hello\n"))
	if err != nil || h != "ce013625030ba8dba906f756967f9e9ca394464a" {
		t.Fatalf("HashObject = %s, %v", h, err)
	}
	if got := git(t, dir, "cat-file", "-p", h); got != "hello" {
		t.Errorf("blob content %q", got)
	}
	head := git(t, dir, "rev-parse", "HEAD")
	tree := git(t, dir, "rev-parse", "HEAD^{tree}")
	when := time.Date(2026, 5, 6, 7, 8, 9, 0, time.FixedZone("", 2*3600))
	c, err := r.CommitTree(ctx, CommitSpec{Tree: tree, Parents: []string{head}, Message: "subject\n\nbody",
		Author: Signature{Name: "codemachine codex/gpt-5", Email: "codemachine@localhost", When: when}})
	if err != nil {
		t.Fatal(err)
	}
	got := git(t, dir, "log", "-1", "--format=%an|%ae|%ad|%cn|%ce|%P|%T|%B", "--date=raw", c)
	want := "codemachine codex/gpt-5|codemachine@localhost|1778044089 +0200|Test Committer|committer@example.com|" + head + "|" + tree + "|subject\n\nbody"
	if got != want {
		t.Errorf("commit:\n%s\nwant\n%s", got, want)
	}
	// No When: git's own clock (here the environment's fixed date).
	c2, err := r.CommitTree(ctx, CommitSpec{Tree: tree, Message: "root", Author: Signature{Name: "x", Email: "x@y"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := git(t, dir, "log", "-1", "--format=%ad|%P", "--date=iso-strict", c2); got != "2026-01-02T03:04:05+00:00|" {
		t.Errorf("root commit: %s", got)
	}
}

func TestCommitTreeWithoutIdentity(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "1"})
	r.env = []string{"GIT_COMMITTER_NAME=", "GIT_COMMITTER_EMAIL="}
	git(t, dir, "config", "user.useConfigOnly", "true")
	_, err := r.CommitTree(t.Context(), CommitSpec{Tree: git(t, dir, "rev-parse", "HEAD^{tree}"), Message: "m"})
	if !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "user.email") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want ErrNoIdentity", err)
	}
}

func TestUpdateRefCompareAndSwap(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "1"})
	ctx := t.Context()
	c1 := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "a", "2")
	c2 := commitAll(t, dir, "second")
	ref := "refs/codemachine/failed/plan"

	steps := []struct {
		name     string
		new, old string
		moved    bool
		after    string
	}{
		{"create", c1, "", false, c1},
		{"create again", c2, "", true, c1},
		{"swap", c2, c1, false, c2},
		{"stale old value", c1, c1, true, c2},
	}
	for _, s := range steps {
		err := r.UpdateRef(ctx, ref, s.new, s.old, "codemachine: "+s.name)
		if s.moved != errors.Is(err, ErrRefMoved) || (!s.moved && err != nil) {
			t.Fatalf("%s: err = %v, want moved=%v", s.name, err, s.moved)
		}
		if got := git(t, dir, "rev-parse", ref); got != s.after {
			t.Fatalf("%s: ref at %s, want %s", s.name, got, s.after)
		}
	}
	// Earlier values stay in the reflog.
	if got := git(t, dir, "reflog", "show", "--format=%H %gs", ref); got != c2+" codemachine: swap\n"+c1+" codemachine: create" {
		t.Errorf("reflog:\n%s", got)
	}
	if err := r.DeleteRef(ctx, ref, c1); !errors.Is(err, ErrRefMoved) {
		t.Errorf("DeleteRef with a stale value: %v", err)
	}
	if err := r.DeleteRef(ctx, ref, c2); err != nil {
		t.Fatal(err)
	}
	gitFails(t, dir, "rev-parse", "--verify", "-q", ref)
	if err := r.UpdateRef(ctx, "refs/heads/main", c1, c1, "m"); !errors.Is(err, ErrRefMoved) || strings.Contains(err.Error(), "\n") {
		t.Errorf("branch CAS with a stale value: %v", err)
	}
}

func TestDiffTrees(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"keep": "k", "mod": "1", "del": "d", "type": "t"})
	a := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "mod", "2")
	write(t, dir, "new dir/added", "n")
	git(t, dir, "rm", "-q", "del", "type")
	if err := os.Symlink("keep", dir+"/type"); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "changes")
	b := git(t, dir, "rev-parse", "HEAD")
	changes, err := r.DiffTrees(t.Context(), a, b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, string(c.Status)+" "+c.Path+" "+c.OldMode+">"+c.NewMode)
	}
	want := []string{"D del 100644>", "M mod 100644>100644", "A new dir/added >100644", "T type 100644>120000"}
	if !slices.Equal(got, want) {
		t.Errorf("DiffTrees = %v, want %v", got, want)
	}
	if changes[2].NewHash != git(t, dir, "rev-parse", "HEAD:new dir/added") || changes[2].OldHash != "" {
		t.Errorf("added hashes: %+v", changes[2])
	}
	all, err := r.DiffTrees(t.Context(), "", b)
	if err != nil || len(all) != 4 || all[0].Status != 'A' {
		t.Errorf("DiffTrees from the empty tree = %+v, %v", all, err)
	}
	// The in-process diff and git diff-tree agree field by field, between
	// commits and between trees.
	for _, pair := range [][2]string{{a, b}, {b, a}, {a + "^{tree}", b + "^{tree}"}} {
		x, y := git(t, dir, "rev-parse", pair[0]), git(t, dir, "rev-parse", pair[1])
		if inProc, cli := diffBothWays(t, r, x, y); !slices.Equal(inProc, cli) {
			t.Errorf("in process %v\nwant (git)  %v", inProc, cli)
		}
	}
}

// diffBothWays diffs two trees in process and with git diff-tree -r.
func diffBothWays(t *testing.T, r *Repo, a, b string) (inProc, cli []Change) {
	t.Helper()
	inProc, err := r.diffTreesInProcess(a, b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.read(t.Context(), "diff-tree", "-r", "-z", "--no-renames", "--raw", a, b)
	if err != nil {
		t.Fatal(err)
	}
	if cli, err = parseRawDiff(out); err != nil {
		t.Fatal(err)
	}
	return inProc, cli
}

// TestDiffTreesLikeGit compares the in-process tree walk with git diff-tree
// -r on the shapes a step's change can take: nested edits, whole
// directories added and removed, a file turned into a directory and back,
// an executable bit, names that sort around "/".
func TestDiffTreesLikeGit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{
		"src/a/deep/x.go": "x", "src/a/deep/y.go": "y", "src/b/z.go": "z", "gone/1": "1", "gone/sub/2": "2",
		"becomes-dir": "f", "was-dir/f": "f", "tool.sh": "#!/bin/sh\n", "a-b": "ab", "a/b": "ab", "same/s": "s",
	})
	before := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "src/a/deep/x.go", "x2")
	write(t, dir, "src/c/new/n.go", "n")
	write(t, dir, "a.b", "dot")
	write(t, dir, "a/c", "ac")
	git(t, dir, "rm", "-r", "-q", "gone", "becomes-dir", "was-dir")
	write(t, dir, "becomes-dir/inside", "i")
	write(t, dir, "was-dir", "now a file")
	git(t, dir, "add", "-A")
	git(t, dir, "update-index", "--chmod=+x", "tool.sh")
	git(t, dir, "commit", "-q", "-m", "shapes")
	after := git(t, dir, "rev-parse", "HEAD")
	for _, pair := range [][2]string{{before, after}, {after, before}, {before, before}} {
		inProc, cli := diffBothWays(t, r, pair[0], pair[1])
		if !slices.Equal(inProc, cli) {
			t.Errorf("%.7s..%.7s in process:\n%v\nwant (git):\n%v", pair[0], pair[1], inProc, cli)
		}
		if pair[0] != pair[1] && len(cli) < 10 {
			t.Errorf("the fixture changed only %d files: %v", len(cli), cli)
		}
	}
}

func TestMergeTree(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "1\n2\n3\n4\n5\n", "b": "b\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "a", "one\n2\n3\n4\n5\n")
	ours := commitAll(t, dir, "ours")
	git(t, dir, "checkout", "-q", "-b", "theirs", base)
	write(t, dir, "a", "1\n2\n3\n4\nfive\n")
	write(t, dir, "c", "c\n")
	theirs := commitAll(t, dir, "theirs")
	git(t, dir, "checkout", "-q", "-b", "clash", base)
	write(t, dir, "a", "ONE\n2\n3\n4\n5\n")
	clash := commitAll(t, dir, "clash")
	ctx := t.Context()

	tree, conflicts, err := r.MergeTree(ctx, base, ours, theirs)
	if err != nil || len(conflicts) != 0 {
		t.Fatalf("clean merge: %v %v", conflicts, err)
	}
	fsys, _ := r.TreeFS(tree)
	if data, _ := fsys.(*TreeFS).ReadFile("a"); string(data) != "one\n2\n3\n4\nfive\n" {
		t.Errorf("merged a = %q", data)
	}
	if _, conflicts, err = r.MergeTree(ctx, base, ours, clash); err != nil || !slices.Equal(conflicts, []string{"a"}) {
		t.Errorf("conflicting merge: %v %v", conflicts, err)
	}
	// A base that is not the merge base (here: apply theirs' change, as a
	// cherry-pick of theirs onto clash, relative to base): the synthetic
	// path must give the same answer as git cherry-pick would.
	tree2, conflicts, err := r.MergeTree(ctx, ours, clash, theirs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(conflicts, []string{"a"}) {
		t.Errorf("apply ours..theirs onto clash: conflicts %v, want [a]", conflicts)
	}
	if tree2 == "" {
		t.Error("no tree for a conflicting merge")
	}
	tree3, conflicts, err := r.MergeTree(ctx, base+"^{tree}", ours+"^{tree}", theirs+"^{tree}")
	if err != nil || len(conflicts) != 0 || tree3 != tree {
		t.Errorf("merge of trees = %s %v %v, want %s", tree3, conflicts, err, tree)
	}
}

func TestOverlayTree(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"keep": "k", ".codemachine/state.yaml": "old", ".codemachine/plan.md": "- [ ] T1", "gone": "g", "f": "file"})
	ctx := t.Context()
	write(t, dir, "keep", "user's unstaged edit")
	git(t, dir, "add", "keep")
	indexBefore := git(t, dir, "ls-files", "-s")
	state, _ := r.HashObject(ctx, []byte("new state"))
	plan, _ := r.HashObject(ctx, []byte("- [x] T1"))
	script, _ := r.HashObject(ctx, []byte("#!/bin/sh"))
	tree, err := r.OverlayTree(ctx, "HEAD", map[string]Blob{
		".codemachine/state.yaml": {Hash: state},
		".codemachine/plan.md":    {Hash: plan},
		"new/dir/run.sh":          {Hash: script, Mode: "100755"},
		"gone":                    {},
		"f/under":                 {Hash: script}, // a file becomes a directory
	})
	if err != nil {
		t.Fatal(err)
	}
	got := git(t, dir, "ls-tree", "-r", "--format=%(objectmode) %(path)", tree)
	want := "100644 .codemachine/plan.md\n100644 .codemachine/state.yaml\n100644 f/under\n100644 keep\n100755 new/dir/run.sh"
	if got != want {
		t.Errorf("tree:\n%s\nwant\n%s", got, want)
	}
	if data, _ := r.ReadFile(tree, ".codemachine/state.yaml"); string(data) != "new state" {
		t.Errorf("state.yaml = %q", data)
	}
	if after := git(t, dir, "ls-files", "-s"); after != indexBefore {
		t.Error("OverlayTree changed the user's index")
	}
	if _, err := r.OverlayTree(ctx, "HEAD", map[string]Blob{"../x": {Hash: state}}); err == nil {
		t.Error("a path outside the tree was accepted")
	}
	if !reflect.DeepEqual(leftovers(t, r), []string(nil)) {
		t.Errorf("temporary files left: %v", leftovers(t, r))
	}
}

// leftovers lists temporary index files left in LocalDir.
func leftovers(t *testing.T, r *Repo) []string {
	entries, err := os.ReadDir(r.LocalDir())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), "index") {
			out = append(out, e.Name())
		}
	}
	return out
}
