// Package sandbox confines the processes of a step: the agent CLI, a run:
// command, a check or a lifecycle hook. It imports nothing of codemachine.
//
// The confinement is applied by codemachine itself, in a launcher: the
// codemachine binary re-executes itself (/proc/self/exe) with the hidden
// first argument Arg, and the launcher, before it starts the step's
// program as its child:
//
//   - makes itself a child subreaper, so that every process the step
//     starts (setsid daemons and double forks included) stays its
//     descendant; when the program exits, or the launcher is told to stop
//     (SIGTERM on a timeout or cancel, or its parent's death), it ends and
//     reaps every descendant before it exits with the program's status;
//   - hides the directories that hold other programs' Unix sockets
//     (/run, /tmp, the user's runtime dir, ...) under empty file systems,
//     in a mount namespace of the step's own, keeping the step's own
//     directories visible at their paths, and makes every other mount
//     read-only there, which also refuses changes of a file's mode,
//     owner, times and extended attributes that Landlock lets through;
//   - then, in a second process (the binary again, execArg) that becomes
//     the program, so that the launcher stays outside the step's Landlock
//     domain and the step cannot signal it (Landlock ABI 6), restricts
//     writes with Landlock (github.com/landlock-lsm/go-landlock): the
//     whole file system becomes read-only but for the policy's writable
//     paths and a few devices;
//   - and drops every capability (bounding, inheritable, ambient,
//     permitted and effective sets) and sets no_new_privs, so that a step
//     of a codemachine run as root cannot act as root on the host.
//
// Command also makes the calling process (codemachine) non-dumpable, so
// that a step, which runs as the same user, cannot read its memory or
// its environment through /proc.
//
// The binary's main, and the TestMain of every test binary that starts
// engines, must call Main first: it turns the process into the launcher
// when it was started as one, and otherwise records that this binary can
// be one (Command refuses to wrap a program in a binary that cannot).
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Arg is the hidden first argument that makes the binary the launcher.
const Arg = "__codemachine-sandbox"

// execArg makes it the launcher's second process, which restricts itself
// and then executes the program (see launchExec).
const execArg = "__codemachine-sandbox-exec"

// MinABI is the oldest Landlock ABI the sandbox uses: ABI 3 (Linux 6.2)
// is the first that can refuse truncate(2), without which a step could
// still empty any file it can read.
const MinABI = 3

// SocketABI is the Landlock ABI from which the kernel itself refuses
// connect(2) to pathname Unix sockets outside the sandbox; below it only
// the mount namespace keeps them out of reach.
const SocketABI = 9

// ReportFD is the file descriptor (the first of exec.Cmd.ExtraFiles) on
// which the launcher reports why it could not start the program. The
// program itself never gets it.
const ReportFD = 3

// Policy is what one sandboxed process (and everything it starts) may do.
type Policy struct {
	// Landlock restricts writes to Writable. Without it the launcher
	// only contains the processes (no write or socket restriction): the
	// sandbox: off of a workflow.
	Landlock bool `json:"landlock,omitempty"`
	// Writable are the paths the process may write (directories with
	// everything beneath them, or single files). They must exist.
	Writable []string `json:"writable,omitempty"`
	// HideSockets mounts empty file systems over the directories that
	// hold sockets, in a mount namespace of the launcher's own. Command
	// sets it from Probe, and the namespace up with it.
	HideSockets bool `json:"hide_sockets,omitempty"`
	// HideDirs are more directories to hide (the user's runtime dir and
	// temporary dir), Sockets single socket files to cover wherever they
	// are (the user's SSH agent, Docker, D-Bus).
	HideDirs []string `json:"hide_dirs,omitempty"`
	Sockets  []string `json:"sockets,omitempty"`
	// Visible are paths that stay visible, at their paths, when a hidden
	// directory holds them (the repository, the user's home). The
	// writable paths, the working directory, HOME, the PATH and the
	// program stay visible without being listed.
	Visible []string `json:"visible,omitempty"`
	// DropCapabilities leaves the program without any capability, and
	// unable to gain one (no_new_privs): a step of a codemachine run as
	// root is not root in full. Set it where Status.Privileges.
	DropCapabilities bool `json:"drop_capabilities,omitempty"`
	// Grace is how long the processes get between SIGTERM and SIGKILL
	// when the launcher is told to stop; 0 means DefaultGrace.
	Grace time.Duration `json:"grace,omitempty"`
	// Terminal says the program runs in the foreground of a terminal (an
	// agent's own UI): SIGINT from the terminal is the program's (a
	// person's Ctrl-C), so the launcher neither dies of it nor stops the
	// program for it.
	Terminal bool `json:"terminal,omitempty"`

	// Probe makes the launcher only try its mount namespace and exit:
	// what Probe runs to learn whether the system allows one.
	Probe bool `json:"probe,omitempty"`
	// Report says the launcher has its report pipe at ReportFD (set by
	// Command: the caller passes the pipe as ExtraFiles[0]). Without it
	// the launcher reports on standard error: fd 3 may then be anything
	// the Go runtime opened.
	Report bool `json:"report,omitempty"`
	// OuterNS is codemachine's mount namespace (/proc/self/ns/mnt), set
	// by Command: the launcher mounts nothing unless its own differs.
	OuterNS string `json:"outer_ns,omitempty"`
}

// DefaultGrace is the launcher's grace period when the policy sets none.
const DefaultGrace = 5 * time.Second

func (p Policy) grace() time.Duration {
	if p.Grace > 0 {
		return p.Grace
	}
	return DefaultGrace
}

func (p Policy) encode() (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode sandbox policy: %w", err)
	}
	return string(b), nil
}

func decodePolicy(s string) (Policy, error) {
	var p Policy
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return Policy{}, fmt.Errorf("decode sandbox policy: %w", err)
	}
	return p, nil
}

// ready is set by Main in a binary that can be the launcher.
var ready atomic.Bool

// ErrNotLauncher is returned by Command in a binary whose main (or
// TestMain) does not call Main: re-executing it would run the program
// again instead of the launcher.
var ErrNotLauncher = errors.New("this binary does not call sandbox.Main first, so it cannot launch sandboxed processes")

// ErrUnsupported is returned by Command where there is no launcher (not
// Linux).
var ErrUnsupported = errors.New("no sandbox on this operating system")

// Main turns the process into the launcher when its first argument is Arg
// (it then never returns), and otherwise records that this binary can be
// one. Either way it first marks every inherited descriptor above standard
// error close-on-exec. Call it first in main and in TestMain.
func Main() {
	// Before anything is started: no step (and no git) gets a descriptor
	// this process inherited by accident.
	closeInheritedOnExec()
	if len(os.Args) > 1 && os.Args[1] == Arg {
		// syscall.Exit, not os.Exit: the launcher has nothing to flush,
		// and in a binary built with -race os.Exit would sleep a second
		// in the race detector's exit hook, in every step.
		syscall.Exit(launch(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == execArg {
		syscall.Exit(launchExec(os.Args[2:]))
	}
	ready.Store(true)
}

// Launch is how to start a program under the launcher: run Path with Args
// (Args[0] included), with the write end of a pipe as the first of
// ExtraFiles (ReportFD), on which the launcher says why it could not start
// the program, and apply SetAttr to the command's SysProcAttr.
type Launch struct {
	Path string
	Args []string
	ns   nsMode
}

// nsMode is how the launcher gets a mount namespace of its own.
type nsMode int

const (
	nsNone  nsMode = iota
	nsMount        // root: a new mount namespace
	nsUser         // not root: a new user namespace, the uid mapped to itself, with a mount namespace
)

func (m nsMode) String() string {
	switch m {
	case nsMount:
		return "mount namespace"
	case nsUser:
		return "user and mount namespace"
	}
	return "none"
}

// Command returns how to run the program at path (argv0 as its argv[0],
// then args) under the launcher with policy p. Sockets are hidden when the
// policy restricts writes and the system allows a mount namespace
// (Probe); the policy's HideSockets is set accordingly. The calling
// process is made non-dumpable (see hideFromSteps).
func Command(p Policy, path, argv0 string, args []string) (*Launch, error) {
	if !supported {
		return nil, ErrUnsupported
	}
	if !ready.Load() {
		return nil, ErrNotLauncher
	}
	if err := hideFromSteps(); err != nil {
		return nil, err
	}
	l := &Launch{Path: "/proc/self/exe"}
	p.HideSockets, p.Report = false, true
	if p.Landlock {
		if st := Probe(); st.ns != nsNone {
			p.HideSockets, l.ns = true, st.ns
			p.OuterNS = mountNamespace()
		}
	}
	enc, err := p.encode()
	if err != nil {
		return nil, err
	}
	l.Args = append([]string{"codemachine", Arg, enc, path, argv0}, args...)
	return l, nil
}

// Status is the protection this system allows a step.
type Status struct {
	// OS is runtime.GOOS.
	OS string `json:"os"`
	// ABI is the kernel's Landlock ABI version (0: none); ABIErr says
	// why there is none, or why it is too old.
	ABI    int    `json:"landlock_abi"`
	ABIErr string `json:"landlock_error,omitempty"`
	// Namespace says how the launcher hides sockets ("" = it cannot);
	// NamespaceErr why it cannot.
	Namespace    string `json:"mount_namespace,omitempty"`
	NamespaceErr string `json:"mount_namespace_error,omitempty"`
	// Subreaper is set where the launcher ends every process of a step
	// (Linux).
	Subreaper bool `json:"subreaper"`
	// Privileges is set where the launcher drops every capability of a
	// step (Linux); PrivilegesErr says why it cannot.
	Privileges    bool   `json:"drops_capabilities"`
	PrivilegesErr string `json:"drops_capabilities_error,omitempty"`

	ns nsMode
}

// Writes reports whether Landlock can restrict a step's writes.
func (s Status) Writes() bool { return s.ABI >= MinABI }

// Sockets reports whether other programs' Unix sockets are out of a
// sandboxed step's reach: hidden by a mount namespace, or refused by
// Landlock itself.
func (s Status) Sockets() bool { return s.Writes() && (s.ns != nsNone || s.ABI >= SocketABI) }

// Full reports whether every protection is there.
func (s Status) Full() bool { return s.Writes() && s.Sockets() && s.Subreaper && s.Privileges }

// Missing lists, one phrase each, what a sandboxed step lacks here (nil
// when Full): what `sandbox: auto` warns about and `sandbox: required`
// refuses for.
func (s Status) Missing() []string {
	var out []string
	if !s.Writes() {
		out = append(out, "writes are not restricted ("+s.ABIErr+")")
	} else if !s.Sockets() {
		out = append(out, "Unix sockets outside the worktree are not hidden ("+s.NamespaceErr+")")
	}
	if !s.Subreaper {
		out = append(out, "processes a step leaves running are not ended ("+s.OS+")")
	}
	if !s.Privileges {
		out = append(out, "steps keep codemachine's capabilities ("+s.PrivilegesErr+")")
	}
	return out
}

// Summary describes the protection in one line, for doctor and status.
func (s Status) Summary() string {
	var parts []string
	if s.Writes() {
		parts = append(parts, fmt.Sprintf("writes: Landlock ABI %d", s.ABI))
	} else {
		parts = append(parts, "writes: unrestricted ("+s.ABIErr+")")
	}
	switch {
	case s.Writes() && s.ABI >= SocketABI:
		parts = append(parts, "sockets: refused by Landlock")
	case s.Writes() && s.ns != nsNone:
		parts = append(parts, "sockets: hidden ("+s.Namespace+")")
	case s.Writes():
		parts = append(parts, "sockets: reachable ("+s.NamespaceErr+")")
	}
	if s.Subreaper {
		parts = append(parts, "processes: ended with their step (subreaper)")
	} else {
		parts = append(parts, "processes: process group only")
	}
	if s.Privileges {
		parts = append(parts, "capabilities: dropped")
	} else {
		parts = append(parts, "capabilities: kept ("+s.PrivilegesErr+")")
	}
	return strings.Join(parts, "; ")
}
