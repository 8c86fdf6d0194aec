//go:build linux

package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// keyringEnv names the key the helper "keyring" looks for in the user
// keyring.
const keyringEnv = "SANDBOX_TEST_KEY"

// useKeyring is the helper "keyring": it searches the user keyring for
// the key $SANDBOX_TEST_KEY and, found, overwrites it; it prints what it
// did and exits 0 when it did.
func useKeyring() {
	id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "user", os.Getenv(keyringEnv), 0)
	if err != nil {
		fmt.Println("search:", err)
		os.Exit(1)
	}
	payload := []byte("PWNED")
	if _, _, errno := unix.Syscall6(unix.SYS_KEYCTL, unix.KEYCTL_UPDATE, uintptr(id), uintptr(unsafe.Pointer(&payload[0])), uintptr(len(payload)), 0, 0); errno != 0 {
		err := error(errno)
		fmt.Println("update:", err)
		os.Exit(1)
	}
	fmt.Println("updated")
	os.Exit(0)
}

// A sandboxed step cannot read or change the keys of the user's keyring,
// which Landlock does not govern; without the sandbox's restrictions the
// same program can (the test's control).
func TestTheUsersKeyringIsOutOfReach(t *testing.T) {
	requireLandlock(t)
	desc := fmt.Sprintf("cm-sandbox-test-%d", os.Getpid())
	id, err := unix.AddKey("user", desc, []byte("secret"), unix.KEY_SPEC_USER_KEYRING)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		t.Skipf("no keyring here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_USER_KEYRING, 0, 0) }()
	work := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := append(baseEnv(work), helperEnv+"=keyring", keyringEnv+"="+desc, "GORACE=atexit_sleep_ms=0")
	res := run(t, Policy{Landlock: true, Writable: []string{work}}, work, env, nil, exe)
	if !strings.Contains(res.out, "search: operation not permitted") {
		t.Errorf("sandboxed: want the search refused, got: %s %s", res.out, res.report)
	}
	buf := make([]byte, 16)
	if n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0); err != nil || string(buf[:n]) != "secret" {
		t.Fatalf("the key changed: %q %v", buf[:n], err)
	}
	if res := run(t, Policy{}, work, env, nil, exe); !strings.Contains(res.out, "updated") {
		t.Fatalf("control: %s %s", res.out, res.report)
	}
}

// TestKeyringFilterProgram runs the filter's program on system calls of
// each ABI, the way the kernel would.
func TestKeyringFilterProgram(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		vm, err := bpf.NewVM(refuseCallsFilter(keyringCalls[arch]))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			arch, nr uint32
			refused  bool
		}{
			{unix.AUDIT_ARCH_X86_64, 250, true},              // keyctl
			{unix.AUDIT_ARCH_X86_64, 248, true},              // add_key
			{unix.AUDIT_ARCH_X86_64, 0x40000000 | 249, true}, // x32 request_key
			{unix.AUDIT_ARCH_X86_64, 0, false},               // read
			{unix.AUDIT_ARCH_X86_64, 288, false},             // accept4
			{unix.AUDIT_ARCH_I386, 288, true},                // i386 keyctl
			{unix.AUDIT_ARCH_I386, 250, false},               // i386 fadvise64
			{unix.AUDIT_ARCH_AARCH64, 219, true},             // keyctl
			{unix.AUDIT_ARCH_AARCH64, 250, false},
			{unix.AUDIT_ARCH_ARM, 311, true}, // keyctl
			{unix.AUDIT_ARCH_ARM, 219, false},
		} {
			native := arch == "amd64" && (c.arch == unix.AUDIT_ARCH_X86_64 || c.arch == unix.AUDIT_ARCH_I386) ||
				arch == "arm64" && (c.arch == unix.AUDIT_ARCH_AARCH64 || c.arch == unix.AUDIT_ARCH_ARM)
			// The VM loads words big-endian, as the kernel loads them
			// in the host's order: give it each word as the kernel reads it.
			data := make([]byte, 64)
			binary.BigEndian.PutUint32(data[offsetNr:], c.nr)
			binary.BigEndian.PutUint32(data[offsetArch:], c.arch)
			ret, err := vm.Run(data)
			if err != nil {
				t.Fatal(err)
			}
			refused := uint32(ret) == unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM)
			if !refused && uint32(ret) != unix.SECCOMP_RET_ALLOW {
				t.Errorf("%s: arch %#x nr %d: return %#x", arch, c.arch, c.nr, ret)
			}
			if want := c.refused && native; refused != want {
				t.Errorf("%s: arch %#x nr %d: refused %v, want %v", arch, c.arch, c.nr, refused, want)
			}
		}
	}
}
