package agents

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
	"github.com/codemachine/codemachine/sandbox"
)

// refusedWrite is how the shell reports the write of ../user/keep.txt
// refused.
var refusedWrite = regexp.MustCompile(`\.\./user/keep\.txt: (Permission denied|Directory nonexistent|Read-only file system)$`)

// TestMain lets this test binary be the sandbox launcher: the engines
// re-execute it to start sandboxed processes.
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}

func requireSandbox(t *testing.T) {
	t.Helper()
	if st := ProbeSandbox(); !st.Writes() {
		t.Skipf("no Landlock here: %s", st.ABIErr)
	}
}

// A sandboxed shell run writes its worktree, and nothing else: the
// attempt fails, saying what was refused, and the file outside is intact.
func TestShellEngineInTheSandbox(t *testing.T) {
	requireSandbox(t)
	root := t.TempDir()
	work, user := filepath.Join(root, "work"), filepath.Join(root, "user")
	for _, d := range []string{work, user} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(user, "keep.txt"), "USER\n")
	req := Request{Command: "echo ok > mine.txt && echo AGENT > ../user/keep.txt", Dir: work,
		Env: testenv.GitEnv(t.TempDir()), Sandbox: &Sandbox{Landlock: true, Writable: []string{work}}}
	_, err := shellEngine{}.Run(context.Background(), req)
	var re *RunError
	// Refused by Landlock, or, where the step's mount namespace hides
	// the temporary directory, not even there: the step's working
	// directory is entered through the namespace's own view.
	if !errors.As(err, &re) || !refusedWrite.MatchString(re.Msg) {
		t.Fatalf("err = %v, want the refused write named", err)
	}
	if got := readFile(t, filepath.Join(user, "keep.txt")); got != "USER\n" {
		t.Errorf("keep.txt = %q", got)
	}
	if got := readFile(t, filepath.Join(work, "mine.txt")); got != "ok\n" {
		t.Errorf("mine.txt = %q", got)
	}
}

// A timeout stops the launcher, which ends everything the command
// started, a setsid daemon that ignores SIGTERM included.
func TestSandboxedTimeoutEndsDaemons(t *testing.T) {
	marker := strconv.Itoa(3000+os.Getpid()%1000) + ".25"
	req := shellRequest(t, `setsid sh -c 'trap "" TERM; exec sleep `+marker+`' >/dev/null 2>&1 & sleep 60`)
	req.Timeout, req.Grace = 300*time.Millisecond, 200*time.Millisecond
	req.Sandbox = &Sandbox{}
	start := time.Now()
	_, err := shellEngine{}.Run(context.Background(), req)
	var re *RunError
	if !errors.As(err, &re) || !re.TimedOut {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > testenv.Scale(5*time.Second) {
		t.Errorf("took %s", d)
	}
	if n := countProcs("sleep\x00" + marker + "\x00"); n > 0 {
		t.Errorf("%d daemon(s) outlived the timed-out step", n)
	}
}

// When the launcher cannot set the sandbox up, the run fails saying why,
// and the command never runs.
func TestSandboxSetupFailureIsClear(t *testing.T) {
	requireSandbox(t)
	req := shellRequest(t, "echo ran > ran.txt")
	req.Sandbox = &Sandbox{Landlock: true, Writable: []string{filepath.Join(req.Dir, "missing")}}
	_, err := shellEngine{}.Run(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "restrict writes: writable path") {
		t.Fatalf("err = %v", err)
	}
	if _, serr := os.Stat(filepath.Join(req.Dir, "ran.txt")); serr == nil {
		t.Error("the command ran")
	}
}

// The variables that lead to the user's sockets are not passed.
func TestEnvironDropsSocketVariables(t *testing.T) {
	env := Environ([]string{"PATH=/bin", "SSH_AUTH_SOCK=/tmp/a", "XDG_RUNTIME_DIR=/run/user/0", "XDG_CONFIG_HOME=/c",
		"DOCKER_HOST=unix:///run/docker.sock", "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/bus"}, nil)
	if got := strings.Join(env, " "); got != "PATH=/bin XDG_CONFIG_HOME=/c" {
		t.Errorf("Environ = %q", got)
	}
}

// A private config dir is made afresh before every run: what the agent
// planted in its settings (or added) is gone, a refreshed login and the
// session store stay.
func TestPrivateHomeIsResetBeforeEachRun(t *testing.T) {
	env, _ := fakeCLI(t, "claude-edit-and-commit")
	home := envValue(env, "HOME")
	writeFile(t, filepath.Join(home, ".claude", "settings.json"), `{"model":"opus"}`)
	writeFile(t, filepath.Join(home, ".claude", ".credentials.json"), "old token")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(home, ".claude", ".credentials.json"), old, old); err != nil {
		t.Fatal(err)
	}
	private := t.TempDir()
	eng, _ := New("claude")
	run := func() {
		t.Helper()
		if _, err := eng.Run(context.Background(), Request{Prompt: "p", Dir: t.TempDir(), Env: env, Home: private}); err != nil {
			t.Fatal(err)
		}
	}
	run()
	dir := filepath.Join(private, "claude")
	writeFile(t, filepath.Join(dir, "settings.json"), `{"hooks":{"Stop":[{"command":"touch /tmp/pwned"}]}}`)
	writeFile(t, filepath.Join(dir, "managed-settings.json"), `{"planted":true}`)
	writeFile(t, filepath.Join(dir, ".credentials.json"), "refreshed token")
	writeFile(t, filepath.Join(dir, "projects", "x", "s.jsonl"), "session")
	run()
	if got := readFile(t, filepath.Join(dir, "settings.json")); got != `{"model":"opus"}` {
		t.Errorf("settings.json = %q, want the user's back", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "managed-settings.json")); err == nil {
		t.Error("a file the agent added survived")
	}
	if got := readFile(t, filepath.Join(dir, ".credentials.json")); got != "refreshed token" {
		t.Errorf(".credentials.json = %q, want the refreshed one kept", got)
	}
	if got := readFile(t, filepath.Join(dir, "projects", "x", "s.jsonl")); got != "session" {
		t.Errorf("the session store was not kept: %q", got)
	}
}

// countProcs counts live processes whose command line is cmdline.
func countProcs(cmdline string) int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && string(data) == cmdline {
			stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 && !strings.HasPrefix(string(stat[i+1:]), " Z") {
				n++
			}
		}
	}
	return n
}

// Claude Code with a read-only config dir reports success while every
// Bash call failed on that dir (measured with the real CLI): the run
// fails, saying so. A tool error elsewhere is the agent's business.
func TestClaudeReadOnlyConfigDirFails(t *testing.T) {
	const cfg = "/home/u/.claude"
	lines := func(resultText string) []string {
		return []string{
			`{"type":"system","subtype":"init","session_id":"s1","model":"fake-model"}`,
			`{"type":"assistant","message":{"id":"m1","content":[{"type":"tool_use","name":"Bash","input":{"command":"echo hi > hi.txt"}}]},"session_id":"s1"}`,
			`{"type":"user","message":{"role":"user","content":[{"type":"tool_result","content":` + strconv.Quote(resultText) + `,"is_error":true,"tool_use_id":"t1"}]},"session_id":"s1"}`,
			`{"type":"result","subtype":"success","is_error":false,"result":"DONE","session_id":"s1","usage":{"input_tokens":10,"output_tokens":2}}`,
		}
	}
	run := func(text string) (Result, error) {
		st := newClaudeStream(Request{}, []string{"HOME=/home/u", "CLAUDE_CONFIG_DIR=" + cfg})
		for _, l := range lines(text) {
			st.stdout([]byte(l))
		}
		return claudeCLI.finish(Request{}, st.outcome(0), procResult{})
	}
	_, err := run("EACCES: permission denied, mkdir '" + cfg + "/session-env'")
	var re *RunError
	if !errors.As(err, &re) || re.Class != Fatal ||
		!strings.Contains(re.Msg, "Claude Code could not write its config dir /home/u/.claude, so every Bash call failed") {
		t.Fatalf("err = %v, want the read-only config dir named", err)
	}
	if res, err := run("exit status 1: no such file"); err != nil || res.Text != "DONE" {
		t.Errorf("an ordinary tool error failed the run: %v", err)
	}
}
