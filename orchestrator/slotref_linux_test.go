package orchestrator

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/internal/testenv"
)

// TestStepWritesItsSlotRefOnce: a step's staged tree is committed at once
// and the slot's ref (what keeps the step's objects from a user's git gc
// --prune=now until it lands) is pointed at the commit, not first at the
// tree and then at the commit: each write of the ref is a new file. The
// step still lands, with the ref gone after it, and the repository is
// whole.
func TestStepWritesItsSlotRefOnce(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": `version: 1
steps:
  - id: one
    run: 'true'
    inputs: [in.txt]
    outputs: [out/one.txt]
`,
		"in.txt": "1\n",
	})
	n := 0
	eng := fakeEngine{run: func(_ context.Context, req agents.Request) (agents.Result, error) {
		n++
		if err := os.MkdirAll(filepath.Join(req.Dir, "out"), 0o755); err != nil {
			return agents.Result{}, err
		}
		return agents.Result{}, os.WriteFile(filepath.Join(req.Dir, "out", "one.txt"), []byte{byte('0' + n), '\n'}, 0o644)
	}}
	o := newTestOrchestrator(t, dir, eng, nil)
	// The first run makes the slot's ref directory.
	if s, err := o.Run(t.Context(), RunOptions{}); err != nil || len(s.Landed) != 1 {
		t.Fatalf("first run: %+v, %v", s, err)
	}
	refDir := filepath.Join(dir, ".git", filepath.FromSlash(gitstate.SlotRefPrefix), "0")
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, refDir, unix.IN_MOVED_TO|unix.IN_CREATE); err != nil {
		t.Fatal(err)
	}
	if s, err := o.Run(t.Context(), RunOptions{Steps: []string{"one"}, Force: true}); err != nil || len(s.Landed) != 1 {
		t.Fatalf("second run: %+v, %v", s, err)
	}
	writes := 0
	buf := make([]byte, 64<<10)
	for {
		k, err := unix.Read(fd, buf)
		if k <= 0 || err != nil {
			break
		}
		for off := 0; off+unix.SizeofInotifyEvent <= k; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			if name == "work" && ev.Mask&unix.IN_MOVED_TO != 0 {
				writes++
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
	if writes != 1 {
		t.Errorf("the step wrote its slot's ref %d times, want once", writes)
	}
	if out := testenv.Git(t, dir, "for-each-ref", gitstate.SlotRefPrefix); out != "" {
		t.Errorf("slot refs left after the landing: %s", out)
	}
	testenv.Git(t, dir, "fsck", "--no-progress", "--no-dangling")
	if got := testenv.Git(t, dir, "show", "HEAD:out/one.txt"); got != "2" {
		t.Errorf("the landed output is %q, want the second run's", got)
	}
}
