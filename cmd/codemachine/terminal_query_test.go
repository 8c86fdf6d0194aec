package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a new pseudo-terminal pair: the terminal's side (read by
// the test) and the program's.
func openPTY(t *testing.T) (term, prog *os.File) {
	t.Helper()
	term, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { term.Close() })
	fd := int(term.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pseudo-terminal number: %v", err)
	}
	prog, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the program's side: %v", err)
	}
	return term, prog
}

// TestNoTerminalQueryAtStartup: a command run in a terminal writes nothing
// to it but its output. A library that asks the terminal for its colours
// at start-up (bubbletea 1's init did, for every command) writes escape
// sequences the user did not ask for, and in a terminal that does not
// answer (script, expect, some editors' shells) waited 5 s for the answer.
// The terminal here never answers; the test looks at what was written,
// not at how long it took.
func TestNoTerminalQueryAtStartup(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary is codemachine under that name (TestMain), with the
	// same packages, so the same initialisation.
	bin := filepath.Join(t.TempDir(), "codemachine")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"version"}, {"--no-color", "status"}} {
		term, prog := openPTY(t)
		cmd := exec.Command(bin, args...)
		cmd.Dir = t.TempDir()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = prog, prog, prog
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TERM=xterm-256color"}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		prog.Close()
		var out bytes.Buffer
		_, err := io.Copy(&out, term) // ends with EIO once the program's side is closed
		if err != nil && !errors.Is(err, syscall.EIO) {
			t.Fatalf("read the terminal: %v", err)
		}
		_ = cmd.Wait()
		got := out.String()
		if strings.Contains(got, "\x1b]") || strings.Contains(got, "\x1b[6n") {
			t.Errorf("codemachine %s wrote a terminal query: %q", strings.Join(args, " "), got)
		}
		if !strings.Contains(got, "codemachine") && !strings.Contains(got, "git") {
			t.Errorf("codemachine %s wrote %q, want its output", strings.Join(args, " "), got)
		}
	}
}
