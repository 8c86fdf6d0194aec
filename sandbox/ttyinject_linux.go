//go:build linux

package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// A program with a controlling terminal can push characters into that
// terminal's input with the TIOCSTI ioctl (and on a Linux console with
// TIOCLINUX's paste): an agent in its own UI in the user's terminal (an
// interactive step) could type a command that the user's shell reads and
// runs once codemachine has ended, outside every restriction of the
// sandbox. Landlock does not cover ioctls on the terminal the program
// inherits, so a seccomp filter refuses these two requests (EPERM), on
// every file descriptor, to the program and everything it starts.

// syscallABI is one system call ABI a process of this architecture can
// make calls in, with the numbers of ioctl in it (or, for keyringCalls,
// of the calls refused).
type syscallABI struct {
	arch  uint32   // AUDIT_ARCH_*, as seccomp_data.arch says it
	ioctl []uint32 // ioctl's system call numbers
}

// ioctlABIs are the ABIs of each architecture codemachine is built for:
// the native one and the 32-bit one its processes can call in as well
// (int 0x80 or a 32-bit program on x86-64, AArch32 on arm64), each of
// which a filter that looked at one number only would let through. The
// x32 ABI's ioctl on x86-64 is 514 with the x32 bit set.
var ioctlABIs = map[string][]syscallABI{
	"amd64": {
		{unix.AUDIT_ARCH_X86_64, []uint32{16, 0x40000000 | 514}},
		{unix.AUDIT_ARCH_I386, []uint32{54}},
	},
	"arm64": {
		{unix.AUDIT_ARCH_AARCH64, []uint32{29}},
		{unix.AUDIT_ARCH_ARM, []uint32{54}},
	},
}

// injectionRequests are the ioctl requests refused.
var injectionRequests = []uint32{unix.TIOCSTI, unix.TIOCLINUX}

// seccomp_data's layout: the system call number, the architecture, the
// instruction pointer, then the six arguments of 8 bytes each.
const (
	offsetNr   = 0
	offsetArch = 4
	offsetArgs = 16
)

// errTTYFilterUnsupported says the kernel has no seccomp filters.
var errTTYFilterUnsupported = errors.New("the kernel has no seccomp filters")

// refuseTerminalInjection installs the filter on every thread of the
// process (the program, executed from one of them, inherits it). It sets
// no_new_privs, as a filter installed without CAP_SYS_ADMIN needs. On an
// architecture without an entry in ioctlABIs it does nothing.
func refuseTerminalInjection() error {
	abis, ok := ioctlABIs[runtime.GOARCH]
	if !ok {
		return nil
	}
	return installFilter(terminalInjectionFilter(abis, binary.NativeEndian.Uint16([]byte{1, 0}) == 1))
}

// installFilter installs the seccomp filter program on every thread of
// the process, with no_new_privs (see refuseTerminalInjection).
// errTTYFilterUnsupported when the kernel has no seccomp filters.
func installFilter(program []bpf.Instruction) error {
	insts, err := bpf.Assemble(program)
	if err != nil {
		return fmt.Errorf("assemble the seccomp filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(insts))
	for i, in := range insts {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	switch {
	case errno == unix.ENOSYS || errno == unix.EINVAL:
		return errTTYFilterUnsupported
	case errno != 0:
		return fmt.Errorf("install the seccomp filter: %w", errno)
	case r != 0:
		return fmt.Errorf("install the seccomp filter: thread %d could not take it", r)
	}
	return nil
}

// terminalInjectionFilter is the filter's program: for a call in one of
// abis to ioctl whose request is one of injectionRequests, EPERM;
// anything else is allowed. The request is compared on its low 32 bits
// only, as the kernel reads it (an unsigned int): a request with other
// high bits is the same request to the kernel. littleEndian says where
// those bits are in seccomp_data.
//
// Layout: load the arch; one jump per ABI to its block; allow. Each
// block: load the number; one jump per ioctl number to the check; allow.
// The check: load the request; one jump per refused request to the
// refusal; allow; refuse.
func terminalInjectionFilter(abis []syscallABI, littleEndian bool) []bpf.Instruction {
	allow := bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}
	prog := []bpf.Instruction{bpf.LoadAbsolute{Off: offsetArch, Size: 4}}
	blockStart := len(abis) + 2 // after the arch's load, its jumps and the allow
	start := blockStart
	for _, abi := range abis {
		here := len(prog)
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: abi.arch, SkipTrue: uint8(start - here - 1)})
		start += len(abi.ioctl) + 2
	}
	prog = append(prog, allow)
	check := start
	for _, abi := range abis {
		prog = append(prog, bpf.LoadAbsolute{Off: offsetNr, Size: 4})
		for _, nr := range abi.ioctl {
			here := len(prog)
			prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipTrue: uint8(check - here - 1)})
		}
		prog = append(prog, allow)
	}
	request := uint32(offsetArgs + 8) // the second argument
	if !littleEndian {
		request += 4
	}
	prog = append(prog, bpf.LoadAbsolute{Off: request, Size: 4})
	for i, req := range injectionRequests {
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: req, SkipTrue: uint8(len(injectionRequests) - i)})
	}
	return append(prog, allow, bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)})
}
