package agents

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStreamsGolden feeds real event streams of the four CLIs (captured
// against the fake model server: successes, API errors, retries given up,
// malformed responses, unknown sessions, runs cut off) through each
// engine's parser and classification, and compares what the engine
// concludes with testdata/streams/*.golden.
func TestStreamsGolden(t *testing.T) {
	tests := []struct {
		name   string // testdata/streams/<name>.stdout.jsonl (+ .stderr)
		exit   int
		signal syscall.Signal
		resume string
	}{
		{name: "claude-edit-and-commit"},
		{name: "claude-error-400", exit: 1},
		{name: "claude-403", exit: 1},
		{name: "claude-malformedall", exit: 1},
		{name: "claude-badresume", exit: 1, resume: "0b6c1c43-3f4e-4a5e-9d43-2c5d2c3e1a11"},
		{name: "claude-hang", exit: 143},
		{name: "claude-garbage"},
		{name: "claude-noresult"},
		{name: "codex-edit-and-commit"},
		{name: "codex-error-400", exit: 1},
		{name: "codex-401", exit: 1},
		{name: "codex-429all", exit: 1},
		{name: "codex-500all", exit: 1},
		{name: "codex-malformed1"},
		{name: "codex-badresume", exit: 1, resume: "0b6c1c43-3f4e-4a5e-9d43-2c5d2c3e1a11"},
		{name: "codex-hang", exit: 128 + 15, signal: syscall.SIGTERM},
		{name: "gemini-edit-and-commit"},
		{name: "gemini-error-400", exit: 144},
		{name: "gemini-401", exit: 145},
		{name: "gemini-malformedall", exit: 1},
		{name: "gemini-badresume", exit: 42, resume: "0b6c1c43-3f4e-4a5e-9d43-2c5d2c3e1a11"},
		{name: "gemini-hang"},
		{name: "opencode-edit-and-commit"},
		{name: "opencode-error-400", exit: 1},
		{name: "opencode-401", exit: 1},
		{name: "opencode-429all", exit: 1},
		{name: "opencode-malformedall", exit: 1},
		{name: "opencode-refused", exit: 1},
		{name: "opencode-badresume", exit: 1, resume: "ses_df25a40e5ffeRu5qb7vGiUcIjW"},
		{name: "opencode-toolcalls-end"},
		{name: "opencode-cost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			engineName, _, _ := strings.Cut(tt.name, "-")
			eng, err := New(engineName)
			if err != nil {
				t.Fatal(err)
			}
			e := eng.(*cliEngine)
			req := Request{Resume: tt.resume, Prompt: "p"}
			st := e.newStream(req, nil)
			var lines []string
			feed := func(file string, handle func([]byte)) {
				data, err := os.ReadFile(filepath.Join("testdata", "streams", file))
				if errors.Is(err, os.ErrNotExist) {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				sc := bufio.NewScanner(bytes.NewReader(data))
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					handle(sc.Bytes())
					lines = append(lines, sc.Text())
				}
			}
			feed(tt.name+".stdout.jsonl", st.stdout)
			feed(tt.name+".stderr", st.stderr)
			out := st.outcome(tt.exit)
			pr := procResult{exitCode: tt.exit, signal: tt.signal, duration: time.Second, output: strings.Join(lines, "\n")}
			res, err := e.finish(req, out, pr)
			golden(t, filepath.Join("streams", tt.name+".golden"), []byte(describeRun(res, err, out)))
		})
	}
}

// describeRun renders what an engine concluded, for golden files.
func describeRun(res Result, err error, out outcome) string {
	var b strings.Builder
	fmt.Fprintf(&b, "text: %q\n", res.Text)
	fmt.Fprintf(&b, "tokens: %d in, %d out\n", res.TokensIn, res.TokensOut)
	if res.CostKnown {
		fmt.Fprintf(&b, "cost: $%.6f\n", res.CostUSD)
	} else {
		b.WriteString("cost: unknown\n")
	}
	fmt.Fprintf(&b, "session: %q\nmodel: %q\nexit: %d\n", res.SessionID, res.Model, res.ExitCode)
	if out.bad > 0 {
		fmt.Fprintf(&b, "malformed lines: %d, first %q\n", out.bad, out.badLine)
	}
	if out.noSession {
		b.WriteString("session unknown to the CLI\n")
	}
	var rerr *RunError
	switch {
	case err == nil:
		b.WriteString("ok\n")
	case errors.As(err, &rerr):
		fmt.Fprintf(&b, "error: %s: %s\n", rerr.Class, rerr.Error())
		if rerr.RetryAfter > 0 {
			fmt.Fprintf(&b, "retry after: %s\n", rerr.RetryAfter)
		}
		if rerr.Result.SessionID != res.SessionID {
			fmt.Fprintf(&b, "error result session: %q\n", rerr.Result.SessionID)
		}
	default:
		fmt.Fprintf(&b, "unexpected error type %T: %v\n", err, err)
	}
	return b.String()
}
