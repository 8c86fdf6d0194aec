package orchestrator

import (
	"context"
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// planBenchSizes are the plan sizes of the 500-task target: the
// overhead per task must stay flat from the smallest to the largest.
var planBenchSizes = []int{50, 100, 200, 500}

// BenchmarkPlanTasks runs a generated plan of n tasks at parallel: 4 with a
// no-op agent (an engine that returns at once), so that all the time is
// codemachine's: picking tasks, preparing worktrees, staging, verifying,
// committing and landing each task as its own commit in plan order.
//
// Metrics, per task: ms/task, the run's wall time; cm-cpu-ms/task and
// git-cpu-ms/task, the CPU time codemachine and its git processes spent;
// git-procs/task, how many git processes a task cost.
// Every run is checked: each task ran once and landed once, in plan order,
// and the final plan has every box ticked (a lost or doubled task fails
// the benchmark, whatever the timing).
func BenchmarkPlanTasks(b *testing.B) {
	for _, n := range planBenchSizes {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) { benchPlanTasks(b, n) })
	}
}

func benchPlanTasks(b *testing.B, n int) {
	var total, self, git time.Duration
	var procs int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := newRepo(b, map[string]string{
			".codemachine/workflow.yaml": taskWorkflow(4),
			planFile:                     genPlan(n, nil),
		})
		realDates(b)
		rt := newRunTracker()
		eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
			rt.begin(req)
			rt.end(req)
			return agents.Result{}, nil
		}}
		o := newTestOrchestrator(b, dir, eng, nil)
		b.StartTimer()
		self0, git0 := cpuTimes(b)
		procs0 := o.Repo().Processes()
		start := time.Now()
		s, err := o.Run(b.Context(), RunOptions{})
		total += time.Since(start)
		procs += o.Repo().Processes() - procs0
		self1, git1 := cpuTimes(b)
		self, git = self+self1-self0, git+git1-git0
		b.StopTimer()
		if err != nil {
			b.Fatalf("run: %v", err)
		}
		checkPlanRun(b, o.Repo(), rt, s, n)
		b.StartTimer()
	}
	perTask := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N*n) }
	b.ReportMetric(perTask(total), "ms/task")
	b.ReportMetric(perTask(self), "cm-cpu-ms/task")
	b.ReportMetric(perTask(git), "git-cpu-ms/task")
	b.ReportMetric(float64(procs)/float64(b.N*n), "git-procs/task")
}

// cpuTimes are the CPU times used so far by this process and by the
// processes it waited for (git): on a loaded machine the wall time per
// task says more about the neighbours than about codemachine, CPU time
// less.
func cpuTimes(b *testing.B) (self, children time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	return self, time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// realDates lets git date commits by the clock, as it does for a user.
// The hermetic environment's fixed dates give every commit the same one,
// and git's history walks (merge-base, merge-tree) cannot stop early among
// commits of equal dates: each landing would walk the whole history, a
// cost that grows with the plan here and that no user has.
func realDates(b *testing.B) {
	for _, k := range []string{"GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"} {
		b.Setenv(k, "")
		if err := os.Unsetenv(k); err != nil {
			b.Fatal(err)
		}
	}
}

// checkPlanRun fails the benchmark unless each of the n tasks ran once
// and landed once, in plan order, with every box ticked at the end.
func checkPlanRun(b *testing.B, repo *gitstate.Repo, rt *runTracker, s *Summary, n int) {
	b.Helper()
	rt.check(b)
	var want []string
	for i := 1; i <= n; i++ {
		want = append(want, genID(i))
		if runs := rt.runsOf(genID(i)); runs != 1 {
			b.Errorf("%s ran %d times", genID(i), runs)
		}
	}
	if len(s.Landed) != n || len(s.Failed) != 0 {
		b.Errorf("landed %d, failed %d; want %d and 0", len(s.Landed), len(s.Failed), n)
	}
	var got []string
	for _, c := range landedTasks(b, repo) {
		got = append(got, taskOf(c))
	}
	if !slices.Equal(got, want) {
		b.Errorf("%d task commits on main, want %d in plan order", len(got), n)
	}
	data, err := repo.ReadFile("HEAD", planFile)
	if err != nil {
		b.Fatal(err)
	}
	plan, err := workflow.ParsePlan(planFile, data)
	if err != nil {
		b.Fatal(err)
	}
	if open := unchecked(plan); len(open) != 0 || len(plan.Tasks) != n {
		b.Errorf("%d of %d boxes open after the run", len(open), len(plan.Tasks))
	}
}
