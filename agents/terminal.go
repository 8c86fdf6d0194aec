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
	cmd.SysProcAttr.Foreground = true
	// For Foreground, Ctty is codemachine's descriptor of the terminal
	// (the child makes itself the foreground group before it execs).
	cmd.SysProcAttr.Ctty = int(tty.Fd())
	at := time.Now()
	err = cmd.Start()
	closeAll(cmd.ExtraFiles...)
	if err != nil {
		return procResult{}, fmt.Errorf("start %s: %w", p.path, err)
	}
	defer takeTerminal(tty)
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
// gets SIGTTOU, which is ignored meanwhile.
func takeTerminal(tty *os.File) {
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	_ = unix.IoctlSetPointerInt(int(tty.Fd()), unix.TIOCSPGRP, syscall.Getpgrp())
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// errNoInteractive is the failure of an interactive run of an engine
// without an interactive mode.
var errNoInteractive = errors.New("has no interactive UI codemachine can start")
