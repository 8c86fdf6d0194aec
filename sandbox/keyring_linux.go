//go:build linux

package sandbox

import (
	"runtime"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The kernel's keyrings are no files: Landlock does not govern them, and
// the user keyring (@u) is shared by every process of the user outside a
// user namespace. Through add_key, request_key and keyctl a step could
// read the keys kept there (Kerberos tickets, passphrases cached by
// systemd or cryptsetup, a keyring credential store's tokens) and change
// or remove them. A second seccomp filter refuses the three calls (EPERM),
// as Docker's default profile does, to the program and everything it
// starts.

// keyringCalls are, per architecture, the system call ABIs a process can
// call in (see ioctlABIs) with the numbers of add_key, request_key and
// keyctl in each.
var keyringCalls = map[string][]syscallABI{
	"amd64": {
		{unix.AUDIT_ARCH_X86_64, []uint32{248, 249, 250, 0x40000000 | 248, 0x40000000 | 249, 0x40000000 | 250}},
		{unix.AUDIT_ARCH_I386, []uint32{286, 287, 288}},
	},
	"arm64": {
		{unix.AUDIT_ARCH_AARCH64, []uint32{217, 218, 219}},
		{unix.AUDIT_ARCH_ARM, []uint32{309, 310, 311}},
	},
}

// refuseKeyrings installs the filter on every thread of the process; on an
// architecture without an entry in keyringCalls it does nothing.
func refuseKeyrings() error {
	abis, ok := keyringCalls[runtime.GOARCH]
	if !ok {
		return nil
	}
	return installFilter(refuseCallsFilter(abis))
}

// refuseCallsFilter is a filter's program that refuses (EPERM) a call in
// one of abis whose number the ABI lists (its ioctl field), and allows
// anything else.
//
// Layout, per ABI: compare the arch, skipping the rest of the block when
// it differs; load the number; one jump per listed number to the refusal;
// allow. Then allow (no ABI matched) and the refusal.
func refuseCallsFilter(abis []syscallABI) []bpf.Instruction {
	allow := bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}
	prog := []bpf.Instruction{bpf.LoadAbsolute{Off: offsetArch, Size: 4}}
	var toRefusal []int // the jumps whose target is the refusal
	for _, abi := range abis {
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: abi.arch, SkipFalse: uint8(len(abi.ioctl) + 2)})
		prog = append(prog, bpf.LoadAbsolute{Off: offsetNr, Size: 4})
		for _, nr := range abi.ioctl {
			toRefusal = append(toRefusal, len(prog))
			prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr})
		}
		prog = append(prog, allow)
	}
	prog = append(prog, allow, bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)})
	refusal := len(prog) - 1
	for _, i := range toRefusal {
		j := prog[i].(bpf.JumpIf)
		j.SkipTrue = uint8(refusal - i - 1)
		prog[i] = j
	}
	return prog
}
