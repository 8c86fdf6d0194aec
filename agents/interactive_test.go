package agents

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func writeLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	data := ""
	for _, l := range lines {
		data += l + "\n"
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The session records of each CLI give the usage of the messages made
// since the interactive run started, each API message counted once.
func TestInteractiveRecords(t *testing.T) {
	started := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	writeLines(t, filepath.Join(dir, "claude", "projects", "-wt", "S1.jsonl"),
		`{"type":"user","timestamp":"2026-01-01T12:00:01Z"}`,
		`{"type":"assistant","timestamp":"2026-01-01T11:59:00Z","message":{"id":"old","model":"m","usage":{"input_tokens":1000,"output_tokens":1000}}}`,
		`{"type":"assistant","timestamp":"2026-01-01T12:00:02Z","message":{"id":"a","model":"fake-model","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":3}}}`,
		`{"type":"assistant","timestamp":"2026-01-01T12:00:02Z","message":{"id":"a","model":"fake-model","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":3}}}`,
		`{"type":"assistant","timestamp":"2026-01-01T12:00:03Z","message":{"id":"b","model":"fake-model","usage":{"input_tokens":20,"output_tokens":4}}}`,
		`not json`)
	writeLines(t, filepath.Join(dir, "codex", "sessions", "2026", "rollout-x-T1.jsonl"),
		`{"timestamp":"2026-01-01T11:00:00Z","type":"session_meta","payload":{"id":"T1","cwd":"/wt"}}`,
		`{"timestamp":"2026-01-01T11:00:01Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":100,"output_tokens":10}}}}`,
		`{"timestamp":"2026-01-01T12:00:01Z","type":"turn_context","payload":{"model":"gpt-5.5"}}`,
		`{"timestamp":"2026-01-01T12:00:02Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":250,"output_tokens":30}}}}`)
	writeLines(t, filepath.Join(dir, "gemini", ".gemini", "tmp", "p", "chats", "session-G1.jsonl"),
		`{"sessionId":"G1"}`,
		`{"id":"m1","type":"gemini","timestamp":"2026-01-01T12:00:01Z","model":"fake-model"}`,
		`{"id":"m1","type":"gemini","timestamp":"2026-01-01T12:00:01Z","model":"fake-model","tokens":{"input":100,"output":20}}`,
		`{"id":"m2","type":"gemini","timestamp":"2026-01-01T12:00:02Z","model":"fake-model","tokens":{"input":120,"output":20}}`)
	for _, tc := range []struct {
		name string
		got  Result
		want Result
	}{
		{"claude", claudeRecords(Request{}, []string{"CLAUDE_CONFIG_DIR=" + filepath.Join(dir, "claude")}, "S1", started),
			Result{SessionID: "S1", Model: "fake-model", TokensIn: 35, TokensOut: 7}},
		{"codex", codexRecords(Request{Dir: "/wt"}, []string{"CODEX_HOME=" + filepath.Join(dir, "codex")}, "", started.Add(-2*time.Hour)),
			Result{SessionID: "T1", Model: "gpt-5.5", TokensIn: 250, TokensOut: 30}},
		{"codex resumed", codexRecords(Request{Dir: "/wt"}, []string{"CODEX_HOME=" + filepath.Join(dir, "codex")}, "T1", started),
			Result{SessionID: "T1", Model: "gpt-5.5", TokensIn: 150, TokensOut: 20}},
		{"gemini", geminiRecords(Request{}, []string{"GEMINI_CLI_HOME=" + filepath.Join(dir, "gemini")}, "G1", started),
			Result{SessionID: "G1", Model: "fake-model", TokensIn: 220, TokensOut: 40}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, tc.got, tc.want)
		}
	}
}

// Claude's config is seeded so that none of its first-run dialogs stops
// the UI, keeping what the user's copy had.
func TestClaudeInteractiveSeed(t *testing.T) {
	home, user := t.TempDir(), t.TempDir()
	writeLines(t, filepath.Join(user, ".claude", ".claude.json"), `{"theme":"light","customApiKeyResponses":{"approved":["x"]}}`)
	env := []string{"HOME=" + user, "CLAUDE_CONFIG_DIR=" + filepath.Join(user, ".claude"), "ANTHROPIC_API_KEY=sk-0123456789abcdefghijKLMN", "IS_SANDBOX=1"}
	tr, err := claudeInteractive(Request{Home: home, Dir: "/wt", Prompt: "Do it.", Model: "m"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"--permission-mode", "bypassPermissions", "--model", "m", "--session-id", tr.session, "--", "Do it."}; !slices.Equal(tr.args, want) {
		t.Errorf("args %q, want %q", tr.args, want)
	}
	var cfg map[string]any
	data, _ := os.ReadFile(filepath.Join(home, "claude", ".claude.json"))
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	approved := cfg["customApiKeyResponses"].(map[string]any)["approved"].([]any)
	trusted := cfg["projects"].(map[string]any)["/wt"].(map[string]any)["hasTrustDialogAccepted"]
	if cfg["hasCompletedOnboarding"] != true || cfg["theme"] != "light" || trusted != true ||
		len(approved) != 2 || approved[1] != "456789abcdefghijKLMN" {
		t.Errorf(".claude.json: %s", data)
	}
	data, _ = os.ReadFile(filepath.Join(home, "claude", "settings.json"))
	if err := json.Unmarshal(data, &cfg); err != nil || cfg["skipDangerousModePermissionPrompt"] != true {
		t.Errorf("settings.json: %s", data)
	}
	resumed, err := claudeInteractive(Request{Home: home, Dir: "/wt", Prompt: "Do it.", Resume: "S1"}, env)
	if err != nil || !slices.Equal(resumed.args, []string{"--permission-mode", "bypassPermissions", "--resume", "S1"}) {
		t.Errorf("resume without a message: %q, %v", resumed.args, err)
	}
}

// An interactive run's first message is a command-line argument: one
// too long for Linux, or holding a NUL byte, is refused with the reason
// before any process starts.
func TestCheckFirstMessage(t *testing.T) {
	for _, tc := range []struct {
		name, msg, want string
	}{
		{"a prompt", "Do it.\n", ""},
		{"the longest", strings.Repeat("x", maxArgPrompt), ""},
		{"too long", strings.Repeat("x", maxArgPrompt+1), "the prompt is 120 KiB; an interactive run takes at most 120 KiB as its first message"},
		{"a NUL byte", "Read this:\n\x00\x01", "the prompt holds a NUL byte (at byte 11); an interactive run passes it as a command-line argument, which cannot hold one"},
	} {
		if got := checkFirstMessage(tc.msg); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A UI that did not exit cleanly is said to have been killed by its
// signal, by name, not to have exited with 128+signal.
func TestUIEndedMsg(t *testing.T) {
	if got, want := uiEndedMsg("claude", 137, syscall.SIGKILL), "claude's UI was killed by signal 9 (killed)"; got != want {
		t.Errorf("killed: %q, want %q", got, want)
	}
	if got, want := uiEndedMsg("codex", 2, 0), "codex's UI exited with status 2"; got != want {
		t.Errorf("exited: %q, want %q", got, want)
	}
}
