//go:build linux

package sandbox

import (
	"fmt"
	"os"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// devices are the device files every step may write (and use ioctls
// on): the null sinks, the terminal, pseudo-terminals.
var devices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/ptmx"}

// restrictWrites makes the whole file system read-only to the calling
// process (the launcher's second process, which then becomes the
// program: see start) and everything it starts, but for the policy's
// writable paths and the devices. Reads and execution stay allowed
// everywhere; the network is not handled. On ABI 6 and later the IPC
// scopes are restricted too: no signal to a process outside the sandbox
// (codemachine, the launcher, the user's programs), no abstract Unix
// socket outside it; from ABI 9 no pathname Unix socket outside it
// either.
//
// The kernel's ABI must be MinABI or newer (checked here: a best-effort
// restriction alone would silently do nothing on a kernel without
// Landlock); above it the restriction is best effort, taking whatever
// newer access rights the kernel knows. go-landlock applies it to every
// thread of the process (with the kernel's TSYNC flag from ABI 8,
// through libpsx before), so the program, executed from any of them,
// inherits it.
func restrictWrites(p Policy) error {
	if abi, err := ll.LandlockGetABIVersion(); err != nil || abi < MinABI {
		return fmt.Errorf("the kernel's Landlock ABI %d is older than %d", abi, MinABI)
	}
	cfg := landlock.Config{HandledAccessFS: landlock.V11.HandledAccessFS, Scoped: landlock.V11.Scoped}.BestEffort()
	rules := []landlock.Rule{
		landlock.RODirs("/"),
		landlock.RWFiles(devices...).WithIoctlDev().IgnoreIfMissing(),
		landlock.RWDirs("/dev/pts").WithIoctlDev().IgnoreIfMissing(),
	}
	for _, w := range p.Writable {
		fi, err := os.Stat(w)
		if err != nil {
			return fmt.Errorf("writable path: %w", err)
		}
		if fi.IsDir() {
			// Refer lets files move between the writable directories
			// (git's renames of its lock files, mv in a build).
			rules = append(rules, landlock.RWDirs(w).WithRefer())
		} else {
			rules = append(rules, landlock.RWFiles(w))
		}
	}
	if err := cfg.Restrict(rules...); err != nil {
		return fmt.Errorf("landlock: %w", err)
	}
	return nil
}
