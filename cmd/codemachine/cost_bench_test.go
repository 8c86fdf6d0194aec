package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/internal/testenv"
	"github.com/codemachine/codemachine/workflow"
)

// unitCosts is what state.yaml records of the units (steps, and the tasks
// of foreach steps) that ran since a sequence number: how many, their
// tokens (in and out) and dollars, all attempts, and the dollars of one
// attempt each (a record's cost over its attempts: exact for a replay,
// whose every attempt replays the same recording). runTokens and runUSD
// are what the run itself reported spending (run --json): every agent it
// ran, the reviewer agents' runs included, which no record holds.
type unitCosts struct {
	units     int
	tokens    int64
	usd       float64
	onceUSD   float64
	runTokens int64
	runUSD    float64
}

// costsSince sums the records of state that landed after seq (0: every
// record). A foreach step's own record repeats its latest task's, so only
// its tasks count.
func costsSince(state *gitstate.State, seq int64) unitCosts {
	var c unitCosts
	add := func(r *gitstate.RunRecord) {
		if r.Seq > seq && !r.Skipped {
			c.units++
			c.tokens += r.TokensIn + r.TokensOut
			c.usd += r.CostUSD
			c.onceUSD += r.CostUSD / float64(max(r.Attempts, 1))
		}
	}
	for _, sr := range state.Steps {
		if sr.Tasks == nil {
			add(&sr.RunRecord)
			continue
		}
		for _, tr := range sr.Tasks {
			add(tr)
		}
	}
	return c
}

// BenchmarkExampleCost is the cost side of content-addressed staleness, on
// the example workflow (`codemachine init`) replayed from its recordings
// (`run --engine replay`: every unit reports the tokens and dollars its
// recording holds). It runs the whole workflow, steers one task (T2
// unchecked in plan.md and committed, as `make demo` does), runs the
// workflow again, and reports what each run spent next to what running
// every unit again would cost: from state.yaml, whose records sum each
// unit's attempts, and from the runs' own totals (run --json), which also
// count the task reviewer's runs (review: task-reviewer).
//
// Metrics: full-usd, full-tokens, full-units (the first run's records);
// steer-usd, steer-once-usd (one attempt per unit), steer-tokens,
// steer-units (the records of the run after the steer); rerun-all-usd
// (every unit of the workflow once, at its recorded cost: what a tool
// without staleness tracking spends on any change); steer/rerun-all and
// steer-once/rerun-all (fractions of the dollars); full-run-usd,
// full-run-tokens, steer-run-usd, steer-run-tokens and steer-run/full-run
// (the runs' own totals, reviewers included).
func BenchmarkExampleCost(b *testing.B) {
	bin := buildBenchBinary(b)
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		b.Fatalf("go env GOCACHE: %v", err)
	}
	var full, steer, all unitCosts
	for i := 0; i < b.N; i++ {
		full, steer, all = exampleCosts(b, bin, strings.TrimSpace(string(gocache)))
	}
	b.ReportMetric(full.usd, "full-usd")
	b.ReportMetric(float64(full.tokens), "full-tokens")
	b.ReportMetric(float64(full.units), "full-units")
	b.ReportMetric(steer.usd, "steer-usd")
	b.ReportMetric(steer.onceUSD, "steer-once-usd")
	b.ReportMetric(float64(steer.tokens), "steer-tokens")
	b.ReportMetric(float64(steer.units), "steer-units")
	b.ReportMetric(all.onceUSD, "rerun-all-usd")
	b.ReportMetric(steer.usd/all.onceUSD, "steer/rerun-all")
	b.ReportMetric(steer.onceUSD/all.onceUSD, "steer-once/rerun-all")
	b.ReportMetric(full.runUSD, "full-run-usd")
	b.ReportMetric(float64(full.runTokens), "full-run-tokens")
	b.ReportMetric(steer.runUSD, "steer-run-usd")
	b.ReportMetric(float64(steer.runTokens), "steer-run-tokens")
	b.ReportMetric(steer.runUSD/full.runUSD, "steer-run/full-run")
}

// exampleCosts makes a scratch repository with the example workflow and
// returns what the full run, the run after the steer, and every unit
// again cost.
func exampleCosts(b *testing.B, bin, gocache string) (full, steer, all unitCosts) {
	b.Helper()
	home := b.TempDir()
	dir := filepath.Join(b.TempDir(), "repo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	env := append(testenv.GitEnv(home), "NO_COLOR=1", "GOCACHE="+gocache)
	run := func(name string, args ...string) string {
		b.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("%s %v: %v\n%s%s", name, args, err, out, stderr.String())
		}
		return string(out)
	}
	state := func() *gitstate.State {
		b.Helper()
		data, err := os.ReadFile(filepath.Join(dir, workflow.StateFile))
		if err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		st, err := gitstate.ParseState(workflow.StateFile, data)
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	run("git", "init", "-q", "-b", "main")
	run(bin, "init")
	run("git", "add", ".codemachine")
	run("git", "commit", "-qm", "spec: todo CLI")
	fullRun := runSpent(b, run(bin, "run", "--json", "--engine", "replay"))
	first := state()
	full = costsSince(first, 0)
	full.runTokens, full.runUSD = fullRun.TokensIn+fullRun.TokensOut, fullRun.CostUSD

	plan := filepath.Join(dir, ".codemachine", "plan.md")
	text, err := os.ReadFile(plan)
	if err != nil {
		b.Fatal(err)
	}
	steered := strings.Replace(string(text), "- [x] T2:", "- [ ] T2:", 1)
	if steered == string(text) {
		b.Fatalf("plan.md has no ticked T2:\n%s", text)
	}
	if err := os.WriteFile(plan, []byte(steered), 0o644); err != nil {
		b.Fatal(err)
	}
	run("git", "commit", "-qam", "steer: redo T2")
	steerRun := runSpent(b, run(bin, "run", "--json", "--engine", "replay"))
	second := state()
	steer = costsSince(second, first.Seq)
	steer.runTokens, steer.runUSD = steerRun.TokensIn+steerRun.TokensOut, steerRun.CostUSD
	all = costsSince(second, 0)
	if full.units == 0 || steer.units == 0 || steer.units >= full.units {
		b.Fatalf("the full run landed %d units and the run after the steer %d: want some, and fewer", full.units, steer.units)
	}
	return full, steer, all
}

// runSummary is the part of run --json the benchmark reads.
type runSummary struct {
	TokensIn  int64   `json:"tokens_in"`
	TokensOut int64   `json:"tokens_out"`
	CostUSD   float64 `json:"cost_usd"`
}

// runSpent decodes what a run reported spending from its --json output.
func runSpent(b *testing.B, out string) runSummary {
	b.Helper()
	var s runSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		b.Fatalf("run --json: %v\n%s", err, out)
	}
	if s.CostUSD <= 0 {
		b.Fatalf("run --json reports no cost:\n%s", out)
	}
	return s
}
