package testenv

import (
	"os"
	"strconv"
)

// PollerStarted reports whether the Go runtime's poller has been started in
// this process: whether an epoll descriptor is among its first 1024 (Linux;
// elsewhere it is always false). It looks with readlink, which does not
// start the poller itself, as opening a directory to list would.
func PollerStarted() bool {
	for fd := 0; fd < 1024; fd++ {
		if link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); err == nil && link == "anon_inode:[eventpoll]" {
			return true
		}
	}
	return false
}
