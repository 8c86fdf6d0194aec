package orchestrator

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/sandbox"
)

// TestStopOrphansEndsTheStepsDaemons: a run that takes over the lock of a
// killed one stops the step it left running, daemons included. The step
// ignores SIGTERM and started, in a session of its own, a daemon that
// ignores it too: its sandbox launcher (a child subreaper, the group's
// leader) was still in its grace period when the new run came. Killing the
// launcher's group alone handed the daemon over to init, to run on for
// good in the worktree pool.
func TestStopOrphansEndsTheStepsDaemons(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: s\n    run: 'true'\n"})
	o := newTestOrchestrator(t, dir, fakeEngine{}, nil)
	slot := filepath.Join(o.repo.LocalDir(), "worktrees", "slot-0")
	if err := os.MkdirAll(slot, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `setsid sh -c 'trap "" TERM; echo $$ > daemon.pid; while :; do sleep 0.05; done' </dev/null >/dev/null 2>&1 &
trap "" TERM
while :; do sleep 0.05; done`
	l, err := sandbox.Command(sandbox.Policy{}, "/bin/sh", "sh", []string{"-c", script})
	if err != nil {
		t.Fatal(err)
	}
	_, report, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer report.Close()
	cmd := &exec.Cmd{Path: l.Path, Args: l.Args, Dir: slot, ExtraFiles: []*os.File{report},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	launcher := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-launcher, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	daemon := 0
	for deadline := time.Now().Add(10 * time.Second); daemon == 0; {
		b, _ := os.ReadFile(filepath.Join(slot, "daemon.pid"))
		daemon, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if daemon == 0 && time.Now().After(deadline) {
			t.Fatal("the step's daemon never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { _ = syscall.Kill(daemon, syscall.SIGKILL) })

	const holder = 1<<30 - 1 // the killed run: only recorded
	if err := o.repo.WriteLocalVolatile(runningFile, Running{PID: holder, Run: "r", Units: map[string]string{"s": "now"},
		Groups: map[string]int{"s": launcher}}); err != nil {
		t.Fatal(err)
	}
	if n := o.stopOrphans(holder); n != 1 {
		t.Fatalf("stopOrphans stopped %d groups, want 1", n)
	}
	for deadline := time.Now().Add(3 * time.Second); alive(daemon); {
		if time.Now().After(deadline) {
			t.Fatalf("the step's daemon (pid %d) still runs after its group was stopped", daemon)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid is a process that has not exited (a zombie
// has).
func alive(pid int) bool {
	for _, p := range agents.Processes() {
		if p.PID == pid {
			return !p.Zombie
		}
	}
	return false
}
