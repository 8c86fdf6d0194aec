//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/internal/testenv"
)

// rememberedProbeHelper is the helper process of
// TestProbeRememberedLeavesPollerOff: it reads the remembered probe of the
// file named by its argument, as a status does, and says whether that
// started the runtime's poller.
func rememberedProbeHelper(file string) int {
	s := ProbeRemembered(file)
	fmt.Println("privileges", s.Privileges, s.PrivilegesErr)
	if testenv.PollerStarted() {
		fmt.Println("the poller was started")
		return 1
	}
	return 0
}

// TestProbeRememberedLeavesPollerOff checks that a remembered probe (what
// every status shows) does not start the runtime's poller (an epoll
// instance, an eventfd and their system calls) in a process that polls
// nothing: its files are read without it.
func TestProbeRememberedLeavesPollerOff(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sandbox-probe.json")
	ProbeRemembered(file) // tries, and writes the answer down
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the probe's answer was not kept: %v", err)
	}
	cmd := exec.Command(os.Args[0], file)
	cmd.Env = append(os.Environ(), helperEnv+"=remembered-probe")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "privileges") {
		t.Fatalf("helper: %v\n%s", err, out)
	}
}
