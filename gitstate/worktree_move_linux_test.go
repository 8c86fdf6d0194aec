package gitstate

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestWorktreeMoveMakesOnlyItsStagingDir: an in-process move of a pooled
// worktree writes its new private index into the index's lock, as git
// does, so that the only thing it makes beside the repository is its
// staging directory (on an ext4 without a journal every file made and
// removed slows down each file made after it for a minute).
func TestWorktreeMoveMakesOnlyItsStagingDir(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "1\n"})
	c1 := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "a.txt", "2\n")
	c2 := commitAll(t, dir, "second")
	pooledAt(t, r, c1)
	fd := watchDir(t, r.LocalDir(), unix.IN_CREATE)
	procs := r.ncmd.Load()
	w := mustWorktree(t, r, 0, c2)
	defer w.Discard()
	if n := r.ncmd.Load() - procs; n != 0 {
		t.Fatalf("the move ran %d git processes, want it in-process", n)
	}
	if read(t, w.Path(), "a.txt") != "2\n" {
		t.Fatal("the worktree is not at the second commit")
	}
	var made []string
	for _, ev := range inotifyEvents(fd) {
		made = append(made, ev.name)
	}
	for _, name := range made {
		if !strings.HasPrefix(name, "switch-stage-") {
			t.Errorf("the move made %s beside the repository (all it made: %v)", name, made)
		}
	}
	if len(made) == 0 {
		t.Error("no staging directory seen: the move was not the in-process one")
	}
}

// TestStagingDirReusedWithinARun: while a run pools staging directories
// (PoolStaging), the switches after the first reuse the first one's,
// emptied, instead of making and removing one each; when the run ends it
// is left, empty, as the spare for the next run, and nothing else is left
// beside the repository.
func TestStagingDirReusedWithinARun(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "1\n"})
	ctx := t.Context()
	c1 := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "a.txt", "2\n")
	c2 := commitAll(t, dir, "second")
	write(t, dir, "a.txt", "3\n")
	c3 := commitAll(t, dir, "third")
	w := pooledAt(t, r, c1)
	fd := watchDir(t, r.LocalDir(), unix.IN_CREATE|unix.IN_DELETE)
	done := r.PoolStaging()
	procs := r.ncmd.Load()
	for _, c := range []string{c2, c3} {
		w = mustWorktree(t, r, 0, c)
		if _, err := w.Stage(ctx); err != nil {
			t.Fatal(err)
		}
		if err := w.Finish(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.ncmd.Load() - procs; n != 0 {
		t.Fatalf("the moves ran %d git processes, want them in-process", n)
	}
	if read(t, w.Path(), "a.txt") != "3\n" {
		t.Fatal("the worktree is not at the third commit")
	}
	made, removed := 0, 0
	for _, ev := range inotifyEvents(fd) {
		if strings.HasPrefix(ev.name, "switch-stage-") {
			if ev.mask&unix.IN_CREATE != 0 {
				made++
			}
			if ev.mask&unix.IN_DELETE != 0 {
				removed++
			}
		}
	}
	if made != 1 || removed != 0 {
		t.Errorf("two moves in a run made %d staging directories and removed %d, want 1 made and none removed", made, removed)
	}
	done()
	checkOnlySpareLeft(t, r)
}

// checkOnlySpareLeft fails unless the only switch file left beside the
// repository is the spare staging directory, empty.
func checkOnlySpareLeft(t *testing.T, r *Repo) {
	t.Helper()
	spare := false
	for _, e := range listNamesSlice(t, r.LocalDir()) {
		switch {
		case e == spareStaging:
			spare = true
		case strings.HasPrefix(e, "switch-"):
			t.Errorf("left beside the repository after the run: %s", e)
		}
	}
	if !spare {
		t.Fatal("the run left no spare staging directory")
	}
	if names := listNamesSlice(t, filepath.Join(r.LocalDir(), spareStaging)); len(names) != 0 {
		t.Errorf("the spare staging directory holds %v", names)
	}
}

// TestStagingDirKeptForTheNextRun: the next run (often another process)
// takes the spare staging directory the last one left by renaming it,
// instead of making one and the last run removing its own; a process
// gone does not make the spare stale. A spare that is not an empty
// directory of this user's is not used, and goes.
func TestStagingDirKeptForTheNextRun(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "1\n"})
	ctx := t.Context()
	commits := []string{git(t, dir, "rev-parse", "HEAD")}
	for i := 2; i <= 5; i++ {
		write(t, dir, "a.txt", fmt.Sprintf("%d\n", i))
		commits = append(commits, commitAll(t, dir, fmt.Sprintf("commit %d", i)))
	}
	w := pooledAt(t, r, commits[0])
	run := func(commit string) (made int) {
		t.Helper()
		fd := watchDir(t, r.LocalDir(), unix.IN_CREATE|unix.IN_DELETE)
		done := r.PoolStaging()
		w = mustWorktree(t, r, 0, commit)
		if _, err := w.Stage(ctx); err != nil {
			t.Fatal(err)
		}
		if err := w.Finish(ctx, commit); err != nil {
			t.Fatal(err)
		}
		done()
		for _, ev := range inotifyEvents(fd) {
			if strings.HasPrefix(ev.name, "switch-stage-") && ev.mask&unix.IN_CREATE != 0 {
				made++
			}
		}
		return made
	}
	if n := run(commits[1]); n != 1 {
		t.Errorf("the first run made %d staging directories, want 1", n)
	}
	checkOnlySpareLeft(t, r)
	r.removeStaleStaging()
	if n := run(commits[2]); n != 0 {
		t.Errorf("the next run made %d staging directories, want the spare taken over", n)
	}
	checkOnlySpareLeft(t, r)

	// Something left in the spare: not used, and removed.
	spare := filepath.Join(r.LocalDir(), spareStaging)
	if err := os.WriteFile(filepath.Join(spare, "planted"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := run(commits[3]); n != 1 {
		t.Errorf("with a file in the spare, the run made %d staging directories, want its own", n)
	}
	checkOnlySpareLeft(t, r)

	// A link in the spare's place: not followed, and removed.
	if err := os.Remove(spare); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, spare); err != nil {
		t.Fatal(err)
	}
	if n := run(commits[4]); n != 1 {
		t.Errorf("with a link for the spare, the run made %d staging directories, want its own", n)
	}
	if st, err := os.Lstat(spare); err != nil || !st.IsDir() {
		t.Errorf("the spare after the run: %v, %v; want the run's emptied directory", st, err)
	}
	if names := listNamesSlice(t, elsewhere); len(names) != 0 {
		t.Errorf("the switch wrote through the link: %v", names)
	}
	if read(t, w.Path(), "a.txt") != "5\n" {
		t.Fatal("the worktree is not at the last commit")
	}
}

type inotifyEvent struct {
	name string
	mask uint32
}

// pooledAt is pooled worktree 0 at commit, staged and finished: ready to
// be moved to another commit.
func pooledAt(t *testing.T, r *Repo, commit string) *Worktree {
	t.Helper()
	w := mustWorktree(t, r, 0, commit)
	if _, err := w.Stage(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(t.Context(), commit); err != nil {
		t.Fatal(err)
	}
	return w
}

// watchDir is a non-blocking inotify descriptor watching dir for mask,
// closed when the test ends; the test is skipped without inotify.
func watchDir(t *testing.T, dir string, mask uint32) int {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		t.Fatal(err)
	}
	return fd
}

// inotifyEvents reads the events queued on fd.
func inotifyEvents(fd int) []inotifyEvent {
	var evs []inotifyEvent
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if n <= 0 || err != nil {
			return evs
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			evs = append(evs, inotifyEvent{string(bytes.TrimRight(name, "\x00")), ev.Mask})
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}
