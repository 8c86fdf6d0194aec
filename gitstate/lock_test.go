package gitstate

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
)

func TestLockInProcess(t *testing.T) {
	_, r := newRepo(t, map[string]string{"a": "a"})
	if _, _, held := r.LockHolder(); held {
		t.Fatal("held before anyone locked")
	}
	l, err := r.Lock("run")
	if err != nil {
		t.Fatal(err)
	}
	if l.TookOverFrom != 0 {
		t.Errorf("TookOverFrom = %d on a fresh lock", l.TookOverFrom)
	}
	if pid, cmd, held := r.LockHolder(); !held || pid != os.Getpid() || cmd != "run" {
		t.Errorf("LockHolder = %d %q %v", pid, cmd, held)
	}
	_, err = r.Lock("watch")
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || le.Command != "run" {
		t.Fatalf("second Lock = %v", err)
	}
	l.Release()
	l.Release() // harmless
	if _, _, held := r.LockHolder(); held {
		t.Error("held after Release")
	}
	l2, err := r.Lock("watch")
	if err != nil || l2.TookOverFrom != 0 {
		t.Fatalf("Lock after a clean release = %+v, %v", l2, err)
	}
	l2.Release()
}

// startHolder runs this test binary as a second process that takes the
// lock, and waits until it has.
func startHolder(t *testing.T, dir string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GITSTATE_HELPER=lock", "GITSTATE_REPO="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	return cmd, stdin
}

func TestLockAcrossProcesses(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "a"})
	cmd, stdin := startHolder(t, dir)
	_, err := r.Lock("run")
	var le *LockedError
	if !errors.As(err, &le) || le.PID != cmd.Process.Pid || le.Command != "helper run" {
		t.Fatalf("Lock while another process holds it = %v", err)
	}
	if want := "another codemachine (pid "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q", err)
	}
	if pid, cmdline, held := r.LockHolder(); !held || pid != cmd.Process.Pid || cmdline != "helper run" {
		t.Errorf("LockHolder = %d %q %v", pid, cmdline, held)
	}
	stdin.Close() // the helper releases and exits
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	l, err := r.Lock("run")
	if err != nil || l.TookOverFrom != 0 {
		t.Fatalf("Lock after the holder released = %+v, %v", l, err)
	}
	l.Release()
}

func TestLockTakenOverFromADeadProcess(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a": "a"})
	cmd, _ := startHolder(t, dir)
	pid := cmd.Process.Pid
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, _, held := r.LockHolder(); held {
		t.Error("a dead process still holds the lock")
	}
	l, err := r.Lock("run")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if l.TookOverFrom != pid || l.TookOverCommand != "helper run" {
		t.Errorf("TookOverFrom = %d %q, want %d", l.TookOverFrom, l.TookOverCommand, pid)
	}
	if got := read(t, r.LocalDir(), "lock"); got != "pid "+strconv.Itoa(os.Getpid())+"\ncommand run\n" {
		t.Errorf("lock file = %q", got)
	}
}

func TestLocalFiles(t *testing.T) {
	_, r := newRepo(t, map[string]string{"a": "a"})
	type holds struct {
		Steps map[string]string `yaml:"steps"`
	}
	var got holds
	if err := r.ReadLocal("holds.yaml", &got); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	want := holds{Steps: map[string]string{"implement/T3": "a1b2"}}
	if err := r.WriteLocal("holds.yaml", want); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadLocal("holds.yaml", &got); err != nil || got.Steps["implement/T3"] != "a1b2" {
		t.Fatalf("ReadLocal = %+v, %v", got, err)
	}
	if err := r.WriteLocal("runs/r1.yaml", want); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "../x", "/etc/passwd", "a/../../b"} {
		if err := r.WriteLocal(bad, want); err == nil {
			t.Errorf("WriteLocal(%q) succeeded", bad)
		}
	}
	os.WriteFile(r.LocalDir()+"/broken.yaml", []byte("steps: [\n"), 0o644)
	var damaged *DamagedFileError
	if err := r.ReadLocal("broken.yaml", &got); !errors.As(err, &damaged) || damaged.Path != ".git/codemachine/broken.yaml" || damaged.Line == 0 {
		t.Errorf("ReadLocal of broken YAML = %v, want a DamagedFileError at its line", err)
	}
	// A value of the wrong type is told by its line, without the Go type
	// it was to be decoded into.
	os.WriteFile(r.LocalDir()+"/wrong.yaml", []byte("steps:\n  x: [1]\n"), 0o644)
	if err := r.ReadLocal("wrong.yaml", &got); !errors.As(err, &damaged) || damaged.Line != 2 || strings.Contains(err.Error(), "map[") || strings.Contains(err.Error(), "\n") {
		t.Errorf("ReadLocal of a wrong type = %v, want a DamagedFileError at line 2, on one line", err)
	}
	entries, _ := os.ReadDir(r.LocalDir())
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
	if got := r.LogDir("20261124T101500Z"); got != r.LocalDir()+"/logs/20261124T101500Z" {
		t.Errorf("LogDir = %s", got)
	}
}

// A holder killed with kill -9 may leave the lock's flock to a child it
// had forked and that had not reached its exec yet (close-on-exec drops
// the descriptor only there): for a moment the lock is held while its
// holder on record is dead. Lock waits for that moment to pass instead of
// naming the dead process as running (seen in TestCrashKill9 under load,
// a sandboxed step's child waiting for its user namespace). A live holder
// with a dead one's record (between its flock and its record) still wins.
// LockHolder, which status asks, waits alike.
func TestLockWaitsForADeadHoldersChild(t *testing.T) {
	_, r := newRepo(t, map[string]string{"a": "a"})
	defer func(d time.Duration) { deadHolderWait = d }(deadHolderWait)
	deadHolderWait = 500 * time.Millisecond
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(r.LocalDir(), "lock")
	if err := os.MkdirAll(r.LocalDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("pid "+strconv.Itoa(dead.Process.Pid)+"\ncommand codemachine run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The child's descriptor: another open file description, flocked.
	child, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(child.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(100 * time.Millisecond)
		child.Close()
		close(released)
	}()
	// status, right after the kill: nobody runs.
	if pid, _, held := r.LockHolder(); held {
		t.Errorf("LockHolder while a dead holder's child held the lock a moment: held by %d", pid)
	}
	<-released
	l, err := r.Lock("codemachine run")
	if err != nil {
		t.Fatalf("Lock while a dead holder's child held it a moment: %v", err)
	}
	if l.TookOverFrom != dead.Process.Pid {
		t.Errorf("TookOverFrom = %d, want %d", l.TookOverFrom, dead.Process.Pid)
	}
	l.Release()

	// A live holder whose record is still the dead one's.
	if err := os.WriteFile(p, []byte("pid "+strconv.Itoa(dead.Process.Pid)+"\ncommand codemachine run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	live, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := syscall.Flock(int(live.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	var locked *LockedError
	if _, err := r.Lock("codemachine run"); !errors.As(err, &locked) {
		t.Fatalf("Lock with a live holder = %v, want a LockedError", err)
	}
	if _, _, held := r.LockHolder(); !held {
		t.Error("LockHolder with a live holder: not held")
	}
}

// TestLockNotAFile: a named pipe planted where the lock file is hung
// status (LockHolder opened it to read, waiting for a writer), and run
// failed on a truncate of it. LockHolder now finds no holder, and Lock
// refuses it as a damaged file (exit 2, naming it), neither opening it to
// wait.
func TestLockNotAFile(t *testing.T) {
	_, r := newRepo(t, map[string]string{"a": "a"})
	if err := os.MkdirAll(r.LocalDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(r.LocalDir(), "lock"), 0o644); err != nil {
		t.Fatal(err)
	}
	held := make(chan bool, 1)
	go func() {
		_, _, h := r.LockHolder()
		held <- h
	}()
	select {
	case h := <-held:
		if h {
			t.Error("LockHolder: a named pipe is held")
		}
	case <-time.After(testenv.Scale(10 * time.Second)):
		t.Fatal("LockHolder hangs on a named pipe")
	}
	l, err := r.Lock("run")
	var damaged *DamagedFileError
	if !errors.As(err, &damaged) || damaged.Problem != "a named pipe, socket or device, not a file" {
		l.Release()
		t.Fatalf("Lock = %v, want a DamagedFileError naming a named pipe", err)
	}
}
