package agents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
)

// writeTree writes files (path -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeRecording stores r where the replay engine looks for it.
func writeRecording(t *testing.T, dir string, r *Recording) {
	t.Helper()
	data, err := MarshalRecording(r)
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, dir, map[string]string{RecordingPath(r.Step, r.Task): string(data)})
}

func runReplay(t *testing.T, ctx context.Context, req Request) (Result, *RunError) {
	t.Helper()
	eng, err := New("replay")
	if err != nil {
		t.Fatal(err)
	}
	res, err := eng.Run(ctx, req)
	if err == nil {
		return res, nil
	}
	var re *RunError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *RunError", err, err)
	}
	return res, re
}

// TestReplayAppliesRecording replays a task's recording in a real git
// repository and checks the change with git itself.
func TestReplayAppliesRecording(t *testing.T) {
	dir := testenv.GitRepo(t)
	writeTree(t, dir, map[string]string{
		"old.txt":         "remove me\n",
		"cmd/app/main.go": "package main\n",
	})
	rec := &Recording{
		Step: "implement", Task: "T1", Engine: "claude", Model: "sonnet", Session: "sess-1",
		TokensIn: 1200, TokensOut: 340, CostUSD: 0.02, CostKnown: true, Duration: 41 * time.Second,
		Text: "Implemented T1.",
		Files: []FileChange{
			{Path: "cmd/app/main.go", Content: []byte("package main\n\nfunc main() {}\n")},
			{Path: "internal/deep/new/file.txt", Content: []byte("no newline")},
			{Path: "run.sh", Mode: "0755", Content: []byte("#!/bin/sh\necho hi\n")},
			{Path: "data.bin", Content: []byte{0, 1, 2, 0xff}},
			{Path: "old.txt", Deleted: true},
			{Path: "never-existed.txt", Deleted: true},
			{Path: "twice.txt", Content: []byte("first")},
			{Path: "twice.txt", Content: []byte("second\r\n")},
		},
	}
	writeRecording(t, dir, rec)
	testenv.Git(t, dir, "add", "-A")
	testenv.Git(t, dir, "commit", "-q", "-m", "base")

	var log bytes.Buffer
	var events []Event
	req := Request{Run: "r1", Step: "implement", Task: "T1", Dir: dir, Log: &log,
		OnEvent: func(e Event) { events = append(events, e) }}
	start := time.Now()
	res, rerr := runReplay(t, context.Background(), req)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("replay took %v; the recorded duration must not be waited for", time.Since(start))
	}
	want := Result{Text: "Implemented T1.", TokensIn: 1200, TokensOut: 340, CostUSD: 0.02, CostKnown: true,
		SessionID: "sess-1", Model: "sonnet", Duration: res.Duration}
	if !reflect.DeepEqual(res, want) || res.Duration <= 0 || res.Duration >= rec.Duration {
		t.Errorf("result\n got %+v\nwant %+v", res, want)
	}

	status := testenv.Git(t, dir, "status", "--porcelain", "--untracked-files=all")
	wantStatus := strings.Join([]string{
		" M cmd/app/main.go",
		" D old.txt",
		"?? data.bin",
		"?? internal/deep/new/file.txt",
		"?? run.sh",
		"?? twice.txt",
	}, "\n")
	if status != wantStatus {
		t.Errorf("git status\n%s\nwant\n%s", status, wantStatus)
	}
	for name, content := range map[string]string{
		"cmd/app/main.go":            "package main\n\nfunc main() {}\n",
		"internal/deep/new/file.txt": "no newline",
		"data.bin":                   "\x00\x01\x02\xff",
		"twice.txt":                  "second\r\n",
	} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != content {
			t.Errorf("%s = %q, %v; want %q", name, got, err, content)
		}
	}
	for name, mode := range map[string]os.FileMode{"run.sh": 0o755, "data.bin": 0o644} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}

	lines := parseLog(t, log.Bytes())
	if len(lines) != len(rec.Files) || len(events) != len(rec.Files) {
		t.Fatalf("%d log lines, %d events; want one per file (%d)", len(lines), len(events), len(rec.Files))
	}
	var ev fileEvent
	if err := json.Unmarshal(lines[2].Event, &ev); err != nil || lines[2].Stream != "replay" ||
		ev != (fileEvent{Type: "file", Action: "write", Path: "run.sh", Bytes: 18, Mode: "0755"}) {
		t.Errorf("log line 3: %+v %v", ev, err)
	}
	if events[4].Kind != "tool" || events[4].Text != "delete old.txt" {
		t.Errorf("event 5: %+v", events[4])
	}
}

func TestReplayModes(t *testing.T) {
	// The recorded mode is applied exactly, whatever the umask and
	// whatever mode the file had.
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"tool": "old"})
	if err := os.Chmod(filepath.Join(dir, "tool"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeRecording(t, dir, &Recording{Step: "s", Files: []FileChange{
		{Path: "tool", Content: []byte("new")}, // no mode: a plain file now
		{Path: "secret", Mode: "0600", Content: []byte("x")},
	}})
	if _, rerr := runReplay(t, context.Background(), Request{Step: "s", Dir: dir}); rerr != nil {
		t.Fatal(rerr)
	}
	for name, mode := range map[string]os.FileMode{"tool": 0o644, "secret": 0o600} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
}

func TestReplayRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"target.txt": "outside\n"})
	tests := []struct {
		name    string
		link    string // symlink to create in the tree: name -> outside (or relative target)
		target  string
		file    FileChange
		wantErr string // "" = applied
	}{
		{"write through a symlinked dir", "escape", outside,
			FileChange{Path: "escape/evil.txt", Content: []byte("x")}, "files[0]: "},
		{"create dirs through a symlinked dir", "escape", outside,
			FileChange{Path: "escape/sub/evil.txt", Content: []byte("x")}, "files[0]: "},
		{"delete through a symlinked dir", "escape", outside,
			FileChange{Path: "escape/target.txt", Deleted: true}, "files[0]: "},
		{"relative symlink climbing out", "up", "../..",
			FileChange{Path: "up/evil.txt", Content: []byte("x")}, "files[0]: "},
		{"symlink at the path is replaced, not followed", "link.txt", filepath.Join(outside, "target.txt"),
			FileChange{Path: "link.txt", Content: []byte("inside\n")}, ""},
		{"symlink at the path is deleted, not its target", "link.txt", filepath.Join(outside, "target.txt"),
			FileChange{Path: "link.txt", Deleted: true}, ""},
		{"symlink inside the tree is fine", "alias", "real",
			FileChange{Path: "alias/file.txt", Content: []byte("x")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tt.target, filepath.Join(dir, tt.link)); err != nil {
				t.Fatal(err)
			}
			writeRecording(t, dir, &Recording{Step: "s", Files: []FileChange{tt.file}})
			_, rerr := runReplay(t, context.Background(), Request{Step: "s", Dir: dir})
			switch {
			case tt.wantErr == "" && rerr != nil:
				t.Fatalf("error: %v", rerr)
			case tt.wantErr != "" && (rerr == nil || !strings.Contains(rerr.Msg, tt.wantErr) || rerr.Class != Fatal):
				t.Fatalf("error %v, want one containing %q", rerr, tt.wantErr)
			}
			entries, _ := os.ReadDir(outside)
			if got, _ := os.ReadFile(filepath.Join(outside, "target.txt")); len(entries) != 1 || string(got) != "outside\n" {
				t.Errorf("outside dir changed: %d entries, target %q", len(entries), got)
			}
			if tt.wantErr == "" && !tt.file.Deleted {
				fi, err := os.Lstat(filepath.Join(dir, tt.file.Path))
				if err != nil || !fi.Mode().IsRegular() {
					t.Errorf("%s: %v %v", tt.file.Path, fi, err)
				}
			}
		})
	}
}

func TestReplayErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		step  string
		task  string
		want  string
	}{
		{
			name: "no recording", step: "plan",
			want: "replay: no recording for step plan: .codemachine/recordings/plan.yaml; record one with `codemachine run --record`",
		},
		{
			name: "no task recording", step: "implement", task: "T2",
			want: "replay: no recording for step implement (task T2): .codemachine/recordings/implement/T2.yaml; record one with `codemachine run --record`",
		},
		{
			name: "no step", want: "replay: no step to replay",
		},
		{
			name: "bad recording", step: "plan",
			setup: func(t *testing.T, dir string) {
				writeTree(t, dir, map[string]string{RecordingPath("plan", ""): "step: plan\nfiles:\n  - path: ../../etc/passwd\n    content: x\n"})
			},
			want: `replay: .codemachine/recordings/plan.yaml:3:11: path "../../etc/passwd" escapes the repository`,
		},
		{
			name: "recording of another step", step: "plan",
			setup: func(t *testing.T, dir string) {
				writeTree(t, dir, map[string]string{RecordingPath("plan", ""): "step: architecture\n"})
			},
			want: `replay: .codemachine/recordings/plan.yaml: recorded for step "architecture" task "", not step "plan" task ""`,
		},
		{
			name: "path is a directory", step: "plan",
			setup: func(t *testing.T, dir string) {
				writeTree(t, dir, map[string]string{"docs/x.md": "x"})
				writeRecording(t, dir, &Recording{Step: "plan", Files: []FileChange{{Path: "docs", Content: []byte("x")}}})
			},
			want: "replay: .codemachine/recordings/plan.yaml: files[0]: docs is a directory",
		},
		{
			name: "recordings dir is a symlink out of the tree", step: "plan",
			setup: func(t *testing.T, dir string) {
				outside := t.TempDir()
				writeRecording(t, outside, &Recording{Step: "plan"})
				if err := os.Symlink(filepath.Join(outside, ".codemachine"), filepath.Join(dir, ".codemachine")); err != nil {
					t.Fatal(err)
				}
			},
			want: "replay: read recording: ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			_, rerr := runReplay(t, context.Background(), Request{Step: tt.step, Task: tt.task, Dir: dir})
			if rerr == nil || rerr.Class != Fatal || !strings.HasPrefix(rerr.Error(), tt.want) {
				t.Errorf("error\n got %v\nwant %s", rerr, tt.want)
			}
		})
	}
}

func TestReplayCanceled(t *testing.T) {
	dir := t.TempDir()
	writeRecording(t, dir, &Recording{Step: "s", Files: []FileChange{{Path: "a.txt", Content: []byte("a")}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, rerr := runReplay(t, ctx, Request{Step: "s", Dir: dir})
	if rerr == nil || !rerr.Canceled || rerr.Msg != "canceled after applying 0 of 1 files" {
		t.Fatalf("error %+v", rerr)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a canceled replay applied a file: %v", err)
	}
}

func TestReplayLogFailure(t *testing.T) {
	dir := t.TempDir()
	writeRecording(t, dir, &Recording{Step: "s", Text: "done", Files: []FileChange{
		{Path: "a.txt", Content: []byte("a")}, {Path: "b.txt", Content: []byte("b")},
	}})
	res, rerr := runReplay(t, context.Background(), Request{Step: "s", Dir: dir, Log: &failingWriter{}})
	if rerr == nil || rerr.Msg != "write event log: disk full" || rerr.Result.Text != "done" || res.Text != "done" {
		t.Errorf("error %+v", rerr)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.txt")); err != nil {
		t.Errorf("a log failure stopped the replay: %v", err)
	}
}
