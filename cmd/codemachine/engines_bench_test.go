package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/fakellm"
	"github.com/codemachine/codemachine/internal/testenv"
)

// BenchmarkClaudeOverhead measures what codemachine adds around a real
// agent CLI (issue 3, target <= 1.2x): `codemachine run` of a one-step
// workflow with engine claude, against the same Claude Code invocation run
// directly, both against the fake model server answering the same two
// turns (write a file, then the final answer), alternating in the same
// run so that both see the same machine load. The codemachine side is the
// whole process a user starts: the lock, loading the workflow, the pooled
// worktree, the environment, Claude itself, staging, the step commit and
// landing it. Before each codemachine iteration (untimed) the branch is
// reset to the workflow commit, so the step is due again.
//
// Metrics: codemachine-ms/op, claude-ms/op, overhead-ms/op (the
// difference), x-claude (the ratio).
func BenchmarkClaudeOverhead(b *testing.B) {
	bins := testenv.RequireCLIs(b, "claude")
	bin := buildBenchBinary(b)
	script := fakellm.Script{Turns: []fakellm.Turn{
		{Text: "Writing hello.txt.", Calls: []fakellm.Call{fakellm.WriteFile{Path: "hello.txt", Content: "hello\n"}}},
		{Text: "Wrote hello.txt."},
	}}
	// Each side keeps its home across iterations, as a user's would.
	type side struct {
		home, repo string
		env        []string
	}
	newSide := func(srv *fakellm.Server) *side {
		s := &side{home: b.TempDir(), repo: testenv.GitRepo(b)}
		if err := testenv.PrepareHome("claude", s.home, srv.URL()); err != nil {
			b.Fatal(err)
		}
		env := testenv.Env("claude", s.home, srv.URL())
		for i, kv := range env {
			if strings.HasPrefix(kv, "PATH=") {
				env[i] = "PATH=" + filepath.Dir(bins["claude"]) + ":" + strings.TrimPrefix(kv, "PATH=")
			}
		}
		s.env = env
		return s
	}
	const prompt = "Write hello.txt with the line hello, then say you did."
	workflow := "version: 1\nname: bench\nsteps:\n  - id: hello\n    agent: writer\n    engine: claude\n" +
		"    model: " + testenv.Model("claude") + "\n    outputs: [hello.txt]\n"
	agent := "---\nname: writer\n---\n" + prompt + "\n"

	run := func(s *side, name string, stdin string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = s.repo, s.env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err != nil {
			b.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out.String())
		}
		return d
	}
	git := func(s *side, args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = s.repo, s.env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	withServer := func(f func(srv *fakellm.Server)) {
		srv, err := fakellm.Listen(script, fakellm.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		f(srv)
	}

	// Both sides share one server per iteration pair: its script is
	// played once per side, so each side gets its own.
	var direct, cm *side
	withServer(func(srv *fakellm.Server) { direct = newSide(srv) })
	withServer(func(srv *fakellm.Server) {
		cm = newSide(srv)
		for name, content := range map[string]string{
			".codemachine/workflow.yaml": workflow, ".codemachine/agents/writer.md": agent} {
			p := filepath.Join(cm.repo, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		git(cm, "add", "-A")
		git(cm, "commit", "-q", "-m", "workflow")
	})
	point := func(s *side, srv *fakellm.Server) {
		for i, kv := range s.env {
			if strings.HasPrefix(kv, "ANTHROPIC_BASE_URL=") {
				s.env[i] = "ANTHROPIC_BASE_URL=" + srv.URL()
			}
		}
	}
	claudeArgs := []string{"-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "bypassPermissions",
		"--model", testenv.Model("claude")}
	var tDirect, tCM time.Duration
	// One warm-up round each, untimed: the first runs pay for cold
	// caches and the worktree pool's one checkout.
	for i := -1; i < b.N; i++ {
		if i == 0 {
			b.ResetTimer()
			tDirect, tCM = 0, 0
		}
		withServer(func(srv *fakellm.Server) {
			point(direct, srv)
			tDirect += run(direct, bins["claude"], prompt, claudeArgs...)
		})
		b.StopTimer()
		_ = os.Remove(filepath.Join(direct.repo, "hello.txt"))
		if i >= 0 {
			git(cm, "reset", "-q", "--hard", "HEAD~1")
		}
		b.StartTimer()
		withServer(func(srv *fakellm.Server) {
			point(cm, srv)
			tCM += run(cm, bin, "", "run", "-q")
		})
	}
	b.StopTimer()
	if _, err := os.Stat(filepath.Join(cm.repo, "hello.txt")); err != nil {
		b.Fatalf("the step did not land: %v", err)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tCM.Milliseconds())/n, "codemachine-ms/op")
	b.ReportMetric(float64(tDirect.Milliseconds())/n, "claude-ms/op")
	b.ReportMetric(float64((tCM-tDirect).Milliseconds())/n, "overhead-ms/op")
	b.ReportMetric(float64(tCM)/float64(tDirect), "x-claude")
}
