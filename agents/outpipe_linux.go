package agents

import (
	"fmt"
	"os"
	"syscall"
)

// outputPipe is what a started program writes its standard output (or
// error) to, and the end codemachine reads: a connected pair of Unix
// sockets rather than a pipe. The agents' CLIs report their final
// message, tokens and cost (a reviewer agent its verdict) there, and the
// errors codemachine classifies (a rate limit is retried); a pipe can be
// opened again through /proc/<pid>/fd/1 by any process of the same user
// allowed to look at the CLI's (its tools, the hooks and tests they run,
// in the same sandbox), which could write a forged report into it. A
// socket cannot be opened through /proc (ENXIO).
func outputPipe() (r, w *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	// Nothing flows from codemachine to the program on it.
	_ = syscall.Shutdown(fds[0], syscall.SHUT_WR)
	_ = syscall.Shutdown(fds[1], syscall.SHUT_RD)
	// A pipe's capacity on the program's end (64 KiB; a socket's default
	// is several times that): what is still in flight when the program's
	// group has ended is what the drain must read before its deadline
	// (drainTimeout), as it was with a pipe.
	_ = syscall.SetsockoptInt(fds[1], syscall.SOL_SOCKET, syscall.SO_SNDBUF, 64<<10)
	// codemachine's end in non-blocking mode, so that os.NewFile puts it
	// in the runtime's poller: the drain after a step stops reading on a
	// deadline (SetReadDeadline) when a process that left the group
	// holds the other end. The program's end stays blocking.
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		_ = syscall.Close(fds[0])
		_ = syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "output"), os.NewFile(uintptr(fds[1]), "output"), nil
}
