package gitstate

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestHead(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "a"})
	c1 := git(t, dir, "rev-parse", "HEAD")
	h, err := r.Head()
	if err != nil || h != (Head{Branch: "main", Commit: c1}) || h.Ref() != "refs/heads/main" {
		t.Fatalf("on main: %+v %v", h, err)
	}
	git(t, dir, "checkout", "-q", "--detach")
	if h, err = r.Head(); err != nil || h != (Head{Commit: c1}) || h.Ref() != "" {
		t.Fatalf("detached: %+v %v", h, err)
	}
	git(t, dir, "checkout", "-q", "--orphan", "fresh")
	if h, err = r.Head(); err != nil || h != (Head{Branch: "fresh"}) {
		t.Fatalf("unborn: %+v %v", h, err)
	}
	if log, err := r.Log("HEAD", 0); err != nil || len(log) != 0 {
		t.Fatalf("log of an unborn HEAD = %v, %v", log, err)
	}
}

func TestResolveRev(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "a"})
	c1 := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "a", "b")
	c2 := commitAll(t, dir, "second")
	git(t, dir, "tag", "-a", "-m", "annotated", "v1", c1)
	git(t, dir, "branch", "v1", c2) // ambiguous: git takes the tag
	git(t, dir, "update-ref", "refs/remotes/origin/main", c1)
	git(t, dir, "symbolic-ref", "refs/remotes/up/HEAD", "refs/remotes/origin/main")
	tests := []struct{ rev, want string }{
		{"HEAD", c2}, {"main", c2}, {"refs/heads/main", c2}, {c2, c2}, {c1[:8], c1},
		{"HEAD~1", c1}, {"HEAD^", c1}, {"v1", c1}, {"heads/v1", c2}, {"main@{0}", c2},
		{"origin/main", c1}, {"remotes/origin/main", c1}, {"up", c1},
	}
	for _, tt := range tests {
		got, err := r.ResolveRev(tt.rev)
		if err != nil || got != tt.want {
			t.Errorf("ResolveRev(%q) = %q, %v; want %q", tt.rev, got, err, tt.want)
		}
	}
	for _, bad := range []string{"nope", "", "HEAD~5", "0000000000000000000000000000000000000000"} {
		if _, err := r.ResolveRev(bad); !errors.Is(err, ErrUnknownRev) {
			t.Errorf("ResolveRev(%q) error = %v, want ErrUnknownRev", bad, err)
		}
	}
}

func TestReadFileAndCommitInfo(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"docs/a.md": "hello\n"})
	msg := Message{Subject: "codemachine(plan): Plan", Body: "Done.", Trailers: []Trailer{{TrailerStep, "plan"}, {TrailerEngine, "claude"}}}
	c := stepCommit(t, r, git(t, dir, "rev-parse", "HEAD"), map[string]string{"docs/b.md": "b"}, msg.String())

	data, err := r.ReadFile(c, "docs/b.md")
	if err != nil || string(data) != "b" {
		t.Fatalf("ReadFile = %q, %v", data, err)
	}
	if _, err := r.ReadFile(c, "docs/missing.md"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := r.ReadFile(c, "docs/a.md/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("path through a file: %v, want fs.ErrNotExist", err)
	}
	info, err := r.CommitInfo(c)
	if err != nil {
		t.Fatal(err)
	}
	if info.Hash != c || info.Author.Name != "codemachine claude/opus" || info.Committer.Name != "Test Committer" ||
		info.Message != msg.String() || !reflect.DeepEqual(info.Trailers, msg.Trailers) {
		t.Errorf("CommitInfo = %+v", info)
	}
}

func TestLogFollowsFirstParents(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "1"})
	c1 := git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "checkout", "-q", "-b", "side")
	write(t, dir, "side", "s")
	side := commitAll(t, dir, "side work")
	git(t, dir, "checkout", "-q", "main")
	write(t, dir, "a", "2")
	c2 := commitAll(t, dir, "second")
	git(t, dir, "merge", "-q", "--no-ff", "-m", "merge side", "side")
	m := git(t, dir, "rev-parse", "HEAD")

	log, err := r.Log("HEAD", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range log {
		got = append(got, c.Hash)
	}
	if want := []string{m, c2, c1}; !slices.Equal(got, want) {
		t.Errorf("Log = %v, want %v (not the side commit %s)", got, want, side)
	}
	if log, err := r.Log("main", 2); err != nil || len(log) != 2 || log[1].Hash != c2 || len(log[0].Parents) != 2 {
		t.Errorf("Log(main, 2) = %+v, %v", log, err)
	}
}

func TestIsAncestorAndRefs(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "1"})
	c1 := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "a", "2")
	c2 := commitAll(t, dir, "second")
	// side is an ancestor of merged through its second parent only (git
	// answers), c1 of long through more than ancestorWalk first parents.
	git(t, dir, "checkout", "-q", "-b", "side", c1)
	write(t, dir, "b", "side")
	side := commitAll(t, dir, "side")
	git(t, dir, "checkout", "-q", "main")
	git(t, dir, "merge", "-q", "--no-edit", "side")
	merged := git(t, dir, "rev-parse", "HEAD")
	for i := 0; i <= ancestorWalk; i++ {
		git(t, dir, "commit", "-q", "--allow-empty", "-m", "more")
	}
	long := git(t, dir, "rev-parse", "HEAD")
	for _, tt := range []struct {
		a, b string
		want bool
	}{{c1, c2, true}, {c2, c1, false}, {c2, c2, true}, {side, merged, true}, {merged, side, false}, {c1, long, true}, {side, c2, false}} {
		if got, err := r.IsAncestor(tt.a, tt.b); err != nil || got != tt.want {
			t.Errorf("IsAncestor(%s, %s) = %v, %v", tt.a[:7], tt.b[:7], got, err)
		}
	}
	if _, err := r.IsAncestor("nope", c1); err == nil {
		t.Error("IsAncestor of an unknown revision succeeded")
	}
	git(t, dir, "update-ref", "refs/codemachine/failed/plan", c1)
	git(t, dir, "update-ref", "refs/codemachine/failed/implement/T1", c2)
	git(t, dir, "update-ref", "refs/codemachine/backup/x", c2)
	git(t, dir, "pack-refs", "--all")
	git(t, dir, "update-ref", "refs/codemachine/failed/review", c2)
	refs, err := r.RefsWithPrefix("refs/codemachine/failed/")
	want := map[string]string{"refs/codemachine/failed/plan": c1, "refs/codemachine/failed/implement/T1": c2, "refs/codemachine/failed/review": c2}
	if err != nil || !reflect.DeepEqual(refs, want) {
		t.Errorf("RefsWithPrefix = %v, %v; want %v", refs, err, want)
	}
}

func TestStatusAndDirtyTracked(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"staged": "1", "unstaged": "1", "renamed": "some content\n", "deleted": "1", "clean": "1"})
	write(t, dir, "staged", "2")
	git(t, dir, "add", "staged")
	write(t, dir, "unstaged", "2")
	git(t, dir, "mv", "renamed", "moved")
	os.Remove(filepath.Join(dir, "deleted"))
	write(t, dir, "new dir/untracked file", "u")
	write(t, dir, ".gitignore", "*.log\n")
	write(t, dir, "debug.log", "ignored")

	entries, err := r.Status(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	want := []StatusEntry{
		{Path: "deleted", Index: '.', Worktree: 'D'},
		{Path: "moved", OrigPath: "renamed", Index: 'R', Worktree: '.'},
		{Path: "staged", Index: 'M', Worktree: '.'},
		{Path: "unstaged", Index: '.', Worktree: 'M'},
		{Path: ".gitignore", Index: '?', Worktree: '?'},
		{Path: "new dir/untracked file", Index: '?', Worktree: '?'},
	}
	if !reflect.DeepEqual(entries, want) {
		t.Errorf("Status =\n%+v\nwant\n%+v", entries, want)
	}
	if entries, _ := r.Status(t.Context(), false); len(entries) != 4 {
		t.Errorf("Status without untracked = %+v", entries)
	}
	dirty, err := r.DirtyTracked(t.Context())
	if want := []string{"deleted", "moved", "renamed", "staged", "unstaged"}; err != nil || !slices.Equal(dirty, want) {
		t.Errorf("DirtyTracked = %v, %v; want %v", dirty, err, want)
	}
}

func TestStatusUnmerged(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"f": "base\n"})
	git(t, dir, "checkout", "-q", "-b", "other")
	write(t, dir, "f", "other\n")
	commitAll(t, dir, "other")
	git(t, dir, "checkout", "-q", "main")
	write(t, dir, "f", "main\n")
	commitAll(t, dir, "main")
	gitFails(t, dir, "merge", "-q", "other")
	entries, err := r.Status(t.Context(), false)
	if err != nil || len(entries) != 1 || !entries[0].Unmerged || entries[0].Path != "f" {
		t.Errorf("Status = %+v, %v", entries, err)
	}
}

func TestReadsSeePacksWrittenLater(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "1"})
	git(t, dir, "repack", "-adq")
	if _, err := r.CommitInfo("HEAD"); err != nil { // go-git loads the pack indexes now
		t.Fatal(err)
	}
	write(t, dir, "a", "2")
	c2 := commitAll(t, dir, "second")
	git(t, dir, "repack", "-adq") // the new objects now live only in a new pack
	git(t, dir, "prune-packed")
	info, err := r.CommitInfo(c2)
	if err != nil || info.Hash != c2 {
		t.Fatalf("CommitInfo after repack = %+v, %v", info, err)
	}
	if data, err := r.ReadFile(c2, "a"); err != nil || string(data) != "2" {
		t.Fatalf("ReadFile after repack = %q, %v", data, err)
	}
}

func TestTreeFS(t *testing.T) {
	dir, r := newRepo(t, map[string]string{
		"README.md":          "readme\n",
		"a/b/c.txt":          "deep\n",
		"a/b-side.txt":       "sorts before b/ in git order\n",
		"a/run.sh":           "#!/bin/sh\n",
		".codemachine/x.yml": "x: 1\n",
	})
	os.Chmod(filepath.Join(dir, "a/run.sh"), 0o755)
	os.Symlink("README.md", filepath.Join(dir, "link"))
	commitAll(t, dir, "modes")
	sub := git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "update-index", "--add", "--cacheinfo", "160000,"+sub+",vendor/mod")
	git(t, dir, "commit", "-q", "-m", "submodule")

	fsys, err := r.TreeFS("HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(fsys, "README.md", "a/b/c.txt", "a/b-side.txt", "a/run.sh", ".codemachine/x.yml", "link", "vendor/mod"); err != nil {
		t.Fatal(err)
	}
	tfs := fsys.(*TreeFS)
	for _, name := range []string{"README.md", "a/b/c.txt", "link"} {
		h, err := tfs.BlobHash(name)
		if want := git(t, dir, "rev-parse", "HEAD:"+name); err != nil || h != want {
			t.Errorf("BlobHash(%s) = %s, %v; want %s", name, h, err, want)
		}
	}
	if _, err := tfs.BlobHash("a"); err == nil {
		t.Error("BlobHash of a directory succeeded")
	}
	if _, err := tfs.BlobHash("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("BlobHash of a missing file: %v", err)
	}
	for name, mode := range map[string]fs.FileMode{"a/run.sh": 0o755, "README.md": 0o644, "link": fs.ModeSymlink | 0o777, "vendor/mod": fs.ModeDir | 0o755} {
		if st, err := fs.Stat(fsys, name); err != nil || st.Mode() != mode {
			t.Errorf("Stat(%s) mode = %v, %v; want %v", name, st.Mode(), err, mode)
		}
	}
	// ListFiles: every file and symlink below a directory with its blob id,
	// as git ls-tree lists them; submodules are skipped.
	for _, name := range []string{".", "a"} {
		got := map[string]string{}
		if err := tfs.ListFiles(name, func(p, h string) { got[p] = h }); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		args := []string{"ls-tree", "-r", "--full-tree", "HEAD"}
		if name != "." {
			args = append(args, "--", name)
		}
		for _, line := range strings.Split(git(t, dir, args...), "\n") {
			meta, p, _ := strings.Cut(line, "\t")
			if f := strings.Fields(meta); len(f) == 3 && f[1] == "blob" {
				want[p] = f[2]
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("ListFiles(%s) = %v\nwant %v", name, got, want)
		}
	}
	if err := tfs.ListFiles("nope", func(string, string) {}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ListFiles(nope) = %v", err)
	}
	if h, err := tfs.TreeHash("a/b"); err != nil || h != git(t, dir, "rev-parse", "HEAD:a/b") {
		t.Errorf("TreeHash(a/b) = %s, %v", h, err)
	}
	if _, err := tfs.TreeHash("README.md"); err == nil {
		t.Error("TreeHash of a file succeeded")
	}
	if _, err := tfs.TreeHash("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("TreeHash(nope) = %v", err)
	}
	// EntryID: git's mode (as go-git writes it) and object id, of files,
	// symlinks and directories alike.
	for _, line := range strings.Split(git(t, dir, "ls-tree", "HEAD", "--", "a/run.sh", "README.md", "link", "a/b", "vendor/mod"), "\n") {
		meta, p, _ := strings.Cut(line, "\t")
		f := strings.Fields(meta)
		if id, err := tfs.EntryID(p); err != nil || id != "0"+f[0]+" "+f[2] {
			t.Errorf("EntryID(%s) = %q, %v; want 0%s %s", p, id, err, f[0], f[2])
		}
	}
	if _, err := tfs.EntryID("a/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("EntryID(a/nope) = %v", err)
	}
	if data, err := fs.ReadFile(fsys, "link"); err != nil || string(data) != "README.md" {
		t.Errorf("symlink content = %q, %v", data, err)
	}
	if _, err := fs.ReadFile(fsys, "../x"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("invalid path: %v", err)
	}
	if _, err := r.TreeFS("nope"); !errors.Is(err, ErrUnknownRev) {
		t.Errorf("TreeFS(nope) = %v", err)
	}
	tree := git(t, dir, "rev-parse", "HEAD^{tree}")
	byTree, err := r.TreeFS(tree)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := fs.ReadFile(byTree, "a/b/c.txt"); err != nil || string(data) != "deep\n" {
		t.Errorf("TreeFS(tree) read = %q, %v", data, err)
	}
}

func TestTreeFSIsLazy(t *testing.T) {
	files := map[string]string{}
	for i := range 50 {
		files[filepath.Join("pkg", string(rune('a'+i%26))+string(rune('a'+i/26)), "f.go")] = "package x\n"
	}
	files["wanted/deep/file.txt"] = "x"
	_, r := newRepo(t, files)
	fsys, err := r.TreeFS("HEAD")
	if err != nil {
		t.Fatal(err)
	}
	tfs := fsys.(*TreeFS)
	if _, err := tfs.BlobHash("wanted/deep/file.txt"); err != nil {
		t.Fatal(err)
	}
	var decoded []string
	for d := range tfs.dirs {
		decoded = append(decoded, d)
	}
	slices.Sort(decoded)
	if want := []string{".", "wanted", "wanted/deep"}; !slices.Equal(decoded, want) {
		t.Errorf("decoded directories %v, want only %v", decoded, want)
	}
}

func TestStatusPaths(t *testing.T) {
	dir, r := newRepo(t, map[string]string{".codemachine/workflow.yaml": "v: 1\n", ".codemachine/old.md": "o", "src/x.go": "x"})
	write(t, dir, ".codemachine/workflow.yaml", "v: 2\n")
	write(t, dir, ".codemachine/agents/new.md", "new")
	git(t, dir, "mv", ".codemachine/old.md", ".codemachine/renamed.md")
	write(t, dir, "src/x.go", "changed")
	write(t, dir, ".gitignore", ".codemachine/*.log\n")
	write(t, dir, ".codemachine/run.log", "ignored")
	got, err := r.StatusPaths(t.Context(), ".codemachine")
	want := []string{".codemachine/agents/new.md", ".codemachine/old.md", ".codemachine/renamed.md", ".codemachine/workflow.yaml"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("StatusPaths = %v, %v; want %v", got, err, want)
	}
	if all, err := r.StatusPaths(t.Context()); err != nil || len(all) != 6 {
		t.Errorf("StatusPaths() = %v, %v", all, err)
	}
}

// TestWalkLogMerges: a merge is handed the commits it brought in, newest
// first, down to where its side meets the first-parent line; a side that
// does not meet it within sideWalk commits, or an unrelated history, gives
// nothing rather than commits the line holds too.
func TestWalkLogMerges(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	git(t, dir, "checkout", "-q", "-b", "side")
	write(t, dir, "s.txt", "1\n")
	s1 := commitAll(t, dir, "side 1")
	write(t, dir, "s.txt", "2\n")
	s2 := commitAll(t, dir, "side 2")
	git(t, dir, "checkout", "-q", "main")
	write(t, dir, "m.txt", "m\n")
	commitAll(t, dir, "main moved on")
	git(t, dir, "merge", "-q", "--no-ff", "-m", "merge side", "side")
	merge := git(t, dir, "rev-parse", "HEAD")
	// A long side branch, and an unrelated history, merged.
	git(t, dir, "checkout", "-q", "-b", "long")
	for i := range sideWalk + 1 {
		git(t, dir, "commit", "-q", "--allow-empty", "-m", fmt.Sprintf("long %d", i))
	}
	git(t, dir, "checkout", "-q", "--orphan", "unrelated")
	git(t, dir, "commit", "-q", "--allow-empty", "-m", "unrelated root")
	git(t, dir, "checkout", "-q", "main")
	git(t, dir, "merge", "-q", "--no-ff", "-m", "merge long", "long")
	long := git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "merge", "-q", "--no-ff", "--allow-unrelated-histories", "-m", "merge unrelated", "unrelated")
	unrelated := git(t, dir, "rev-parse", "HEAD")

	got := map[string][]string{}
	err := r.WalkLogMerges("HEAD", func(c Commit, merged []Commit) bool {
		for _, m := range merged {
			got[c.Hash] = append(got[c.Hash], m.Hash)
		}
		if len(c.Parents) < 2 && len(merged) > 0 {
			t.Errorf("%s is no merge but brought in %d commits", c.Hash, len(merged))
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{s2, s1}; !slices.Equal(got[merge], want) {
		t.Errorf("merge brought in %v, want %v", got[merge], want)
	}
	if len(got[long]) != 0 || len(got[unrelated]) != 0 {
		t.Errorf("a long side (%d) or an unrelated history (%d) gave commits", len(got[long]), len(got[unrelated]))
	}
}

// TestLogEndsAtTheShallowEdge: in a shallow clone (CI checks out one
// commit) the history ends where the clone does, as git log shows it,
// instead of failing on a parent the repository does not have.
func TestLogEndsAtTheShallowEdge(t *testing.T) {
	src, _ := newRepo(t, map[string]string{"a": "1"})
	for _, v := range []string{"2", "3"} {
		write(t, src, "a", v)
		commitAll(t, src, "a "+v)
	}
	dir := filepath.Join(t.TempDir(), "clone")
	git(t, src, "clone", "-q", "--depth", "2", "file://"+src, dir)
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	log, err := r.Log("HEAD", 0)
	if err != nil {
		t.Fatalf("Log in a shallow clone: %v", err)
	}
	if len(log) != 2 || len(log[1].Parents) != 0 || log[0].Parents[0] != log[1].Hash {
		t.Errorf("Log = %d commits (%+v), want 2, the last without parents", len(log), log)
	}
}
