package agents

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codemachine/codemachine/internal/testenv"
)

func shellRequest(t *testing.T, command string) Request {
	t.Helper()
	return Request{Run: "r1", Step: "fmt", Command: command, Dir: t.TempDir(), Env: testenv.GitEnv(t.TempDir())}
}

func TestShellEngine(t *testing.T) {
	tests := []struct {
		name     string
		command  string
		timeout  time.Duration
		wantErr  *RunError // nil = success
		wantOut  string
		wantCode int
	}{
		// Stdout and stderr are read concurrently, so each case writes to one.
		{name: "success", command: "echo one; echo two", wantOut: "one\ntwo\n"},
		{name: "stderr", command: "echo warning >&2", wantOut: "warning\n"},
		{name: "no output", command: "true"},
		{
			name: "failure quotes the last line", command: "echo building; echo 'main.go:3: undefined: x'; echo; exit 2",
			wantErr:  &RunError{Class: Fatal, Engine: "shell", Msg: "command exited with status 2: main.go:3: undefined: x", ExitCode: 2},
			wantOut:  "building\nmain.go:3: undefined: x\n\n",
			wantCode: 2,
		},
		{
			name: "failure on stderr", command: "echo 'fatal: bad' >&2; exit 128",
			wantErr:  &RunError{Class: Fatal, Engine: "shell", Msg: "command exited with status 128: fatal: bad", ExitCode: 128},
			wantOut:  "fatal: bad\n",
			wantCode: 128,
		},
		{
			name: "failure without output", command: "exit 1",
			wantErr:  &RunError{Class: Fatal, Engine: "shell", Msg: "command exited with status 1", ExitCode: 1},
			wantCode: 1,
		},
		{
			name: "killed by a signal", command: "echo dying; kill -KILL $$",
			wantErr:  &RunError{Class: Fatal, Engine: "shell", Msg: "command killed by signal 9 (killed): dying", ExitCode: 137},
			wantOut:  "dying\n",
			wantCode: 137,
		},
		{
			name: "timeout", command: "echo slow; sleep 100", timeout: 150 * time.Millisecond,
			wantErr:  &RunError{Class: Fatal, Engine: "shell", Msg: "timed out after 150ms", ExitCode: 143, TimedOut: true},
			wantOut:  "slow\n",
			wantCode: 143,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng, err := New("shell")
			if err != nil {
				t.Fatal(err)
			}
			req := shellRequest(t, tt.command)
			req.Timeout = tt.timeout
			res, err := eng.Run(context.Background(), req)
			if res.Output != tt.wantOut || res.ExitCode != tt.wantCode || res.Text != "" || res.Duration <= 0 {
				t.Errorf("result %+v; want output %q exit %d", res, tt.wantOut, tt.wantCode)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				return
			}
			var re *RunError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T), want a *RunError", err, err)
			}
			want := *tt.wantErr
			want.Result = res
			if re.Class != want.Class || re.Engine != want.Engine || re.Msg != want.Msg || re.ExitCode != want.ExitCode ||
				re.TimedOut != want.TimedOut || re.Canceled || !reflect.DeepEqual(re.Result, res) {
				t.Errorf("error\n got %+v\nwant %+v", *re, want)
			}
		})
	}
}

func TestShellEngineCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	// The trap proves the group got SIGTERM: SIGKILL, the backstop after
	// the grace period, would leave no file.
	req := shellRequest(t, `trap 'echo term > got-term; exit 143' TERM; echo started; sleep 100 & wait`)
	req.OnEvent = func(Event) { cancel() }
	_, err := shellEngine{}.Run(ctx, req)
	var re *RunError
	if !errors.As(err, &re) || !re.Canceled || re.TimedOut || re.Msg != "canceled" || re.Class != Fatal {
		t.Fatalf("error %#v", err)
	}
	if got, err := os.ReadFile(filepath.Join(req.Dir, "got-term")); err != nil || string(got) != "term\n" {
		t.Errorf("the command did not get SIGTERM: %q, %v", got, err)
	}
}

func TestShellEngineRunsInDirWithEnv(t *testing.T) {
	req := shellRequest(t, `pwd; echo "step=$CODEMACHINE_STEP"; echo "token=${GITHUB_TOKEN-unset}"`)
	req.Env = Environ(append(os.Environ(), "GITHUB_TOKEN=secret"), map[string]string{"CODEMACHINE_STEP": "fmt"})
	var log bytes.Buffer
	var mu sync.Mutex
	var events []Event
	req.Log = &log
	req.OnEvent = func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }
	res, err := shellEngine{}.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.EvalSymlinks(req.Dir)
	want := dir + "\nstep=fmt\ntoken=unset\n"
	if res.Output != want {
		t.Errorf("output %q, want %q", res.Output, want)
	}
	if len(events) != 3 || events[0].Kind != "stdout" || events[1].Text != "step=fmt" || events[0].Time.IsZero() {
		t.Errorf("events %+v", events)
	}
	if lines := parseLog(t, log.Bytes()); len(lines) != 3 || *lines[1].Line != "step=fmt" {
		t.Errorf("log %s", log.Bytes())
	}
}

func TestShellEngineBadRequests(t *testing.T) {
	tests := []struct {
		name string
		req  func(*Request)
		want string
	}{
		{"no command", func(r *Request) { r.Command = "" }, "shell: no command to run"},
		{"missing dir", func(r *Request) { r.Dir = filepath.Join(r.Dir, "gone") }, "shell: start /bin/sh: working directory: stat "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := shellRequest(t, "true")
			tt.req(&req)
			_, err := shellEngine{}.Run(context.Background(), req)
			var re *RunError
			if !errors.As(err, &re) || re.Class != Fatal || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %v, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestShellEngineLogFailure(t *testing.T) {
	req := shellRequest(t, "echo a; sleep 0.05; echo b")
	req.Log = &failingWriter{}
	res, err := shellEngine{}.Run(context.Background(), req)
	var re *RunError
	if !errors.As(err, &re) || re.Msg != "write event log: disk full" || re.Result.Output != "a\nb\n" || res.ExitCode != 0 {
		t.Errorf("error %v result %+v", err, res)
	}
}

// OnStart reports the command's process id, which leads its own process
// group: what a caller records to stop the group after a crash. It leads
// a session of its own too, which has no controlling terminal.
func TestShellEngineOnStart(t *testing.T) {
	req := shellRequest(t, "echo $$ > pid; sleep 0.2")
	var got []int
	var pgid, sid int
	req.OnStart = func(pid int) {
		got = append(got, pid)
		pgid, _ = syscall.Getpgid(pid)
		sid, _ = unix.Getsid(pid)
	}
	sh, err := New("shell")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(req.Dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || strings.TrimSpace(string(data)) != strconv.Itoa(got[0]) || pgid != got[0] {
		t.Errorf("OnStart got %v (group %d), the shell's pid was %s", got, pgid, data)
	}
	if len(got) == 1 && sid != got[0] {
		t.Errorf("the shell (pid %d) is in session %d, want one of its own", got[0], sid)
	}
}
