package orchestrator

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/internal/testenv"
)

// walkStepCommits is stepCommits without the index: the plain walk.
// landCommit commits msg in dir as a landing does: with a change to
// state.yaml (a step commit always has one).
func landCommit(t *testing.T, dir, msg string) {
	t.Helper()
	state := filepath.Join(dir, ".codemachine", "state.yaml")
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(state)
	if err := os.WriteFile(state, append(old, "# landed\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, dir, "add", ".codemachine/state.yaml")
	testenv.Git(t, dir, "commit", "-q", "-m", msg)
}

func walkStepCommits(t *testing.T, o *Orchestrator, rev string, state *gitstate.State) map[string]string {
	t.Helper()
	f := newCommitFinder(state)
	if _, err := f.walk(o, rev, 0, nil); err != nil {
		t.Fatal(err)
	}
	return f.m
}

// TestStepCommitsIndex: with the local index, stepCommits answers what the
// plain walk does, whether the index is at the tip, behind it, stopped
// short of what is wanted, or off the history (a reset branch).
func TestStepCommitsIndex(t *testing.T) {
	dir := newRepo(t, map[string]string{"a": "a"})
	o := newTestOrchestrator(t, dir, nil, nil)
	o.repo.LocalDir() // a repository codemachine works in keeps its caches
	commit := func(step, task string) string {
		msg := "work\n\nCodemachine-Step: " + step
		if task != "" {
			msg += "\nCodemachine-Task: " + task
		}
		if step != "a" {
			msg += "\nCodemachine-By: agent " + step + task
		}
		landCommit(t, dir, msg)
		return testenv.Git(t, dir, "rev-parse", "HEAD")
	}
	user := func() { testenv.Git(t, dir, "commit", "-q", "--allow-empty", "-m", "a user's commit") }
	state := func(steps map[string][]string) *gitstate.State {
		s := &gitstate.State{Steps: map[string]*gitstate.StepRecord{}}
		for id, tasks := range steps {
			sr := &gitstate.StepRecord{Tasks: map[string]*gitstate.RunRecord{}}
			for _, tid := range tasks {
				sr.Tasks[tid] = &gitstate.RunRecord{}
			}
			s.Steps[id] = sr
		}
		return s
	}
	check := func(name string, st *gitstate.State) {
		t.Helper()
		head := testenv.Git(t, dir, "rev-parse", "HEAD")
		want := walkStepCommits(t, o, head, st)
		got, by, err := o.stepCommitsBy(head, st)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s: got %v\nwant %v", name, got, want)
		}
		// Who did each commit's work, from the index or the walk, is what
		// reading the commit says.
		for key, hash := range got {
			if who, ok := by[hash]; !ok || who != o.whoDid(hash) {
				t.Errorf("%s: %s's commit by %q (known: %v), its trailers say %q", name, key, who, ok, o.whoDid(hash))
			}
		}
		idx := o.readCommitIndex()
		if idx == nil || idx.Tip != head {
			t.Errorf("%s: the index is not at the tip: %+v", name, idx)
		}
	}
	commit("a", "")
	user()
	commit("b", "T1")
	commit("b", "T2")
	check("no index, everything wanted", state(map[string][]string{"a": nil, "b": {"T1", "T2"}}))
	check("index at the tip", state(map[string][]string{"a": nil, "b": {"T1", "T2"}}))
	check("index at the tip, no state", nil)
	commit("a", "")
	user()
	commit("c", "")
	check("index behind the tip", state(map[string][]string{"a": nil, "b": {"T1", "T2"}, "c": nil}))
	commit("d", "")
	check("only the newest wanted: the walk stops early", state(map[string][]string{"d": nil}))
	commit("e", "")
	check("index stopped short of what is wanted", state(map[string][]string{"a": nil, "b": {"T1"}, "e": nil}))
	check("index stopped short, no state", nil)
	testenv.Git(t, dir, "reset", "-q", "--hard", "HEAD~4")
	commit("f", "")
	check("index off the history", state(map[string][]string{"a": nil, "b": {"T1", "T2"}, "f": nil}))
	if err := os.WriteFile(filepath.Join(dir, ".git", "codemachine", stepCommitsFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	check("unreadable index", state(map[string][]string{"a": nil, "f": nil}))

	// The index at the tip is what is read: no commit is walked.
	head := testenv.Git(t, dir, "rev-parse", "HEAD")
	o.writeCommitIndex(&commitIndex{Version: commitIndexVersion, Tip: head, Walked: 1,
		Entries: []indexEntry{{Key: "f", Hash: "from-the-index", Depth: 0, By: "indexed"}}})
	got, by, err := o.stepCommitsBy(head, state(map[string][]string{"f": nil}))
	if err != nil || got["f"] != "from-the-index" || by["from-the-index"] != "indexed" {
		t.Errorf("with the index at the tip: %v, %v, %v", got, by, err)
	}
	// An index of an earlier version (no By) is read as none: walked again.
	o.writeCommitIndex(&commitIndex{Tip: head, Walked: 1, Entries: []indexEntry{{Key: "f", Hash: "from-the-index", Depth: 0}}})
	if got, err := o.stepCommits(head, state(map[string][]string{"f": nil})); err != nil || got["f"] != head {
		t.Errorf("with an index of version 0 at the tip: %v, %v (want the walk's %s)", got, err, head)
	}
}

// TestStepCommitsShallow: in a shallow clone the walk ends at the clone's
// edge, and keeps no index: once a fetch --unshallow adds the history
// behind it, the step commits there are found.
func TestStepCommitsShallow(t *testing.T) {
	src := newRepo(t, map[string]string{"a": "a"})
	for _, step := range []string{"a", "b", "c"} {
		landCommit(t, src, "work\n\nCodemachine-Step: "+step)
	}
	dir := filepath.Join(t.TempDir(), "clone")
	testenv.Git(t, src, "clone", "-q", "--depth", "2", "file://"+src, dir)
	o := newTestOrchestrator(t, dir, nil, nil)
	st := &gitstate.State{Steps: map[string]*gitstate.StepRecord{"a": {}, "b": {}, "c": {}}}
	got, err := o.stepCommits("HEAD", st)
	if err != nil {
		t.Fatalf("in a shallow clone: %v", err)
	}
	if got["a"] != "" || got["b"] == "" || got["c"] == "" {
		t.Errorf("in a shallow clone: %v, want b and c (a is behind the edge)", got)
	}
	testenv.Git(t, dir, "fetch", "-q", "--unshallow")
	if got, err := o.stepCommits("HEAD", st); err != nil || got["a"] == "" {
		t.Errorf("after fetch --unshallow: %v, %v, want a's commit too", got, err)
	}
}

// TestCommitIndexFormat: an index comes back from its file as it was,
// keys and names with tabs, line breaks and quotes included; a file of
// another version, cut short, or with a line of another shape is none.
func TestCommitIndexFormat(t *testing.T) {
	tip, next := strings.Repeat("a", 40), strings.Repeat("b", 40)
	idx := &commitIndex{Version: commitIndexVersion, Tip: tip, Next: next, Walked: 7, Entries: []indexEntry{
		{Key: "build", Hash: tip, Depth: 0, By: "agent"},
		{Key: "fan/task\tone\n\"two\"", Hash: next, Depth: 3, By: "Zoë <z@example.com>\t\\"},
		{Key: "plain", Hash: next, Depth: 6},
	}}
	data := idx.encode()
	if got := parseCommitIndex(data); !reflect.DeepEqual(got, idx) {
		t.Fatalf("round trip: %+v\nwant %+v", got, idx)
	}
	empty := &commitIndex{Version: commitIndexVersion, Tip: tip, Walked: 1}
	if got := parseCommitIndex(empty.encode()); !reflect.DeepEqual(got, empty) {
		t.Fatalf("no entries, no next: %+v", got)
	}
	head, _, _ := strings.Cut(string(data), "\n")
	for name, text := range map[string]string{
		"empty":          "",
		"JSON":           `{"version":2,"tip":"` + tip + `","entries":[],"walked":1}`,
		"cut short":      string(data[:len(data)-1]),
		"header only":    head,
		"no header":      strings.TrimPrefix(string(data), commitIndexHeader),
		"no tip":         commitIndexHeader + "3\t\t1\t\n",
		"walked not int": commitIndexHeader + "3\t" + tip + "\tx\t\n",
		"three fields":   head + "\n0\t" + tip + "\t\"k\"\n",
		"depth not int":  head + "\nx\t" + tip + "\t\"k\"\t\"\"\n",
		"negative depth": head + "\n-1\t" + tip + "\t\"k\"\t\"\"\n",
		"negative walk":  commitIndexHeader + "3\t" + tip + "\t-1\t\n",
		"key unquoted":   head + "\n0\t" + tip + "\tk\t\"\"\n",
		"no hash":        head + "\n0\t\t\"k\"\t\"\"\n",
	} {
		if got := parseCommitIndex([]byte(text)); got != nil {
			t.Errorf("%s: parsed as %+v", name, got)
		}
	}
}

// TestRunWithoutDoneTasksSkipsTheCommitIndex: at its end a run looks for
// stale done tasks, which needs the step commits' walk; a workflow with no
// done task in a plan has none to look for, so the run neither walks the
// history nor rewrites the local index (a new file per run), and status
// still finds the step's commit by walking from the index's old tip.
func TestRunWithoutDoneTasksSkipsTheCommitIndex(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": `version: 1
steps:
  - id: one
    run: 'true'
    inputs: [in.txt]
    outputs: [out/one.txt]
`,
		"in.txt": "1\n",
	})
	eng := fakeEngine{run: func(_ context.Context, req agents.Request) (agents.Result, error) {
		return agents.Result{}, writeOut(req, req.Step+".txt")
	}}
	o := newTestOrchestrator(t, dir, eng, nil)
	index := filepath.Join(dir, ".git", "codemachine", stepCommitsFile)
	for i := range 2 {
		s, err := o.Run(t.Context(), RunOptions{Steps: []string{"one"}, Force: i > 0})
		if err != nil || len(s.Landed) != 1 {
			t.Fatalf("run %d: %+v, %v", i, s, err)
		}
		if _, err := os.Stat(index); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("run %d wrote the step-commit index (stat: %v), with no done task to check", i, err)
		}
	}
	head := testenv.Git(t, dir, "rev-parse", "HEAD")
	commits, err := o.stepCommits(head, nil)
	if err != nil {
		t.Fatal(err)
	}
	if commits["one"] != head {
		t.Errorf("the step's commit is %q, want the tip %s", commits["one"], head)
	}
}

// TestStepCommitsNeedAStateChange: a commit with a Codemachine-Step
// trailer is the step's commit only when it records a landing in
// state.yaml (changes it against its parent); trailers written into a
// user's commit by hand, or copied with a message, do not make one.
func TestStepCommitsNeedAStateChange(t *testing.T) {
	tests := []struct {
		name  string
		make  func(t *testing.T, dir string)
		found bool
	}{
		{"trailers alone", func(t *testing.T, dir string) {
			testenv.Git(t, dir, "commit", "-q", "--allow-empty", "-m", "mine\n\nCodemachine-Step: s")
		}, false},
		{"trailers on a code change", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "code.go"), []byte("package x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			testenv.Git(t, dir, "add", "code.go")
			testenv.Git(t, dir, "commit", "-q", "-m", "mine\n\nCodemachine-Step: s")
		}, false},
		{"a landing", func(t *testing.T, dir string) { landCommit(t, dir, "work\n\nCodemachine-Step: s") }, true},
		{"a landing amended by hand", func(t *testing.T, dir string) {
			landCommit(t, dir, "work\n\nCodemachine-Step: s")
			testenv.Git(t, dir, "commit", "-q", "--amend", "-m", "reworded\n\nCodemachine-Step: s")
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newRepo(t, map[string]string{"a": "a"})
			o := newTestOrchestrator(t, dir, nil, nil)
			tt.make(t, dir)
			head := testenv.Git(t, dir, "rev-parse", "HEAD")
			got := walkStepCommits(t, o, head, nil)["s"]
			if found := got == head; found != tt.found || (!tt.found && got != "") {
				t.Errorf("step commit of s: %q, want found=%v (HEAD %s)", got, tt.found, head)
			}
		})
	}
}
