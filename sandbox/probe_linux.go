//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

var (
	probeOnce sync.Once
	probed    Status

	hideOnce sync.Once
	hideErr  error
)

// Probe finds out, once per process, what protection this system allows
// a step: the kernel's Landlock ABI, and whether the launcher can have a
// mount namespace of its own (as root directly; otherwise in a user
// namespace, where the distribution allows unprivileged ones), which it
// learns by starting the launcher once.
func Probe() Status {
	probeOnce.Do(func() { probed = probe() })
	return probed
}

func probe() Status {
	s := probeABI()
	if !ready.Load() {
		s.NamespaceErr = ErrNotLauncher.Error()
		return s
	}
	modes := []nsMode{nsUser}
	if os.Geteuid() == 0 {
		modes = []nsMode{nsMount, nsUser}
	}
	var err error
	for _, m := range modes {
		if err = tryNamespace(m); err == nil {
			s.ns, s.Namespace, s.NamespaceErr = m, m.String(), ""
			return s
		}
	}
	s.NamespaceErr = "no mount namespace: " + err.Error()
	return s
}

// probeABI is the status without the namespace trial: the kernel's
// Landlock ABI, and whether capabilities can be dropped.
func probeABI() Status {
	s := Status{OS: runtime.GOOS, Subreaper: true}
	if err := privilegesErr(); err != nil {
		s.PrivilegesErr = err.Error()
	} else {
		s.Privileges = true
	}
	abi, err := ll.LandlockGetABIVersion()
	switch {
	case errors.Is(err, syscall.ENOSYS):
		s.ABIErr = "the kernel has no Landlock"
	case errors.Is(err, syscall.EOPNOTSUPP):
		s.ABIErr = "Landlock is disabled at boot: add landlock to the kernel's lsm= list"
	case err != nil:
		s.ABIErr = "Landlock: " + err.Error()
	case abi < MinABI:
		s.ABI = abi
		s.ABIErr = fmt.Sprintf("the kernel's Landlock ABI %d is older than %d (Linux 6.2)", abi, MinABI)
	default:
		s.ABI = abi
	}
	return s
}

// tryNamespace starts the launcher in probe mode with the namespace mode m.
func tryNamespace(m nsMode) error {
	enc, err := Policy{Probe: true, Report: true, OuterNS: mountNamespace()}.encode()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command("/proc/self/exe", Arg, enc)
	cmd.Args[0] = "codemachine"
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setNamespace(cmd.SysProcAttr, m)
	err = cmd.Start()
	_ = w.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", m, err)
	}
	_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
	msg, _ := io.ReadAll(r)
	if err := cmd.Wait(); err != nil {
		if s := strings.TrimPrefix(strings.TrimSpace(string(msg)), "codemachine sandbox: "); s != "" {
			return fmt.Errorf("%s: %s", m, s)
		}
		return fmt.Errorf("%s: %w", m, err)
	}
	return nil
}

// SetAttr applies what the launcher needs to attr: its namespaces, and
// SIGTERM when its parent (codemachine) dies, so that the step ends with
// it even when codemachine is killed.
func (l *Launch) SetAttr(attr *syscall.SysProcAttr) {
	setNamespace(attr, l.ns)
	attr.Pdeathsig = syscall.SIGTERM
}

// setNamespace sets the clone flags of mode m. With its mount namespace
// the launcher gets an IPC namespace of its own: System V shared memory,
// semaphores and message queues (and POSIX message queues) are not files,
// Landlock does not govern them, and a step could otherwise attach the
// shared memory of any process of the user's and write into it. In a
// user namespace the launcher keeps the user's uid and gid (mapped to
// themselves: Claude Code and others behave differently as root) and gets
// CAP_SYS_ADMIN there as an ambient capability, which survives its exec
// and lets it mount; it drops it before it starts the program.
func setNamespace(attr *syscall.SysProcAttr, m nsMode) {
	switch m {
	case nsMount:
		attr.Cloneflags |= unix.CLONE_NEWNS | unix.CLONE_NEWIPC
	case nsUser:
		attr.Cloneflags |= unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWIPC
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
		attr.AmbientCaps = []uintptr{unix.CAP_SYS_ADMIN}
	}
}

// hideFromSteps makes the process that launches steps (codemachine)
// non-dumpable, once: a step runs as the same user, and without Landlock
// (which keeps a step from tracing what is outside its sandbox) nothing
// else would stop it from reading codemachine's memory and its
// environment (/proc/PID/mem, /proc/PID/environ), where the secrets live
// that the environment allow-list keeps out of the steps' own. Only a
// process with CAP_SYS_PTRACE can read a non-dumpable one, and a step has
// no capability. The children are not affected: exec makes them dumpable
// again, so codemachine still reads their /proc.
//
// Not where the launcher gets a user namespace (a user other than root,
// with Landlock): the parent writes its child's uid_map, which a
// non-dumpable child's /proc makes root's, so the launch would fail.
// Landlock, which that mode always comes with, keeps the steps out of
// codemachine's /proc there.
func hideFromSteps() error {
	hideOnce.Do(func() {
		if st := Probe(); st.ns == nsUser && st.Writes() {
			return
		}
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			hideErr = fmt.Errorf("make codemachine non-dumpable: %w", err)
		}
	})
	return hideErr
}
