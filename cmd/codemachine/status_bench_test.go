package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
)

// BenchmarkStatus100 measures the `codemachine status` target on a
// 100-step workflow (< 50 ms), as a whole process like a user runs it, on a
// repository where every step has landed (100 step commits to read back).
// The baseline, measured in the same run, is `git log -1`: the cost of
// starting a process that opens the repository.
//
// Metrics: status-ms/op, git-ms/op, x-git.
func BenchmarkStatus100(b *testing.B) {
	home := b.TempDir()
	env := append(testenv.GitEnv(home), "NO_COLOR=1")
	bin := buildBenchBinary(b)
	var wf strings.Builder
	wf.WriteString("version: 1\nsteps:\n")
	files := map[string]string{}
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&wf, "  - id: s%03d\n    run: 'echo %d > out/s%03d.txt'\n    inputs: [src/d%04d/**]\n    outputs: [out/s%03d.txt]\n", i, i, i, i, i)
		if i > 0 {
			fmt.Fprintf(&wf, "    needs: [s%03d]\n", i-1)
		}
		files[fmt.Sprintf("out/s%03d.txt", i)] = "\n"
	}
	files[".codemachine/workflow.yaml"] = wf.String()
	dir := testenv.GenRepo(b, 10000, files)
	run := func(name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return time.Since(start)
	}
	run(bin, "run")
	if out, err := exec.Command("git", "-C", dir, "log", "--oneline").Output(); err != nil || strings.Count(string(out), "\n") < 101 {
		b.Fatalf("expected 100 step commits: %v", err)
	}
	_ = os.Setenv("NO_COLOR", "1")
	var cm, git time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cm += run(bin, "status")
		git += run("git", "log", "-1")
	}
	b.StopTimer()
	cmMS := float64(cm.Microseconds()) / 1000 / float64(b.N)
	gitMS := float64(git.Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(cmMS, "status-ms/op")
	b.ReportMetric(gitMS, "git-ms/op")
	b.ReportMetric(cmMS/gitMS, "x-git")
}
