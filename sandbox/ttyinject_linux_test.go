//go:build linux

package sandbox

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// injectIntoTerminal is the helper program "inject": it tries to type a
// character into its controlling terminal (standard input) with each
// refused request, and with TIOCSTI's number with high bits set (which the
// kernel reads as TIOCSTI), and prints what each call answered.
func injectIntoTerminal() {
	c := byte('x')
	for _, req := range []struct {
		name string
		nr   uintptr
	}{{"tiocsti", unix.TIOCSTI}, {"tiocsti-high", 1<<32 | unix.TIOCSTI}} {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, 0, req.nr, uintptr(unsafe.Pointer(&c)))
		fmt.Printf("%s: %v\n", req.name, errnoText(errno))
	}
	// TIOCLINUX's paste (subcode 3): on a pseudo-terminal the kernel
	// refuses it (ENOTTY/EINVAL) unless the filter did first (EPERM).
	sub := byte(3)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCLINUX, uintptr(unsafe.Pointer(&sub)))
	fmt.Printf("tioclinux: %v\n", errnoText(errno))
	// An ioctl that is not refused still works: the window size.
	_, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
	fmt.Printf("winsize: %v\n", err)
	os.Exit(0)
}

func errnoText(errno syscall.Errno) string {
	if errno == 0 {
		return "ok"
	}
	return errno.Error()
}

// openTerminal opens a new pseudo-terminal and returns its two sides.
func openTerminal(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptm, pts
}

// injectUnder runs the helper "inject" under the launcher with policy p,
// with a new pseudo-terminal as its controlling terminal, and returns
// what it printed.
func injectUnder(t *testing.T, p Policy) string {
	t.Helper()
	_, pts := openTerminal(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p.Terminal = true
	l, err := Command(p, exe, "inject", nil)
	if err != nil {
		t.Fatal(err)
	}
	if forceNS != nsNone && l.ns != nsNone {
		l.ns = forceNS
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out strings.Builder
	cmd := &exec.Cmd{Path: l.Path, Args: l.Args, Dir: t.TempDir(), Stdin: pts, Stdout: &out, Stderr: &out,
		Env:         append(baseEnv(t.TempDir()), helperEnv+"=inject"),
		ExtraFiles:  []*os.File{w},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}}
	l.SetAttr(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	return out.String()
}

// TestTerminalInputInjectionIsRefused: a sandboxed program in the
// foreground of a terminal (an interactive step) cannot type into it,
// however it spells the request; without the sandbox's restrictions the
// same program can, where the kernel allows TIOCSTI at all.
func TestTerminalInputInjectionIsRefused(t *testing.T) {
	requireLandlock(t)
	got := injectUnder(t, Policy{Landlock: true})
	for _, want := range []string{"tiocsti: operation not permitted", "tiocsti-high: operation not permitted",
		"tioclinux: operation not permitted", "winsize: <nil>"} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("sandboxed: want %q, got:\n%s", want, got)
		}
	}
	control := injectUnder(t, Policy{})
	if b, err := os.ReadFile("/proc/sys/dev/tty/legacy_tiocsti"); err == nil && strings.TrimSpace(string(b)) == "0" {
		t.Logf("the kernel refuses TIOCSTI to everyone (dev.tty.legacy_tiocsti = 0): no control\n%s", control)
		return
	}
	if !strings.Contains(control, "tiocsti: ok\n") || !strings.Contains(control, "tiocsti-high: ok\n") {
		t.Errorf("without the restrictions the control could not inject either:\n%s", control)
	}
}

// TestTerminalInjectionFilterProgram runs the filter's program on
// system calls of each ABI, the way the kernel would.
func TestTerminalInjectionFilterProgram(t *testing.T) {
	abis := ioctlABIs["amd64"]
	for _, little := range []bool{true, false} {
		vm, err := bpf.NewVM(terminalInjectionFilter(abis, little))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			arch, nr uint32
			request  uint64
			refused  bool
		}{
			{unix.AUDIT_ARCH_X86_64, 16, unix.TIOCSTI, true},
			{unix.AUDIT_ARCH_X86_64, 16, 1<<32 | unix.TIOCSTI, true},
			{unix.AUDIT_ARCH_X86_64, 16, unix.TIOCLINUX, true},
			{unix.AUDIT_ARCH_X86_64, 16, unix.TIOCGWINSZ, false},
			{unix.AUDIT_ARCH_X86_64, 0x40000000 | 514, unix.TIOCSTI, true},
			{unix.AUDIT_ARCH_I386, 54, unix.TIOCSTI, true},
			{unix.AUDIT_ARCH_I386, 16, unix.TIOCSTI, false},    // i386's 16 is lchown
			{unix.AUDIT_ARCH_X86_64, 54, unix.TIOCSTI, false},  // x86-64's 54 is setsockopt
			{unix.AUDIT_ARCH_AARCH64, 29, unix.TIOCSTI, false}, // not this build's ABI
		} {
			data := make([]byte, 64)
			order := binaryOrder(little)
			order.PutUint32(data[0:], c.nr)
			order.PutUint32(data[4:], c.arch)
			order.PutUint64(data[24:], c.request)
			// The VM loads words big-endian; the kernel loads them in
			// the host's order. Give the VM each word as the kernel reads it.
			for i := 0; i < len(data); i += 4 {
				v := order.Uint32(data[i:])
				binary.BigEndian.PutUint32(data[i:], v)
			}
			ret, err := vm.Run(data)
			if err != nil {
				t.Fatal(err)
			}
			refused := uint32(ret) == unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM)
			if !refused && uint32(ret) != unix.SECCOMP_RET_ALLOW {
				t.Errorf("arch %#x nr %d request %#x: return %#x", c.arch, c.nr, c.request, ret)
			}
			if refused != c.refused {
				t.Errorf("little endian %v, arch %#x nr %d request %#x: refused %v, want %v", little, c.arch, c.nr, c.request, refused, c.refused)
			}
		}
	}
}

func binaryOrder(little bool) binary.ByteOrder {
	if little {
		return binary.LittleEndian
	}
	return binary.BigEndian
}
