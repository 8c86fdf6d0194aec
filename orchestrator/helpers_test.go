package orchestrator

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/internal/testenv"
	"github.com/codemachine/codemachine/workflow"
)

// planFile is where the tests' foreach steps read their tasks.
const planFile = ".codemachine/plan.md"

// hermetic points git (which gitstate runs with the process environment)
// at an empty HOME with a fixed identity and dates. It uses t.Setenv, so a
// test that calls it cannot be parallel.
func hermetic(t testing.TB) {
	t.Helper()
	for _, kv := range testenv.GitEnv(t.TempDir()) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// newRepo creates a repository on main whose second commit holds files.
func newRepo(t testing.TB, files map[string]string) string {
	t.Helper()
	hermetic(t)
	dir, err := filepath.EvalSymlinks(testenv.GitRepo(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, dir, "add", "-A")
	testenv.Git(t, dir, "commit", "-q", "-m", "workflow")
	return dir
}

// taskWorkflow is a workflow of one foreach step over planFile whose run
// command the fake engine stands in for.
func taskWorkflow(parallel int) string {
	return fmt.Sprintf(`version: 1
name: sched
steps:
  - id: build
    run: fake
    foreach: %s
    parallel: %d
`, planFile, parallel)
}

// genID is the id of the i-th generated task (1-based): T001, T002, ...
func genID(i int) string { return fmt.Sprintf("T%03d", i) }

// genPlan writes a plan of n unchecked tasks; deps gives each task's
// dependencies (1-based task numbers), nil for none.
func genPlan(n int, deps func(i int) []int) string {
	var b strings.Builder
	b.WriteString("# Plan\n\nGenerated for the scheduler's tests.\n\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "- [ ] %s: Task number %d", genID(i), i)
		if deps != nil {
			if ds := deps(i); len(ds) > 0 {
				ids := make([]string, len(ds))
				for k, d := range ds {
					ids[k] = genID(d)
				}
				fmt.Fprintf(&b, " (after: %s)", strings.Join(ids, ", "))
			}
		}
		fmt.Fprintf(&b, "\n  Write out/%s.txt.\n", genID(i))
	}
	b.WriteString("\nThe end of the plan.\n")
	return b.String()
}

// fakeEngine stands in for every engine (the shell of run: steps above
// all) with a function.
type fakeEngine struct {
	run func(ctx context.Context, req agents.Request) (agents.Result, error)
}

func (fakeEngine) Name() string { return "shell" }

func (f fakeEngine) Run(ctx context.Context, req agents.Request) (agents.Result, error) {
	return f.run(ctx, req)
}

// runTracker counts the runs of each task and how many ran at once, and
// checks that the units running together never share a worktree or HOME.
type runTracker struct {
	mu       sync.Mutex
	runs     map[string]int
	started  []string
	inflight map[string]agents.Request
	max      int
	problems []string
}

func newRunTracker() *runTracker {
	return &runTracker{runs: map[string]int{}, inflight: map[string]agents.Request{}}
}

// begin records that req's task started; it returns how many run now.
func (rt *runTracker) begin(req agents.Request) int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.runs[req.Task]++
	rt.started = append(rt.started, req.Task)
	for id, other := range rt.inflight {
		if other.Dir == req.Dir {
			rt.problems = append(rt.problems, fmt.Sprintf("%s and %s ran in the same worktree %s", id, req.Task, req.Dir))
		}
		if other.Home == req.Home {
			rt.problems = append(rt.problems, fmt.Sprintf("%s and %s ran with the same HOME %q", id, req.Task, req.Home))
		}
	}
	rt.inflight[req.Task] = req
	rt.max = max(rt.max, len(rt.inflight))
	return len(rt.inflight)
}

func (rt *runTracker) end(req agents.Request) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	delete(rt.inflight, req.Task)
}

func (rt *runTracker) runsOf(id string) int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.runs[id]
}

// check fails the test on any overlap problem.
func (rt *runTracker) check(t testing.TB) {
	t.Helper()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, p := range rt.problems {
		t.Error(p)
	}
}

// newTestOrchestrator opens dir with the fake engine.
func newTestOrchestrator(t testing.TB, dir string, eng agents.Engine, onEvent func(Event)) *Orchestrator {
	t.Helper()
	o, err := New(Config{Dir: dir, Environ: os.Environ(), OnEvent: onEvent,
		NewEngine: func(string) (agents.Engine, error) { return eng, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// writeOut writes out/<task>.txt in the unit's worktree: the task's work.
func writeOut(req agents.Request, suffix string) error {
	p := filepath.Join(req.Dir, "out", req.Task+suffix)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(req.Task+" was here\n"), 0o644)
}

// landedTasks lists the task ids of the step commits on main's
// first-parent history, oldest first.
func landedTasks(t testing.TB, repo *gitstate.Repo) []gitstate.Commit {
	t.Helper()
	head, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	commits, err := repo.Log(head.Commit, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []gitstate.Commit
	for _, c := range slices.Backward(commits) {
		if (gitstate.Message{Trailers: c.Trailers}).Get(gitstate.TrailerTask) != "" {
			out = append(out, c)
		}
	}
	return out
}

func taskOf(c gitstate.Commit) string {
	return gitstate.Message{Trailers: c.Trailers}.Get(gitstate.TrailerTask)
}

// checkTaskCommit checks that c is task id's commit holding exactly its own
// out file, state.yaml and its ticked box: the plan differs from the
// parent's in one byte, the box of id's line.
func checkTaskCommit(t testing.TB, repo *gitstate.Repo, c gitstate.Commit) {
	t.Helper()
	id := taskOf(c)
	if len(c.Parents) != 1 {
		t.Errorf("%s: %d parents", id, len(c.Parents))
		return
	}
	before, err := repo.ReadFile(c.Parents[0], planFile)
	if err != nil {
		t.Fatal(err)
	}
	after, err := repo.ReadFile(c.Hash, planFile)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := workflow.ParsePlan(planFile, before)
	if err != nil {
		t.Fatal(err)
	}
	task := plan.Task(id)
	if task == nil || task.Done {
		t.Errorf("%s: the parent's plan does not have it open", id)
		return
	}
	if len(before) != len(after) {
		t.Errorf("%s: the plan changed size", id)
		return
	}
	var diff []int
	for i := range before {
		if before[i] != after[i] {
			diff = append(diff, i)
		}
	}
	if len(diff) != 1 || diff[0] != task.Box || after[task.Box] != 'x' {
		t.Errorf("%s: the plan differs at %v, want only its box at %d ticked", id, diff, task.Box)
	}
	changes, err := repo.DiffTrees(context.Background(), c.Parents[0], c.Hash)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, ch := range changes {
		paths = append(paths, ch.Path)
	}
	want := []string{planFile, workflow.StateFile, "out/" + id + ".txt"}
	slices.Sort(want)
	slices.Sort(paths)
	if !slices.Equal(paths, want) {
		t.Errorf("%s: commit changes %v, want %v", id, paths, want)
	}
}

// checkFinal checks the tip: the plan has exactly the done boxes ticked,
// state.yaml records exactly the done tasks, out/ holds exactly their
// files, and git fsck is clean.
func checkFinal(t testing.TB, dir string, repo *gitstate.Repo, all []string, done map[string]bool) {
	t.Helper()
	data, err := repo.ReadFile("HEAD", planFile)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := workflow.ParsePlan(planFile, data)
	if err != nil {
		t.Fatal(err)
	}
	stateData, err := repo.ReadFile("HEAD", workflow.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	state, err := gitstate.ParseState(workflow.StateFile, stateData)
	if err != nil {
		t.Fatal(err)
	}
	var recorded map[string]*gitstate.RunRecord
	if sr := state.Steps["build"]; sr != nil {
		recorded = sr.Tasks
	}
	files := map[string]bool{}
	for _, f := range strings.Fields(testenv.Git(t, dir, "ls-tree", "-r", "--name-only", "HEAD", "out/")) {
		files[f] = true
	}
	seqs := map[int64]string{}
	for _, id := range all {
		task := plan.Task(id)
		if task == nil {
			t.Errorf("%s is gone from the plan", id)
			continue
		}
		if task.Done != done[id] {
			t.Errorf("%s: box ticked %v, want %v", id, task.Done, done[id])
		}
		rec := recorded[id]
		if (rec != nil) != done[id] {
			t.Errorf("%s: recorded in state.yaml %v, want %v", id, rec != nil, done[id])
		}
		if rec != nil {
			if other, dup := seqs[rec.Seq]; dup {
				t.Errorf("%s and %s recorded with the same seq %d", id, other, rec.Seq)
			}
			seqs[rec.Seq] = id
		}
		if files["out/"+id+".txt"] != done[id] {
			t.Errorf("%s: out/%s.txt in the tree %v, want %v", id, id, files["out/"+id+".txt"], done[id])
		}
	}
	if len(recorded) != len(seqs) {
		t.Errorf("state.yaml records %d tasks, want %d", len(recorded), len(seqs))
	}
	fsck := runCmd(t, dir, "git", "fsck", "--strict", "--no-dangling", "--no-progress")
	if strings.TrimSpace(fsck) != "" {
		t.Errorf("git fsck:\n%s", fsck)
	}
	if st := testenv.Git(t, dir, "status", "--porcelain"); st != "" {
		t.Errorf("the working tree is not clean after the run:\n%s", st)
	}
}

// runCmd runs a command in dir and returns its combined output; a failure
// fails the test.
func runCmd(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}
