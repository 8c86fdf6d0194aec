package orchestrator

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/internal/testenv"
)

// jitter hands out random short sleeps from a logged seed, so that a
// failing interleaving can be told apart from the next run's.
type jitter struct {
	mu  sync.Mutex
	rnd *rand.Rand
}

func newJitter(t *testing.T) *jitter {
	seed := uint64(time.Now().UnixNano())
	t.Logf("jitter seed %d", seed)
	return &jitter{rnd: rand.New(rand.NewPCG(seed, seed))}
}

func (j *jitter) sleep(max time.Duration) {
	j.mu.Lock()
	d := time.Duration(j.rnd.Int64N(int64(max)))
	j.mu.Unlock()
	time.Sleep(d)
}

func (j *jitter) chance(p float64) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.rnd.Float64() < p
}

// eventLog collects a run's events in the order they were emitted.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

// tasks lists the tasks of the events of kind k, in order.
func (l *eventLog) tasks(k EventKind) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for _, e := range l.events {
		if e.Kind == k {
			ids = append(ids, e.Task)
		}
	}
	return ids
}

// TestParallelTasksLandOnceInPlanOrder runs 40 tasks four at a time with
// engines that take random short times: every task runs and lands exactly
// once, in plan order, each commit holding its own file and exactly its
// own box, and never more than four run at once (but four do).
func TestParallelTasksLandOnceInPlanOrder(t *testing.T) {
	const n, parallel = 40, 4
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": taskWorkflow(parallel),
		planFile:                     genPlan(n, nil),
	})
	rt := newRunTracker()
	jit := newJitter(t)
	full := make(chan struct{})
	var fullOnce sync.Once
	eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		if rt.begin(req) == parallel {
			fullOnce.Do(func() { close(full) })
		}
		defer rt.end(req)
		if req.Task <= genID(parallel) {
			// The first tasks wait for each other: they can only go on
			// if the scheduler really runs four at once.
			select {
			case <-full:
			case <-time.After(testenv.Patience()):
				return agents.Result{}, &agents.RunError{Class: agents.Fatal, Engine: "shell",
					Msg: "the first tasks never ran four at once"}
			}
		}
		jit.sleep(15 * time.Millisecond)
		return agents.Result{}, writeOut(req, ".txt")
	}}
	var log eventLog
	o := newTestOrchestrator(t, dir, eng, log.add)
	s, err := o.Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	rt.check(t)
	if rt.max != parallel {
		t.Errorf("at most %d tasks ran at once, want %d", rt.max, parallel)
	}
	var want []string
	for i := 1; i <= n; i++ {
		want = append(want, genID(i))
		if runs := rt.runsOf(genID(i)); runs != 1 {
			t.Errorf("%s ran %d times", genID(i), runs)
		}
	}
	if len(s.Landed) != n || len(s.Failed) != 0 {
		t.Errorf("landed %d, failed %d; want %d and 0", len(s.Landed), len(s.Failed), n)
	}
	if got := log.tasks(StepLanded); !slices.Equal(got, want) {
		t.Errorf("landing events in order %v, want plan order", got)
	}
	var got []string
	for _, c := range landedTasks(t, o.Repo()) {
		got = append(got, taskOf(c))
		checkTaskCommit(t, o.Repo(), c)
	}
	if !slices.Equal(got, want) {
		t.Errorf("task commits on main, oldest first: %v; want plan order", got)
	}
	done := map[string]bool{}
	for _, id := range want {
		done[id] = true
	}
	checkFinal(t, dir, o.Repo(), want, done)

	// Nothing runs twice: a second run finds nothing due.
	s, err = o.Run(t.Context(), RunOptions{})
	if err != nil || len(s.Landed)+len(s.Failed) != 0 {
		t.Errorf("second run: %+v, %v; want nothing", s, err)
	}
}

// TestParallelTaskFailures runs 40 tasks with dependencies, four at a time,
// where tasks fail at random: each failed task's partial work is on its
// failed ref and nothing of it landed, the tasks that depend on a failed
// one (directly or not) never ran, and every other task landed exactly
// once, after its dependencies, independent tasks in plan order.
func TestParallelTaskFailures(t *testing.T) {
	const n = 40
	deps := func(i int) []int {
		var ds []int
		if i%5 == 0 {
			ds = append(ds, i-1)
		}
		if i%8 == 0 {
			ds = append(ds, i-3)
		}
		return ds
	}
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": taskWorkflow(4),
		planFile:                     genPlan(n, deps),
	})
	jit := newJitter(t)
	// T004 always fails, so that at least T005 is blocked by a failure.
	failing := map[string]bool{genID(4): true}
	for i := 1; i <= n; i++ {
		if jit.chance(0.2) {
			failing[genID(i)] = true
		}
	}
	blocked := map[string]bool{}
	for i := 1; i <= n; i++ {
		for _, d := range deps(i) {
			if failing[genID(d)] || blocked[genID(d)] {
				blocked[genID(i)] = true
			}
		}
	}
	rt := newRunTracker()
	eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		rt.begin(req)
		defer rt.end(req)
		jit.sleep(10 * time.Millisecond)
		if failing[req.Task] {
			if err := writeOut(req, ".partial"); err != nil {
				return agents.Result{}, err
			}
			return agents.Result{ExitCode: 1}, &agents.RunError{Class: agents.Fatal, Engine: "shell",
				Msg: "command exited with status 1: " + req.Task + " fails on purpose", ExitCode: 1}
		}
		return agents.Result{}, writeOut(req, ".txt")
	}}
	var log eventLog
	o := newTestOrchestrator(t, dir, eng, log.add)
	s, err := o.Run(t.Context(), RunOptions{})
	var sf *StepFailedError
	if !errors.As(err, &sf) {
		t.Fatalf("run: %v; want a StepFailedError", err)
	}
	rt.check(t)

	var all, wantFailed, free []string
	landedWant := map[string]bool{}
	for i := 1; i <= n; i++ {
		id := genID(i)
		all = append(all, id)
		switch {
		case blocked[id]:
			if runs := rt.runsOf(id); runs != 0 {
				t.Errorf("%s depends on a failed task but ran %d times", id, runs)
			}
		case failing[id]:
			wantFailed = append(wantFailed, "build/"+id)
			if runs := rt.runsOf(id); runs != 1 {
				t.Errorf("%s ran %d times, want once", id, runs)
			}
		default:
			landedWant[id] = true
			if len(deps(i)) == 0 {
				free = append(free, id)
			}
			if runs := rt.runsOf(id); runs != 1 {
				t.Errorf("%s ran %d times, want once", id, runs)
			}
		}
	}
	gotFailed := slices.Clone(sf.Failed)
	sort.Strings(gotFailed)
	if !slices.Equal(gotFailed, wantFailed) {
		t.Errorf("failed %v, want %v", gotFailed, wantFailed)
	}
	if len(s.Landed) != len(landedWant) {
		t.Errorf("landed %d, want %d", len(s.Landed), len(landedWant))
	}

	// The failed tasks' work is on their refs, their boxes open there.
	for _, key := range wantFailed {
		id := key[len("build/"):]
		ref := "refs/codemachine/failed/" + key
		if _, err := o.Repo().ReadFile(ref, "out/"+id+".partial"); err != nil {
			t.Errorf("%s: the partial work is not on %s: %v", id, ref, err)
		}
		if _, err := o.Repo().ReadFile("HEAD", "out/"+id+".partial"); err == nil {
			t.Errorf("%s: its partial work landed", id)
		}
	}

	// Landed: each once, after its dependencies; tasks without
	// dependencies (runnable from the start) in plan order.
	pos := map[string]int{}
	var order []string
	for k, c := range landedTasks(t, o.Repo()) {
		id := taskOf(c)
		if _, dup := pos[id]; dup {
			t.Errorf("%s landed twice", id)
		}
		pos[id] = k
		order = append(order, id)
		checkTaskCommit(t, o.Repo(), c)
	}
	for i := 1; i <= n; i++ {
		id := genID(i)
		p, ok := pos[id]
		if ok != landedWant[id] {
			t.Errorf("%s landed %v, want %v", id, ok, landedWant[id])
			continue
		}
		for _, d := range deps(i) {
			if ok && pos[genID(d)] > p {
				t.Errorf("%s landed before its dependency %s", id, genID(d))
			}
		}
	}
	var freeOrder []string
	for _, id := range order {
		if len(deps(idNum(id))) == 0 {
			freeOrder = append(freeOrder, id)
		}
	}
	if got := log.tasks(StepLanded); !slices.Equal(got, order) {
		t.Errorf("landing events in order %v, commits in order %v", got, order)
	}
	if !slices.Equal(freeOrder, free) {
		t.Errorf("tasks without dependencies landed in order %v, want plan order %v", freeOrder, free)
	}
	checkFinal(t, dir, o.Repo(), all, landedWant)

	// status tells the three kinds apart.
	report, err := o.Status(Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	st := report.Steps[0]
	if st.State != StateFailed || st.TasksDone != len(landedWant) || st.TasksTotal != n {
		t.Errorf("step status %s, %d of %d done; want failed, %d of %d", st.State, st.TasksDone, st.TasksTotal, len(landedWant), n)
	}
	for _, ts := range st.Tasks {
		want := StateDone
		switch {
		case blocked[ts.ID]:
			want = StateBlocked
		case failing[ts.ID]:
			want = StateFailed
		}
		if ts.State != want {
			t.Errorf("status of %s: %s (%s), want %s", ts.ID, ts.State, ts.Reason, want)
		}
	}
}

// idNum is the task number of a generated id.
func idNum(id string) int {
	n := 0
	for _, c := range id[1:] {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestRunningTaskDeletedFromPlan deletes a running task from the plan (a
// commit on the branch while it runs): it is stopped, its partial work is
// kept on its failed ref, and the task running beside it lands.
func TestRunningTaskDeletedFromPlan(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": taskWorkflow(2),
		planFile:                     genPlan(3, nil),
	})
	rt := newRunTracker()
	bothRunning := make(chan struct{})
	edited := make(chan struct{})
	var once sync.Once
	stopped := make(chan error, 1)
	eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		if rt.begin(req) == 2 {
			once.Do(func() { close(bothRunning) })
		}
		defer rt.end(req)
		if req.Task == genID(2) {
			if err := writeOut(req, ".partial"); err != nil {
				return agents.Result{}, err
			}
			select {
			case <-ctx.Done():
				stopped <- ctx.Err()
				return agents.Result{}, &agents.RunError{Class: agents.Fatal, Engine: "shell", Canceled: true, Msg: "canceled"}
			case <-time.After(20 * time.Second):
				stopped <- nil
				return agents.Result{}, writeOut(req, ".txt")
			}
		}
		// The others wait until the plan edit is committed, so that no
		// landing moves the working tree while the test edits it.
		select {
		case <-edited:
		case <-time.After(20 * time.Second):
		}
		return agents.Result{}, writeOut(req, ".txt")
	}}
	o := newTestOrchestrator(t, dir, eng, nil)
	go func() {
		select {
		case <-bothRunning:
		case <-time.After(20 * time.Second):
			return
		}
		defer close(edited)
		plan := genPlan(3, nil)
		plan = deleteLines(plan, "- [ ] "+genID(2)+":", 2)
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(planFile)), []byte(plan), 0o644); err != nil {
			t.Error(err)
			return
		}
		testenv.Git(t, dir, "commit", "-q", "-am", "steer: drop T002")
	}()
	s, err := o.Run(t.Context(), RunOptions{})
	var sf *StepFailedError
	if !errors.As(err, &sf) || !slices.Equal(sf.Failed, []string{"build/" + genID(2)}) {
		t.Fatalf("run: %v; want build/%s failed", err, genID(2))
	}
	if cause := <-stopped; cause == nil {
		t.Errorf("%s was not stopped", genID(2))
	}
	rt.check(t)
	if len(s.Failed) != 1 || s.Failed[0].Ref != "refs/codemachine/failed/build/"+genID(2) {
		t.Errorf("failed: %+v", s.Failed)
	}
	if _, err := o.Repo().ReadFile("refs/codemachine/failed/build/"+genID(2), "out/"+genID(2)+".partial"); err != nil {
		t.Errorf("the deleted task's partial work is not kept: %v", err)
	}
	var landed []string
	for _, c := range landedTasks(t, o.Repo()) {
		landed = append(landed, taskOf(c))
	}
	if !slices.Equal(landed, []string{genID(1), genID(3)}) {
		t.Errorf("landed %v, want T001 and T003", landed)
	}
	checkFinal(t, dir, o.Repo(), []string{genID(1), genID(3)}, map[string]bool{genID(1): true, genID(3): true})
}

// deleteLines removes the line starting with prefix and the n-1 lines
// after it.
func deleteLines(text, prefix string, n int) string {
	var out []string
	skip := 0
	for _, line := range strings.SplitAfter(text, "\n") {
		if skip == 0 && strings.HasPrefix(line, prefix) {
			skip = n
		}
		if skip > 0 {
			skip--
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "")
}

// TestParallelReviewTasks runs review: true tasks two at a time: the first
// one's review branch appears while the second still runs, which is the
// run's own doing, not the second agent writing inside .git.
func TestParallelReviewTasks(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": taskWorkflow(2) + "    review: true\n",
		planFile:                     genPlan(3, nil),
	})
	first := make(chan struct{})
	eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		if req.Task == genID(1) {
			defer close(first)
			return agents.Result{}, writeOut(req, ".txt")
		}
		// The others finish only once the first is on its review branch.
		<-first
		deadline := time.Now().Add(testenv.Patience())
		for time.Now().Before(deadline) {
			if _, err := os.Stat(filepath.Join(dir, ".git", "refs", "heads", "codemachine", "review", "build", genID(1))); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		return agents.Result{}, writeOut(req, ".txt")
	}}
	o := newTestOrchestrator(t, dir, eng, nil)
	s, err := o.Run(t.Context(), RunOptions{})
	var rp *ReviewPendingError
	if !errors.As(err, &rp) {
		t.Fatalf("run: %v; want a ReviewPendingError", err)
	}
	if len(s.Failed) != 0 || len(s.Review) != 3 {
		t.Fatalf("failed %+v, %d waiting for review; want none failed and 3 waiting", s.Failed, len(s.Review))
	}
	for i := 1; i <= 3; i++ {
		if _, err := o.Repo().ReadFile("codemachine/review/build/"+genID(i), "out/"+genID(i)+".txt"); err != nil {
			t.Errorf("%s is not on its review branch: %v", genID(i), err)
		}
	}
}

// TestParallelConflictsBesideRunningTasks runs tasks that all rewrite the
// same file, four at a time: each one based on a tip that another task
// has moved since ends on its conflict branch, and the conflict branches
// appearing while other tasks run never fail those (as an agent writing
// inside .git would).
func TestParallelConflictsBesideRunningTasks(t *testing.T) {
	const n = 24
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": taskWorkflow(4),
		planFile:                     genPlan(n, nil),
	})
	jit := newJitter(t)
	eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		jit.sleep(20 * time.Millisecond)
		if err := writeOut(req, ".txt"); err != nil {
			return agents.Result{}, err
		}
		return agents.Result{}, os.WriteFile(filepath.Join(req.Dir, "shared.txt"), []byte(req.Task+"\n"), 0o644)
	}}
	o := newTestOrchestrator(t, dir, eng, nil)
	s, err := o.Run(t.Context(), RunOptions{})
	var sf *StepFailedError
	if err != nil && !errors.As(err, &sf) {
		t.Fatalf("run: %v", err)
	}
	conflicts := 0
	for _, e := range s.Failed {
		if e.Kind != StepConflict {
			t.Errorf("%s failed: %s", e.Key(), e.Message)
			continue
		}
		conflicts++
		if _, err := o.Repo().ResolveRev("refs/heads/codemachine/conflict/" + e.Key()); err != nil {
			t.Errorf("%s: no conflict branch: %v", e.Key(), err)
		}
	}
	if len(s.Landed)+conflicts != n || len(s.Landed) == 0 {
		t.Errorf("%d landed and %d conflicts, want %d in all", len(s.Landed), conflicts, n)
	}
	t.Logf("%d landed, %d conflicts", len(s.Landed), conflicts)
}

// TestFinishedTaskDeletedBeforeItsTurn deletes a task that has finished
// but waits for the task before it to land: it does not land, its work
// is kept on its failed ref, and until its turn status shows it running.
func TestFinishedTaskDeletedBeforeItsTurn(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": taskWorkflow(2),
		planFile:                     genPlan(3, nil),
	})
	secondDone := make(chan struct{})
	release := make(chan struct{})
	eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		switch req.Task {
		case genID(1):
			select {
			case <-release:
			case <-time.After(20 * time.Second):
			}
		case genID(2):
			defer close(secondDone)
		}
		return agents.Result{}, writeOut(req, ".txt")
	}}
	var log eventLog
	o := newTestOrchestrator(t, dir, eng, log.add)
	type status struct {
		report *StatusReport
		err    error
	}
	seen := make(chan status, 1)
	go func() {
		defer close(release)
		select {
		case <-secondDone:
		case <-time.After(20 * time.Second):
			return
		}
		// T002 has finished; give the scheduler time to take its result.
		time.Sleep(300 * time.Millisecond)
		report, err := o.Status(Overrides{})
		seen <- status{report, err}
		plan := deleteLines(genPlan(3, nil), "- [ ] "+genID(2)+":", 2)
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(planFile)), []byte(plan), 0o644); err != nil {
			t.Error(err)
			return
		}
		testenv.Git(t, dir, "commit", "-q", "-am", "steer: drop T002")
		// Let the scheduler see the commit before T001 lands.
		time.Sleep(2 * watchInterval)
	}()
	s, err := o.Run(t.Context(), RunOptions{})
	var sf *StepFailedError
	if !errors.As(err, &sf) || !slices.Equal(sf.Failed, []string{"build/" + genID(2)}) {
		t.Fatalf("run: %v; want build/%s failed", err, genID(2))
	}
	st := <-seen
	if st.err != nil {
		t.Fatal(st.err)
	}
	for _, ts := range st.report.Steps[0].Tasks {
		if ts.ID == genID(2) && ts.State != StateRunning {
			t.Errorf("status of %s waiting for its turn: %s, want %s", ts.ID, ts.State, StateRunning)
		}
	}
	if len(s.Failed) != 1 || !strings.Contains(s.Failed[0].Message, "deleted") {
		t.Errorf("failed: %+v", s.Failed)
	}
	if _, err := o.Repo().ReadFile("refs/codemachine/failed/build/"+genID(2), "out/"+genID(2)+".txt"); err != nil {
		t.Errorf("the deleted task's work is not kept: %v", err)
	}
	var landed []string
	for _, c := range landedTasks(t, o.Repo()) {
		landed = append(landed, taskOf(c))
	}
	if !slices.Equal(landed, []string{genID(1), genID(3)}) {
		t.Errorf("landed %v, want T001 and T003", landed)
	}
	checkFinal(t, dir, o.Repo(), []string{genID(1), genID(3)}, map[string]bool{genID(1): true, genID(3): true})
}

// TestFailedTaskFreesItsSlot: a task that fails while the one started
// before it still runs has nothing to land, so its slot goes to the next
// task at once instead of idling until the earlier one lands.
func TestFailedTaskFreesItsSlot(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": taskWorkflow(2),
		planFile:                     genPlan(3, nil),
	})
	thirdStarted := make(chan struct{})
	eng := fakeEngine{run: func(ctx context.Context, req agents.Request) (agents.Result, error) {
		switch req.Task {
		case genID(1):
			select {
			case <-thirdStarted:
			case <-time.After(testenv.Patience()):
				return agents.Result{}, &agents.RunError{Class: agents.Fatal, Engine: "shell",
					Msg: "T003 did not start while T001 ran"}
			}
		case genID(2):
			return agents.Result{ExitCode: 1}, &agents.RunError{Class: agents.Fatal, Engine: "shell",
				Msg: "command exited with status 1", ExitCode: 1}
		case genID(3):
			close(thirdStarted)
		}
		return agents.Result{}, writeOut(req, ".txt")
	}}
	o := newTestOrchestrator(t, dir, eng, nil)
	s, err := o.Run(t.Context(), RunOptions{})
	var sf *StepFailedError
	if !errors.As(err, &sf) || !slices.Equal(sf.Failed, []string{"build/" + genID(2)}) {
		t.Fatalf("run: %v; want only build/%s failed", err, genID(2))
	}
	var landed []string
	for _, e := range s.Landed {
		landed = append(landed, e.Task)
	}
	if !slices.Equal(landed, []string{genID(1), genID(3)}) {
		t.Errorf("landed %v, want T001 and T003", landed)
	}
}
