package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
)

// watchProc is `codemachine watch` running as a process of its own, as a
// user runs it, with its output lines time-stamped as they arrive.
type watchProc struct {
	cmd   *exec.Cmd
	start time.Time
	lines chan stampedLine
	stop  func()
}

type stampedLine struct {
	at   time.Time
	text string
}

// buildWatchBinary builds codemachine once for a benchmark.
func buildWatchBinary(b *testing.B) string {
	b.Helper()
	return buildBenchBinary(b)
}

func startWatch(b *testing.B, bin, dir string, env []string, args ...string) *watchProc {
	b.Helper()
	cmd := exec.Command(bin, append([]string{"watch"}, args...)...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	w := &watchProc{cmd: cmd, lines: make(chan stampedLine, 1024)}
	w.start = time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.lines <- stampedLine{at: time.Now(), text: sc.Text()}
		}
		close(w.lines)
	}()
	var once sync.Once
	w.stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() {
				for range w.lines {
				}
				_ = cmd.Wait()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
	}
	b.Cleanup(w.stop)
	return w
}

// until reads lines until one starts with prefix, and returns it.
func (w *watchProc) until(b *testing.B, prefix string, limit time.Duration) stampedLine {
	b.Helper()
	deadline := time.After(limit)
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				b.Fatalf("watch exited while waiting for %q", prefix)
			}
			if strings.HasPrefix(l.text, prefix) {
				return l
			}
			if strings.HasPrefix(l.text, "codemachine: ") {
				b.Fatalf("watch: %s", l.text)
			}
		case <-deadline:
			b.Fatalf("no line %q after %s", prefix, limit)
		}
	}
}

// BenchmarkWatchLatency measures the watch target: from a commit
// (git commit has returned) to the step's start, as `codemachine watch`
// prints it, on a 1k-file repository with the default quiet window of
// 300 ms. The target is quiet window + 50 ms.
//
// Metrics: latency-ms/op (commit to step start), over-quiet-ms/op (the
// same minus the quiet window: what codemachine adds).
func BenchmarkWatchLatency(b *testing.B) {
	const quiet = 300 * time.Millisecond
	bin := buildWatchBinary(b)
	env := append(testenv.GitEnv(b.TempDir()), "NO_COLOR=1")
	dir := testenv.GenRepo(b, 1000, map[string]string{
		".codemachine/workflow.yaml": `version: 1
steps:
  - id: touch
    run: 'cp in.txt out.txt'
    inputs: [in.txt]
    outputs: [out.txt]
`,
		"in.txt": "0\n",
	})
	w := startWatch(b, bin, dir, env, "--quiet-window", quiet.String())
	// The first pass pays the pooled worktree's one full checkout.
	w.until(b, "1 landed", time.Minute)
	commit := func(i int) time.Time {
		if err := os.WriteFile(filepath.Join(dir, "in.txt"), fmt.Appendf(nil, "%d\n", i+1), 0o644); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("git", "commit", "-q", "-am", fmt.Sprintf("input %d", i))
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git commit: %v\n%s", err, out)
		}
		return time.Now()
	}
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		at := commit(i)
		started := w.until(b, "  ▸ touch", time.Minute)
		total += started.at.Sub(at)
		b.StopTimer()
		w.until(b, "1 landed", time.Minute)
		b.StartTimer()
	}
	b.StopTimer()
	ms := float64(total.Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(ms, "latency-ms/op")
	b.ReportMetric(ms-float64(quiet.Milliseconds()), "over-quiet-ms/op")
}

// BenchmarkWatchIdle measures the idle target: a watcher with
// nothing to do on a generated repository (1k files; 100k with
// CODEMACHINE_BENCH_LARGE=1) in save mode over every source directory,
// the largest watch set: the CPU time the process uses while idle (from
// /proc/PID/stat), its resident memory, and how long it takes from the
// start of the process to watching everything. The idle period is 60 s
// for the large repository, 5 s otherwise (CODEMACHINE_BENCH_IDLE
// overrides it).
//
// Metrics: idle-cpu-ms (over the whole idle period), rss-MB (at its end),
// setup-ms (process start to "watching"), dirs (directories watched).
func BenchmarkWatchIdle(b *testing.B) {
	for _, n := range benchWatchSizes() {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) { benchWatchIdle(b, n) })
	}
}

func benchWatchSizes() []int {
	if os.Getenv("CODEMACHINE_BENCH_LARGE") != "" {
		return []int{1000, 100000}
	}
	return []int{1000}
}

func benchWatchIdle(b *testing.B, n int) {
	idle := 5 * time.Second
	if n >= 100000 {
		idle = time.Minute
	}
	if v := os.Getenv("CODEMACHINE_BENCH_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("CODEMACHINE_BENCH_IDLE: %v", err)
		}
		idle = d
	}
	bin := buildWatchBinary(b)
	env := append(testenv.GitEnv(b.TempDir()), "NO_COLOR=1")
	// Every task is done: nothing is due, the first pass finds nothing to
	// run, and the watcher goes idle at once.
	dir := testenv.GenRepo(b, n, map[string]string{
		".codemachine/workflow.yaml": `version: 1
trigger: save
steps:
  - id: build
    run: 'true'
    foreach: .codemachine/plan.md
    inputs: [src/**]
`,
		".codemachine/plan.md": "# Plan\n- [x] T1: Done already\n",
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := startWatch(b, bin, dir, env)
		ready := w.until(b, "· watching", 5*time.Minute)
		w.until(b, "nothing is due", 5*time.Minute)
		pid := w.cmd.Process.Pid
		cpu0 := procCPU(b, pid)
		time.Sleep(idle)
		cpu := procCPU(b, pid) - cpu0
		rss := procRSS(b, pid)
		b.ReportMetric(float64(cpu.Microseconds())/1000, "idle-cpu-ms")
		b.ReportMetric(100*cpu.Seconds()/idle.Seconds(), "idle-cpu-%")
		b.ReportMetric(float64(rss)/(1<<20), "rss-MB")
		b.ReportMetric(float64(ready.at.Sub(w.start).Microseconds())/1000, "setup-ms")
		// "· watching main (trigger: save; 1012 directories, ...)"
		var dirs int
		if _, rest, ok := strings.Cut(ready.text, "; "); ok {
			dirs, _ = strconv.Atoi(strings.Fields(rest)[0])
		}
		b.ReportMetric(float64(dirs), "dirs")
		w.stop()
	}
}

// procCPU is the user and system CPU time of a process so far.
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	f := bytes.Fields(stat[bytes.LastIndexByte(stat, ')')+1:])
	// After "(comm)": state is field 3, utime 14, stime 15 (1-based in
	// proc(5)); here f[0] is the state.
	utime, _ := strconv.ParseInt(string(f[11]), 10, 64)
	stime, _ := strconv.ParseInt(string(f[12]), 10, 64)
	const ticks = 100 // sysconf(_SC_CLK_TCK) on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

// procRSS is a process's resident set size in bytes.
func procRSS(b *testing.B, pid int) int64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
