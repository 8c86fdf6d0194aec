package codemachine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/workflow"
)

// The example is what `codemachine init` gives a new user and what `make
// demo` replays, so these tests hold it to what the demo needs: recordings
// that parse and match the workflow, task recordings that leave a green Go
// program after every task in every order the plan allows, and a workflow
// whose agents render.

// exampleRecordings is every recording of the example, in run order, with
// the files each one writes (in recording order).
var exampleRecordings = []struct {
	file       string // relative to the example's recordings/
	step, task string
	files      []string
	round      int // a task reviewer's answer in this round (review: task-reviewer); 0 = the step's own
}{
	{"architecture.yaml", "architecture", "", []string{".codemachine/architecture.md"}, 0},
	{"plan.yaml", "plan", "", []string{".codemachine/plan.md"}, 0},
	{"implement/T1.yaml", "implement", "T1", []string{"go.mod", "main.go", "main_test.go"}, 0},
	{"implement/T2.yaml", "implement", "T2", []string{"store/store.go", "store/store_test.go"}, 0},
	{"implement/T3.yaml", "implement", "T3", []string{"cli/cli.go", "cli/cli_test.go"}, 0},
	{"implement/T4.yaml", "implement", "T4", []string{"README.md", "e2e_test.go", "main.go"}, 0},
	{"implement.review/T1/1.yaml", "implement", "T1", nil, 1},
	{"implement.review/T2/1.yaml", "implement", "T2", nil, 1},
	{"implement.review/T3/1.yaml", "implement", "T3", nil, 1},
	{"implement.review/T4/1.yaml", "implement", "T4", nil, 1},
	{"review.yaml", "review", "", []string{".codemachine/review.md"}, 0},
}

// exampleFile reads a file of the example by its path relative to the
// example's root.
func exampleFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := fs.ReadFile(Example, path.Join(ExampleDir, name))
	if err != nil {
		t.Fatalf("read example: %v", err)
	}
	return data
}

// loadRecording parses one of the example's recordings.
func loadRecording(t *testing.T, file string) *agents.Recording {
	t.Helper()
	name := path.Join(ExampleDir, "recordings", file)
	rec, err := agents.ParseRecording(name, exampleFile(t, path.Join("recordings", file)))
	if err != nil {
		t.Fatalf("parse recording: %v", err)
	}
	return rec
}

// exampleRepo returns the repository a user has after `codemachine init`:
// the example under .codemachine/, plus the files the given recordings
// write, applied in order.
func exampleRepo(t *testing.T, recordings ...string) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	err := fs.WalkDir(Example, ExampleDir, func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(Example, name)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(name, ExampleDir+"/")
		fsys[path.Join(workflow.Dir, rel)] = &fstest.MapFile{Data: data, Mode: 0o644}
		return nil
	})
	if err != nil {
		t.Fatalf("walk example: %v", err)
	}
	for _, file := range recordings {
		applyRecording(t, fsys, loadRecording(t, file))
	}
	return fsys
}

// applyRecording applies a recording's file changes to fsys the way the
// replay engine applies them to a worktree.
func applyRecording(t *testing.T, fsys fstest.MapFS, rec *agents.Recording) {
	t.Helper()
	for _, f := range rec.Files {
		if f.Deleted {
			delete(fsys, f.Path)
			continue
		}
		mode := fs.FileMode(0o644)
		if f.Mode != "" {
			m, err := strconv.ParseUint(f.Mode, 8, 32)
			if err != nil {
				t.Fatalf("recording %s/%s: %s: mode %q: %v", rec.Step, rec.Task, f.Path, f.Mode, err)
			}
			mode = fs.FileMode(m)
		}
		fsys[f.Path] = &fstest.MapFile{Data: f.Content, Mode: mode}
	}
}

func TestExampleRecordingsParse(t *testing.T) {
	var want []string
	for _, r := range exampleRecordings {
		want = append(want, r.file)
	}
	var got []string
	root := path.Join(ExampleDir, "recordings")
	err := fs.WalkDir(Example, root, func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, strings.TrimPrefix(name, root+"/"))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("recordings in the example: %q, want %q", got, want)
	}

	for _, tt := range exampleRecordings {
		t.Run(tt.file, func(t *testing.T) {
			rec := loadRecording(t, tt.file)
			if rec.Step != tt.step || rec.Task != tt.task {
				t.Errorf("step/task = %q/%q, want %q/%q", rec.Step, rec.Task, tt.step, tt.task)
			}
			where := agents.RecordingPath(rec.Step, rec.Task)
			if tt.round > 0 {
				where = agents.ReviewRecordingPath(rec.Step, rec.Task, tt.round)
				// A reviewer's answer ends with its verdict.
				if !strings.HasSuffix(strings.TrimSpace(rec.Text), "\n"+`{"verdict": "approve"}`) {
					t.Errorf("text %q: want it to end with the verdict", rec.Text)
				}
			}
			if got, want := where, ".codemachine/recordings/"+tt.file; got != want {
				t.Errorf("replay looks for this recording at %s, but it is at %s", got, want)
			}
			if rec.Engine != "claude" || rec.Model == "" || rec.Session == "" {
				t.Errorf("engine/model/session = %q/%q/%q, want claude and both set", rec.Engine, rec.Model, rec.Session)
			}
			if rec.TokensIn <= 0 || rec.TokensOut <= 0 || !rec.CostKnown || rec.CostUSD <= 0 || rec.Duration < time.Second {
				t.Errorf("usage: %d in, %d out, $%v (known %v), %s; want all positive",
					rec.TokensIn, rec.TokensOut, rec.CostUSD, rec.CostKnown, rec.Duration)
			}

			// The first line of the text is the commit subject.
			subject, body, _ := strings.Cut(rec.Text, "\n")
			switch {
			case subject == "" || len(subject) > 60:
				t.Errorf("subject %q: want 1 to 60 characters", subject)
			case strings.HasSuffix(subject, "."):
				t.Errorf("subject %q ends with a period", subject)
			case !strings.HasPrefix(body, "\n") || strings.TrimSpace(body) == "":
				t.Errorf("text %q: want a subject, a blank line and a report", rec.Text)
			}

			var paths []string
			for _, f := range rec.Files {
				paths = append(paths, f.Path)
				if f.Deleted || !bytes.HasSuffix(f.Content, []byte("\n")) {
					t.Errorf("%s: want a written file ending in a newline", f.Path)
				}
			}
			if !slices.Equal(paths, tt.files) {
				t.Errorf("files %q, want %q", paths, tt.files)
			}
		})
	}
}

// TestExamplePlan checks the plan the plan recording writes: the four tasks
// the implement recordings exist for, all unchecked, and tasks that may run
// at the same time write disjoint files.
func TestExamplePlan(t *testing.T) {
	fsys := exampleRepo(t, "plan.yaml")
	const planFile = ".codemachine/plan.md"
	plan, err := workflow.ParsePlan(planFile, fsys[planFile].Data)
	if err != nil {
		t.Fatalf("the recorded plan does not parse: %v", err)
	}
	want := []struct {
		id, title string
		after     []string
	}{
		{"T1", "Create the module layout", nil},
		{"T2", "Store todos in a JSON file", []string{"T1"}},
		{"T3", "Parse the command line", []string{"T1"}},
		{"T4", "Wire the commands together", []string{"T2", "T3"}},
	}
	if len(plan.Tasks) != len(want) {
		t.Fatalf("the plan has %d tasks, want %d", len(plan.Tasks), len(want))
	}
	for i, w := range want {
		task := plan.Tasks[i]
		if task.ID != w.id || task.Title != w.title || !slices.Equal(task.After, w.after) || task.Done {
			t.Errorf("task %d = %s %q after %q done %v, want %s %q after %q unchecked",
				i+1, task.ID, task.Title, task.After, task.Done, w.id, w.title, w.after)
		}
		if !strings.Contains(task.Body, "Done when:") {
			t.Errorf("task %s has no acceptance criteria (Done when:)", task.ID)
		}
	}
	if r := plan.Runnable(); len(r) != 1 || r[0].ID != "T1" {
		t.Errorf("runnable at first: %v, want only T1", r)
	}

	// Which tasks may run at the same time follows from the plan; each task's
	// files come from its recording.
	deps := map[string][]string{}
	files := map[string][]string{}
	for _, task := range plan.Tasks {
		deps[task.ID] = task.After
		for _, f := range loadRecording(t, "implement/"+task.ID+".yaml").Files {
			files[task.ID] = append(files[task.ID], f.Path)
		}
	}
	var dependsOn func(a, b string) bool
	dependsOn = func(a, b string) bool {
		for _, d := range deps[a] {
			if d == b || dependsOn(d, b) {
				return true
			}
		}
		return false
	}
	for i, a := range plan.Tasks {
		for _, b := range plan.Tasks[i+1:] {
			if dependsOn(a.ID, b.ID) || dependsOn(b.ID, a.ID) {
				continue
			}
			for _, f := range files[a.ID] {
				if slices.Contains(files[b.ID], f) {
					t.Errorf("%s and %s may run in parallel but both write %s", a.ID, b.ID, f)
				}
			}
		}
	}
}

// TestExampleTasksBuild applies the task recordings in each order the plan
// allows (T2 and T3 run in parallel and may land either way round) and runs
// the implement step's check after every task, as the demo does.
func TestExampleTasksBuild(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the example's program: %v", err)
	}
	orders := [][]string{{"T1", "T2", "T3", "T4"}, {"T1", "T3", "T2", "T4"}}

	// Both orders pass through the same trees when T2 and T3 are disjoint;
	// build each distinct tree once.
	type state struct {
		name string
		tree fstest.MapFS
	}
	var states []state
	seen := map[string]bool{}
	for _, order := range orders {
		tree := fstest.MapFS{}
		for i, task := range order {
			applyRecording(t, tree, loadRecording(t, "implement/"+task+".yaml"))
			key := treeHash(tree)
			if seen[key] {
				continue
			}
			seen[key] = true
			states = append(states, state{name: strings.Join(order[:i+1], "+"), tree: clone(tree)})
		}
	}

	for _, s := range states {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, f := range s.tree {
				p := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
					t.Fatal(err)
				}
			}
			for _, args := range [][]string{{"vet", "./..."}, {"test", "./..."}} {
				cmd := exec.Command(goTool, args...)
				cmd.Dir = dir
				// Offline and self-contained: the program uses only the
				// standard library, with the toolchain that runs this test.
				cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "GOPROXY=off", "GOWORK=off")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("go %s after %s: %v\n%s", strings.Join(args, " "), s.name, err, out)
				}
			}
		})
	}
}

// treeHash identifies a tree by its paths, modes and contents.
func treeHash(tree fstest.MapFS) string {
	names := make([]string, 0, len(tree))
	for name := range tree {
		names = append(names, name)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, name := range names {
		f := tree[name]
		h.Write([]byte(name + "\x00" + f.Mode.String() + "\x00" + strconv.Itoa(len(f.Data)) + "\x00"))
		h.Write(f.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func clone(tree fstest.MapFS) fstest.MapFS {
	c := make(fstest.MapFS, len(tree))
	for name, f := range tree {
		c[name] = &fstest.MapFile{Data: f.Data, Mode: f.Mode}
	}
	return c
}

func TestExampleWorkflowLoads(t *testing.T) {
	p, err := workflow.LoadProject(exampleRepo(t), agents.WorkflowEngines())
	if err != nil {
		t.Fatalf("LoadProject: %v", err)
	}
	w := p.Workflow
	if w.Version != 1 || w.Name != "spec-to-code" {
		t.Errorf("version %d name %q, want 1 spec-to-code", w.Version, w.Name)
	}
	if want := (workflow.Defaults{Engine: "auto", Timeout: 30 * time.Minute, Retries: 2}); w.Defaults != want {
		t.Errorf("defaults %+v, want %+v", w.Defaults, want)
	}

	spec, arch, plan := ".codemachine/spec.md", ".codemachine/architecture.md", ".codemachine/plan.md"
	wantSteps := []workflow.Step{
		{ID: "architecture", Agent: "architect", Inputs: []string{spec}, Outputs: []string{arch}},
		{ID: "plan", Agent: "planner", Inputs: []string{spec, arch}, Outputs: []string{plan}},
		{ID: "implement", Agent: "coder", Inputs: []string{arch}, Foreach: plan, Parallel: 2,
			Check: "go vet ./... && go test ./...", Attempts: 3, Review: true, Reviewer: "task-reviewer"},
		{ID: "review", Agent: "reviewer", Needs: []string{"implement"}, Outputs: []string{".codemachine/review.md"}},
	}
	if len(w.Steps) != len(wantSteps) {
		t.Fatalf("%d steps, want %d", len(w.Steps), len(wantSteps))
	}
	for i, want := range wantSteps {
		got := w.Steps[i]
		if got.ID != want.ID || got.Agent != want.Agent || got.Run != "" ||
			!slices.Equal(got.Inputs, want.Inputs) || !slices.Equal(got.Outputs, want.Outputs) ||
			!slices.Equal(got.Needs, want.Needs) || got.Foreach != want.Foreach || got.Parallel != want.Parallel ||
			got.Check != want.Check || got.Attempts != want.Attempts || got.Review != want.Review ||
			got.Reviewer != want.Reviewer || got.Engine != "" || got.Model != "" {
			t.Errorf("step %d = %+v, want %+v", i+1, *got, want)
		}
	}

	g, err := w.Graph()
	if err != nil {
		t.Fatalf("Graph: %v", err)
	}
	var order []string
	for _, s := range g.Order() {
		order = append(order, s.ID)
	}
	if want := []string{"architecture", "plan", "implement", "review"}; !slices.Equal(order, want) {
		t.Errorf("step order %q, want %q", order, want)
	}
	// implement depends on plan through its foreach file and on architecture
	// through its input, without saying so: the implicit edges must be there.
	for id, want := range map[string][]string{
		"architecture": nil,
		"plan":         {"architecture"},
		"implement":    {"architecture", "plan"},
		"review":       {"implement"},
	} {
		if got := g.Upstream(id); !slices.Equal(got, want) {
			t.Errorf("upstream of %s: %q, want %q", id, got, want)
		}
	}

	// The architecture is talked through when there is a terminal, and
	// done by the agent alone when there is none: never needs-you.
	if a := w.Steps[0]; !a.InteractiveAuto || a.Interactive {
		t.Errorf("architecture: interactive %v, auto %v; want auto", a.Interactive, a.InteractiveAuto)
	}
	wantModels := map[string]string{"architect": "opus", "planner": "sonnet", "coder": "sonnet", "reviewer": "sonnet",
		"task-reviewer": "sonnet"}
	if len(p.Agents) != len(wantModels) {
		t.Errorf("%d agents, want %d", len(p.Agents), len(wantModels))
	}
	for name, model := range wantModels {
		a := p.Agents[name]
		switch {
		case a == nil:
			t.Errorf("agent %s is missing", name)
		case a.Name != name || a.Model != model || a.Engine != "" || a.Description == "":
			t.Errorf("agent %s: name %q model %q engine %q description %q; want model %s, no engine, a description",
				name, a.Name, a.Model, a.Engine, a.Description, model)
		}
	}

	// No plan is written yet, which is not an error.
	if len(p.Plans) != 0 || len(p.PlanErrs) != 0 {
		t.Errorf("plans %v, plan errors %v; want none before the plan step", p.Plans, p.PlanErrs)
	}

	// Each step that declares outputs has a recording that writes them.
	for _, s := range w.Steps {
		if len(s.Outputs) == 0 {
			continue
		}
		var wrote []string
		for _, f := range loadRecording(t, s.ID+".yaml").Files {
			wrote = append(wrote, f.Path)
		}
		for _, out := range s.Outputs {
			if !slices.Contains(wrote, out) {
				t.Errorf("step %s must write %s, but its recording writes %q", s.ID, out, wrote)
			}
		}
	}
}

func TestExampleWorkflowLoadsWithRecordedPlan(t *testing.T) {
	p, err := workflow.LoadProject(exampleRepo(t, "architecture.yaml", "plan.yaml"), agents.WorkflowEngines())
	if err != nil {
		t.Fatalf("LoadProject: %v", err)
	}
	if errs := p.PlanErrs[".codemachine/plan.md"]; len(errs) != 0 {
		t.Fatalf("plan errors: %v", errs)
	}
	plan := p.Plans[".codemachine/plan.md"]
	if plan == nil {
		t.Fatalf("LoadProject did not load the recorded plan; plans: %v", p.Plans)
	}
	if len(plan.Tasks) != 4 {
		t.Errorf("the plan has %d tasks, want 4", len(plan.Tasks))
	}
}

// TestExamplePromptsRender renders each agent the way its step would, on
// the repository as it is when the step runs, and checks that the prompt
// carries what the agent must see.
func TestExamplePromptsRender(t *testing.T) {
	p, err := workflow.LoadProject(exampleRepo(t), agents.WorkflowEngines())
	if err != nil {
		t.Fatalf("LoadProject: %v", err)
	}
	steps := map[string]*workflow.Step{}
	for _, s := range p.Workflow.Steps {
		steps[s.ID] = s
	}
	task := &workflow.TaskInfo{ID: "T2", Title: "Store todos in a JSON file", Body: "Files: store/store.go."}
	allTasks := []string{"implement/T1.yaml", "implement/T2.yaml", "implement/T3.yaml", "implement/T4.yaml"}

	tests := []struct {
		name       string
		step       string
		reviewer   bool     // render the step's reviewer agent, not its agent
		recordings []string // applied before the step runs
		task       *workflow.TaskInfo
		check      string
		feedback   string
		want       []string // substrings of the prompt
		notWant    []string
	}{
		{
			name: "first architecture", step: "architecture",
			want:    []string{"# todo: a to-do list on the command line", "## What to write"},
			notWant: []string{"## The current architecture", "rejected"},
		},
		{
			name: "architecture after a spec edit", step: "architecture", recordings: []string{"architecture.yaml"},
			want: []string{"## The current architecture", "# Architecture: todo"},
		},
		{
			name: "architecture after a rejection", step: "architecture", feedback: "Name the packages.",
			want: []string{"## A reviewer rejected the last attempt", "Name the packages."},
		},
		{
			name: "plan", step: "plan", recordings: []string{"architecture.yaml"},
			want:    []string{"# todo: a to-do list on the command line", "# Architecture: todo", "## The plan.md format"},
			notWant: []string{"## The current plan"},
		},
		{
			name: "plan again", step: "plan", recordings: []string{"architecture.yaml", "plan.yaml"},
			want: []string{"## The current plan", "- [ ] T4: Wire the commands together (after: T2, T3)"},
		},
		{
			name: "implement", step: "implement", task: task,
			recordings: []string{"architecture.yaml", "plan.yaml", "implement/T1.yaml"},
			want:       []string{"## Your task: T2: Store todos in a JSON file", "Files: store/store.go.", "# Architecture: todo"},
			notWant:    []string{"the check failed", "rejected"},
		},
		{
			name: "implement retry", step: "implement", task: task, check: "--- FAIL: TestLoad (0.00s)",
			recordings: []string{"architecture.yaml", "plan.yaml", "implement/T1.yaml"},
			want:       []string{"## Attempt 2: the check failed on your previous attempt", "--- FAIL: TestLoad (0.00s)"},
		},
		{
			name: "task reviewer", step: "implement", reviewer: true, task: task,
			recordings: []string{"architecture.yaml", "plan.yaml", "implement/T1.yaml", "implement/T2.yaml"},
			want:       []string{"## The task: T2: Store todos in a JSON file", "Files: store/store.go.", "# Architecture: todo"},
		},
		{
			name: "review", step: "review",
			recordings: append([]string{"architecture.yaml", "plan.yaml"}, allTasks...),
			want: []string{"<!-- main.go -->", "<!-- store/store.go -->", "<!-- cli/cli_test.go -->",
				"- [ ] T3: Parse the command line (after: T1)", "Verdict: ready | needs work"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := steps[tt.step]
			agent := p.Agents[s.Agent]
			if tt.reviewer {
				agent = p.Agents[s.Reviewer]
			}
			data := workflow.PromptData{
				Step:        workflow.StepInfo{ID: s.ID, Inputs: s.Inputs, Outputs: s.Outputs},
				Task:        tt.task,
				Feedback:    tt.feedback,
				CheckOutput: tt.check,
				Attempt:     1,
				Repo:        "/home/user/todo",
			}
			if tt.check != "" {
				data.Attempt = 2
			}
			prompt, err := agent.Render(exampleRepo(t, tt.recordings...), data)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(prompt, w) {
					t.Errorf("the prompt lacks %q:\n%s", w, prompt)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(prompt, w) {
					t.Errorf("the prompt contains %q:\n%s", w, prompt)
				}
			}
			if strings.Contains(prompt, "<no value>") {
				t.Errorf("the prompt shows a missing value:\n%s", prompt)
			}
		})
	}
}
