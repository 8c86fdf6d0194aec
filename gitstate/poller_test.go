package gitstate

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/internal/testenv"
)

// pollerHelper is the helper process of TestLockHolderLeavesPollerOff: it
// opens GITSTATE_REPO and asks who holds its lock, as a status does, then
// says whether that started the runtime's poller. It runs before TestMain
// writes any file, which would start it.
func pollerHelper() int {
	r, err := Open(os.Getenv("GITSTATE_REPO"))
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	pid, _, held := r.LockHolder()
	fmt.Println("held", held, pid)
	if testenv.PollerStarted() {
		fmt.Println("the poller was started")
		return 1
	}
	return 0
}

// TestLockHolderLeavesPollerOff checks that reading the lock, which every
// status does, does not start the runtime's poller (an epoll instance, an
// eventfd and their system calls) in a process that polls nothing, held or
// not.
func TestLockHolderLeavesPollerOff(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller is looked for in /proc")
	}
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	l, err := r.Lock("test")
	if err != nil {
		t.Fatal(err)
	}
	check := func(want string) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "GITSTATE_HELPER=poller", "GITSTATE_REPO="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("helper: %v\n%s", err, out)
		}
	}
	check(fmt.Sprintf("held true %d", os.Getpid()))
	l.Release()
	check("held false 0")
}
