package agents

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeCLIScript stands in for a coding CLI: it records how it was started
// (arguments one per line, environment, stdin, working directory) under
// $FAKE_OUT/<n>.* for the n-th run, prints $FAKE_STREAM (a recorded event
// stream), $FAKE_STDERR on stderr and exits with $FAKE_EXIT. With
// FAKE_NO_SESSION set, a run whose arguments name that session says the
// session does not exist, as the real CLIs do.
const fakeCLIScript = `#!/bin/sh
n=$(ls "$FAKE_OUT" | grep -c '\.args$')
n=$((n + 1))
for a in "$@"; do printf '%s\n' "$a"; done > "$FAKE_OUT/$n.args"
env | sort > "$FAKE_OUT/$n.env"
pwd > "$FAKE_OUT/$n.cwd"
cat > "$FAKE_OUT/$n.stdin"
if [ -n "$FAKE_NO_SESSION" ] && grep -qx -- "$FAKE_NO_SESSION" "$FAKE_OUT/$n.args"; then
	echo "$FAKE_NO_SESSION_MSG" >&2
	exit 1
fi
[ -n "$FAKE_STREAM" ] && cat "$FAKE_STREAM"
[ -n "$FAKE_STDERR" ] && printf '%s\n' "$FAKE_STDERR" >&2
[ -n "$FAKE_SLEEP" ] && sleep "$FAKE_SLEEP"
exit "${FAKE_EXIT:-0}"
`

// fakeCLI installs the fake as every engine's binary in a new PATH dir and
// returns the environment for it and the directory the runs are recorded in.
func fakeCLI(t *testing.T, stream string, extra ...string) (env []string, out string) {
	t.Helper()
	bin := t.TempDir()
	for _, name := range []string{"claude", "codex", "gemini", "opencode"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(fakeCLIScript), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out = t.TempDir()
	home := t.TempDir()
	// IS_SANDBOX=1 as in testenv.Env: the tests may run as root.
	env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + home, "FAKE_OUT=" + out, "IS_SANDBOX=1"}
	if stream != "" {
		abs, err := filepath.Abs(filepath.Join("testdata", "streams", stream+".stdout.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, "FAKE_STREAM="+abs)
	}
	return append(env, extra...), out
}

// fakeRun is what the fake CLI recorded about its n-th run.
type fakeRun struct {
	args  []string
	env   map[string]string
	stdin string
	cwd   string
}

func readFakeRun(t *testing.T, out string, n int) fakeRun {
	t.Helper()
	read := func(ext string) string {
		data, err := os.ReadFile(filepath.Join(out, strconv.Itoa(n)+"."+ext))
		if err != nil {
			t.Fatalf("run %d: %v", n, err)
		}
		return string(data)
	}
	r := fakeRun{args: strings.Split(strings.TrimSuffix(read("args"), "\n"), "\n"), env: map[string]string{},
		stdin: read("stdin"), cwd: strings.TrimSpace(read("cwd"))}
	for _, kv := range strings.Split(read("env"), "\n") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			r.env[k] = v
		}
	}
	return r
}

func TestCLIInvocation(t *testing.T) {
	dir := t.TempDir()
	full := Request{Prompt: "do the task", Model: "m1", Effort: "high", Dir: dir}
	resumed := Request{Prompt: "do the task", Dir: dir, Resume: "sess-1", Continue: "continue please"}
	opencodeFull := full
	opencodeFull.Model = "p/m1" // opencode's models are PROVIDER/MODEL
	tests := []struct {
		engine    string
		req       Request
		wantArgs  []string
		wantStdin string
	}{
		{"claude", full, []string{"-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "bypassPermissions",
			"--model", "m1", "--effort", "high"}, "do the task"},
		{"claude", resumed, []string{"-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "bypassPermissions",
			"--resume", "sess-1"}, "continue please"},
		{"codex", full, []string{"exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
			"-C", dir, "-m", "m1", "-c", `model_reasoning_effort="high"`, "-"}, "do the task"},
		{"codex", resumed, []string{"exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
			"-C", dir, "resume", "sess-1", "-"}, "continue please"},
		{"gemini", full, []string{"--output-format", "stream-json", "--yolo", "--skip-trust", "-m", "m1"}, "do the task"},
		{"gemini", resumed, []string{"--output-format", "stream-json", "--yolo", "--skip-trust", "--resume", "sess-1"}, "continue please"},
		{"opencode", opencodeFull, []string{"run", "--format", "json", "--auto", "-m", "p/m1", "--variant", "high", "--dir", dir}, "do the task"},
		{"opencode", resumed, []string{"run", "--format", "json", "--auto", "--session", "sess-1", "--dir", dir}, "continue please"},
	}
	defer func(f func() int) { geteuid = f }(geteuid)
	geteuid = func() int { return 1000 }
	for _, tt := range tests {
		t.Run(tt.engine+"/"+tt.req.Resume, func(t *testing.T) {
			env, out := fakeCLI(t, tt.engine+"-edit-and-commit")
			req := tt.req
			req.Env = env
			var log bytes.Buffer
			req.Log = &log
			eng, err := New(tt.engine)
			if err != nil {
				t.Fatal(err)
			}
			res, err := eng.Run(context.Background(), req)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Text != "DONE" || res.SessionID == "" || res.TokensIn == 0 || res.Duration <= 0 {
				t.Errorf("result %+v: want the sample's text, session, usage and a duration", res)
			}
			r := readFakeRun(t, out, 1)
			if !reflect.DeepEqual(r.args, tt.wantArgs) {
				t.Errorf("args\n got %q\nwant %q", r.args, tt.wantArgs)
			}
			if r.stdin != tt.wantStdin {
				t.Errorf("stdin %q, want %q", r.stdin, tt.wantStdin)
			}
			if r.cwd != dir {
				t.Errorf("cwd %q, want %q", r.cwd, dir)
			}
			// The environment is the request's, as given.
			for _, kv := range env {
				k, v, _ := strings.Cut(kv, "=")
				if r.env[k] != v {
					t.Errorf("env %s = %q, want %q", k, r.env[k], v)
				}
			}
			if !strings.Contains(log.String(), `"stream":"stdout","event":{"type":`) {
				t.Errorf("the log lacks the event stream:\n%s", log.String())
			}
		})
	}
}

// As root, Claude Code runs unattended only where IS_SANDBOX=1 (or its
// bubblewrap sandbox) allows bypassPermissions; elsewhere the run fails at
// once, saying why, without starting Claude.
func TestClaudeAsRoot(t *testing.T) {
	defer func(f func() int) { geteuid = f }(geteuid)
	tests := []struct {
		uid     int
		env     []string
		refused bool
	}{
		{0, nil, true},
		{0, []string{"IS_SANDBOX=true"}, true},
		{0, []string{"IS_SANDBOX=1"}, false},
		{0, []string{"CLAUDE_CODE_BUBBLEWRAP=1"}, false},
		{1000, nil, false},
	}
	for _, tt := range tests {
		geteuid = func() int { return tt.uid }
		env, out := fakeCLI(t, "claude-edit-and-commit")
		env = append(slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "IS_SANDBOX=") }), tt.env...)
		eng, _ := New("claude")
		_, err := eng.Run(context.Background(), Request{Prompt: "p", Dir: t.TempDir(), Env: env})
		var rerr *RunError
		switch {
		case tt.refused && (!errors.As(err, &rerr) || rerr.Class != Fatal || rerr.Msg != errClaudeRoot):
			t.Errorf("uid %d env %q: error %v, want the root refusal", tt.uid, tt.env, err)
		case tt.refused:
			if _, err := os.Stat(filepath.Join(out, "1.args")); err == nil {
				t.Errorf("uid %d env %q: Claude was started", tt.uid, tt.env)
			}
		case err != nil:
			t.Errorf("uid %d env %q: %v", tt.uid, tt.env, err)
		default:
			if args := readFakeRun(t, out, 1).args; !slices.Contains(args, "bypassPermissions") {
				t.Errorf("uid %d env %q: args %q", tt.uid, tt.env, args)
			}
		}
	}
}

func TestCLINotFound(t *testing.T) {
	for _, name := range []string{"claude", "codex", "gemini", "opencode"} {
		eng, _ := New(name)
		_, err := eng.Run(context.Background(), Request{Prompt: "p", Dir: t.TempDir(), Env: []string{"PATH=" + t.TempDir()}})
		var rerr *RunError
		if !errors.As(err, &rerr) || rerr.Class != Fatal || !errors.Is(err, ErrNoAgentCLI) || !strings.Contains(rerr.Msg, name+" not found on PATH (install it with npm install -g ") {
			t.Errorf("%s: error %v, want a fatal not-found error with the install hint", name, err)
		}
	}
}

func TestCLIEmptyPrompt(t *testing.T) {
	eng, _ := New("claude")
	_, err := eng.Run(context.Background(), Request{Prompt: " \n", Dir: t.TempDir()})
	var rerr *RunError
	if !errors.As(err, &rerr) || rerr.Class != Fatal || rerr.Msg != "no prompt to send" {
		t.Errorf("error %v", err)
	}
}

// Gemini has no effort setting: an effort is dropped with a note in the
// run's log, which is read when nobody watched the run's events.
func TestGeminiEffortNoteInLog(t *testing.T) {
	env, _ := fakeCLI(t, "gemini-edit-and-commit")
	var log bytes.Buffer
	eng, _ := New("gemini")
	if _, err := eng.Run(context.Background(), Request{Prompt: "p", Effort: "high", Dir: t.TempDir(), Env: env, Log: &log}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	first, _, _ := strings.Cut(log.String(), "\n")
	if !strings.Contains(first, `"stream":"codemachine","line":"error: gemini has no effort setting; effort high is ignored"}`) {
		t.Errorf("first log line %s: want the effort note", first)
	}
}

// A resumed session the CLI no longer knows is started afresh with the
// whole task; the fresh run's result is the run's.
func TestResumeUnknownSessionStartsAfresh(t *testing.T) {
	msgs := map[string]string{
		"claude":   "No conversation found with session ID: gone-1",
		"codex":    "Error: thread/resume: thread/resume failed: no rollout found for thread id gone-1 (code -32600)",
		"gemini":   "Error resuming session: No previous sessions found for this project.",
		"opencode": "Error: Session not found",
	}
	for name, msg := range msgs {
		t.Run(name, func(t *testing.T) {
			env, out := fakeCLI(t, name+"-edit-and-commit", "FAKE_NO_SESSION=gone-1", "FAKE_NO_SESSION_MSG="+msg)
			var events []string
			req := Request{Prompt: "the whole task", Resume: "gone-1", Continue: "continue", Dir: t.TempDir(), Env: env,
				OnEvent: func(e Event) {
					if e.Kind == "session" {
						events = append(events, e.Text)
					}
				}}
			eng, _ := New(name)
			res, err := eng.Run(context.Background(), req)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			first, second := readFakeRun(t, out, 1), readFakeRun(t, out, 2)
			if !slices.Contains(first.args, "gone-1") || first.stdin != "continue" {
				t.Errorf("first run args %q stdin %q: want the resume", first.args, first.stdin)
			}
			if slices.Contains(second.args, "gone-1") || second.stdin != "the whole task" {
				t.Errorf("second run args %q stdin %q: want a new session with the whole task", second.args, second.stdin)
			}
			if res.Text != "DONE" || res.SessionID == "gone-1" || res.SessionID == "" {
				t.Errorf("result %+v: want the new session's", res)
			}
			if len(events) == 0 || events[0] != "session gone-1 not found; starting a new one" {
				t.Errorf("session events %q", events)
			}
		})
	}
}

func TestCLITimeoutAndCancel(t *testing.T) {
	env, _ := fakeCLI(t, "claude-hang", "FAKE_SLEEP=30")
	eng, _ := New("claude")
	req := Request{Prompt: "p", Dir: t.TempDir(), Env: env, Timeout: 300 * time.Millisecond, Grace: 100 * time.Millisecond}
	start := time.Now()
	_, err := eng.Run(context.Background(), req)
	var rerr *RunError
	if !errors.As(err, &rerr) || !rerr.TimedOut || rerr.Class != Fatal || rerr.Msg != "timed out after 300ms" {
		t.Fatalf("error %v, want a fatal timeout", err)
	}
	// The fake sleeps 30 s after its stream: returning before that means
	// the process was killed, not waited out.
	if took := time.Since(start); took >= 30*time.Second {
		t.Errorf("the timeout took %v: the process was not killed", took)
	}

	// Canceled once the stream has named its session (an event, not a
	// deadline, so a loaded machine cannot reach the end first): what the
	// stream said is kept, so the session can be resumed.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req.Timeout = 0
	req.OnEvent = func(ev Event) {
		if ev.Kind == "session" {
			cancel()
		}
	}
	res, err := eng.Run(ctx, req)
	if !errors.As(err, &rerr) || !rerr.Canceled {
		t.Fatalf("error %v, want canceled", err)
	}
	if res.SessionID == "" || rerr.Result.SessionID != res.SessionID {
		t.Errorf("session %q / %q, want the one the stream reported", res.SessionID, rerr.Result.SessionID)
	}
}

// The engines classify how a run ended from the stream and the exit status
// alone; these are the cases no recorded stream covers.
func TestCLIExitWithoutStream(t *testing.T) {
	tests := []struct {
		name   string
		stderr string
		exit   string
		class  Class
		msg    string
	}{
		{"usage error", "error: unknown option '--bogus'", "1", Fatal, "claude: exit status 1: error: unknown option '--bogus'"},
		{"crash", "Segmentation fault", "139", Transient, "claude: exit status 139: Segmentation fault"},
		{"silent", "", "3", Transient, "claude: exited with status 3 before reporting a result"},
		{"rate limit", "Error: 429 Too Many Requests, please try again in 2s", "1", Transient,
			"claude: exit status 1: Error: 429 Too Many Requests, please try again in 2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _ := fakeCLI(t, "", "FAKE_STDERR="+tt.stderr, "FAKE_EXIT="+tt.exit)
			eng, _ := New("claude")
			_, err := eng.Run(context.Background(), Request{Prompt: "p", Dir: t.TempDir(), Env: env})
			var rerr *RunError
			if !errors.As(err, &rerr) || rerr.Class != tt.class || rerr.Error() != tt.msg {
				t.Fatalf("error %v (%v), want %s: %s", err, rerr, tt.class, tt.msg)
			}
			if tt.name == "rate limit" && rerr.RetryAfter != 2*time.Second {
				t.Errorf("retry after %v, want 2s", rerr.RetryAfter)
			}
		})
	}
}

// TestCLIMCPServer: a request's MCP server reaches each CLI the way it
// takes one (Claude's --mcp-config JSON, Codex's -c overrides, opencode's
// OPENCODE_CONFIG_CONTENT merged with what it held); Gemini fails at once.
func TestCLIMCPServer(t *testing.T) {
	dir := t.TempDir()
	m := &MCPServer{Name: "codemachine", Command: "/bin/cm", Args: []string{"-C", "/repo", "mcp", "--worktree", dir}}
	req := Request{Prompt: "plan", Dir: dir, MCP: m}
	defer func(f func() int) { geteuid = f }(geteuid)
	geteuid = func() int { return 1000 }
	run := func(t *testing.T, engine string, extra ...string) (fakeRun, error) {
		env, out := fakeCLI(t, engine+"-edit-and-commit", extra...)
		r := req
		r.Env = env
		eng, err := New(engine)
		if err != nil {
			t.Fatal(err)
		}
		_, err = eng.Run(context.Background(), r)
		if err != nil {
			return fakeRun{}, err
		}
		return readFakeRun(t, out, 1), nil
	}
	t.Run("claude", func(t *testing.T) {
		r, err := run(t, "claude")
		if err != nil {
			t.Fatal(err)
		}
		i := slices.Index(r.args, "--mcp-config")
		want := `{"mcpServers":{"codemachine":{"type":"stdio","command":"/bin/cm","args":["-C","/repo","mcp","--worktree","` + dir + `"],"alwaysLoad":true}}}`
		if i < 0 || i+1 >= len(r.args) || r.args[i+1] != want {
			t.Errorf("args %q, want --mcp-config %s", r.args, want)
		}
		// Claude waits for the server longer than its own 5 s...
		if got := r.env["MCP_CONNECT_TIMEOUT_MS"]; got != claudeMCPWait {
			t.Errorf("MCP_CONNECT_TIMEOUT_MS %q, want %s", got, claudeMCPWait)
		}
	})
	t.Run("claude keeps the user's MCP wait", func(t *testing.T) {
		// ...unless the user said how long.
		r, err := run(t, "claude", "MCP_CONNECT_TIMEOUT_MS=7000")
		if err != nil {
			t.Fatal(err)
		}
		if got := r.env["MCP_CONNECT_TIMEOUT_MS"]; got != "7000" {
			t.Errorf("MCP_CONNECT_TIMEOUT_MS %q, want the user's 7000", got)
		}
	})
	t.Run("codex", func(t *testing.T) {
		r, err := run(t, "codex")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"-c", `mcp_servers.codemachine.command="/bin/cm"`,
			"-c", `mcp_servers.codemachine.args=["-C","/repo","mcp","--worktree","` + dir + `"]`, "-"}
		if got := r.args[len(r.args)-len(want):]; !reflect.DeepEqual(got, want) {
			t.Errorf("args %q, want them to end with %q", r.args, want)
		}
	})
	t.Run("opencode", func(t *testing.T) {
		r, err := run(t, "opencode", `OPENCODE_CONFIG_CONTENT={"model":"fake/m","mcp":{"mine":{"type":"remote","url":"http://x"}}}`)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"mcp":{"codemachine":{"command":["/bin/cm","-C","/repo","mcp","--worktree","` + dir + `"],"enabled":true,"type":"local"},"mine":{"type":"remote","url":"http://x"}},"model":"fake/m"}`
		if got := r.env["OPENCODE_CONFIG_CONTENT"]; got != want {
			t.Errorf("OPENCODE_CONFIG_CONTENT\n got %s\nwant %s", got, want)
		}
		if _, err := run(t, "opencode", "OPENCODE_CONFIG_CONTENT=[1]"); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
			t.Errorf("a config that is not an object: %v", err)
		}
	})
	t.Run("gemini", func(t *testing.T) {
		_, err := run(t, "gemini")
		var re *RunError
		if !errors.As(err, &re) || re.Class != Fatal || !strings.Contains(re.Msg, "cannot be given an MCP server") {
			t.Errorf("gemini with an MCP server: %v, want a fatal refusal", err)
		}
	})
}

// TestTimeoutWhileRetrying: a run stopped by its timeout while the CLI was
// retrying a failing model request says what failed (lines as the CLIs
// print them against a server that answers 500); once an answer came after
// the retries, the timeout is only a timeout.
func TestTimeoutWhileRetrying(t *testing.T) {
	tests := []struct {
		engine         string
		stdout, stderr []string
		want           string
	}{
		{engine: "claude",
			stdout: []string{
				`{"type":"system","subtype":"init","session_id":"s1","model":"fake-model"}`,
				`{"type":"system","subtype":"api_retry","attempt":3,"max_retries":10,"retry_delay_ms":2182.8,"error_status":500,"error":"server_error","session_id":"s1"}`,
			},
			want: "timed out after 2m while retrying a failed model request (HTTP 500 server_error)"},
		{engine: "codex",
			stdout: []string{
				`{"type":"thread.started","thread_id":"t1"}`,
				`{"type":"turn.started"}`,
				`{"type":"error","message":"Reconnecting... 2/5 (We’re currently experiencing high demand, which may cause temporary errors.)"}`,
			},
			want: "timed out after 2m while retrying a failed model request (We’re currently experiencing high demand, which may cause temporary errors.)"},
		{engine: "gemini",
			stdout: []string{`{"type":"init","session_id":"g1","model":"fake-model"}`},
			stderr: []string{
				`Attempt 6 failed with status 500. Retrying with backoff... _ApiError: {"error":{"code":500,"message":"fakellm: the model server fell over","status":"INTERNAL"}}`,
				`    at async retryWithBackoff (file:///bundle/chunk.js:308039:23)`,
				`  status: 500`,
			},
			want: "timed out after 2m while retrying a failed model request (API error 500 (INTERNAL): fakellm: the model server fell over)"},
		{engine: "claude",
			stdout: []string{
				`{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":500,"error_status":429,"error":"rate_limit","session_id":"s1"}`,
				`{"type":"assistant","message":{"id":"m1","model":"fake-model","content":[{"type":"text","text":"working"}],"usage":{"input_tokens":10,"output_tokens":2}},"session_id":"s1"}`,
			},
			want: "timed out after 2m"},
		{engine: "codex",
			stdout: []string{
				`{"type":"error","message":"Reconnecting... 1/5 (stream disconnected)"}`,
				`{"type":"item.started","item":{"id":"item_0","type":"command_execution","command":"sleep 1000"}}`,
			},
			want: "timed out after 2m"},
		{engine: "gemini",
			stdout: []string{`{"type":"message","role":"assistant","content":"working","delta":true}`},
			stderr: []string{`Attempt 1 failed with status 429. Retrying with backoff... _ApiError: {"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}`},
			want:   "timed out after 2m while retrying a failed model request (API error 429 (RESOURCE_EXHAUSTED): slow down)"},
		{engine: "claude",
			stdout: []string{`{"type":"system","subtype":"api_retry","attempt":2,"max_retries":10,"retry_delay_ms":1178.2,"error_status":null,"error":"unknown","session_id":"s1"}`},
			want:   "timed out after 2m while retrying a failed model request (no answer from the model API: connection error or timeout)"},
		{engine: "gemini",
			stderr: []string{`Attempt 3 failed. Retrying with backoff... Error: exception TypeError: fetch failed sending request`},
			want:   "timed out after 2m while retrying a failed model request (Error: exception TypeError: fetch failed sending request)"},
		{engine: "gemini",
			stderr: []string{`Attempt 2 failed with status 503. Retrying with backoff... Error: upstream busy`},
			want:   "timed out after 2m while retrying a failed model request (HTTP 503: Error: upstream busy)"},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%d-%s", i, tt.engine), func(t *testing.T) {
			eng, err := New(tt.engine)
			if err != nil {
				t.Fatal(err)
			}
			e := eng.(*cliEngine)
			req := Request{Prompt: "p", Timeout: 2 * time.Minute}
			st := e.newStream(req, nil)
			for _, l := range tt.stdout {
				st.stdout([]byte(l))
			}
			for _, l := range tt.stderr {
				st.stderr([]byte(l))
			}
			_, err = e.finish(req, st.outcome(143), procResult{exitCode: 143, signal: syscall.SIGTERM, timedOut: true})
			var rerr *RunError
			if !errors.As(err, &rerr) || !rerr.TimedOut || rerr.Class != Fatal {
				t.Fatalf("error %v, want a fatal timeout", err)
			}
			if rerr.Msg != tt.want {
				t.Errorf("message %q\nwant    %q", rerr.Msg, tt.want)
			}
		})
	}
}

// TestCodexRouterToolErrors: the tool calls Codex's tool router refuses or
// cannot run (a patch that does not apply, a command its policy rejects)
// are on standard error only, and count as tool errors like the commands
// that exit non-zero; its other log lines do not.
func TestCodexRouterToolErrors(t *testing.T) {
	eng, _ := New("codex")
	e := eng.(*cliEngine)
	req := Request{Prompt: "p"}
	st := e.newStream(req, nil)
	for _, l := range []string{
		`{"type":"thread.started","thread_id":"t1"}`,
		`{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'exit 3'","aggregated_output":"","exit_code":3,"status":"failed"}}`,
		`{"type":"item.completed","item":{"id":"item_4","type":"agent_message","text":"done"}}`,
		`{"type":"turn.completed","usage":{"input_tokens":400,"output_tokens":80}}`,
	} {
		st.stdout([]byte(l))
	}
	for _, l := range []string{
		`Reading additional input from stdin...`,
		`2026-12-07T15:15:09.969114Z ERROR codex_core::tools::router: error=apply_patch verification failed: Failed to find expected lines in /w/app.txt:`,
		`no such line`,
		"2026-12-07T15:01:04.025061Z ERROR codex_core::tools::router: error=exec_command failed: CreateProcess { message: \"Rejected(\\\"`/bin/bash -lc 'rm -f notes.md'` rejected: rm -f style commands are not permitted. Use a safer approach\\\")\" }",
		`2026-12-07T15:01:04.025061Z WARN codex_core::codex: something else`,
	} {
		st.stderr([]byte(l))
	}
	res, err := e.finish(req, st.outcome(0), procResult{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"shell: /bin/bash -lc 'exit 3' exited with 3",
		"apply_patch: verification failed: Failed to find expected lines in /w/app.txt:",
		"shell: failed: CreateProcess { message: \"Rejected(\\\"`/bin/bash -lc 'rm -f notes.md'` rejected: rm -f style commands are not permitted. Use a safer approach\\\")\" }",
	}
	if !reflect.DeepEqual(res.ToolErrors, want) {
		t.Errorf("tool errors:\n%q\nwant\n%q", res.ToolErrors, want)
	}
}

// TestOpencodeModelWithoutProvider: opencode cannot run a model named
// without its provider, and says only "Unexpected server error" when
// asked to; the engine refuses it at once, naming the model, without
// starting opencode.
func TestOpencodeModelWithoutProvider(t *testing.T) {
	env, out := fakeCLI(t, "opencode-edit-and-commit")
	eng, _ := New("opencode")
	for _, model := range []string{"fake-model", "fake/", "/m"} {
		_, err := eng.Run(context.Background(), Request{Prompt: "p", Dir: t.TempDir(), Env: env, Model: model})
		var rerr *RunError
		if !errors.As(err, &rerr) || rerr.Class != Fatal || !strings.Contains(rerr.Msg, fmt.Sprintf("model %q is not one opencode can run", model)) ||
			!strings.Contains(rerr.Msg, "PROVIDER/MODEL") {
			t.Errorf("model %q: error %v, want a fatal error naming it", model, err)
		}
	}
	if runs, _ := filepath.Glob(filepath.Join(out, "*.args")); len(runs) != 0 {
		t.Errorf("opencode was started %d time(s)", len(runs))
	}
	if _, err := eng.Run(context.Background(), Request{Prompt: "p", Dir: t.TempDir(), Env: env, Model: "fake/fake-model"}); err != nil {
		t.Errorf("model fake/fake-model: %v", err)
	}
}

// TestModelThatRan: the model a run reports is one the API was asked for:
// Claude Code's init event marks a model run with its 1M-token context
// ("claude-opus-4-8[1m]"), which the API never sees; Gemini CLI's says
// "auto" when no model was given, and its result names the models its
// router picked, the agent's own using the most tokens.
func TestModelThatRan(t *testing.T) {
	tests := []struct {
		engine string
		stdout []string
		want   string
	}{
		{"claude", []string{
			`{"type":"system","subtype":"init","session_id":"s1","model":"claude-opus-4-8[1m]"}`,
			`{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s1","total_cost_usd":0.002,"usage":{"input_tokens":200,"output_tokens":40}}`,
		}, "claude-opus-4-8"},
		{"claude", []string{
			`{"type":"system","subtype":"init","session_id":"s1","model":"fake-model"}`,
			`{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s1","usage":{"input_tokens":200,"output_tokens":40}}`,
		}, "fake-model"},
		{"gemini", []string{
			`{"type":"init","session_id":"g1","model":"auto"}`,
			`{"type":"result","status":"success","stats":{"total_tokens":360,"input_tokens":300,"output_tokens":60,"models":{"gemini-3.5-flash-lite":{"total_tokens":120,"input_tokens":100,"output_tokens":20},"gemini-3.1-pro-preview":{"total_tokens":240,"input_tokens":200,"output_tokens":40}}}}`,
		}, "gemini-3.1-pro-preview"},
		{"gemini", []string{
			`{"type":"init","session_id":"g1","model":"fake-model"}`,
			`{"type":"result","status":"success","stats":{"total_tokens":510,"input_tokens":500,"output_tokens":10,"models":{"fake-model":{"total_tokens":510}}}}`,
		}, "fake-model"},
		{"gemini", []string{
			`{"type":"init","session_id":"g1","model":"fake-model"}`,
			`{"type":"result","status":"success","stats":{"total_tokens":510,"input_tokens":500,"output_tokens":10}}`,
		}, "fake-model"},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%d-%s", i, tt.engine), func(t *testing.T) {
			eng, _ := New(tt.engine)
			e := eng.(*cliEngine)
			req := Request{Prompt: "p"}
			st := e.newStream(req, nil)
			for _, l := range tt.stdout {
				st.stdout([]byte(l))
			}
			res, err := e.finish(req, st.outcome(0), procResult{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Model != tt.want {
				t.Errorf("model %q, want %q", res.Model, tt.want)
			}
		})
	}
}

// TestOpencodeConfigModel: opencode's events never name the model; a run
// without one reports the model of the inline configuration
// (OPENCODE_CONFIG_CONTENT), which overrides every config file.
func TestOpencodeConfigModel(t *testing.T) {
	tests := []struct {
		model, content, want string
	}{
		{"", `{"model":"fake/fake-model","provider":{}}`, "fake/fake-model"},
		{"other/m", `{"model":"fake/fake-model"}`, "other/m"},
		{"", `{"provider":{}}`, ""},
		{"", `{"model":"no-provider"}`, ""},
		{"", `not json`, ""},
		{"", "", ""},
	}
	stream, err := filepath.Abs(filepath.Join("testdata", "streams", "opencode-edit-and-commit.stdout.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	eng, _ := New("opencode")
	e := eng.(*cliEngine)
	for _, tt := range tests {
		req := Request{Prompt: "p", Model: tt.model}
		st := e.newStream(req, []string{"OPENCODE_CONFIG_CONTENT=" + tt.content})
		data, err := os.ReadFile(stream)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			st.stdout([]byte(l))
		}
		res, err := e.finish(req, st.outcome(0), procResult{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Model != tt.want {
			t.Errorf("model %q, OPENCODE_CONFIG_CONTENT %q: reported %q, want %q", tt.model, tt.content, res.Model, tt.want)
		}
	}
}

// TestCodexSessionUsage: Codex's turn.completed reports the thread's
// total usage, which in a resumed session counts the runs before; a run
// reports what its own requests used, read against the session's rollout.
// A run whose turn never completed (failed, stopped) has no usage in its
// stream: the rollout's count since it started is its usage.
func TestCodexSessionUsage(t *testing.T) {
	home := t.TempDir()
	env := []string{"CODEX_HOME=" + home}
	rollout := func(session string, totals ...[2]int64) {
		t.Helper()
		dir := filepath.Join(home, "sessions", "2026", "12", "07")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		lines := `{"timestamp":"2026-12-07T15:00:13.6Z","type":"session_meta","payload":{"id":"` + session + `","cwd":"/w"}}` + "\n"
		for _, tot := range totals {
			lines += fmt.Sprintf(`{"timestamp":"2026-12-07T15:00:14Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":%d,"cached_input_tokens":0,"output_tokens":%d},"last_token_usage":{"input_tokens":1,"output_tokens":1}}}}`, tot[0], tot[1]) + "\n"
		}
		if err := os.WriteFile(filepath.Join(dir, "rollout-2026-12-07T15-00-13-"+session+".jsonl"), []byte(lines), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	eng, _ := New("codex")
	e := eng.(*cliEngine)
	run := func(req Request, before func(), stdout ...string) (Result, error) {
		st := e.newStream(req, env)
		if before != nil {
			before() // the run writes its rollout
		}
		for _, l := range stdout {
			st.stdout([]byte(l))
		}
		return e.finish(req, st.outcome(1), procResult{exitCode: 1})
	}

	// A first run whose turn failed after a request: the rollout counted it.
	res, err := run(Request{Prompt: "p"}, func() { rollout("t1", [2]int64{700, 70}) },
		`{"type":"thread.started","thread_id":"t1"}`, `{"type":"turn.started"}`,
		`{"type":"turn.failed","error":{"message":"stream disconnected"}}`)
	if err == nil || res.TokensIn != 700 || res.TokensOut != 70 {
		t.Errorf("failed turn: %d in, %d out (%v), want 700, 70 and an error", res.TokensIn, res.TokensOut, err)
	}

	// Resumed: the thread's total (2550, 175) less what it had (700, 70).
	res, err = run(Request{Prompt: "p", Resume: "t1", Continue: "go on"}, func() { rollout("t1", [2]int64{700, 70}, [2]int64{2550, 175}) },
		`{"type":"thread.started","thread_id":"t1"}`, `{"type":"turn.started"}`,
		`{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"done"}}`,
		`{"type":"turn.completed","usage":{"input_tokens":2550,"cached_input_tokens":0,"output_tokens":175}}`)
	if err != nil || res.TokensIn != 1850 || res.TokensOut != 105 {
		t.Errorf("resumed: %d in, %d out (%v), want 1850, 105", res.TokensIn, res.TokensOut, err)
	}

	// A new session: turn.completed is the run's own.
	res, err = run(Request{Prompt: "p"}, nil,
		`{"type":"thread.started","thread_id":"t2"}`,
		`{"type":"turn.completed","usage":{"input_tokens":500,"output_tokens":10}}`)
	if err != nil || res.TokensIn != 500 || res.TokensOut != 10 {
		t.Errorf("new session: %d in, %d out (%v), want 500, 10", res.TokensIn, res.TokensOut, err)
	}
}

// TestGeminiStoppedUsage: only Gemini CLI's result event carries usage; a
// run stopped before it reports what its session's chat record counted
// since it started, the answers of earlier runs left out.
func TestGeminiStoppedUsage(t *testing.T) {
	root := t.TempDir()
	env := []string{"GEMINI_CLI_HOME=" + root}
	chats := filepath.Join(root, ".gemini", "tmp", "proj", "chats")
	if err := os.MkdirAll(chats, 0o755); err != nil {
		t.Fatal(err)
	}
	eng, _ := New("gemini")
	e := eng.(*cliEngine)
	req := Request{Prompt: "p", Timeout: 5 * time.Second}
	st := e.newStream(req, env)
	earlier := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	now := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	record := `{"sessionId":"g1","projectHash":"h","startTime":"` + earlier + `"}
{"id":"m0","sessionId":"g1","type":"gemini","timestamp":"` + earlier + `","model":"fake-model","tokens":{"input":5000,"output":500}}
{"id":"u1","sessionId":"g1","type":"user","timestamp":"` + now + `"}
{"id":"m1","sessionId":"g1","type":"gemini","timestamp":"` + now + `","model":"fake-model","tokens":{"input":600,"output":1}}
{"id":"m1","sessionId":"g1","type":"gemini","timestamp":"` + now + `","model":"fake-model","tokens":{"input":700,"output":70}}
`
	if err := os.WriteFile(filepath.Join(chats, "session-g1.jsonl"), []byte(record), 0o600); err != nil {
		t.Fatal(err)
	}
	st.stdout([]byte(`{"type":"init","session_id":"g1","model":"fake-model"}`))
	st.stdout([]byte(`{"type":"tool_use","tool_name":"write_file","tool_id":"t1","parameters":{"file_path":"partial.txt"}}`))
	res, err := e.finish(req, st.outcome(143), procResult{exitCode: 143, signal: syscall.SIGTERM, timedOut: true})
	var rerr *RunError
	if !errors.As(err, &rerr) || !rerr.TimedOut {
		t.Fatalf("error %v, want a timeout", err)
	}
	if res.TokensIn != 700 || res.TokensOut != 70 || rerr.Result.TokensIn != 700 {
		t.Errorf("usage %d in, %d out (error's %d in), want 700, 70", res.TokensIn, res.TokensOut, rerr.Result.TokensIn)
	}
}
