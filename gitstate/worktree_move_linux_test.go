package gitstate

import (
	"bytes"
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
	ctx := t.Context()
	c1 := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "a.txt", "2\n")
	c2 := commitAll(t, dir, "second")
	w := mustWorktree(t, r, 0, c1)
	if _, err := w.Stage(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(ctx, c1); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, r.LocalDir(), unix.IN_CREATE); err != nil {
		t.Fatal(err)
	}
	procs := r.ncmd.Load()
	w = mustWorktree(t, r, 0, c2)
	defer w.Discard()
	if n := r.ncmd.Load() - procs; n != 0 {
		t.Fatalf("the move ran %d git processes, want it in-process", n)
	}
	if read(t, w.Path(), "a.txt") != "2\n" {
		t.Fatal("the worktree is not at the second commit")
	}
	var made []string
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if n <= 0 || err != nil {
			break
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			made = append(made, string(bytes.TrimRight(name, "\x00")))
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
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
