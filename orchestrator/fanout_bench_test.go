package orchestrator

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/internal/testenv"
	"github.com/codemachine/codemachine/workflow"
)

const fanoutWorkflow = `version: 1
name: migrate
steps:
  - id: translate
    run: fake
    foreach: {glob: "legacy/**/*.cbl"}
    parallel: 4
`

// fanoutRepo makes a repository with n legacy files under a glob fan-out,
// every task recorded as done in state.yaml (as if each had landed), and
// then one file edited and committed. It returns the repository and the
// edited file's task id.
func fanoutRepo(tb testing.TB, n int) (string, string) {
	tb.Helper()
	files := map[string]string{".codemachine/workflow.yaml": fanoutWorkflow}
	for i := range n {
		files[fmt.Sprintf("legacy/d%03d/f%05d.cbl", i/100, i)] = fmt.Sprintf("       DISPLAY 'FILE %d'.\n", i)
	}
	dir := newRepo(tb, files)
	o := newTestOrchestrator(tb, dir, fakeEngine{}, nil)
	head, err := o.repo.Head()
	if err != nil {
		tb.Fatal(err)
	}
	snap, err := o.load(head.Commit, Overrides{})
	if err != nil {
		tb.Fatal(err)
	}
	step := snap.project.Graph.Step("translate")
	fp := snap.settings["translate"].fingerprint
	sr := &gitstate.StepRecord{RunRecord: gitstate.RunRecord{Fingerprint: fp, Seq: 1, Engine: "shell"},
		Tasks: map[string]*gitstate.RunRecord{}}
	plan := snap.project.TaskPlan(step)
	if len(plan.Tasks) != n {
		tb.Fatalf("%d tasks, want %d", len(plan.Tasks), n)
	}
	for _, t := range plan.Tasks {
		sr.Tasks[t.ID] = &gitstate.RunRecord{Fingerprint: workflow.TaskFingerprint(fp, t), Seq: 1, Engine: "shell"}
	}
	state := &gitstate.State{Version: gitstate.StateVersion, Seq: 1, Steps: map[string]*gitstate.StepRecord{"translate": sr}}
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(workflow.StateFile)), o.marshalState(state), 0o644); err != nil {
		tb.Fatal(err)
	}
	edited := fmt.Sprintf("legacy/d%03d/f%05d.cbl", (n/2)/100, n/2)
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(edited)), []byte("       DISPLAY 'EDITED'.\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	testenv.Git(tb, dir, "add", "-A")
	testenv.Git(tb, dir, "commit", "-q", "-m", "all translated, then one file edited")
	return dir, edited
}

// decideDue is what status and every run do first: a fresh orchestrator
// loads the workflow at the tip, lists the fan-out's files with their blob
// ids, fingerprints every task and decides what is due. It fails unless
// exactly the edited file's task is due.
func decideDue(tb testing.TB, dir, edited string) {
	o := newTestOrchestrator(tb, dir, fakeEngine{}, nil)
	head, err := o.repo.Head()
	if err != nil {
		tb.Fatal(err)
	}
	snap, err := o.load(head.Commit, Overrides{})
	if err != nil {
		tb.Fatal(err)
	}
	if r := snap.due["translate"]; r != "1 task to do" {
		tb.Fatalf("translate: %q, want 1 task to do", r)
	}
	if todo := unchecked(snap.project.TaskPlan(snap.project.Graph.Step("translate"))); len(todo) != 1 || todo[0].ID != edited {
		tb.Fatalf("due tasks %v, want exactly %s", todo, edited)
	}
}

// Editing one file of a glob fan-out makes exactly its task due.
func TestFanoutOneEditOneTaskDue(t *testing.T) {
	dir, edited := fanoutRepo(t, 120)
	decideDue(t, dir, edited)
}

// fanoutBenchSizes are the sizes of the fan-out target: deciding what is
// due after a one-file edit costs < 50 ms at 5,000 files, and the cost per
// file stays flat from 500 to 5,000.
var fanoutBenchSizes = []int{500, 5000}

// BenchmarkFanoutDue measures deciding what is due in a glob fan-out over
// n files after a one-file edit (decideDue: a fresh orchestrator, as a
// status or a run starts), against git listing the same files with their
// blob ids (`git ls-tree -r HEAD legacy/`: the least that any decision
// over the files' contents needs) in the same run, alternating.
//
// Metrics: ms/decide (wall), cpu-ms/decide (codemachine's CPU time, which
// a loaded machine's neighbours disturb less) and us/file, git-ms (the
// baseline), x-git (the ratio of the wall times).
func BenchmarkFanoutDue(b *testing.B) {
	for _, n := range fanoutBenchSizes {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			dir, edited := fanoutRepo(b, n)
			decideDue(b, dir, edited) // warm the page cache like a second status
			var cm, git, cpu time.Duration
			b.ResetTimer()
			for range b.N {
				self0, _ := cpuTimes(b)
				start := time.Now()
				decideDue(b, dir, edited)
				cm += time.Since(start)
				self1, _ := cpuTimes(b)
				cpu += self1 - self0
				b.StopTimer()
				start = time.Now()
				testenv.Git(b, dir, "ls-tree", "-r", "HEAD", "legacy/")
				git += time.Since(start)
				b.StartTimer()
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(ms(cm), "ms/decide")
			b.ReportMetric(ms(cpu), "cpu-ms/decide")
			b.ReportMetric(ms(cm)*1000/float64(n), "us/file")
			b.ReportMetric(ms(git), "git-ms")
			b.ReportMetric(ms(cm)/ms(git), "x-git")
		})
	}
}
