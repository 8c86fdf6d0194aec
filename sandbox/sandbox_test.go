//go:build linux

package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codemachine/codemachine/internal/testenv"
)

// helperEnv makes the test binary a small client program in the
// sandbox: "connect PATH" dials a Unix socket and exits 0 when it could.
const helperEnv = "SANDBOX_TEST_HELPER"

func TestMain(m *testing.M) {
	Main()
	if os.Getenv(helperEnv) == "remembered-probe" {
		os.Exit(rememberedProbeHelper(os.Args[1]))
	}
	if os.Getenv(helperEnv) == "connect" {
		c, err := net.Dial("unix", os.Args[1])
		if err != nil {
			fmt.Println("connect:", err)
			os.Exit(1)
		}
		c.Close()
		fmt.Println("connected")
		os.Exit(0)
	}
	if os.Getenv(helperEnv) == "keyring" {
		useKeyring()
	}
	if os.Getenv(helperEnv) == "shm" {
		os.Exit(writeSharedMemory(os.Args[1]))
	}
	if os.Getenv(helperEnv) == "inject" {
		injectIntoTerminal()
	}
	os.Exit(m.Run())
}

// result is what a launched program did.
type result struct {
	out    string
	report string
	state  *os.ProcessState
	pid    int
}

// run starts program under the launcher with policy p, in dir, and waits.
// start, when set, is called once it runs.
func run(t *testing.T, p Policy, dir string, env []string, start func(pid int), program string, args ...string) result {
	t.Helper()
	l, err := Command(p, program, filepath.Base(program), args)
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
	var out bytes.Buffer
	cmd := &exec.Cmd{Path: l.Path, Args: l.Args, Dir: dir, Env: env, Stdout: &out, Stderr: &out,
		ExtraFiles: []*os.File{w}, SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	l.SetAttr(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if start != nil {
		start(cmd.Process.Pid)
	}
	report, _ := io.ReadAll(r)
	_ = cmd.Wait()
	return result{out: out.String(), report: string(report), state: cmd.ProcessState, pid: cmd.Process.Pid}
}

func requireLandlock(t *testing.T) Status {
	t.Helper()
	st := Probe()
	if !st.Writes() {
		t.Skipf("no Landlock here: %s", st.ABIErr)
	}
	return st
}

func baseEnv(home string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
}

func TestProbeSaysWhatIsThere(t *testing.T) {
	st := Probe()
	t.Logf("%s", st.Summary())
	if !st.Subreaper {
		t.Error("no subreaper on Linux")
	}
	if st.Writes() != (st.ABI >= MinABI) {
		t.Errorf("Writes() = %v with ABI %d", st.Writes(), st.ABI)
	}
	if st.Full() != (len(st.Missing()) == 0) {
		t.Errorf("Full() = %v but Missing() = %q", st.Full(), st.Missing())
	}
	if os.Geteuid() == 0 && st.Namespace == "" {
		t.Logf("root without a mount namespace: %s", st.NamespaceErr)
	}
}

func TestWritesOutsideTheWritablePathsAreRefused(t *testing.T) {
	requireLandlock(t)
	root := t.TempDir()
	work := filepath.Join(root, "work")
	outside := filepath.Join(root, "user")
	for _, d := range []string{work, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	keep := filepath.Join(outside, "keep.txt")
	if err := os.WriteFile(keep, []byte("USER\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `echo ok > inside.txt && mkdir sub && mv inside.txt sub/ && echo written
echo AGENT > ../user/keep.txt || echo refused-write
truncate -s 0 ` + keep + ` || echo refused-truncate
rm -f ` + keep + ` || echo refused-remove
ln -s /etc/passwd ../user/link 2>/dev/null || echo refused-link
echo x > /dev/null && echo devnull-ok`
	res := run(t, Policy{Landlock: true, Writable: []string{work}}, work, baseEnv(root), nil, "/bin/sh", "-c", script)
	for _, want := range []string{"written", "refused-write", "refused-truncate", "refused-remove", "refused-link", "devnull-ok"} {
		if !strings.Contains(res.out, want) {
			t.Errorf("output lacks %q:\n%s%s", want, res.out, res.report)
		}
	}
	if data, _ := os.ReadFile(keep); string(data) != "USER\n" {
		t.Errorf("keep.txt = %q, want it untouched", data)
	}
	if _, err := os.Stat(filepath.Join(work, "sub", "inside.txt")); err != nil {
		t.Errorf("the write inside the worktree did not happen: %v", err)
	}
}

func TestWithoutLandlockNothingIsRestricted(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere.txt")
	res := run(t, Policy{}, t.TempDir(), baseEnv(dir), nil, "/bin/sh", "-c", "echo hi > "+target)
	if !res.state.Success() {
		t.Fatalf("failed: %s %s", res.out, res.report)
	}
	if _, err := os.Stat(target); err != nil {
		t.Error(err)
	}
}

func TestNoProcessOutlivesTheProgram(t *testing.T) {
	dir := t.TempDir()
	marker := "sleep " + strconv.Itoa(1000+os.Getpid()%1000) + ".5"
	// A setsid daemon, a double fork and a plain background job: all
	// three outlive the shell unless the launcher ends them.
	script := `setsid sh -c '` + marker + `; echo late > late.txt' >/dev/null 2>&1 &
( sh -c '` + marker + `' >/dev/null 2>&1 & ) 
` + marker + ` >/dev/null 2>&1 &
echo started`
	res := run(t, Policy{}, dir, baseEnv(dir), nil, "/bin/sh", "-c", script)
	if !res.state.Success() || !strings.Contains(res.out, "started") {
		t.Fatalf("failed: %s %s", res.out, res.report)
	}
	if left := processesRunning(marker); len(left) > 0 {
		t.Fatalf("processes left running after the launcher exited: %v", left)
	}
}

// A sandboxed program cannot kill its launcher, which would leave what it
// started running, reparented out of the launcher's reach: the launcher
// is outside the program's Landlock domain, whose signals to processes
// outside it the kernel refuses from ABI 6.
func TestTheProgramCannotKillItsLauncher(t *testing.T) {
	if st := requireLandlock(t); st.ABI < 6 {
		t.Skipf("Landlock ABI %d does not scope signals", st.ABI)
	}
	dir := t.TempDir()
	marker := "sleep " + strconv.Itoa(2000+os.Getpid()%1000) + ".5"
	// The daemon runs (as the sleep processesRunning looks for) before
	// the kill: a killed launcher would leave it so.
	script := `setsid ` + marker + ` >/dev/null 2>&1 &
pid=$!
until tr '\0' ' ' < /proc/$pid/cmdline | grep -q '^` + marker + `'; do sleep 0.01; done
kill -KILL $PPID && echo KILLED`
	res := run(t, Policy{Landlock: true, Writable: []string{dir}}, dir, baseEnv(dir), nil, "/bin/sh", "-c", script)
	if res.state.Success() || strings.Contains(res.out, "KILLED") || !strings.Contains(res.out, "Operation not permitted") {
		t.Errorf("the kill was not refused: %s %s (%v)", res.out, res.report, res.state)
	}
	if left := processesRunning(marker); len(left) > 0 {
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Fatalf("processes left running after the launcher exited: %v", left)
	}
}

func TestStopEndsEveryProcessAfterTheGrace(t *testing.T) {
	dir := t.TempDir()
	marker := "sleep " + strconv.Itoa(2000+os.Getpid()%1000) + ".5"
	// The daemon ignores SIGTERM: only the SIGKILL after the grace
	// period ends it.
	script := `setsid sh -c 'trap "" TERM; ` + marker + `' >/dev/null 2>&1 &
trap 'echo got-term; exit 7' TERM
echo ready
while :; do sleep 0.05; done`
	started := time.Now()
	res := run(t, Policy{Grace: 300 * time.Millisecond}, dir, baseEnv(dir), func(pid int) {
		deadline := time.Now().Add(testenv.Patience())
		for len(processesRunning(marker)) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}, "/bin/sh", "-c", script)
	if left := processesRunning(marker); len(left) > 0 {
		t.Fatalf("processes left running after a stop: %v", left)
	}
	if code := res.state.ExitCode(); code != 7 {
		t.Errorf("exit code %d, want the program's 7 (output %q, report %q)", code, res.out, res.report)
	}
	if d := time.Since(started); d > 8*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestExitStatusIsTheProgramsOwn(t *testing.T) {
	dir := t.TempDir()
	if res := run(t, Policy{}, dir, baseEnv(dir), nil, "/bin/sh", "-c", "exit 3"); res.state.ExitCode() != 3 {
		t.Errorf("exit 3 gave %v", res.state)
	}
	res := run(t, Policy{}, dir, baseEnv(dir), nil, "/bin/sh", "-c", "kill -9 $$")
	ws := res.state.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("a program killed by SIGKILL gave %v", res.state)
	}
}

func TestAMissingProgramIsReported(t *testing.T) {
	dir := t.TempDir()
	policies := []Policy{{}}
	if Probe().Writes() {
		// Started by the launcher's second process, which reports too.
		policies = append(policies, Policy{Landlock: true, Writable: []string{dir}})
	}
	for _, p := range policies {
		res := run(t, p, dir, baseEnv(dir), nil, filepath.Join(dir, "nope"))
		if res.state.ExitCode() != exitNoStart || !strings.Contains(res.report, "codemachine sandbox: start nope") {
			t.Errorf("landlock %v: exit %d, report %q", p.Landlock, res.state.ExitCode(), res.report)
		}
		if res.out != "" {
			t.Errorf("landlock %v: the launcher wrote to the program's output: %q", p.Landlock, res.out)
		}
	}
}

func TestAMissingWritablePathFailsTheSetup(t *testing.T) {
	requireLandlock(t)
	dir := t.TempDir()
	res := run(t, Policy{Landlock: true, Writable: []string{filepath.Join(dir, "gone")}}, dir, baseEnv(dir), nil, "/bin/true")
	if res.state.ExitCode() != exitSetup || !strings.Contains(res.report, "restrict writes: writable path") {
		t.Errorf("exit %d, report %q", res.state.ExitCode(), res.report)
	}
}

// forceNS, when set, replaces the namespace mode run would use.
var forceNS nsMode

// The same in a user namespace, the way an unprivileged user gets it.
func TestSocketsHiddenInAUserNamespace(t *testing.T) {
	requireLandlock(t)
	if err := tryNamespace(nsUser); err != nil {
		t.Skipf("no user namespace here: %v", err)
	}
	forceNS = nsUser
	defer func() { forceNS = nsNone }()
	TestSocketsOutsideAreHidden(t)
}

func TestSocketsOutsideAreHidden(t *testing.T) {
	st := requireLandlock(t)
	if !st.Sockets() {
		t.Skipf("sockets cannot be hidden here: %s", st.NamespaceErr)
	}
	// The socket lives in a directory of /tmp that no kept path covers;
	// the worktree is in another.
	sockDir, err := os.MkdirTemp("/tmp", "cm-sandbox-sock-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	work, err := os.MkdirTemp("/tmp", "cm-sandbox-work-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := append(baseEnv(work), helperEnv+"=connect", "GORACE=atexit_sleep_ms=0")
	// Unsandboxed (sandbox: off), the socket is reachable: the test's
	// own control.
	if res := run(t, Policy{}, work, env, nil, exe, sock); !strings.Contains(res.out, "connected") {
		t.Fatalf("control: %s %s", res.out, res.report)
	}
	res := run(t, Policy{Landlock: true, Writable: []string{work}}, work, env, nil, exe, sock)
	if strings.Contains(res.out, "connected") || res.state.ExitCode() != 1 {
		t.Fatalf("the sandboxed program reached %s: %s %s", sock, res.out, res.report)
	}
	// The user's own view is untouched: the mounts were the launcher's.
	if c, err := net.Dial("unix", sock); err != nil {
		t.Errorf("the socket is gone for the user too: %v", err)
	} else {
		c.Close()
	}
	// A socket named in the policy is covered wherever it is, even in a
	// directory that stays visible (here the worktree).
	own := filepath.Join(work, "s.sock")
	ln2, err := net.Listen("unix", own)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	res = run(t, Policy{Landlock: true, Writable: []string{work}, Sockets: []string{own}}, work, env, nil, exe, own)
	if strings.Contains(res.out, "connected") {
		t.Fatalf("a covered socket was reached: %s %s", res.out, res.report)
	}
}

// A path the step needs to see (a PATH entry, HOME) does not bring a
// hidden directory back with its sockets: not when it is one (a PATH
// entry /tmp), nor when it holds one (a HOME in /tmp that holds the
// runtime dir).
func TestKeptPathsDoNotUncoverSockets(t *testing.T) {
	st := requireLandlock(t)
	if !st.Sockets() {
		t.Skipf("sockets cannot be hidden here: %s", st.NamespaceErr)
	}
	listen := func(path string) {
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
	}
	sockDir, err := os.MkdirTemp("/tmp", "cm-sandbox-sock-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	tmpSock := filepath.Join(sockDir, "agent.sock")
	listen(tmpSock)
	home, err := os.MkdirTemp("/tmp", "cm-sandbox-home-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	runtimeDir, work := filepath.Join(home, "run"), filepath.Join(home, "work")
	for _, d := range []string{runtimeDir, work} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	runSock := filepath.Join(runtimeDir, "bus")
	listen(runSock)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Landlock: true, Writable: []string{work}, HideDirs: []string{runtimeDir}}
	for _, tc := range []struct{ name, path, sock string }{
		{"a PATH entry /tmp", "/tmp:" + os.Getenv("PATH"), tmpSock},
		{"a PATH entry that is a hidden dir", runtimeDir + ":" + os.Getenv("PATH"), runSock},
		{"a HOME that holds a hidden dir", os.Getenv("PATH"), runSock},
	} {
		env := []string{"PATH=" + tc.path, "HOME=" + home, helperEnv + "=connect", "GORACE=atexit_sleep_ms=0"}
		res := run(t, p, work, env, nil, exe, tc.sock)
		if strings.Contains(res.out, "connected") || res.state.ExitCode() != 1 {
			t.Errorf("%s: the sandboxed program reached %s: %s %s", tc.name, tc.sock, res.out, res.report)
		}
	}
	// What the step needs stays: its working directory, inside the
	// kept HOME.
	res := run(t, p, work, []string{"PATH=/tmp:/usr/bin:/bin", "HOME=" + home}, nil, "/bin/sh", "-c", "pwd > out && cat out")
	if res.out != work+"\n" {
		t.Errorf("the step in %s saw: %q %s", work, res.out, res.report)
	}
}

func TestLayersLetTheInnermostDecide(t *testing.T) {
	hidden := []string{"/run", "/run/user/0", "/tmp", "/tmp/h/tmp"}
	own := []string{"/tmp/h/repo", "/tmp/h/repo/.git", "/run/user/0/repo"}
	others := []string{"/tmp", "/tmp/h", "/run/user", "/usr/bin", "/tmp/h/tmp/bin"}
	var got []string
	for _, l := range layers(hidden, own, others) {
		if l.keep {
			got = append(got, "+"+l.path)
		} else {
			got = append(got, "-"+l.path)
		}
	}
	want := "-/run +/run/user -/run/user/0 +/run/user/0/repo -/tmp +/tmp/h -/tmp/h/tmp +/tmp/h/tmp/bin"
	if strings.Join(got, " ") != want {
		t.Errorf("layers = %q, want %q", strings.Join(got, " "), want)
	}
}

// An abstract Unix socket (no file: no mount hides it) outside the
// sandbox is refused from Landlock ABI 6: D-Bus, X11 and others listen on
// one.
func TestAbstractSocketsOutsideAreRefused(t *testing.T) {
	st := requireLandlock(t)
	if st.ABI < 6 {
		t.Skipf("Landlock ABI %d does not scope abstract Unix sockets", st.ABI)
	}
	name := fmt.Sprintf("@cm-sandbox-test-%d", os.Getpid())
	ln, err := net.Listen("unix", name)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	work := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := append(baseEnv(work), helperEnv+"=connect", "GORACE=atexit_sleep_ms=0")
	if res := run(t, Policy{}, work, env, nil, exe, name); !strings.Contains(res.out, "connected") {
		t.Fatalf("control: %s %s", res.out, res.report)
	}
	res := run(t, Policy{Landlock: true, Writable: []string{work}}, work, env, nil, exe, name)
	if strings.Contains(res.out, "connected") || res.state.ExitCode() != 1 {
		t.Fatalf("the sandboxed program reached %s: %s %s", name, res.out, res.report)
	}
}

// writeSharedMemory is the helper "shm KEY": it attaches the System V
// shared memory segment of KEY and writes into it; 0 when it could.
func writeSharedMemory(key string) int {
	k, err := strconv.Atoi(key)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	id, err := unix.SysvShmGet(k, 0, 0)
	if err != nil {
		fmt.Println("shmget:", err)
		return 1
	}
	mem, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		fmt.Println("shmat:", err)
		return 1
	}
	copy(mem, "PWNED")
	_ = unix.SysvShmDetach(mem)
	fmt.Println("written")
	return 0
}

// The same in a user namespace, the way an unprivileged user gets it.
func TestSharedMemoryOutsideIsOutOfReachInAUserNamespace(t *testing.T) {
	requireLandlock(t)
	if err := tryNamespace(nsUser); err != nil {
		t.Skipf("no user namespace here: %v", err)
	}
	forceNS = nsUser
	defer func() { forceNS = nsNone }()
	TestSharedMemoryOutsideIsOutOfReach(t)
}

// A sandboxed step has System V IPC of its own (an IPC namespace): it
// cannot attach the shared memory of the user's processes (a database's
// buffers, an X client's images) and write into it, which Landlock does
// not govern.
func TestSharedMemoryOutsideIsOutOfReach(t *testing.T) {
	st := requireLandlock(t)
	if !st.Sockets() || st.ns == nsNone {
		t.Skipf("no namespace for the launcher here: %s", st.NamespaceErr)
	}
	key := 0x636d0000 + os.Getpid()&0xffff
	id, err := unix.SysvShmGet(key, 4096, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	if err != nil {
		t.Skipf("no System V shared memory here: %v", err)
	}
	defer func() { _, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil) }()
	mem, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.SysvShmDetach(mem) }()
	copy(mem, "user")
	work := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := append(baseEnv(work), helperEnv+"=shm", "GORACE=atexit_sleep_ms=0")
	res := run(t, Policy{Landlock: true, Writable: []string{work}}, work, env, nil, exe, strconv.Itoa(key))
	if strings.Contains(res.out, "written") || string(mem[:5]) != "user\x00" {
		t.Fatalf("the sandboxed program wrote the user's shared memory (%q): %s %s", mem[:5], res.out, res.report)
	}
	// Unsandboxed (sandbox: off) it can: the test's own control.
	if res := run(t, Policy{}, work, env, nil, exe, strconv.Itoa(key)); !strings.Contains(res.out, "written") {
		t.Fatalf("control: %s %s", res.out, res.report)
	}
}

func TestCommandRefusesABinaryThatIsNoLauncher(t *testing.T) {
	ready.Store(false)
	defer ready.Store(true)
	if _, err := Command(Policy{}, "/bin/true", "true", nil); !errors.Is(err, ErrNotLauncher) {
		t.Errorf("err = %v, want ErrNotLauncher", err)
	}
}

func TestOutermostAndWithin(t *testing.T) {
	got := outermost([]string{"/tmp/a/b", "/run", "/tmp/a", "/tmp/ab", "/run/user/0", "/tmp/a"})
	want := []string{"/run", "/tmp/a", "/tmp/ab"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("outermost = %q, want %q", got, want)
	}
	if within("/tmpx", "/tmp") || !within("/tmp/x", "/tmp") || !within("/tmp", "/tmp") {
		t.Error("within is wrong")
	}
}

func TestPolicyRoundTrips(t *testing.T) {
	p := Policy{Landlock: true, Writable: []string{"/a", "/b c"}, Sockets: []string{"/s"}, Grace: time.Second}
	enc, err := p.encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodePolicy(enc)
	if err != nil || fmt.Sprint(back) != fmt.Sprint(p) {
		t.Errorf("decode(encode(p)) = %+v, %v", back, err)
	}
	if _, err := decodePolicy("{"); err == nil {
		t.Error("a broken policy decoded")
	}
}

// processesRunning lists the live processes whose command line is the
// given one (fields separated by spaces).
func processesRunning(cmdline string) []int {
	want := strings.ReplaceAll(cmdline, " ", "\x00") + "\x00"
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || string(data) != want {
			continue
		}
		if _, zombie, ok := readStat(filepath.Join("/proc", e.Name(), "stat")); ok && !zombie {
			out = append(out, pid)
		}
	}
	return out
}

func TestUserSocketsFindsTheUsersSockets(t *testing.T) {
	dirs, socks := UserSockets([]string{
		"HOME=/home/u", "XDG_RUNTIME_DIR=/run/user/1000", "TMPDIR=relative", "SSH_AUTH_SOCK=/tmp/ssh-x/agent.1",
		"DOCKER_HOST=unix:///var/run/docker.sock", "PODMAN_HOST=tcp://h:1",
		"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus,guid=1;unix:abstract=/x",
	})
	if strings.Join(dirs, " ") != "/run/user/1000" {
		t.Errorf("dirs = %q", dirs)
	}
	want := "/tmp/ssh-x/agent.1 /var/run/docker.sock /run/user/1000/bus " +
		"/home/u/.git-credential-cache/socket /home/u/.cache/git/credential/socket /home/u/.docker/run/docker.sock " +
		"/home/u/.gnupg/S.gpg-agent /home/u/.gnupg/S.gpg-agent.extra /home/u/.gnupg/S.gpg-agent.browser " +
		"/home/u/.gnupg/S.gpg-agent.ssh /home/u/.gnupg/S.scdaemon"
	if strings.Join(socks, " ") != want {
		t.Errorf("sockets = %q, want %q", socks, want)
	}
	// GnuPG's home where GNUPGHOME says; the agent where GPG_AGENT_INFO
	// says; git credential-cache's daemon in XDG_CACHE_HOME too.
	_, socks = UserSockets([]string{"HOME=/home/u", "GNUPGHOME=/keys", "GPG_AGENT_INFO=/tmp/gpg-x/S.gpg-agent:42:1",
		"XDG_CACHE_HOME=/cache"})
	want = "/cache/git/credential/socket /home/u/.git-credential-cache/socket /home/u/.cache/git/credential/socket " +
		"/home/u/.docker/run/docker.sock /keys/S.gpg-agent /keys/S.gpg-agent.extra /keys/S.gpg-agent.browser " +
		"/keys/S.gpg-agent.ssh /keys/S.scdaemon /tmp/gpg-x/S.gpg-agent"
	if strings.Join(socks, " ") != want {
		t.Errorf("sockets = %q, want %q", socks, want)
	}
	// tmux's: the server codemachine runs under, and those TMUX_TMPDIR
	// moved out of /tmp (into TMUX_TMPDIR/tmux-UID).
	tmux := t.TempDir()
	server := filepath.Join(tmux, "tmux-1000", "default")
	if err := os.Mkdir(filepath.Dir(server), 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, socks = UserSockets([]string{"TMUX=/home/u/.tmux/work,4242,0", "TMUX_TMPDIR=" + tmux})
	if want := "/home/u/.tmux/work " + server; strings.Join(socks, " ") != want {
		t.Errorf("sockets = %q, want %q", socks, want)
	}
	if !SocketVar("SSH_AUTH_SOCK") || !SocketVar("XDG_RUNTIME_DIR") || SocketVar("PATH") {
		t.Error("SocketVar is wrong")
	}
}

// The sockets ssh's ControlMaster keeps in ~/.ssh, or in a directory of
// it, are found; other files there, and deeper sockets, are not.
func TestUserSocketsFindsSSHControlSockets(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh", "sockets", "deeper"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range []string{".ssh/cm-u@h:22", ".ssh/sockets/0123abcd", ".ssh/sockets/deeper/x"} {
		p = filepath.Join(home, p)
		ln, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if !strings.Contains(p, "deeper") {
			want = append(want, p)
		}
	}
	_, socks := UserSockets([]string{"HOME=" + home})
	var got []string
	for _, s := range socks {
		if strings.HasPrefix(s, filepath.Join(home, ".ssh")) {
			got = append(got, s)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ssh sockets = %q, want %q", got, want)
	}
}

// ~/.ssh/config points ssh at sockets outside ~/.ssh: an IdentityAgent
// (1Password's), ControlPath sockets (in the directory of one with %
// tokens). They are covered; a variable and a directory with tokens are
// not taken.
func TestUserSocketsFindsSSHConfigSockets(t *testing.T) {
	home := t.TempDir()
	cache := filepath.Join(home, ".cache", "ssh")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(cache, "0123abcd")
	ln, err := net.Listen("unix", shared)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	config := "Host *\n  IdentityAgent \"~/.1password/agent.sock\"\n  ControlPath ~/.cache/ssh/%C\n" +
		"Host other\n  IdentityAgent $SSH_AUTH_SOCK\n  ControlPath=/srv/%h/%C\n\tIdentityAgent\t/opt/agent.sock\n"
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	_, socks := UserSockets([]string{"HOME=" + home})
	for _, want := range []string{filepath.Join(home, ".1password", "agent.sock"), shared, "/opt/agent.sock"} {
		if !slices.Contains(socks, want) {
			t.Errorf("sockets = %q, want %s among them", socks, want)
		}
	}
	for _, s := range socks {
		if strings.Contains(s, "$") || strings.Contains(s, "%") || strings.HasPrefix(s, "/srv") {
			t.Errorf("sockets = %q: %s taken", socks, s)
		}
	}
}

// Docker Desktop for Linux listens in ~/.docker/desktop, Colima and
// others where the Docker CLI's contexts say: a step that reached one
// could start a privileged container. They are covered, and a sandboxed
// program cannot connect to them.
func TestUserSocketsFindsDockerEngines(t *testing.T) {
	home := t.TempDir()
	desktop := filepath.Join(home, ".docker", "desktop", "docker.sock")
	colima := filepath.Join(home, ".colima", "default", "docker.sock")
	for _, p := range []string{desktop, colima} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
	}
	meta := filepath.Join(home, ".docker", "contexts", "meta", "0123abcd", "meta.json")
	if err := os.MkdirAll(filepath.Dir(meta), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := `{"Name":"colima","Metadata":{},"Endpoints":{"docker":{"Host":"unix://` + colima + `","SkipTLSVerify":false}}}`
	if err := os.WriteFile(meta, []byte(ctx), 0o600); err != nil {
		t.Fatal(err)
	}
	_, socks := UserSockets([]string{"HOME=" + home})
	for _, want := range []string{desktop, colima} {
		if !slices.Contains(socks, want) {
			t.Errorf("sockets = %q, want %s among them", socks, want)
		}
	}
	st := requireLandlock(t)
	if !st.Sockets() {
		t.Skipf("sockets cannot be hidden here: %s", st.NamespaceErr)
	}
	work := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := append(baseEnv(home), helperEnv+"=connect", "GORACE=atexit_sleep_ms=0")
	for _, sock := range []string{desktop, colima} {
		res := run(t, Policy{Landlock: true, Writable: []string{work}, Sockets: socks}, work, env, nil, exe, sock)
		if strings.Contains(res.out, "connected") {
			t.Errorf("the sandboxed program reached %s: %s %s", sock, res.out, res.report)
		}
	}
}

// A launcher started without a namespace of its own (by hand, say)
// mounts nothing, whatever namespace its policy claims codemachine has.
func TestNoMountOutsideANamespaceOfItsOwn(t *testing.T) {
	dir := t.TempDir()
	for _, outer := range []string{"", "mnt:[1]", mountNamespace()} {
		enc, err := Policy{Probe: true, OuterNS: outer}.encode()
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("/proc/self/exe", Arg, enc).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "namespace") {
			t.Errorf("outer %q: the probe ran outside a namespace of its own: %v %s", outer, err, out)
		}
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("/tmp changed under the test: %v", err)
	}
}
