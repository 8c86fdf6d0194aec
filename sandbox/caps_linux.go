//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/codemachine/codemachine/internal/fastread"
)

// capSets is the kernel's capability sets of one thread (capget(2)'s
// version 3: 64 capabilities, in two 32-bit halves).
type capSets [2]unix.CapUserData

// empty reports whether the thread holds no capability at all.
func (c capSets) empty() bool {
	for _, d := range c {
		if d.Effective|d.Permitted|d.Inheritable != 0 {
			return false
		}
	}
	return true
}

// effective reports whether capability cp is in the effective set.
func (c capSets) effective(cp int) bool {
	return c[cp/32].Effective&(1<<(uint(cp)%32)) != 0
}

func capHeader() *unix.CapUserHeader {
	return &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
}

// threadCaps reads the calling thread's capability sets.
func threadCaps() (capSets, error) {
	var c capSets
	if err := unix.Capget(capHeader(), &c[0]); err != nil {
		return c, fmt.Errorf("capget: %w", err)
	}
	return c, nil
}

// lastCap is the highest capability this kernel knows.
func lastCap() (int, error) {
	// Not os.ReadFile: this sysctl can be polled, and os.Open would
	// start the runtime's poller for it in a status that polls nothing.
	b, err := fastread.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("read the last capability: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read the last capability: %w", err)
	}
	return n, nil
}

// privilegesErr says why the launcher could not drop its capabilities
// on this system (nil when it can): what Probe reports. Everything it
// uses is there since Linux 3.5 unless a container's seccomp filter
// refuses it.
func privilegesErr() error {
	if _, err := lastCap(); err != nil {
		return err
	}
	if _, err := threadCaps(); err != nil {
		return err
	}
	return nil
}

// dropPrivileges leaves the calling thread, from which the program is
// started (or executed), without any capability and unable to gain one:
// a step of a codemachine run as root would otherwise be root in full,
// able to change the host (its network, its hostname), to read any process's
// memory and environment (codemachine's own, with the secrets the
// environment allow-list keeps from steps), and to undo the sandbox
// (unmount the tmpfs that hides sockets). It sets no_new_privs, so that
// no exec gains a capability (not a setuid program, not a file with
// capabilities, not root's exec, which would otherwise be given back
// every capability of the bounding set), empties the bounding set where
// the process may (it holds CAP_SETPCAP: as root; without it the thread
// has nothing to keep and no_new_privs stops every gain), clears the
// ambient set (the user namespace's CAP_SYS_ADMIN), then the inheritable,
// permitted and effective sets, and checks that nothing is left.
//
// Capabilities are per thread: the process's other threads keep theirs,
// which the program never gets.
func dropPrivileges() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	// EINVAL: a kernel before 4.3 has no ambient set to clear.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("drop ambient capabilities: %w", err)
	}
	caps, err := threadCaps()
	if err != nil {
		return err
	}
	if caps.effective(unix.CAP_SETPCAP) {
		if err := dropBounding(); err != nil {
			return err
		}
	}
	var none capSets
	if err := unix.Capset(capHeader(), &none[0]); err != nil {
		return fmt.Errorf("drop capabilities: capset: %w", err)
	}
	if caps, err = threadCaps(); err != nil {
		return err
	}
	if !caps.empty() {
		return fmt.Errorf("capabilities left after dropping them: %+v", caps)
	}
	return nil
}

// dropBounding empties the capability bounding set, which caps what any
// exec can give back.
func dropBounding() error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}
