package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/codemachine/codemachine/agents"
)

func TestPruneLogs(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	old := now.Add(-keepLogsFor - time.Hour)
	recent := now.Add(-keepLogsFor + time.Hour)
	runName := func(i int) string {
		return now.Add(-time.Duration(i)*time.Hour).Format("20060102T150405Z") + fmt.Sprintf("-%06x", i)
	}
	hooksName := func(i int) string {
		return "hooks-" + now.Add(-time.Duration(i)*time.Hour).Format("20060102T150405.000Z") + fmt.Sprintf("-%d.log", i)
	}
	tests := []struct {
		name     string
		count    int
		modTime  func(i int) time.Time
		wantKept int
		current  int // index of the current run, or -1
	}{
		{"few old runs are all kept", keepLogRuns, func(int) time.Time { return old }, keepLogRuns, -1},
		{"many recent runs are all kept", keepLogRuns + 20, func(int) time.Time { return recent }, keepLogRuns + 20, -1},
		{"many old runs keep the newest", keepLogRuns + 20, func(int) time.Time { return old }, keepLogRuns, -1},
		{"old runs go, recent ones past the count stay", keepLogRuns + 20, func(i int) time.Time {
			if i%2 == 0 {
				return old
			}
			return recent
		}, keepLogRuns + 10, -1},
		{"the current run stays however old", keepLogRuns + 5, func(int) time.Time { return old }, keepLogRuns + 1, keepLogRuns + 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for i := 0; i < tc.count; i++ {
				run := filepath.Join(dir, runName(i))
				mustWrite(t, filepath.Join(run, "build.jsonl"), "{}\n")
				hooks := filepath.Join(dir, hooksName(i))
				mustWrite(t, hooks, "log\n")
				for _, p := range []string{filepath.Join(run, "build.jsonl"), run, hooks} {
					if err := os.Chtimes(p, tc.modTime(i), tc.modTime(i)); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Not logs of a run: never touched, however old.
			other := filepath.Join(dir, "notes.txt")
			mustWrite(t, other, "mine\n")
			if err := os.Chtimes(other, old, old); err != nil {
				t.Fatal(err)
			}
			current := ""
			if tc.current >= 0 {
				current = runName(tc.current)
			}
			pruneLogs(dir, current, now)

			runs, hooks := 0, 0
			for i := 0; i < tc.count; i++ {
				if _, err := os.Stat(filepath.Join(dir, runName(i))); err == nil {
					runs++
				} else if i < keepLogRuns {
					t.Errorf("run %d, among the %d newest, was removed", i, keepLogRuns)
				}
				if _, err := os.Stat(filepath.Join(dir, hooksName(i))); err == nil {
					hooks++
				}
			}
			if runs != tc.wantKept {
				t.Errorf("kept %d run logs, want %d", runs, tc.wantKept)
			}
			wantHooks := tc.wantKept
			if tc.current >= 0 {
				wantHooks-- // the current run is no hooks log
			}
			if hooks != wantHooks {
				t.Errorf("kept %d hooks logs, want %d", hooks, wantHooks)
			}
			if current != "" {
				if _, err := os.Stat(filepath.Join(dir, current)); err != nil {
					t.Errorf("the current run's logs were removed: %v", err)
				}
			}
			if _, err := os.Stat(other); err != nil {
				t.Errorf("a file that is no run's log was removed: %v", err)
			}
		})
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunPrunesOldLogs: a run removes the event logs of runs past keeping
// and keeps its own.
func TestRunPrunesOldLogs(t *testing.T) {
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
	logs := filepath.Join(o.Repo().LocalDir(), "logs")
	old := time.Now().Add(-keepLogsFor - 24*time.Hour)
	var planted []string
	for i := 0; i < keepLogRuns+3; i++ {
		p := filepath.Join(logs, old.Add(-time.Duration(i)*time.Minute).UTC().Format("20060102T150405Z")+fmt.Sprintf("-%06x", i))
		mustWrite(t, filepath.Join(p, "one.jsonl"), "{}\n")
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		planted = append(planted, p)
	}
	s, err := o.Run(t.Context(), RunOptions{})
	if err != nil || len(s.Landed) != 1 {
		t.Fatalf("run: %+v, %v", s, err)
	}
	if _, err := os.Stat(filepath.Join(logs, s.Run, "one.jsonl")); err != nil {
		t.Errorf("the run's own log: %v", err)
	}
	gone := 0
	for _, p := range planted {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			gone++
		}
	}
	// The run prunes before its first unit writes a log: the keepLogRuns
	// newest planted ones stay.
	if want := 3; gone != want {
		t.Errorf("%d of the %d old run logs were removed, want %d", gone, len(planted), want)
	}
}
