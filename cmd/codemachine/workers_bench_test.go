package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
)

// The workers benchmark's plan: no-op tasks of simulated agent time.
const (
	workersBenchTasks = 8
	workersBenchSleep = "2" // seconds of simulated agent time per task
)

// workersOneWall is the 1-worker wall time of this run: the baseline of
// the speed-up of 2 and 4 workers (the sub-benchmarks run in order).
var workersOneWall time.Duration

// BenchmarkWorkers measures `codemachine worker` (issue 14): a plan of
// workersBenchTasks no-op tasks of 2 s simulated agent time each, shared
// by 1, 2 and 4 workers in their own clones of a bare remote served over
// smart HTTP (git http-backend), each `worker --once` with the default
// lease, as a user runs them. Every run checks that each task landed
// exactly once, in plan order, and that nothing is left on the remote.
//
// Metrics of workers=N: s/plan (wall time from the workers' start to the
// last one's exit), speedup (the 1-worker wall time of the same run over
// this one's), trips/task (git commands that reached the remote, per
// task) and, by kind, fetch/task, claim/task, renew/task, deliver/task,
// land/task (the integrator's landing pushes), role/task (the
// integrator's claim), http-req/task (HTTP requests the server answered).
//
// WORKERS_BENCH_TASKS=N makes the plan N tasks long (more rounds per
// worker: the start-up and the last landing weigh less). With
// WORKERS_BENCH_LOG=DIR, each worker's output, every line stamped
// with the seconds since the workers started, is written to
// DIR/wI-of-N.log: where the wall time goes.
//
// claim-latency: two idle workers (no --once); a commit that adds a task
// is pushed, and the time from the push's return to a worker printing the
// task's start is claim-ms/op.
func BenchmarkWorkers(b *testing.B) {
	bin := buildWatchBinary(b)
	tasks := workersBenchTasks
	if v := os.Getenv("WORKERS_BENCH_TASKS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("WORKERS_BENCH_TASKS=%q: a number of tasks, at least 1", v)
		}
		tasks = n
	}
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			var wall time.Duration
			trips := map[string]int64{}
			var reqs int64
			for range b.N {
				f := newFleet(b, bin, tasks)
				wall += f.run(b, n, tasks, trips)
				reqs += f.http.Requests()
			}
			avg := wall / time.Duration(b.N)
			b.ReportMetric(avg.Seconds(), "s/plan")
			if n == 1 {
				workersOneWall = avg
			}
			if workersOneWall > 0 {
				b.ReportMetric(workersOneWall.Seconds()/avg.Seconds(), "speedup")
			}
			per := float64(b.N * tasks)
			var total int64
			for kind, v := range trips {
				total += v
				b.ReportMetric(float64(v)/per, kind+"/task")
			}
			b.ReportMetric(float64(total)/per, "trips/task")
			b.ReportMetric(float64(reqs)/per, "http-req/task")
			b.ReportMetric(0, "ns/op")
		})
	}
	b.Run("claim-latency", func(b *testing.B) { benchClaimLatency(b, bin) })
}

// fleet is one benchmark run's remote, seed clone and environment.
type fleet struct {
	dir, seed string
	env       []string
	http      *testenv.HTTPGit
	url       string
}

// newFleet makes a bare remote served over HTTP holding a plan of tasks
// no-op tasks, and the seed clone that pushed it.
func newFleet(b *testing.B, bin string, tasks int) *fleet {
	b.Helper()
	dir := b.TempDir()
	f := &fleet{dir: dir, seed: filepath.Join(dir, "seed")}
	f.env = append(testenv.GitEnv(filepath.Join(dir, "home")), "NO_COLOR=1", "TZ=UTC",
		"PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, d := range []string{"home", "served", "seed/.codemachine"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	f.git(b, dir, "init", "-q", "--bare", "-b", "main", "served/remote.git")
	f.http = testenv.ServeHTTPGit(b, filepath.Join(dir, "served"))
	f.url = f.http.URL("remote.git")
	wf := "version: 1\nname: bench\nsteps:\n  - id: build\n    run: sleep " + workersBenchSleep +
		"; mkdir -p out; echo \"$CODEMACHINE_TASK_ID\" > \"out/$CODEMACHINE_TASK_ID.txt\"\n    foreach: .codemachine/plan.md\n"
	var plan strings.Builder
	plan.WriteString("\n")
	for i := 1; i <= tasks; i++ {
		fmt.Fprintf(&plan, "- [ ] T%d: task %d\n", i, i)
	}
	f.write(b, ".codemachine/workflow.yaml", wf)
	f.write(b, ".codemachine/plan.md", plan.String())
	f.git(b, f.seed, "init", "-q", "-b", "main")
	f.git(b, f.seed, "add", "-A")
	f.git(b, f.seed, "commit", "-q", "-m", "plan")
	f.git(b, f.seed, "remote", "add", "origin", f.url)
	f.git(b, f.seed, "push", "-q", "-u", "origin", "main")
	return f
}

func (f *fleet) write(b *testing.B, rel, content string) {
	b.Helper()
	if err := os.WriteFile(filepath.Join(f.seed, rel), []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
}

func (f *fleet) git(b *testing.B, dir string, args ...string) string {
	b.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, f.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// clone makes worker i's clone.
func (f *fleet) clone(b *testing.B, i int) string {
	b.Helper()
	c := filepath.Join(f.dir, "c"+strconv.Itoa(i))
	f.git(b, f.dir, "clone", "-q", f.url, c)
	return c
}

// tripsLine is the round-trip count a worker prints when it stops.
var tripsLine = regexp.MustCompile(`round trips to the remote: (\d+) fetches, (\d+) claims, (\d+) renewals, (\d+) deliveries, (\d+) releases, (\d+) integrator role, (\d+) landings`)

// run runs n workers with --once on a plan of tasks until they exit, checks the outcome, adds
// their round trips to trips, and returns the wall time.
func (f *fleet) run(b *testing.B, n, tasks int, trips map[string]int64) time.Duration {
	b.Helper()
	clones := make([]string, n)
	for i := range n {
		clones[i] = f.clone(b, i+1)
	}
	outs := make([]bytes.Buffer, n)
	errs := make([]error, n)
	logDir := os.Getenv("WORKERS_BENCH_LOG")
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("codemachine", "-C", clones[i], "worker", "--once", "--id", "w"+strconv.Itoa(i+1))
			cmd.Env, cmd.Stdout, cmd.Stderr = f.env, &outs[i], &outs[i]
			if logDir != "" {
				tw := &stampWriter{w: &outs[i], start: start}
				cmd.Stdout, cmd.Stderr = tw, tw
			}
			errs[i] = cmd.Run()
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	for i := range n {
		if errs[i] != nil {
			b.Fatalf("worker %d: %v\n%s", i+1, errs[i], outs[i].String())
		}
		m := tripsLine.FindStringSubmatch(outs[i].String())
		if m == nil {
			b.Fatalf("worker %d printed no round trips:\n%s", i+1, outs[i].String())
		}
		for j, kind := range []string{"fetch", "claim", "renew", "deliver", "release", "role", "land"} {
			v, _ := strconv.ParseInt(m[j+1], 10, 64)
			trips[kind] += v
		}
	}
	if logDir != "" {
		for i := range n {
			if err := os.WriteFile(filepath.Join(logDir, fmt.Sprintf("w%d-of-%d.log", i+1, n)), outs[i].Bytes(), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	f.check(b, tasks)
	return wall
}

// check makes sure every one of tasks tasks landed exactly once, in plan
// order, and nothing is left on the remote.
func (f *fleet) check(b *testing.B, tasks int) {
	b.Helper()
	remote := filepath.Join(f.dir, "served", "remote.git")
	var want strings.Builder
	for i := tasks; i >= 1; i-- {
		fmt.Fprintf(&want, "codemachine(build/T%d): task %d\n", i, i)
	}
	want.WriteString("plan\n")
	if got := f.git(b, remote, "log", "--format=%s", "main"); got != want.String() {
		b.Fatalf("the remote's log:\n%s\nwant:\n%s", got, want.String())
	}
	if left := f.git(b, remote, "for-each-ref", "refs/codemachine"); left != "" {
		b.Fatalf("left on the remote:\n%s", left)
	}
}

// benchClaimLatency: two idle workers; each op pushes a commit that adds a
// task and awaits its start in a worker's output, then its landing.
func benchClaimLatency(b *testing.B, bin string) {
	f := newFleet(b, bin, 1)
	lines := make(chan stampedLine, 1024)
	for i := 1; i <= 2; i++ {
		c := f.clone(b, i)
		cmd := exec.Command("codemachine", "-C", c, "worker", "--id", "w"+strconv.Itoa(i))
		cmd.Env = f.env
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- stampedLine{at: time.Now(), text: sc.Text()}
			}
		}()
		b.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			<-done
			_ = cmd.Wait()
		})
	}
	remote := filepath.Join(f.dir, "served", "remote.git")
	awaitLanded := func(id string) {
		for deadline := time.Now().Add(testenv.Scale(2 * time.Minute)); ; time.Sleep(50 * time.Millisecond) {
			if strings.Contains(f.git(b, remote, "log", "-1", "--format=%s", "main"), "codemachine(build/"+id+")") {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s did not land", id)
			}
		}
	}
	awaitLanded("T1")
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := "T" + strconv.Itoa(i+2)
		b.StopTimer()
		f.git(b, f.seed, "pull", "-q", "--ff-only")
		plan, err := os.ReadFile(filepath.Join(f.seed, ".codemachine/plan.md"))
		if err != nil {
			b.Fatal(err)
		}
		f.write(b, ".codemachine/plan.md", string(plan)+"- [ ] "+id+": task "+strconv.Itoa(i+2)+"\n")
		f.git(b, f.seed, "commit", "-q", "-am", "add "+id)
		b.StartTimer()
		f.git(b, f.seed, "push", "-q", "origin", "main")
		pushed := time.Now()
		total += awaitStart(b, lines, id).Sub(pushed)
		b.StopTimer()
		awaitLanded(id)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "claim-ms/op")
}

// awaitStart reads the workers' lines until one says task id started.
func awaitStart(b *testing.B, lines <-chan stampedLine, id string) time.Time {
	b.Helper()
	deadline := time.After(testenv.Scale(2 * time.Minute))
	for {
		select {
		case l := <-lines:
			if strings.Contains(l.text, "▸ build "+id+" ") {
				return l.at
			}
		case <-deadline:
			b.Fatalf("no worker started %s", id)
		}
	}
}

// stampWriter prefixes each line a worker prints with the seconds since
// the workers started (WORKERS_BENCH_LOG).
type stampWriter struct {
	mu    sync.Mutex
	w     *bytes.Buffer
	start time.Time
	mid   bool // the last write ended within a line
}

func (t *stampWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range strings.SplitAfter(string(p), "\n") {
		if l == "" {
			continue
		}
		if !t.mid {
			fmt.Fprintf(t.w, "%6.2f ", time.Since(t.start).Seconds())
		}
		t.w.WriteString(l)
		t.mid = !strings.HasSuffix(l, "\n")
	}
	return len(p), nil
}
