package mcpserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/internal/testenv"
)

const testWorkflow = `version: 1
steps:
  - id: implement
    foreach: .codemachine/plan.md
    run: echo "$CODEMACHINE_TASK" >> done.txt
  - id: gate
    run: echo ok > gate.txt
    outputs: [gate.txt]
    review: true
`

const testPlan = `# Plan
- [ ] T1: First
- [ ] T2: Second (after: T1)
`

// newRepo is a repository on main with the test workflow and plan
// committed, git made hermetic for the test.
func newRepo(t *testing.T) string {
	t.Helper()
	for _, kv := range testenv.GitEnv(t.TempDir()) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	dir, err := filepath.EvalSymlinks(testenv.GitRepo(t))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, ".codemachine/workflow.yaml", testWorkflow)
	write(t, dir, ".codemachine/plan.md", testPlan)
	testenv.Git(t, dir, "add", "-A")
	testenv.Git(t, dir, "commit", "-q", "-m", "workflow")
	return dir
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// connect starts the server on one end of an in-memory pipe and returns
// a client session on the other.
func connect(t *testing.T, opts Options) *mcp.ClientSession {
	t.Helper()
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ct, st := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	client := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil)
	cs, err := client.Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call calls a tool and returns its text and whether it is an error.
func call(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) (string, bool) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String(), res.IsError
}

func mustCall(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) string {
	t.Helper()
	out, isErr := call(t, cs, name, args)
	if isErr {
		t.Fatalf("%s %v: %s", name, args, out)
	}
	return out
}

func subjects(t *testing.T, dir string, n int) []string {
	t.Helper()
	out := testenv.Git(t, dir, "log", "--format=%s", "-"+strconv.Itoa(n))
	return strings.Split(strings.TrimSpace(out), "\n")
}

// TestPlanTools: every plan change is one commit of the plan file alone,
// as a hand edit would be; the list shows what a run would start.
func TestPlanTools(t *testing.T) {
	dir := newRepo(t)
	cs := connect(t, Options{Dir: dir, Environ: os.Environ()})

	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	want := []string{"approve", "diff", "log", "plan_add", "plan_check", "plan_edit", "plan_list", "plan_uncheck", "reject", "retry", "run", "status"}
	if !slices.Equal(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}

	out := mustCall(t, cs, "plan_add", map[string]any{"title": "Add logging", "after": []string{"T1"}, "insert_after": "T1", "body": "Use slog."})
	if !strings.Contains(out, `plan: add T3 "Add logging" (after T1)`) {
		t.Errorf("plan_add: %s", out)
	}
	mustCall(t, cs, "plan_edit", map[string]any{"id": "T2", "title": "Second, reworded"})
	mustCall(t, cs, "plan_check", map[string]any{"id": "T1"})
	mustCall(t, cs, "plan_uncheck", map[string]any{"id": "T1"})
	wantPlan := "# Plan\n- [ ] T1: First\n- [ ] T3: Add logging (after: T1)\n  Use slog.\n- [ ] T2: Second, reworded (after: T1)\n"
	if got := read(t, filepath.Join(dir, ".codemachine/plan.md")); got != wantPlan {
		t.Errorf("plan.md:\n%s\nwant:\n%s", got, wantPlan)
	}
	if got, want := subjects(t, dir, 4), []string{"plan: uncheck T1", "plan: check T1", "plan: edit T2 (title)", `plan: add T3 "Add logging" (after T1)`}; !slices.Equal(got, want) {
		t.Errorf("commits %q, want %q", got, want)
	}
	if files := testenv.Git(t, dir, "show", "--name-only", "--format=", "HEAD~3"); strings.TrimSpace(files) != ".codemachine/plan.md" {
		t.Errorf("the add commit holds %q, want the plan alone", files)
	}
	if st := testenv.Git(t, dir, "status", "--porcelain"); st != "" {
		t.Errorf("the checkout is not clean after the edits:\n%s", st)
	}

	out = mustCall(t, cs, "plan_list", nil)
	if !strings.Contains(out, ".codemachine/plan.md: 3 tasks") || !strings.Contains(out, `"id": "T3"`) {
		t.Errorf("plan_list:\n%s", out)
	}
	if !strings.Contains(out, "\"id\": \"T1\",\n    \"title\": \"First\",\n    \"done\": false,\n    \"runnable\": true") {
		t.Errorf("plan_list does not show T1 as runnable:\n%s", out)
	}

	// Mistakes are tool errors that say what is wrong; nothing is committed.
	for _, c := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"plan_add", map[string]any{"title": "x", "after": []string{"T9"}}, `unknown task "T9"`},
		{"plan_check", map[string]any{"id": "T9"}, "has no task T9"},
		{"plan_edit", map[string]any{"id": "T1"}, "give a title, body or after"},
		{"plan_list", map[string]any{"plan": "other.md"}, "not a plan of the workflow"},
	} {
		out, isErr := call(t, cs, c.tool, c.args)
		if !isErr || !strings.Contains(out, c.want) {
			t.Errorf("%s %v: %q (error %v), want an error saying %q", c.tool, c.args, out, isErr, c.want)
		}
	}
	if n := len(subjects(t, dir, 9)); n != 6 {
		t.Errorf("%d commits, want 6: a refused edit committed something", n)
	}

	// Uncommitted changes to the plan are the user's: the edit is refused.
	write(t, dir, ".codemachine/plan.md", wantPlan+"- [ ] T4: mine\n")
	if out, isErr := call(t, cs, "plan_check", map[string]any{"id": "T1"}); !isErr || !strings.Contains(out, "uncommitted changes") {
		t.Errorf("edit over uncommitted changes: %q", out)
	}
}

// TestPlanCommitRefused: when the commit of a plan edit fails (the user's
// pre-commit hook refuses it), the tool says so and leaves the checkout
// as it was: the plan file as committed, nothing staged.
func TestPlanCommitRefused(t *testing.T) {
	dir := newRepo(t)
	hooks := filepath.Join(dir, ".git", "hooks")
	write(t, dir, ".git/hooks/pre-commit", "#!/bin/sh\necho 'pre-commit: plan frozen' >&2\nexit 1\n")
	if err := os.Chmod(filepath.Join(hooks, "pre-commit"), 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, dir, "config", "core.hooksPath", hooks)
	head := testenv.Git(t, dir, "rev-parse", "HEAD")
	cs := connect(t, Options{Dir: dir, Environ: os.Environ()})
	out, isErr := call(t, cs, "plan_add", map[string]any{"title": "Refused"})
	if !isErr || !strings.Contains(out, "plan frozen") {
		t.Errorf("plan_add with a refusing hook: %q (error %v), want the hook's refusal", out, isErr)
	}
	if got := testenv.Git(t, dir, "rev-parse", "HEAD"); got != head {
		t.Errorf("HEAD moved")
	}
	if st := testenv.Git(t, dir, "status", "--porcelain"); st != "" {
		t.Errorf("the refused edit left the checkout changed:\n%s", st)
	}
	if got := read(t, filepath.Join(dir, ".codemachine/plan.md")); got != testPlan {
		t.Errorf("plan.md after the refused edit:\n%s", got)
	}
}

// TestPlanLinkRefused: a plan file that is a symbolic link (or lies in a
// linked directory) is not edited: the edit would write where the link
// points, outside the repository here. The file it points to is left as
// it was, and so is the checkout, in the repository and in a step's
// worktree.
func TestPlanLinkRefused(t *testing.T) {
	for _, linked := range []string{".codemachine/plan.md", ".codemachine"} {
		dir := newRepo(t)
		outside := t.TempDir()
		write(t, outside, ".codemachine/plan.md", testPlan)
		write(t, outside, "plan.md", testPlan)
		target := filepath.Join(outside, "plan.md")
		if linked == ".codemachine" {
			target = filepath.Join(outside, ".codemachine")
			write(t, outside, ".codemachine/workflow.yaml", testWorkflow)
		}
		if err := os.RemoveAll(filepath.Join(dir, linked)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, linked)); err != nil {
			t.Fatal(err)
		}
		testenv.Git(t, dir, "add", "-A")
		testenv.Git(t, dir, "commit", "-q", "-m", "link")
		head := testenv.Git(t, dir, "rev-parse", "HEAD")
		for _, opts := range []Options{{Dir: dir, Environ: os.Environ()}, {Dir: dir, Environ: os.Environ(), Worktree: dir}} {
			cs := connect(t, opts)
			out, isErr := call(t, cs, "plan_add", map[string]any{"title": "Through the link"})
			// A linked .codemachine is committed as a link: HEAD has no
			// workflow to find the plan in, a refusal of its own.
			if !isErr || !strings.Contains(out, "is a symbolic link") && (linked != ".codemachine" || opts.Worktree != "") {
				t.Errorf("%s linked, worktree %q: plan_add: %q (error %v), want a refusal naming the link", linked, opts.Worktree, out, isErr)
			}
		}
		for _, f := range []string{"plan.md", ".codemachine/plan.md"} {
			if got := read(t, filepath.Join(outside, f)); got != testPlan {
				t.Errorf("%s linked: %s outside the repository was written:\n%s", linked, f, got)
			}
		}
		if got := testenv.Git(t, dir, "rev-parse", "HEAD"); got != head {
			t.Errorf("%s linked: HEAD moved", linked)
		}
		if st := testenv.Git(t, dir, "status", "--porcelain"); st != "" {
			t.Errorf("%s linked: the checkout changed:\n%s", linked, st)
		}
	}
}

// TestRefusedWhileLocked: while another codemachine holds the lock, tools
// that change the repository are refused, naming it; reads still work.
func TestRefusedWhileLocked(t *testing.T) {
	dir := newRepo(t)
	cs := connect(t, Options{Dir: dir, Environ: os.Environ()})
	repo, err := gitstate.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := repo.Lock("codemachine watch")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	pid := os.Getpid()
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{"plan_add", map[string]any{"title": "x"}},
		{"run", nil},
		{"approve", map[string]any{"target": "gate"}},
		{"reject", map[string]any{"target": "gate", "message": "no"}},
	} {
		out, isErr := call(t, cs, c.tool, c.args)
		if !isErr || !strings.Contains(out, "refused: another codemachine holds this repository (codemachine watch, pid "+strconv.Itoa(pid)+")") {
			t.Errorf("%s while locked: %q (error %v)", c.tool, out, isErr)
		}
	}
	if out, isErr := call(t, cs, "status", nil); isErr || !strings.Contains(out, "codemachine watch (pid") {
		t.Errorf("status while locked: %q", out)
	}
}

// TestRunAndReview: run runs what is due and says what landed and what
// waits for review; reject commits feedback, approve lands the next
// attempt.
func TestRunAndReview(t *testing.T) {
	dir := newRepo(t)
	cs := connect(t, Options{Dir: dir, Environ: os.Environ()})
	out, isErr := call(t, cs, "run", nil)
	if isErr || !strings.Contains(out, "landed implement/T1") || !strings.Contains(out, "waits for review: gate") ||
		!strings.Contains(out, "2 landed, 0 failed, 1 waiting for review") {
		t.Fatalf("run (error %v):\n%s", isErr, out)
	}
	if got := read(t, filepath.Join(dir, "done.txt")); got != "T1\nT2\n" {
		t.Errorf("done.txt %q", got)
	}
	out = mustCall(t, cs, "reject", map[string]any{"target": "gate", "message": "say more"})
	if !strings.Contains(out, "rejected gate") {
		t.Errorf("reject: %s", out)
	}
	if got := read(t, filepath.Join(dir, ".codemachine/feedback/gate.md")); got != "say more\n" {
		t.Errorf("feedback %q", got)
	}
	mustCall(t, cs, "run", nil)
	out = mustCall(t, cs, "approve", map[string]any{"target": "gate"})
	if !strings.Contains(out, "approved gate") {
		t.Errorf("approve: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "gate.txt")); err != nil {
		t.Errorf("gate did not land: %v", err)
	}
	out = mustCall(t, cs, "log", map[string]any{"limit": 1})
	// The subject as it is: no \u003e for its ">".
	if !strings.Contains(out, `"step": "gate"`) || !strings.Contains(out, `"subject": "codemachine(gate): run echo ok > gate.txt"`) {
		t.Errorf("log: %s", out)
	}
	out = mustCall(t, cs, "diff", map[string]any{"target": "implement/T2", "stat": true})
	if !strings.Contains(out, "done.txt") {
		t.Errorf("diff: %s", out)
	}
	if out, isErr := call(t, cs, "retry", map[string]any{"target": "gate"}); !isErr || !strings.Contains(out, "neither failed nor held") {
		t.Errorf("retry of a landed step: %q", out)
	}
}

// TestInStep: for an agent inside a step, plan edits go to the worktree's
// file, uncommitted, without the lock the run holds; nothing that runs
// steps is offered.
func TestInStep(t *testing.T) {
	dir := newRepo(t)
	wt := t.TempDir()
	write(t, wt, ".codemachine/workflow.yaml", testWorkflow)
	repo, err := gitstate.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := repo.Lock("codemachine run")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	cs := connect(t, Options{Dir: dir, Environ: os.Environ(), Worktree: wt})
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range tools.Tools {
		if slices.Contains([]string{"run", "retry", "approve", "reject"}, tool.Name) {
			t.Errorf("tool %s offered inside a step", tool.Name)
		}
	}
	out := mustCall(t, cs, "plan_list", nil)
	if !strings.Contains(out, "does not exist yet") {
		t.Errorf("plan_list of a plan not written: %s", out)
	}
	out = mustCall(t, cs, "plan_add", map[string]any{"title": "Scaffold"})
	if !strings.Contains(out, "lands with this step's commit") {
		t.Errorf("plan_add: %s", out)
	}
	mustCall(t, cs, "plan_add", map[string]any{"title": "Build", "after": []string{"T1"}})
	if got, want := read(t, filepath.Join(wt, ".codemachine/plan.md")), "# Plan\n\n- [ ] T1: Scaffold\n- [ ] T2: Build (after: T1)\n"; got != want {
		t.Errorf("worktree plan:\n%s\nwant:\n%s", got, want)
	}
	if got := read(t, filepath.Join(dir, ".codemachine/plan.md")); got != testPlan {
		t.Errorf("the repository's plan changed:\n%s", got)
	}
}

// TestConcurrentCallsTakeTurns: a client's calls that change the
// repository, sent at once (as a model's parallel tool calls are), take
// turns: none is refused by the lock its own server holds for another.
func TestConcurrentCallsTakeTurns(t *testing.T) {
	dir := newRepo(t)
	cs := connect(t, Options{Dir: dir, Environ: os.Environ()})
	const n = 6
	outs := make([]string, n)
	errs := make([]bool, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			outs[i], errs[i] = call(t, cs, "plan_add", map[string]any{"title": "task " + strconv.Itoa(i)})
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] {
			t.Errorf("call %d: %s", i, outs[i])
		}
	}
	for _, s := range subjects(t, dir, n) {
		if !strings.HasPrefix(s, "plan: add ") {
			t.Errorf("commits: %q, want %d plan additions", subjects(t, dir, n), n)
			break
		}
	}
}

// TestRejectWithoutReason: reject with an empty message says what is
// missing in the tool's own terms, not the command line's (-m).
func TestRejectWithoutReason(t *testing.T) {
	dir := newRepo(t)
	cs := connect(t, Options{Dir: dir, Environ: os.Environ()})
	out, isErr := call(t, cs, "reject", map[string]any{"target": "gate", "message": " "})
	if !isErr || !strings.Contains(out, "reject needs a reason") || strings.Contains(out, "-m") {
		t.Errorf("reject without a reason: %q (error %v)", out, isErr)
	}
}

// TestRunExportsTrace: with OTEL_EXPORTER_OTLP_ENDPOINT set, a run made
// through the run tool exports its trace as the run command's does, sent
// by the time the tool answers.
func TestRunExportsTrace(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" {
			requests.Add(1)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	dir := newRepo(t)
	cs := connect(t, Options{Dir: dir, Environ: os.Environ()})
	call(t, cs, "run", map[string]any{"steps": []string{"implement/T1"}})
	if requests.Load() == 0 {
		t.Error("the run tool's run sent no trace")
	}
}

// TestEmptyTarget: retry, approve and reject of an empty target say to
// name one (it is a required argument a client may still send empty),
// not that "" is no step.
func TestEmptyTarget(t *testing.T) {
	dir := newRepo(t)
	cs := connect(t, Options{Dir: dir, Environ: os.Environ()})
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{"retry", map[string]any{"target": ""}},
		{"approve", map[string]any{"target": " "}},
		{"reject", map[string]any{"target": "", "message": "why"}},
	} {
		out, isErr := call(t, cs, c.tool, c.args)
		if !isErr || out != "target is empty: name a STEP or STEP/TASK" {
			t.Errorf("%s %v: %q (error %v), want it to ask for a target", c.tool, c.args, out, isErr)
		}
	}
}

// TestLogNegativeLimit: a negative limit is the caller's mistake, told as
// a tool error with the allowed range, not read as the default.
func TestLogNegativeLimit(t *testing.T) {
	dir := newRepo(t)
	cs := connect(t, Options{Dir: dir, Environ: os.Environ()})
	out, isErr := call(t, cs, "log", map[string]any{"limit": -5})
	if !isErr || out != "limit must be 1 or more (0 or none: the newest 20), got -5" {
		t.Errorf("log limit -5: %q (error %v), want a tool error with the range", out, isErr)
	}
	if _, isErr := call(t, cs, "log", map[string]any{}); isErr {
		t.Error("log without a limit is an error")
	}
}
