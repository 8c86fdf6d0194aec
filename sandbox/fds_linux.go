//go:build linux

package sandbox

import (
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeInheritedOnExec marks every file descriptor above standard error
// close-on-exec. A descriptor this process inherited without the flag (a
// file a shell redirected to fd 7, a CI runner's pipe, an IDE's socket)
// would otherwise reach every program it starts, steps included: Go's
// os/exec passes on whatever lacks the flag, and Landlock governs only
// what a step opens, not what it was handed. A program is given what it
// is meant to have (its standard streams, ExtraFiles) explicitly.
func closeInheritedOnExec() {
	if unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) == nil {
		return
	}
	// Before Linux 5.11: one by one, as /proc lists them.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}
