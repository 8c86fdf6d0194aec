package orchestrator

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/internal/testenv"
)

// directEngine runs its engine without the sandbox launcher when direct
// is set: the baseline of what the launcher itself costs.
type directEngine struct {
	agents.Engine
	direct *atomic.Bool
}

func (d directEngine) Run(ctx context.Context, req agents.Request) (agents.Result, error) {
	if d.direct.Load() {
		req.Sandbox = nil
	}
	return d.Engine.Run(ctx, req)
}

// BenchmarkSandboxOverhead measures the sandbox's target (issue 10,
// docs/benchmarks.md): a step with the sandbox on (Landlock, hidden sockets, the
// engine's private config dir) against the same step with sandbox: off,
// alternating in the same run on the same repository, whole runs timed
// (the sandbox's cost is in starting the step's process). The step is a
// run: step that rewrites one file. "direct" is the same off step started
// without the launcher at all (no subreaper): what the launcher costs by
// itself, for the record.
//
// Metrics: on-ms/op, off-ms/op, direct-ms/op, x-off (on/off; target
// <= 1.1).
func BenchmarkSandboxOverhead(b *testing.B) {
	if st := agents.ProbeSandbox(); !st.Writes() {
		b.Skipf("no sandbox here: %s", st.Summary())
	}
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) { benchSandboxOverhead(b, n) })
	}
}

func benchSandboxOverhead(b *testing.B, n int) {
	home := b.TempDir()
	for _, kv := range testenv.GitEnv(home) {
		k, v, _ := strings.Cut(kv, "=")
		b.Setenv(k, v)
	}
	dir := testenv.GenRepo(b, n, map[string]string{
		".codemachine/workflow.yaml": `version: 1
steps:
  - id: on
    run: 'echo "$CODEMACHINE_RUN" > out/on.txt'
    outputs: [out/on.txt]
  - id: off
    run: 'echo "$CODEMACHINE_RUN" > out/off.txt'
    outputs: [out/off.txt]
    sandbox: off
`,
		"out/on.txt":  "\n",
		"out/off.txt": "\n",
	})
	var direct atomic.Bool
	o, err := New(Config{Dir: dir, Environ: os.Environ(), NewEngine: func(name string) (agents.Engine, error) {
		e, err := agents.New(name)
		return directEngine{Engine: e, direct: &direct}, err
	}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	step := func(id string, withoutLauncher bool) time.Duration {
		direct.Store(withoutLauncher)
		start := time.Now()
		s, err := o.Run(ctx, RunOptions{Steps: []string{id}, Force: true})
		elapsed := time.Since(start)
		if err != nil || len(s.Landed) != 1 {
			b.Fatalf("run %s: landed %v, err %v", id, s, err)
		}
		return elapsed
	}
	// The first runs pay the pooled worktree's checkout and the probe.
	step("on", false)
	step("off", false)
	var on, off, none time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		on += step("on", false)
		off += step("off", false)
		none += step("off", true)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(on), "on-ms/op")
	b.ReportMetric(ms(off), "off-ms/op")
	b.ReportMetric(ms(none), "direct-ms/op")
	b.ReportMetric(ms(on)/ms(off), "x-off")
}
