package gitstate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPolicyCovers(t *testing.T) {
	off := Policy{}
	cache := Policy{Sandboxed: true, Writable: []string{"/cache"}}
	tests := []struct {
		last, next Policy
		want       bool
	}{
		{off, off, true},
		{off, sandboxed, true}, // an unconfined step's leftovers gain nothing in a sandbox
		{off, cache, true},
		{sandboxed, sandboxed, true},
		{sandboxed, off, false},
		{sandboxed, cache, false},
		{cache, sandboxed, true},
		{cache, cache, true},
		{cache, Policy{Sandboxed: true, Writable: []string{"/cache/go"}}, true},
		{cache, Policy{Sandboxed: true, Writable: []string{"/cache-other"}}, false},
		{cache, Policy{Sandboxed: true, Writable: []string{"/"}}, false},
		{cache, off, false},
	}
	for _, tt := range tests {
		if got := tt.last.Covers(tt.next); got != tt.want {
			t.Errorf("%+v.Covers(%+v) = %t, want %t", tt.last, tt.next, got, tt.want)
		}
	}
}

// An ignored file a sandboxed step planted in its worktree (a script in
// node_modules/.bin) reaches the next step only when that step is as
// confined: a step with sandbox: off, or with more writable paths, gets
// the slot afresh. Build caches stay for steps that sandbox alike, and an
// unconfined step's leftovers may go to a sandboxed one.
func TestWorktreeKeepsNoIgnoredFilesForAWeakerSandbox(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", ".gitignore": "node_modules/\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	const planted = "node_modules/.bin/prettier"
	handOut := func(user Policy, plant, finish bool) (kept bool) {
		t.Helper()
		w, err := r.Worktree(ctx, 0, base, user)
		if err != nil {
			t.Fatal(err)
		}
		kept = exists(w.Path(), planted)
		if read(t, w.Path(), "a.txt") != "a\n" {
			t.Error("worktree not at base")
		}
		if plant {
			write(t, w.Path(), planted, "#!/bin/sh\ntouch \"$HOME/pwned\"\n")
		}
		if !finish {
			w.Discard()
			return kept
		}
		if _, err := w.Stage(ctx); err != nil {
			t.Fatal(err)
		}
		if err := w.Finish(ctx, base); err != nil {
			t.Fatal(err)
		}
		return kept
	}
	off := Policy{}
	cache := Policy{Sandboxed: true, Writable: []string{"/cache"}}
	steps := []struct {
		name         string
		user         Policy
		plant, clean bool // plant the script; finish clean (else discard)
		kept         bool // the script is there when handed out
	}{
		{"sandboxed plants", sandboxed, true, true, false},
		{"as sandboxed: the cache stays", sandboxed, false, true, true},
		{"sandbox: off", off, false, true, false},
		{"off plants", off, true, true, false},
		{"sandboxed after off", sandboxed, false, true, true},
		{"more writable paths", cache, false, true, false},
		{"cache plants, then fails", cache, true, false, false},
		{"fewer writable paths, after a failure", sandboxed, false, true, true},
		{"off after a failed sandboxed step", off, false, true, false},
	}
	for _, s := range steps {
		if got := handOut(s.user, s.plant, s.clean); got != s.kept {
			t.Errorf("%s: planted script kept = %t, want %t", s.name, got, s.kept)
		}
	}
	// A slot whose last user is not recorded (an older codemachine's)
	// counts as the tightest sandbox's.
	handOut(sandboxed, true, true)
	if err := os.Remove(dir + "/.git/codemachine/worktrees/slot-0.policy"); err != nil {
		t.Fatal(err)
	}
	if !handOut(sandboxed, false, true) {
		t.Error("unrecorded slot: a sandboxed step lost the cache")
	}
	if err := os.Remove(dir + "/.git/codemachine/worktrees/slot-0.policy"); err != nil {
		t.Fatal(err)
	}
	if handOut(off, false, true) {
		t.Error("unrecorded slot: the planted script reached a step with sandbox: off")
	}
}

// The common case, every step sandboxed alike, costs nothing: the policy
// is read, not written, and the worktree reused without git.
func TestWorktreeSamePolicyRunsNoGit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	w := mustWorktree(t, r, 0, base)
	if _, err := w.Stage(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(ctx, base); err != nil {
		t.Fatal(err)
	}
	p := dir + "/.git/codemachine/worktrees/slot-0.policy"
	before, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	n := r.ncmd.Load()
	w = mustWorktree(t, r, 0, base)
	defer w.Discard()
	if r.ncmd.Load() != n {
		t.Error("git ran for a slot left clean at base by a step sandboxed alike")
	}
	if after, err := os.Stat(p); err != nil || !os.SameFile(before, after) {
		t.Errorf("policy record rewritten (%v)", err)
	}
}

// A tracked file changed behind the private index's back and dated back
// (same size, same mtime) is written again for a less confined step: the
// scrub compares the ctime, which no step can set back. A FIFO left beside
// it (git clean passes FIFOs over) is removed. The worktree is not checked
// out anew for it: a file nobody touched keeps its inode.
func TestWorktreeScrubFindsTrackedFileDatedBack(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n", "b.txt": "b\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	w, err := r.Worktree(ctx, 0, base, sandboxed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Stage(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(ctx, base); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(w.Path(), "a.txt")
	st, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	inodeOf := func(p string) uint64 {
		var s syscall.Stat_t
		if err := syscall.Stat(p, &s); err != nil {
			t.Fatal(err)
		}
		return s.Ino
	}
	bInode := inodeOf(filepath.Join(w.Path(), "b.txt"))
	if err := os.WriteFile(a, []byte("X\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(a, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	// A FIFO, which git clean passes over, would hang a step that opens it.
	if err := syscall.Mkfifo(filepath.Join(w.Path(), "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err = r.Worktree(ctx, 0, base, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Discard()
	if got := read(t, w.Path(), "a.txt"); got != "a\n" {
		t.Errorf("a.txt = %q after the hand-out to a step with sandbox: off, want base's", got)
	}
	if _, err := os.Lstat(filepath.Join(w.Path(), "pipe")); !os.IsNotExist(err) {
		t.Errorf("the FIFO the earlier step left is still there (%v)", err)
	}
	if inodeOf(filepath.Join(w.Path(), "b.txt")) != bInode {
		t.Error("b.txt was written again: the worktree was checked out anew instead of scrubbed")
	}
}

// A slot's private config dirs keep what its steps left (the CLIs'
// session stores) only for a step that may write no more than the last
// one: a step with sandbox: off after a sandboxed one finds the dir empty.
func TestClaimDirEmptiesForAStepAllowedMore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "slot-0")
	record := dir + ".policy"
	planted := filepath.Join(dir, "opencode", "snapshot", "config")
	plant := func() {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(planted), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(planted, []byte("[core]\n\tfsmonitor = touch pwned\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		user Policy
		kept bool
	}{
		{sandboxed, true}, // no record yet: read as the strictest, which covers a sandbox
		{sandboxed, true},
		{Policy{}, false},
		{Policy{}, true},
		{sandboxed, true},
		{Policy{Sandboxed: true, Writable: []string{"/cache"}}, false},
	}
	for i, s := range steps {
		plant()
		if err := ClaimDir(dir, record, s.user); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		_, err := os.Stat(planted)
		if kept := err == nil; kept != s.kept {
			t.Errorf("step %d (%+v): planted file kept = %t, want %t", i, s.user, kept, s.kept)
		}
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("step %d: %v", i, err)
		}
	}
}

// A directory a step left without write permission is emptied too.
func TestClaimDirEmptiesReadOnlyDirs(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root removes what a directory's permissions forbid")
	}
	dir := filepath.Join(t.TempDir(), "slot-0")
	locked := filepath.Join(dir, "opencode", "snapshot")
	if err := os.MkdirAll(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(locked, "config"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(locked, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(locked, 0o700) })
	if err := ClaimDir(dir, dir+".policy", Policy{}); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		t.Errorf("dir holds %v (%v), want nothing", entries, err)
	}
}

// A path longer than PATH_MAX with the worktree's path in front, which git
// opens relative to the worktree, is not passed over by the searches for a
// .gitignore git would wait on (here a named pipe): the stage fails naming
// it, and so does the search before git clean, so that the slot's next
// hand-out (to a step allowed more, which scrubs it) makes the worktree
// afresh instead of running git clean there.
func TestSpecialFileSearchesRefuseLongPaths(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	ctx := t.Context()
	base := git(t, dir, "rev-parse", "HEAD")
	w, err := r.Worktree(ctx, 0, base, sandboxed)
	if err != nil {
		t.Fatal(err)
	}
	// Made relative to an open directory, as a step in the worktree can.
	fd, err := unix.Open(w.Path(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("x", 200)
	for depth := len(w.Path()); depth <= unix.PathMax; depth += len(name) + 1 {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = sub
	}
	err = unix.Mkfifoat(fd, ".gitignore", 0o644)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	searches := []struct {
		name string
		run  func() error
	}{
		{"stage", func() error { _, err := w.Stage(ctx); return err }},
		{"before git clean", w.removeSpecialFiles},
	}
	for _, s := range searches {
		var ue *UnwalkedError
		if err := s.run(); !errors.As(err, &ue) || !strings.HasPrefix(ue.Path, name+"/") || !errors.Is(err, unix.ENAMETOOLONG) {
			t.Errorf("%s: %v, want an UnwalkedError for a path below %s...", s.name, err, name[:8])
		}
	}
	w.Discard()
	w, err = r.Worktree(ctx, 0, base, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Discard()
	if _, err := os.Lstat(filepath.Join(w.Path(), name)); !os.IsNotExist(err) {
		t.Errorf("the deep directory is still in the worktree (%v)", err)
	}
}
