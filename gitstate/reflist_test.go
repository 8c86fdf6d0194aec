package gitstate

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gitRefs is git's own listing of the hash refs under prefix.
func gitRefs(t *testing.T, dir, prefix string) map[string]string {
	t.Helper()
	out := git(t, dir, "for-each-ref", "--format=%(refname) %(objectname) %(symref)")
	refs := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && strings.HasPrefix(f[0], prefix) {
			refs[f[0]] = f[1]
		}
	}
	return refs
}

// TestRefsFastAsGitLists: the in-process listing gives what git lists,
// with refs loose, packed, packed then updated or deleted loose, symbolic,
// nested, beside lock files, and for prefixes that end inside a name.
func TestRefsFastAsGitLists(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	first := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "a.txt", "b\n")
	second := commitAll(t, dir, "second")
	for _, b := range []string{"codemachine/review/s1", "codemachine/review/impl/T1", "codemachine/review/impl/T2", "codemachine/reviewer", "other"} {
		git(t, dir, "branch", b, first)
	}
	git(t, dir, "update-ref", "refs/remotes/origin/codemachine/review/s2", first)
	git(t, dir, "pack-refs", "--all")
	// After packing: one updated loose, one deleted, one new loose, a
	// symbolic ref and a lock file beside them.
	git(t, dir, "update-ref", "refs/heads/codemachine/review/impl/T1", second)
	git(t, dir, "update-ref", "-d", "refs/heads/codemachine/review/s1")
	git(t, dir, "branch", "codemachine/review/s3", second)
	git(t, dir, "symbolic-ref", "refs/heads/codemachine/review/sym", "refs/heads/main")
	write(t, filepath.Join(dir, ".git", "refs", "heads", "codemachine", "review"), "s3.lock", second+"\n")

	for _, prefix := range []string{"refs/heads/codemachine/review/", "refs/heads/codemachine/rev", "refs/heads/", "refs/remotes/", "refs/heads/codemachine/review/impl/", "refs/tags/", "refs/heads/nothing/"} {
		got, ok, err := refsFast(r.CommonDir(), prefix)
		if !ok || err != nil {
			t.Fatalf("%s: ok %v, err %v", prefix, ok, err)
		}
		if want := gitRefs(t, dir, prefix); !maps.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", prefix, got, want)
		}
		listed, err := r.RefsWithPrefix(prefix)
		if err != nil || !maps.Equal(listed, got) {
			t.Errorf("RefsWithPrefix(%s) = %v, %v; want %v", prefix, listed, err, got)
		}
	}
}

// TestRefsFastLeavesItToGoGit: where the files backend's layout does not
// say it all, the in-process listing declines and go-git answers.
func TestRefsFastLeavesItToGoGit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	for _, prefix := range []string{"refs/", "refs/worktree/", "refs/bisect/x", "heads/", "refs/heads/../"} {
		if _, ok, _ := refsFast(r.CommonDir(), prefix); ok {
			t.Errorf("%s: listed in-process", prefix)
		}
	}
	write(t, filepath.Join(dir, ".git", "refs", "heads"), "garbage", "not a hash\n")
	if _, ok, _ := refsFast(r.CommonDir(), "refs/heads/"); ok {
		t.Error("a file that is no ref was listed in-process")
	}
	if err := os.Remove(filepath.Join(dir, ".git", "refs", "heads", "garbage")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, ".git", "reftable"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := refsFast(r.CommonDir(), "refs/heads/"); ok {
		t.Error("a reftable repository was listed in-process")
	}
}
