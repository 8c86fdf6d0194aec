package agents

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runTerminal runs the program on the terminal tty, in the foreground of
// it, until it exits: a person drives it there, so there is no timeout,
// no output to parse and no stdin to feed. The program's process group
// (the sandbox launcher's, with a policy) is made the terminal's
// foreground group, so the terminal's keys, Ctrl-C included, go to it and
// not to codemachine; codemachine takes the terminal back when it exits.
// On ctx's cancellation the group is stopped like a headless run's.
func (p *proc) runTerminal(ctx context.Context, tty *os.File) (procResult, error) {
	if ctx.Err() != nil {
		return procResult{canceled: true}, nil
	}
	path, err := lookPath(p.path, p.env)
	if err != nil {
		return procResult{}, err
	}
	if err := p.checkDir(); err != nil {
		return procResult{}, err
	}
	if p.sandbox != nil {
		pol := *p.sandbox
		pol.Terminal = true
		p.sandbox = &pol
	}
	cmd, report, err := p.command(path, true)
	if err != nil {
		return procResult{}, err
	}
	defer closeAll(report)
	cmd.Env = p.env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	// The terminal's modes as the person had them: a UI that dies
	// without restoring them (killed, crashed) would leave the terminal
	// raw, without echo and Ctrl-C.
	saved, _ := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	cmd.SysProcAttr.Foreground = true
	// For Foreground, Ctty is codemachine's descriptor of the terminal
	// (the child makes itself the foreground group before it execs).
	cmd.SysProcAttr.Ctty = int(tty.Fd())
	at := time.Now()
	err = cmd.Start()
	closeAll(cmd.ExtraFiles...)
	if err != nil {
		return procResult{}, startError(p.path, cmd, err)
	}
	defer takeTerminal(tty, saved)
	if p.onStart != nil {
		p.onStart(cmd.Process.Pid)
	}
	res := procResult{pid: cmd.Process.Pid}
	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()
	g := group{pgid: res.pid, grace: p.graceTime()}
	if report != nil {
		g.grace += launcherSlack
	}
	defer g.stop()
	waitErr := p.await(ctx, &g, waitDone, &res)
	closed := make(chan struct{})
	close(closed)
	g.cleanup(closed, nil)
	res.duration = time.Since(at)
	if err := p.exitStatus(&res, cmd.ProcessState, waitErr); err != nil {
		return res, err
	}
	if msg := readReport(report); msg != "" {
		return res, fmt.Errorf("start %s: %s", p.path, msg)
	}
	return res, nil
}

// takeTerminal makes codemachine's process group the terminal's
// foreground group again. A background group that sets the foreground
// gets SIGTTOU, which is ignored meanwhile. When the UI left the
// terminal's modes other than saved (the modes before it started: it was
// killed or crashed before restoring them), they are restored, and
// what a full-screen UI turns on is turned off (resetModes).
func takeTerminal(tty *os.File, saved *unix.Termios) {
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	fd := int(tty.Fd())
	_ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, syscall.Getpgrp())
	if saved == nil {
		return
	}
	now, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil || sameModes(now, saved) {
		return
	}
	_ = unix.IoctlSetTermios(fd, unix.TCSETSW, saved)
	_, _ = tty.WriteString(resetModes)
}

// resetModes turns off what a full-screen UI may have left on: it shows
// the cursor, leaves the alternate screen, stops mouse and focus reports
// and bracketed paste, and puts the keypad, the cursor keys and the
// keyboard protocol back to normal.
const resetModes = "\x1b[?25h\x1b[?1049l\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1004l\x1b[?2004l\x1b[?1l\x1b>\x1b[<u"

// sameModes reports whether two terminal settings have the same modes
// and control characters.
func sameModes(a, b *unix.Termios) bool {
	return a.Iflag == b.Iflag && a.Oflag == b.Oflag && a.Cflag == b.Cflag && a.Lflag == b.Lflag && a.Cc == b.Cc
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// errNoInteractive is the failure of an interactive run of an engine
// without an interactive mode.
var errNoInteractive = errors.New("has no interactive UI codemachine can start")
