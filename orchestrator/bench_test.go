package orchestrator

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/internal/testenv"
)

// timedEngine measures how long the wrapped engine runs, so that a
// benchmark can subtract the agent's own time from a run.
type timedEngine struct {
	agents.Engine
	ns *atomic.Int64
}

func (t timedEngine) Run(ctx context.Context, req agents.Request) (agents.Result, error) {
	start := time.Now()
	res, err := t.Engine.Run(ctx, req)
	t.ns.Add(int64(time.Since(start)))
	return res, err
}

// benchSizes are the repository sizes of docs/benchmarks.md; the 100k-file one takes
// minutes to set up and runs with CODEMACHINE_BENCH_LARGE=1 (make bench).
func benchSizes() []int {
	if os.Getenv("CODEMACHINE_BENCH_LARGE") != "" {
		return []int{1000, 100000}
	}
	return []int{1000}
}

// BenchmarkStepOverhead measures the first two targets: everything
// codemachine does around a step (load the workflow at the tip, fingerprint,
// move the pooled worktree, stage, verify, commit with state.yaml, land
// bringing the working tree forward), minus the time of the step's command
// itself, against a person committing a change of the same size with
// `git add -A && git commit` in the same repository in the same run. The
// step is a run: step that rewrites one file; before each step the person
// commits an input change on main, which is what makes the step due.
//
// Metrics: cm-ms/op (overhead), git-ms/op (baseline), x-git (their ratio;
// target <= 1.5), git-procs/op (git processes per landed step).
//
// Two cases: "user-commits", where a person commits an input change on main
// before each step (so each step first moves its pooled worktree to the new
// tip), and "consecutive", steps following each other (run --force), the
// hot path of a run once its first step has paid the worktree checkout.
func BenchmarkStepOverhead(b *testing.B) {
	for _, n := range benchSizes() {
		for _, mode := range []string{"consecutive", "user-commits"} {
			b.Run(fmt.Sprintf("files=%d/%s", n, mode), func(b *testing.B) { benchStepOverhead(b, n, mode == "user-commits") })
		}
	}
}

func benchStepOverhead(b *testing.B, n int, userCommits bool) {
	home := b.TempDir()
	for _, kv := range testenv.GitEnv(home) {
		k, v, _ := strings.Cut(kv, "=")
		b.Setenv(k, v)
	}
	dir := testenv.GenRepo(b, n, map[string]string{
		".codemachine/workflow.yaml": `version: 1
steps:
  - id: touch
    run: 'echo "$CODEMACHINE_RUN" > out/stamp.txt'
    inputs: [in.txt]
    outputs: [out/stamp.txt]
`,
		"in.txt":        "0\n",
		"out/stamp.txt": "\n",
	})
	manual := filepath.Join(b.TempDir(), "manual")
	testenv.Git(b, dir, "worktree", "add", "-q", "-b", "manual", manual)

	var engineNS atomic.Int64
	var gitProcs int64 // git processes started by the steps timed
	o, err := New(Config{Dir: dir, Environ: os.Environ(), NewEngine: func(name string) (agents.Engine, error) {
		e, err := agents.New(name)
		return timedEngine{Engine: e, ns: &engineNS}, err
	}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	step := func(i int) time.Duration {
		opts := RunOptions{Steps: []string{"touch"}, Force: true}
		if userCommits || i < 0 {
			if err := os.WriteFile(filepath.Join(dir, "in.txt"), fmt.Appendf(nil, "%d\n", i), 0o644); err != nil {
				b.Fatal(err)
			}
			testenv.Git(b, dir, "commit", "-q", "-am", fmt.Sprintf("input %d", i))
			opts = RunOptions{}
		}
		engineNS.Store(0)
		procs := o.Repo().Processes()
		start := time.Now()
		s, err := o.Run(ctx, opts)
		elapsed := time.Since(start)
		gitProcs += o.Repo().Processes() - procs
		if err != nil || len(s.Landed) != 1 {
			b.Fatalf("run %d: landed %v, err %v", i, s, err)
		}
		return elapsed - time.Duration(engineNS.Load())
	}
	manualCommit := func(i int) time.Duration {
		if err := os.WriteFile(filepath.Join(manual, "out", "stamp.txt"), fmt.Appendf(nil, "manual %d\n", i), 0o644); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", fmt.Sprintf("manual %d", i)}} {
			cmd := exec.Command("git", args...)
			cmd.Dir = manual
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
		return time.Since(start)
	}
	// The first step pays the one full checkout of the pooled worktree.
	step(-1)
	manualCommit(-1)
	gitProcs = 0
	var cm, git time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cm += step(i)
		git += manualCommit(i)
	}
	b.StopTimer()
	cmMS := float64(cm.Microseconds()) / 1000 / float64(b.N)
	gitMS := float64(git.Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(cmMS, "cm-ms/op")
	b.ReportMetric(gitMS, "git-ms/op")
	b.ReportMetric(cmMS/gitMS, "x-git")
	b.ReportMetric(float64(gitProcs)/float64(b.N), "git-procs/op")
}
