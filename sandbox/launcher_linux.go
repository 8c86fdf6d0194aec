//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const supported = true

// Exit codes of the launcher when it could not start the program; the
// reason is on ReportFD.
const (
	exitSetup   = 125 // the sandbox could not be set up
	exitNoStart = 127 // the program could not be started
)

// launch is the launcher: args are the encoded policy, the program's
// path, its argv[0] and its arguments. It returns the exit code.
func launch(args []string) int {
	// Every prctl below acts on the calling thread, and the program is
	// forked from it: keep it the same thread throughout.
	runtime.LockOSThread()
	if len(args) < 1 {
		return fail(nil, exitSetup, errors.New("no policy"))
	}
	p, err := decodePolicy(args[0])
	if err != nil {
		return fail(nil, exitSetup, err)
	}
	var report *os.File
	if p.Report {
		report = os.NewFile(ReportFD, "sandbox-report")
	}
	if p.Probe {
		if err := probeNamespace(p.OuterNS); err != nil {
			return fail(report, exitSetup, err)
		}
		return 0
	}
	if len(args) < 3 {
		return fail(report, exitSetup, errors.New("no program to run"))
	}
	path, argv := args[1], args[2:]
	if err := contain(p, path); err != nil {
		return fail(report, exitSetup, err)
	}
	if !p.Landlock {
		// Nothing confines the program's signals: it runs as the
		// launcher's own child.
		if err := restrict(p); err != nil {
			return fail(report, exitSetup, err)
		}
	}
	// Signals are caught before the program starts, so that a stop
	// right after its start is not lost.
	sigs := make(chan os.Signal, 4)
	if p.Terminal {
		// Caught and dropped: the program (whose handlers exec resets to
		// the default) gets the terminal's SIGINT for itself.
		signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGQUIT)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
	} else {
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	}
	if report != nil {
		syscall.CloseOnExec(ReportFD)
	}
	proc, err := start(p, report, args[0], path, argv)
	if err != nil {
		return fail(report, exitNoStart, fmt.Errorf("start %s: %w", argv[0], err))
	}
	if report != nil {
		_ = report.Close()
	}
	return supervise(proc.Pid, p.grace(), sigs)
}

// start starts the program. Under Landlock it does so through a second
// process, this binary again (execArg), which restricts itself and then
// becomes the program (exec): the launcher stays outside the program's
// Landlock domain, whose signals (ABI 6) and ptrace to processes outside
// it the kernel refuses. Restricted itself, the launcher could be killed
// by the program, and a daemon the step started would run on, orphaned
// out of its reach, writing into the worktree the next step works in.
func start(p Policy, report *os.File, policy, path string, argv []string) (*os.Process, error) {
	files := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	if !p.Landlock {
		return os.StartProcess(path, argv, &os.ProcAttr{Env: os.Environ(), Files: files})
	}
	if report != nil {
		files = append(files, report)
	}
	return os.StartProcess("/proc/self/exe", append([]string{"codemachine", execArg, policy, path}, argv...),
		&os.ProcAttr{Env: os.Environ(), Files: files})
}

// launchExec is the launcher's second process (see start): args are the
// encoded policy, the program's path, its argv[0] and its arguments. It
// restricts itself and becomes the program; it returns (an exit code)
// only when it could not.
func launchExec(args []string) int {
	// The capabilities are dropped on the calling thread, and the
	// program is executed from it.
	runtime.LockOSThread()
	if len(args) < 3 {
		return fail(nil, exitSetup, errors.New("no program to run"))
	}
	p, err := decodePolicy(args[0])
	if err != nil {
		return fail(nil, exitSetup, err)
	}
	var report *os.File
	if p.Report {
		// Main marked it close-on-exec: the program never gets it.
		report = os.NewFile(ReportFD, "sandbox-report")
	}
	if err := restrict(p); err != nil {
		return fail(report, exitSetup, err)
	}
	path, argv := args[1], args[2:]
	err = syscall.Exec(path, argv, os.Environ())
	return fail(report, exitNoStart, fmt.Errorf("start %s: %w", argv[0], err))
}

// contain applies the launcher's own part of the policy: the subreaper
// and the hidden sockets (a mount namespace the program inherits).
func contain(p Policy, program string) error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become a child subreaper: %w", err)
	}
	if p.HideSockets {
		if err := hideSockets(p, program); err != nil {
			return fmt.Errorf("hide sockets: %w", err)
		}
	}
	return nil
}

// restrict applies the rest to the calling process, which the program
// inherits: Landlock and the seccomp filter against terminal input
// injection, and no capabilities (none at all with DropCapabilities,
// otherwise none left over from the user namespace).
func restrict(p Policy) error {
	if p.Landlock {
		if err := restrictWrites(p); err != nil {
			return fmt.Errorf("restrict writes: %w", err)
		}
		// Where writes are restricted, typing into the terminal must
		// be too (see ttyinject_linux.go). A kernel without seccomp
		// filters has none to install.
		if err := refuseTerminalInjection(); err != nil && !errors.Is(err, errTTYFilterUnsupported) {
			return fmt.Errorf("refuse terminal input injection: %w", err)
		}
		// Nor may the step reach the user's keys (see keyring_linux.go).
		if err := refuseKeyrings(); err != nil && !errors.Is(err, errTTYFilterUnsupported) {
			return fmt.Errorf("refuse the keyrings: %w", err)
		}
	}
	if p.DropCapabilities {
		// Last: Landlock may need what is dropped here.
		if err := dropPrivileges(); err != nil {
			return fmt.Errorf("drop privileges: %w", err)
		}
		return nil
	}
	// In a user namespace the launcher holds CAP_SYS_ADMIN as an ambient
	// capability (to mount); the program must not inherit it, whatever
	// the policy.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("drop ambient capabilities: %w", err)
	}
	return nil
}

// fail reports err on the report pipe (or standard error without one)
// and returns code.
func fail(report *os.File, code int, err error) int {
	msg := "codemachine sandbox: " + err.Error() + "\n"
	if report != nil {
		_, _ = report.WriteString(msg)
	} else {
		_, _ = os.Stderr.WriteString(msg)
	}
	return code
}

// supervise waits for the program (pid) and reaps every orphan that
// reparents to the launcher meanwhile. When the program exits, whatever
// it left running is killed; when the launcher is told to stop, every
// descendant gets SIGTERM and, grace later, SIGKILL. It returns once no
// descendant is left, with the program's exit code.
func supervise(pid int, grace time.Duration, sigs <-chan os.Signal) int {
	exited := make(chan syscall.WaitStatus, 1)
	gone := make(chan struct{})
	go reap(pid, exited, gone)
	var killC <-chan time.Time
	for {
		select {
		case ws := <-exited:
			endAll(gone)
			return exitCode(ws)
		case <-sigs:
			if killC == nil {
				signalAll(syscall.SIGTERM)
				t := time.NewTimer(grace)
				defer t.Stop()
				killC = t.C
			}
		case <-killC:
			endAll(gone)
			return exitCode(<-exited)
		}
	}
}

// reap waits for children until none is left: the program's status goes
// to exited, and gone is closed when the launcher has no child any more.
// Orphans of the step reparent to the launcher (it is a subreaper), so
// reaping them here keeps them from lingering as zombies.
func reap(pid int, exited chan<- syscall.WaitStatus, gone chan<- struct{}) {
	defer close(gone)
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return // ECHILD: nothing left
		case got == pid:
			exited <- ws
		}
	}
}

// endAll kills every descendant, again and again while processes that
// were forking meanwhile show up, until none is left.
func endAll(gone <-chan struct{}) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		signalAll(syscall.SIGKILL)
		select {
		case <-gone:
			return
		case <-tick.C:
		}
	}
}

// signalAll sends sig to every live descendant of the launcher.
func signalAll(sig syscall.Signal) {
	for _, pid := range descendants(os.Getpid()) {
		_ = syscall.Kill(pid, sig)
	}
}

// exitCode is the launcher's exit code for the program's status. A
// program killed by a signal that the launcher can die of the same way
// makes it die of it, so that codemachine sees the signal; other signals
// become 128+signal, as a shell reports them.
func exitCode(ws syscall.WaitStatus) int {
	if !ws.Signaled() {
		return ws.ExitStatus()
	}
	sig := ws.Signal()
	switch sig {
	case syscall.SIGKILL, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP:
		signal.Reset(sig)
		_ = syscall.Kill(os.Getpid(), sig)
		time.Sleep(time.Second) // the signal is on its way
	}
	return 128 + int(sig)
}
