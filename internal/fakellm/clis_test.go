package fakellm_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/fakellm"
	"github.com/codemachine/codemachine/internal/testenv"
)

// These tests run the four real coding CLIs, headless and offline, against
// the fake server: they prove that fakellm speaks each CLI's API well
// enough for the CLI to edit files, run commands, report usage, resume a
// session and report errors. The stream parsing here is the minimum the
// assertions need; the engines in agents/ have the real parsers.

// cliRun is the outcome of one CLI process.
type cliRun struct {
	code    int
	stdout  string
	stderr  string
	text    string // final answer
	session string
	in, out int64 // token usage over the run
	isError bool
	errText string
}

// cliDriver knows how to invoke one CLI and read its stream.
type cliDriver struct {
	name string
	// args is the headless invocation; resume is a session id or "".
	args  func(repo, prompt, resume string) []string
	parse func(t *testing.T, r *cliRun)
	// calls are the tool names the edit-and-commit turns translate to:
	// write, read, edit, shell.
	calls []string
	// retryAfter is the 429 retry delay to script: long enough that
	// waiting it proves the CLI read it rather than used its own back-off.
	retryAfter time.Duration
	// errorExit is the exit code of a run whose model call fails with 400.
	errorExit int
}

var drivers = []cliDriver{
	{
		name: "claude",
		args: func(repo, prompt, resume string) []string {
			a := []string{"-p", prompt, "--output-format", "stream-json", "--verbose",
				"--permission-mode", "bypassPermissions", "--model", testenv.Model("claude")}
			if resume != "" {
				a = append(a, "--resume", resume)
			}
			return a
		},
		parse: func(t *testing.T, r *cliRun) {
			for _, ev := range jsonLines(t, r.stdout) {
				if s, ok := ev["session_id"].(string); ok {
					r.session = s
				}
				if ev["type"] != "result" {
					continue
				}
				r.text, _ = ev["result"].(string)
				r.isError, _ = ev["is_error"].(bool)
				if r.isError {
					r.errText = r.text
				}
				usage, _ := ev["usage"].(map[string]any)
				r.in, r.out = num(usage["input_tokens"]), num(usage["output_tokens"])
			}
		},
		calls:      []string{"Write", "Read", "Edit", "Bash"},
		retryAfter: time.Second, // its own first back-off is about 0.5 s
		errorExit:  1,
	},
	{
		name: "codex",
		args: func(repo, prompt, resume string) []string {
			a := []string{"exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "-C", repo}
			if resume != "" {
				a = append(a, "resume", resume)
			}
			return append(a, prompt)
		},
		parse: func(t *testing.T, r *cliRun) {
			for _, ev := range jsonLines(t, r.stdout) {
				switch ev["type"] {
				case "thread.started":
					r.session, _ = ev["thread_id"].(string)
				case "item.completed":
					item, _ := ev["item"].(map[string]any)
					if item["type"] == "agent_message" {
						r.text, _ = item["text"].(string)
					}
				case "turn.completed":
					usage, _ := ev["usage"].(map[string]any)
					r.in += num(usage["input_tokens"])
					r.out += num(usage["output_tokens"])
				case "error":
					// Also sent, without failing the turn, while Codex
					// retries ("Reconnecting... 1/5").
					msg, _ := ev["message"].(string)
					r.errText += msg
				case "turn.failed":
					r.isError = true
					e, _ := ev["error"].(map[string]any)
					msg, _ := e["message"].(string)
					r.errText += msg
				}
			}
		},
		calls:      []string{"apply_patch", "exec_command", "apply_patch", "exec_command"},
		retryAfter: time.Second, // its own first back-off is about 0.2 s
		errorExit:  1,
	},
	{
		name: "gemini",
		args: func(repo, prompt, resume string) []string {
			a := []string{"-p", prompt, "--output-format", "stream-json", "--yolo", "-m", testenv.Model("gemini")}
			if resume != "" {
				a = append(a, "--resume", resume)
			}
			return a
		},
		parse: func(t *testing.T, r *cliRun) {
			for _, ev := range jsonLines(t, r.stdout) {
				switch ev["type"] {
				case "init":
					r.session, _ = ev["session_id"].(string)
				case "message":
					// The final text is the assistant deltas after the
					// last tool call.
					if ev["role"] == "assistant" {
						s, _ := ev["content"].(string)
						r.text += s
					}
				case "tool_use", "tool_result":
					r.text = ""
				case "result":
					stats, _ := ev["stats"].(map[string]any)
					r.in, r.out = num(stats["input_tokens"]), num(stats["output_tokens"])
					if ev["status"] != "success" {
						r.isError = true
						e, _ := ev["error"].(map[string]any)
						r.errText, _ = e["message"].(string)
					}
				}
			}
		},
		calls: []string{"write_file", "read_file", "replace", "run_shell_command"},
		// Gemini CLI waits max(retryDelay, 5 s) plus up to 20 %: only a
		// delay above 6.5 s (its jittered default) shows that it read it.
		retryAfter: 7 * time.Second,
		errorExit:  400 % 256, // the HTTP status mod 256
	},
	{
		name: "opencode",
		args: func(repo, prompt, resume string) []string {
			a := []string{"run", "--format", "json", "-m", testenv.Model("opencode"), "--dir", repo}
			if resume != "" {
				a = append(a, "--session", resume)
			}
			return append(a, prompt)
		},
		parse: func(t *testing.T, r *cliRun) {
			for _, ev := range jsonLines(t, r.stdout) {
				if s, ok := ev["sessionID"].(string); ok {
					r.session = s
				}
				part, _ := ev["part"].(map[string]any)
				switch ev["type"] {
				case "text":
					r.text, _ = part["text"].(string)
				case "step_finish":
					tokens, _ := part["tokens"].(map[string]any)
					r.in += num(tokens["input"])
					r.out += num(tokens["output"])
				case "error":
					r.isError = true
					e, _ := ev["error"].(map[string]any)
					data, _ := e["data"].(map[string]any)
					r.errText, _ = data["message"].(string)
				}
			}
		},
		calls:      []string{"write", "read", "edit", "bash"},
		retryAfter: 3 * time.Second, // its own first back-off is about 2 s
		errorExit:  1,
	},
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var events []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("stream line is not JSON: %q: %v", line, err)
			continue
		}
		events = append(events, ev)
	}
	return events
}

// run starts one CLI in repo with the hermetic environment, in its own
// process group (killed whole on timeout, as an engine does), stdin closed.
// With a trace file it runs under strace, recording every connect().
func (d cliDriver) run(t *testing.T, bin, repo string, env []string, prompt, resume, trace string) cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testenv.CLIRunPatience())
	defer cancel()
	args := d.args(repo, prompt, resume)
	if trace != "" {
		// seccomp-bpf stops only at connect(), not at every syscall.
		args = append([]string{"-f", "--seccomp-bpf", "-qq", "-e", "trace=connect", "-o", trace, bin}, args...)
		bin = "strace"
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = repo
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := cliRun{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("%s: %v", d.name, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s timed out after %v\nstdout:\n%s\nstderr:\n%s", d.name, time.Since(start), r.stdout, r.stderr)
	}
	d.parse(t, &r)
	t.Logf("%s ran %v, exit %d", d.name, time.Since(start).Round(time.Millisecond), r.code)
	return r
}

// modelRequests are the script-bearing requests the server logged.
func modelRequests(s *fakellm.Server) []fakellm.Request {
	var out []fakellm.Request
	for _, r := range s.Requests() {
		if r.Turn >= 0 || r.Exhausted {
			out = append(out, r)
		}
	}
	return out
}

func dump(s *fakellm.Server, r cliRun) string {
	var b strings.Builder
	for _, req := range s.Requests() {
		b.WriteString(req.String() + "\n")
	}
	return fmt.Sprintf("requests:\n%sstdout:\n%s\nstderr:\n%s", b.String(), r.stdout, r.stderr)
}

// checkRequests: no unknown routes, no call the server could not map.
func checkRequests(t *testing.T, s *fakellm.Server) {
	t.Helper()
	for _, r := range s.Requests() {
		if r.API == fakellm.APIUnknown || r.Error != "" {
			t.Errorf("unexpected request: %v", r)
		}
	}
}

const (
	editPrompt    = "Add src/app.txt and commit it."
	resumePrompt  = "Now say RESUMED."
	appContent    = "line 1\nline 2\n"
	readmeContent = "edited by the agent\nsecond line\n"
	commitMsg     = "fakellm: add src/app.txt"
)

var turnUsage = fakellm.Usage{Input: 1000, Output: 50}

// editAndCommit: write src/app.txt, read and edit README.md, commit both
// with the CLI's shell, answer DONE; then resume the session and answer
// RESUMED.
func editAndCommit(t *testing.T, d cliDriver, bin string) {
	s := fakellm.Start(t, fakellm.Script{Turns: []fakellm.Turn{
		{Text: "Creating src/app.txt.", Calls: []fakellm.Call{fakellm.WriteFile{Path: "src/app.txt", Content: appContent}}, Usage: turnUsage},
		// Claude refuses to edit a file the session has not read.
		{Calls: []fakellm.Call{fakellm.ReadFile{Path: "README.md"}}, Usage: turnUsage},
		{Calls: []fakellm.Call{fakellm.EditFile{Path: "README.md", Old: "test repository\n", New: readmeContent}}, Usage: turnUsage},
		{Text: "Committing.", Calls: []fakellm.Call{fakellm.Shell{Command: "git add -A && git commit -qm '" + commitMsg + "'"}}, Usage: turnUsage},
		{Text: "DONE", Usage: turnUsage},
		{Text: "RESUMED", Usage: turnUsage},
	}})
	repo := testenv.GitRepo(t)
	home, env := testenv.Setup(t, d.name, s.URL())
	trace := ""
	if straceWorks() {
		trace = filepath.Join(t.TempDir(), "connect.trace")
	}
	r := d.run(t, bin, repo, env, editPrompt, "", trace)
	if r.code != 0 || r.isError {
		t.Fatalf("exit %d, error %t %q\n%s", r.code, r.isError, r.errText, dump(s, r))
	}
	got, err := os.ReadFile(filepath.Join(repo, "src", "app.txt"))
	if err != nil || string(got) != appContent {
		t.Errorf("src/app.txt = %q, %v; want %q", got, err, appContent)
	}
	if got, err := os.ReadFile(filepath.Join(repo, "README.md")); err != nil || string(got) != readmeContent {
		t.Errorf("README.md = %q, %v; want %q", got, err, readmeContent)
	}
	if subject := testenv.Git(t, repo, "log", "-1", "--format=%s"); subject != commitMsg {
		t.Errorf("last commit %q, want %q", subject, commitMsg)
	}
	if files := testenv.Git(t, repo, "show", "--name-only", "--format=", "HEAD"); files != "README.md\nsrc/app.txt" {
		t.Errorf("the commit holds %q, want README.md and src/app.txt", files)
	}
	if status := testenv.Git(t, repo, "status", "--porcelain"); status != "" {
		t.Errorf("work tree not clean after the commit:\n%s", status)
	}
	if r.text != "DONE" {
		t.Errorf("final text %q, want DONE", r.text)
	}
	const turns = 5
	if r.in != turns*turnUsage.Input || r.out != turns*turnUsage.Output {
		t.Errorf("usage %d in / %d out, want %d / %d", r.in, r.out, turns*turnUsage.Input, turns*turnUsage.Output)
	}
	if r.session == "" {
		t.Error("no session id in the stream")
	}
	// The CLIs state the real path of their working directory.
	realRepo, err := filepath.EvalSymlinks(repo)
	if err != nil {
		t.Fatal(err)
	}
	reqs := modelRequests(s)
	if len(reqs) != turns {
		t.Fatalf("%d model requests, want %d\n%s", len(reqs), turns, dump(s, r))
	}
	for i, req := range reqs {
		var want []string
		if i < len(d.calls) {
			want = d.calls[i : i+1]
		}
		if req.Turn != i || strings.Join(req.Calls, ",") != strings.Join(want, ",") || req.Status != 200 {
			t.Errorf("request %d: %v, want turn %d calling %v", i, req, i, want)
		}
		if req.Cwd != realRepo {
			t.Errorf("request %d: cwd %q, want %q", i, req.Cwd, realRepo)
		}
		if !strings.Contains(req.UserText, editPrompt) {
			t.Errorf("request %d: user text %q lacks the prompt", i, req.UserText)
		}
	}
	checkRequests(t, s)
	if t.Failed() {
		t.Fatalf("first run failed\n%s", dump(s, r))
	}

	// Resume the session in the same home: the model sees the history.
	if err := testenv.PrepareHome(d.name, home, s.URL()); err != nil {
		t.Fatal(err)
	}
	if trace != "" {
		checkEgress(t, trace)
	}

	r2 := d.run(t, bin, repo, env, resumePrompt, r.session, "")
	if r2.code != 0 || r2.isError || r2.text != "RESUMED" {
		t.Fatalf("resume: exit %d, text %q, error %q\n%s", r2.code, r2.text, r2.errText, dump(s, r2))
	}
	if r2.session != r.session {
		t.Errorf("resumed session %q, want %q", r2.session, r.session)
	}
	reqs = modelRequests(s)
	last := reqs[len(reqs)-1]
	if len(reqs) != turns+1 || last.Turn != turns {
		t.Fatalf("resume made %d model requests in all, last %v", len(reqs), last)
	}
	if !strings.Contains(last.UserText, resumePrompt) || last.Messages <= reqs[turns-1].Messages {
		t.Errorf("resumed request: user text %q, %d messages (the last first-run request had %d): no history",
			last.UserText, last.Messages, reqs[turns-1].Messages)
	}
}

// straceWorks reports whether strace can trace children here (it needs
// ptrace, which some containers deny).
var straceWorks = sync.OnceValue(func() bool {
	if _, err := exec.LookPath("strace"); err != nil {
		return false
	}
	return exec.Command("strace", "-f", "--seccomp-bpf", "-qq", "-e", "trace=connect", "-o", os.DevNull, "true").Run() == nil
})

// checkEgress fails on any connect() in the trace to an internet address
// other than loopback: the environment must keep every CLI (and the git
// and shell it runs) off the network, DNS included.
func checkEgress(t *testing.T, trace string) {
	t.Helper()
	data, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	bad, inet := egress(string(data))
	for _, line := range bad {
		t.Errorf("connect to something other than loopback: %s", line)
	}
	if inet == 0 {
		t.Errorf("the trace shows no connect() at all, not even to the fake server:\n%s", data)
	}
}

// egress returns the strace lines that connect to a non-loopback internet
// address, and the number of internet connects.
func egress(trace string) (bad []string, inet int) {
	for _, line := range strings.Split(trace, "\n") {
		if !strings.Contains(line, "connect(") || !strings.Contains(line, "sa_family=AF_INET") {
			continue
		}
		inet++
		if !strings.Contains(line, `inet_addr("127.0.0.1")`) && !strings.Contains(line, `inet_pton(AF_INET6, "::1"`) {
			bad = append(bad, line)
		}
	}
	return bad, inet
}

func TestEgress(t *testing.T) {
	trace := `101 connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT
101 connect(21, {sa_family=AF_INET, sin_port=htons(41397), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
102 connect(22, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0
103 connect(5, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.2")}, 16) = -1 ENETUNREACH
104 connect(6, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2606:4700::6810:1", &sin6_addr), sin6_scope_id=0}, 28) = -1
`
	bad, inet := egress(trace)
	if inet != 4 || len(bad) != 2 || !strings.Contains(bad[0], "10.0.0.2") || !strings.Contains(bad[1], "2606:4700") {
		t.Errorf("egress = %q, %d", bad, inet)
	}
}

// badRequest: the model answers 400; the CLI exits non-zero with the error
// in its stream and does not retry.
func badRequest(t *testing.T, d cliDriver, bin string) {
	s := fakellm.Start(t, fakellm.Script{Turns: []fakellm.Turn{
		{Text: "never", Fail: &fakellm.Failure{Status: 400, Message: "fakellm: scripted invalid request"}},
	}})
	repo := testenv.GitRepo(t)
	_, env := testenv.Setup(t, d.name, s.URL())
	r := d.run(t, bin, repo, env, "Say hello.", "", "")
	if r.code != d.errorExit {
		t.Errorf("exit %d, want %d", r.code, d.errorExit)
	}
	if !r.isError || !strings.Contains(r.errText, "scripted invalid request") {
		t.Errorf("stream error %t %q, want the API error", r.isError, r.errText)
	}
	if reqs := modelRequests(s); len(reqs) != 1 || reqs[0].Status != 400 {
		t.Errorf("model requests %v, want one answered 400", reqs)
	}
	checkRequests(t, s)
	if t.Failed() {
		t.Log(dump(s, r))
	}
}

// retried: the first request fails (500, or 429 with a retry delay); the
// CLI retries by itself and succeeds. It returns the time between the
// failed request and its retry.
func retried(t *testing.T, d cliDriver, bin string, fail *fakellm.Failure) time.Duration {
	s := fakellm.Start(t, fakellm.Script{Turns: []fakellm.Turn{{Text: "DONE", Fail: fail}}})
	repo := testenv.GitRepo(t)
	_, env := testenv.Setup(t, d.name, s.URL())
	r := d.run(t, bin, repo, env, "Say DONE.", "", "")
	if r.code != 0 || r.isError || r.text != "DONE" {
		t.Fatalf("exit %d, text %q, error %q\n%s", r.code, r.text, r.errText, dump(s, r))
	}
	reqs := modelRequests(s)
	if len(reqs) != 2 || reqs[0].Status != fail.Status || reqs[0].Fault != fakellm.FailStatus || reqs[1].Status != 200 || reqs[1].Turn != 0 {
		t.Fatalf("model requests %v, want a failure then the turn", reqs)
	}
	checkRequests(t, s)
	gap := reqs[1].Time.Sub(reqs[0].Time)
	t.Logf("%s retried a %d after %v", d.name, fail.Status, gap.Round(time.Millisecond))
	return gap
}

func TestRealCLIs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real agent CLIs")
	}
	bins := testenv.RequireCLIs(t)
	only := os.Getenv("FAKELLM_CLIS") // e.g. "opencode,gemini": a subset, when working on one
	if testenv.NetIsolated() {
		t.Log("network namespace with loopback only: nothing but 127.0.0.1 is reachable")
	}
	type job struct {
		name string
		fn   func(t *testing.T)
	}
	var jobs []job
	for _, d := range drivers {
		if only != "" && !strings.Contains(","+only+",", ","+d.name+",") {
			continue
		}
		bin := bins[d.name]
		jobs = append(jobs,
			job{d.name + "/edit-commit-resume", func(t *testing.T) { editAndCommit(t, d, bin) }},
			job{d.name + "/error-400", func(t *testing.T) { badRequest(t, d, bin) }},
			job{d.name + "/500-then-success", func(t *testing.T) {
				retried(t, d, bin, &fakellm.Failure{Status: 500, Times: 1})
			}},
			job{d.name + "/429-retry-after", func(t *testing.T) {
				gap := retried(t, d, bin, &fakellm.Failure{Status: 429, Times: 1, RetryAfter: d.retryAfter})
				if gap < d.retryAfter {
					t.Errorf("retried after %v, before the %v the server asked for", gap, d.retryAfter)
				}
			}},
		)
	}
	// Longest first (opencode starts slowly; Gemini waits 5 s and more
	// before a retry), so that the slow ones do not start last.
	cost := func(name string) int {
		c := 0
		switch {
		case strings.HasPrefix(name, "opencode/"):
			c += 4
		case strings.HasPrefix(name, "gemini/"):
			c += 2
		}
		switch {
		case strings.HasSuffix(name, "/edit-commit-resume"), strings.HasSuffix(name, "/429-retry-after"):
			c += 3
		case strings.HasSuffix(name, "/500-then-success"):
			c += 2
		}
		return c
	}
	sort.SliceStable(jobs, func(i, j int) bool { return cost(jobs[i].name) > cost(jobs[j].name) })
	// Most of a CLI run is process start-up and waiting for retries, so
	// run more of them at once than -parallel (GOMAXPROCS) would; t.Run
	// may be called from several goroutines.
	queue := make(chan job)
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				t.Run(j.name, j.fn)
			}
		}()
	}
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	wg.Wait()
}
