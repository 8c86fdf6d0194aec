//go:build unix

package agents

import (
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// The session records are read unconfined after the step's processes
// ended, from a config dir they could write: a named pipe there (which
// would block the read forever in open(2)) or a symbolic link (to
// /dev/zero, which would fill the memory, or to any file) is not read.
func TestInteractiveRecordsReadRegularFilesOnly(t *testing.T) {
	started := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	fifo := func(p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fifo(filepath.Join(dir, "claude", "projects", "-wt", "S1.jsonl"))
	fifo(filepath.Join(dir, "codex", "sessions", "2026", "rollout-x-T1.jsonl"))
	elsewhere := filepath.Join(dir, "elsewhere.jsonl")
	writeLines(t, elsewhere, `{"sessionId":"G1"}`,
		`{"id":"m1","type":"gemini","timestamp":"2026-01-01T12:00:01Z","model":"fake-model","tokens":{"input":100,"output":20}}`)
	chat := filepath.Join(dir, "gemini", ".gemini", "tmp", "p", "chats", "session-G1.jsonl")
	if err := os.MkdirAll(filepath.Dir(chat), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, chat); err != nil {
		t.Fatal(err)
	}
	done := make(chan []Result, 1)
	go func() {
		done <- []Result{
			claudeRecords(Request{}, []string{"CLAUDE_CONFIG_DIR=" + filepath.Join(dir, "claude")}, "S1", started),
			codexRecords(Request{Dir: "/wt"}, []string{"CODEX_HOME=" + filepath.Join(dir, "codex")}, "", started.Add(-2*time.Hour)),
			geminiRecords(Request{}, []string{"GEMINI_CLI_HOME=" + filepath.Join(dir, "gemini")}, "G1", started),
		}
	}()
	select {
	case got := <-done:
		want := []Result{{SessionID: "S1"}, {}, {SessionID: "G1"}}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("record %d: got %+v, want %+v", i, got[i], want[i])
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading the session records blocked on a named pipe")
	}
}
