package agents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
)

// shProc is a proc running script with sh, in a temp dir, with a hermetic
// environment.
func shProc(t *testing.T, script string) *proc {
	t.Helper()
	return &proc{path: "sh", args: []string{"-c", script}, dir: t.TempDir(), env: testenv.GitEnv(t.TempDir())}
}

// assertGroupGone fails when a process of the group is still running.
// kill(-pgid, 0) also finds zombies, which stay around where PID 1 does not
// reap orphans, so a hit is checked against /proc.
func assertGroupGone(t *testing.T, pgid int) {
	t.Helper()
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return
	}
	out, err := exec.Command("ps", "-eo", "pid=,pgid=,stat=,args=").Output()
	if err != nil {
		t.Fatalf("ps: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == strconv.Itoa(pgid) && !strings.HasPrefix(f[2], "Z") {
			t.Errorf("process left behind in group %d: %s", pgid, line)
		}
	}
}

func TestRunExitStatus(t *testing.T) {
	tests := []struct {
		script string
		code   int
		signal syscall.Signal
	}{
		{"true", 0, 0},
		{"exit 3", 3, 0},
		{"kill -KILL $$", 128 + 9, syscall.SIGKILL},
		{"kill -SEGV $$", 128 + 11, syscall.SIGSEGV},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			res, err := shProc(t, tt.script).run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.exitCode != tt.code || res.signal != tt.signal || res.timedOut || res.canceled {
				t.Errorf("got exit %d signal %v timedOut %v canceled %v; want exit %d signal %v",
					res.exitCode, res.signal, res.timedOut, res.canceled, tt.code, tt.signal)
			}
			if res.pid <= 0 || res.duration <= 0 {
				t.Errorf("pid %d duration %v", res.pid, res.duration)
			}
		})
	}
}

func TestRunStartErrors(t *testing.T) {
	p := shProc(t, "true")
	p.dir = filepath.Join(p.dir, "missing")
	if _, err := p.run(context.Background()); err == nil || !strings.Contains(err.Error(), "start sh: working directory: stat ") {
		t.Errorf("missing dir: %v", err)
	}
	p = shProc(t, "true")
	p.path = "no-such-program-xyz"
	if _, err := p.run(context.Background()); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("missing program: %v", err)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	rel := "relbin"
	for _, d := range []string{bin, filepath.Join(dir, rel)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path string, mode os.FileMode) {
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bin, "tool"), 0o755)
	write(filepath.Join(bin, "plain"), 0o644)
	write(filepath.Join(dir, rel, "sneaky"), 0o755)
	t.Chdir(dir) // so that the relative PATH entry would resolve
	env := []string{"PATH=/nonexistent:" + rel + ":" + bin, "PATH_OTHER=x"}
	tests := []struct{ file, want string }{
		{"tool", filepath.Join(bin, "tool")},
		{"plain", ""},  // not executable
		{"sneaky", ""}, // only on a relative PATH entry
		{"./x/y", "./x/y"},
	}
	for _, tt := range tests {
		got, err := lookPath(tt.file, env)
		if got != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("lookPath(%q) = %q, %v; want %q", tt.file, got, err, tt.want)
		}
	}
	if _, err := lookPath("tool", []string{"PATH=" + bin, "PATH=/nonexistent"}); err == nil {
		t.Error("the last PATH of the environment should win")
	}
}

// logLine is one line of a run's event log.
type logLine struct {
	T         time.Time       `json:"t"`
	Stream    string          `json:"stream"`
	Line      *string         `json:"line"`
	Event     json.RawMessage `json:"event"`
	Truncated int             `json:"truncated"`
}

func parseLog(t *testing.T, log []byte) []logLine {
	t.Helper()
	var lines []logLine
	for i, raw := range bytes.Split(bytes.TrimSuffix(log, []byte("\n")), []byte("\n")) {
		var l logLine
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatalf("log line %d is not JSON: %v: %q", i+1, err, raw)
		}
		if l.T.IsZero() || (l.Line == nil) == (l.Event == nil) {
			t.Fatalf("log line %d lacks t or has not exactly one of line/event: %s", i+1, raw)
		}
		lines = append(lines, l)
	}
	return lines
}

type handled struct {
	mu    sync.Mutex
	lines map[string][]string
}

func (h *handled) handle(stream string, line []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lines == nil {
		h.lines = map[string][]string{}
	}
	h.lines[stream] = append(h.lines[stream], string(line))
}

func TestRunLinesAndLog(t *testing.T) {
	script := `
printf '%s\n' '{"type":"init","session_id":"s1"}'
printf 'plain text\n'
printf '%s\n' '{"type":"broken",'
printf 'to stderr\n' >&2
printf '%s\r\n' '{"type":"crlf"}'
printf '%s\n' '  {"type":"padded"}  '
printf '%s\n' '[1,2]'
printf 'invalid \377 utf8\n'
printf '{"bad":"\377"}\n'
printf '\n'
printf 'no final newline'
`
	var log bytes.Buffer
	var h handled
	p := shProc(t, script)
	p.log, p.jsonStdout, p.onLine = &log, true, h.handle
	res, err := p.run(context.Background())
	if err != nil || res.exitCode != 0 || res.logErr != nil {
		t.Fatalf("run: %v %+v", err, res)
	}
	wantStdout := []string{
		`{"type":"init","session_id":"s1"}`, "plain text", `{"type":"broken",`, `{"type":"crlf"}`,
		`  {"type":"padded"}  `, "[1,2]", "invalid \377 utf8", `{"bad":"` + "\377" + `"}`, "", "no final newline",
	}
	if got := h.lines["stdout"]; strings.Join(got, "|") != strings.Join(wantStdout, "|") {
		t.Errorf("stdout lines\n got %q\nwant %q", got, wantStdout)
	}
	if got := h.lines["stderr"]; len(got) != 1 || got[0] != "to stderr" {
		t.Errorf("stderr lines %q", got)
	}

	lines := parseLog(t, log.Bytes())
	var events []string
	var texts []string
	for _, l := range lines {
		if l.Event != nil {
			events = append(events, string(l.Event))
		} else if l.Stream == "stdout" {
			texts = append(texts, *l.Line)
		}
	}
	wantEvents := []string{`{"type":"init","session_id":"s1"}`, `{"type":"crlf"}`, `{"type":"padded"}`}
	if strings.Join(events, "|") != strings.Join(wantEvents, "|") {
		t.Errorf("embedded events\n got %q\nwant %q", events, wantEvents)
	}
	wantTexts := []string{"plain text", `{"type":"broken",`, "[1,2]", "invalid \uFFFD utf8", `{"bad":"` + "\uFFFD" + `"}`, "", "no final newline"}
	if strings.Join(texts, "|") != strings.Join(wantTexts, "|") {
		t.Errorf("quoted lines\n got %q\nwant %q", texts, wantTexts)
	}
	if len(lines) != len(wantStdout)+1 {
		t.Errorf("%d log lines, want %d", len(lines), len(wantStdout)+1)
	}
	// The streams are read concurrently: the tail has both, each in order.
	stdout := strings.Replace(res.output, "to stderr\n", "", 1)
	if stdout == res.output || stdout != strings.Join(wantStdout, "\n")+"\n" {
		t.Errorf("output tail %q", res.output)
	}
}

func TestRunTextStreamNotEmbedded(t *testing.T) {
	// Without jsonStdout (the shell engine), JSON output is text like any other.
	var log bytes.Buffer
	p := shProc(t, `echo '{"a":1}'`)
	p.log = &log
	if _, err := p.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := parseLog(t, log.Bytes())
	if len(lines) != 1 || lines[0].Line == nil || *lines[0].Line != `{"a":1}` {
		t.Errorf("log %s", log.Bytes())
	}
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	p := shProc(t, "sleep 100 & sleep 100 & wait")
	p.timeout = 200 * time.Millisecond
	start := time.Now()
	res, err := p.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v", el)
	}
	if !res.timedOut || res.canceled || res.signal != syscall.SIGTERM {
		t.Errorf("timedOut %v canceled %v signal %v", res.timedOut, res.canceled, res.signal)
	}
	assertGroupGone(t, res.pid)
}

func TestRunGrandchildHoldingPipes(t *testing.T) {
	// sh exits at once; the background sleep keeps stdout open. The run
	// must end promptly, with the output, and take the sleep down with it.
	p := shProc(t, "sleep 100 & echo hi")
	p.timeout = 30 * time.Second
	start := time.Now()
	res, err := p.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v", el)
	}
	if res.exitCode != 0 || res.timedOut || res.output != "hi\n" {
		t.Errorf("exit %d timedOut %v output %q", res.exitCode, res.timedOut, res.output)
	}
	assertGroupGone(t, res.pid)
}

func TestRunEscapedProcessHoldingPipes(t *testing.T) {
	t.Parallel()
	// A process that leaves the group (setsid) cannot be killed with it;
	// the runner stops reading after drainTimeout instead of hanging.
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Fatalf("this test needs setsid (util-linux): %v", err)
	}
	p := shProc(t, "setsid sleep 3 & echo started")
	start := time.Now()
	res, err := p.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > drainTimeout+2*time.Second {
		t.Errorf("took %v", el)
	}
	if res.output != "started\n" {
		t.Errorf("output %q", res.output)
	}
}

func TestRunReadsWhatKeepsComing(t *testing.T) {
	t.Parallel()
	// A process that left the group keeps writing for longer than
	// drainTimeout, never pausing for long: what it writes is read to its
	// end rather than cut after drainTimeout, as output still in flight
	// from the group is on a loaded machine.
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Fatalf("this test needs setsid (util-linux): %v", err)
	}
	// The shell waits until the writer has left the group (it touches
	// its marker after setsid): on a loaded machine it might otherwise
	// still be in the group when the group ends, and be stopped with it.
	marker := filepath.Join(t.TempDir(), "escaped")
	p := shProc(t, "setsid sh -c 'touch "+marker+"; i=0; while [ $i -lt 15 ]; do echo $i; i=$((i+1)); sleep 0.1; done; echo end' & "+
		"until [ -e "+marker+" ]; do sleep 0.01; done; echo started")
	res, err := p.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(res.output, "14\nend\n") {
		t.Errorf("output %q, want it to end with the escaped writer's last lines", res.output)
	}
}

func TestRunGraceThenKill(t *testing.T) {
	t.Parallel()
	// The shell and its child ignore SIGTERM: SIGKILL follows after grace.
	p := shProc(t, `trap '' TERM; echo ready; sleep 100; echo never`)
	p.timeout = 100 * time.Millisecond
	p.grace = 300 * time.Millisecond
	start := time.Now()
	res, err := p.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	if el < p.timeout+p.grace || el > 3*time.Second {
		t.Errorf("took %v, want about timeout+grace", el)
	}
	if !res.timedOut || res.signal != syscall.SIGKILL || res.exitCode != 137 || res.output != "ready\n" {
		t.Errorf("timedOut %v signal %v exit %d output %q", res.timedOut, res.signal, res.exitCode, res.output)
	}
	assertGroupGone(t, res.pid)
}

func TestRunLeftoverIgnoringTerm(t *testing.T) {
	t.Parallel()
	// The leader exits normally but leaves a child that ignores SIGTERM.
	p := shProc(t, `(trap '' TERM; sleep 100) & echo done`)
	p.grace = 200 * time.Millisecond
	start := time.Now()
	res, err := p.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v", el)
	}
	if res.exitCode != 0 || res.timedOut || res.output != "done\n" {
		t.Errorf("exit %d timedOut %v output %q", res.exitCode, res.timedOut, res.output)
	}
	assertGroupGone(t, res.pid)
}

func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var h handled
	p := shProc(t, "echo started; sleep 100")
	p.onLine = func(stream string, line []byte) {
		h.handle(stream, line)
		cancel() // cancel once the process is surely running
	}
	res, err := p.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.canceled || res.timedOut || res.signal != syscall.SIGTERM {
		t.Errorf("canceled %v timedOut %v signal %v", res.canceled, res.timedOut, res.signal)
	}
	assertGroupGone(t, res.pid)

	res, err = shProc(t, "echo never").run(ctx) // already canceled: nothing starts
	if err != nil || !res.canceled || res.pid != 0 {
		t.Errorf("run with a canceled context: %v %+v", err, res)
	}
}

// countingWriter counts log lines and keeps the first and the last few
// of them, without holding the whole flood.
type countingWriter struct {
	lines       int
	first, last []byte
}

func (w *countingWriter) Write(b []byte) (int, error) {
	w.lines += bytes.Count(b, []byte("\n"))
	if len(w.first) < 4096 {
		w.first = append(w.first, b...)
	}
	w.last = append(w.last, b...)
	if len(w.last) > 8192 {
		w.last = append(w.last[:0], w.last[len(w.last)-4096:]...)
	}
	return len(b), nil
}

// sample returns the complete lines of the first and last bytes seen.
func (w *countingWriter) sample() []byte {
	first := w.first[:bytes.LastIndexByte(w.first, '\n')+1]
	last := w.last[bytes.IndexByte(w.last, '\n')+1:]
	return append(append([]byte(nil), first...), last...)
}

func TestRunFlood(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, script string
		lines        int
	}{
		{"short lines", "yes | head -c 1000000", 500000},
		{"long lines", "yes $(printf '%0200d' 7) | head -c 50250000", 250000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log countingWriter
			n := 0
			p := shProc(t, tt.script)
			p.log = &log
			p.onLine = func(string, []byte) { n++ }
			res, err := p.run(context.Background())
			if err != nil || res.exitCode != 0 {
				t.Fatalf("run: %v %+v", err, res)
			}
			if n != tt.lines || log.lines != tt.lines {
				t.Errorf("handler saw %d lines, log has %d; want %d", n, log.lines, tt.lines)
			}
			if len(res.output) > tailBytes || strings.Count(res.output, "\n") > tailLines {
				t.Errorf("output tail is %d bytes, %d lines", len(res.output), strings.Count(res.output, "\n"))
			}
			if strings.Count(res.output, "\n") != min(tailLines, tailBytes/(len(res.lastLine())+1)) {
				t.Errorf("output tail has %d lines", strings.Count(res.output, "\n"))
			}
			parseLog(t, log.sample())
		})
	}
}

func TestRunHugeLine(t *testing.T) {
	t.Parallel()
	const size = 5 << 20
	var log bytes.Buffer
	var h handled
	p := shProc(t, fmt.Sprintf(`head -c %d /dev/zero | tr '\0' x; echo; echo after`, size))
	p.log, p.onLine = &log, h.handle
	res, err := p.run(context.Background())
	if err != nil || res.exitCode != 0 {
		t.Fatalf("run: %v %+v", err, res)
	}
	got := h.lines["stdout"]
	if len(got) != 2 || len(got[0]) != maxLineBytes || strings.Trim(got[0], "x") != "" || got[1] != "after" {
		t.Fatalf("handler lines: %d, first %d bytes", len(got), len(got[0]))
	}
	lines := parseLog(t, log.Bytes())
	if len(lines) != 2 || lines[0].Truncated != size || len(*lines[0].Line) != maxLineBytes || lines[1].Truncated != 0 {
		t.Errorf("log: %d lines, truncated %d", len(lines), lines[0].Truncated)
	}
	if len(res.output) > tailBytes || !strings.HasSuffix(res.output, "xx\nafter\n") {
		t.Errorf("tail %d bytes, ends %q", len(res.output), res.output[max(0, len(res.output)-10):])
	}
}

// TestRunLogBounded: a process that prints without end fills its log up
// to maxLogBytes, then one line says the log stops there; the output still
// reaches the handler and the tail to its end.
func TestRunLogBounded(t *testing.T) {
	defer func(n int64) { maxLogBytes = n }(maxLogBytes)
	maxLogBytes = 64 << 10
	var log bytes.Buffer
	var h handled
	p := shProc(t, `i=0; while [ $i -lt 5000 ]; do echo "line $i of the flood"; i=$((i+1)); done; echo last`)
	p.log, p.onLine = &log, h.handle
	res, err := p.run(context.Background())
	if err != nil || res.exitCode != 0 {
		t.Fatalf("run: %v %+v", err, res)
	}
	if int64(log.Len()) > maxLogBytes+200 {
		t.Errorf("log: %d bytes, more than the %d allowed and the note", log.Len(), maxLogBytes)
	}
	lines := parseLog(t, log.Bytes())
	last := lines[len(lines)-1]
	if last.Stream != "codemachine" || last.Line == nil || !strings.Contains(*last.Line, "is not kept here") {
		t.Errorf("the log's last line is %+v, want the note that it stops", last)
	}
	if got := h.lines["stdout"]; len(got) != 5001 || got[5000] != "last" {
		t.Errorf("handler: %d lines, want 5001 ending with last", len(got))
	}
	if !strings.HasSuffix(res.output, "line 4999 of the flood\nlast\n") {
		t.Errorf("tail ends %q", res.output[max(0, len(res.output)-40):])
	}
}

// TestRunSlowHandlerAfterExit: a line that takes long to handle (a long
// event, parsed on a loaded machine) when the process has already exited
// does not count as the output gone quiet: what came after it in the pipe
// is still read.
func TestRunSlowHandlerAfterExit(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	var mu sync.Mutex
	var got []string
	p := shProc(t, `printf 'first\n'; sleep 0.2; printf 'last\n'`)
	p.log = &log
	p.onLine = func(stream string, line []byte) {
		mu.Lock()
		got = append(got, string(line))
		mu.Unlock()
		if string(line) == "first" {
			time.Sleep(drainTimeout + drainTimeout/2)
		}
	}
	res, err := p.run(context.Background())
	if err != nil || res.exitCode != 0 {
		t.Fatalf("run: %v %+v", err, res)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []string{"first", "last"}) {
		t.Errorf("handled %q, want first and last", got)
	}
}

// TestRunLongEvent: a JSON event longer than maxLineBytes (a final answer
// of a few MB) reaches the handler and the log whole on an event stream's
// stdout, where a cut line would lose the run's result; stderr is still cut
// at maxLineBytes.
func TestRunLongEvent(t *testing.T) {
	t.Parallel()
	const size = 3 << 20
	var log bytes.Buffer
	var h handled
	p := shProc(t, fmt.Sprintf(`printf '{"type":"result","result":"'; head -c %d /dev/zero | tr '\0' x; printf '"}\n'; head -c %d /dev/zero | tr '\0' y >&2`, size, size))
	p.log, p.jsonStdout, p.onLine = &log, true, h.handle
	res, err := p.run(context.Background())
	if err != nil || res.exitCode != 0 {
		t.Fatalf("run: %v %+v", err, res)
	}
	want := `{"type":"result","result":"` + strings.Repeat("x", size) + `"}`
	if got := h.lines["stdout"]; len(got) != 1 || got[0] != want {
		t.Fatalf("handler: %d stdout lines, the first %d bytes, want one of %d", len(got), len(got[0]), len(want))
	}
	if got := h.lines["stderr"]; len(got) != 1 || len(got[0]) != maxLineBytes {
		t.Errorf("handler: %d stderr lines, the first %d bytes, want one of %d", len(got), len(got[0]), maxLineBytes)
	}
	lines := parseLog(t, log.Bytes())
	var events int
	for _, l := range lines {
		if l.Event != nil {
			events++
			if len(l.Event) != len(want) {
				t.Errorf("logged event: %d bytes, want %d", len(l.Event), len(want))
			}
		}
	}
	if events != 1 {
		t.Errorf("log: %d events, want 1", events)
	}
}

func TestRunStdin(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16) // more than argv would take
	p := shProc(t, "wc -c")
	p.stdin = data
	res, err := p.run(context.Background())
	if err != nil || strings.TrimSpace(res.output) != strconv.Itoa(len(data)) {
		t.Errorf("wc -c of stdin: %v %q", err, res.output)
	}

	// A process that never reads its stdin must not block the runner.
	p = shProc(t, "exit 0")
	p.stdin = bytes.Repeat([]byte("x"), 4<<20)
	start := time.Now()
	if res, err := p.run(context.Background()); err != nil || res.exitCode != 0 || time.Since(start) > 3*time.Second {
		t.Errorf("unread stdin: %v %+v in %v", err, res, time.Since(start))
	}

	// Without stdin the process reads /dev/null: EOF at once.
	res, err = shProc(t, "cat; echo eof").run(context.Background())
	if err != nil || res.output != "eof\n" {
		t.Errorf("no stdin: %v %q", err, res.output)
	}
}

func TestRunEnvironmentIsExact(t *testing.T) {
	p := shProc(t, "env")
	p.path = "/bin/sh" // there is no PATH to find sh with
	p.env = []string{"ONLY=this"}
	res, err := p.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// sh adds PWD (and some shells SHLVL or _); nothing of the test's own.
	for _, line := range strings.Split(strings.TrimSpace(res.output), "\n") {
		k, _, _ := strings.Cut(line, "=")
		if k != "ONLY" && k != "PWD" && k != "SHLVL" && k != "_" && k != "OLDPWD" {
			t.Errorf("unexpected variable %s", line)
		}
	}
	if !strings.Contains(res.output, "ONLY=this\n") {
		t.Errorf("env output %q", res.output)
	}
}

// failingWriter fails every write, and counts them.
type failingWriter struct{ writes int }

func (w *failingWriter) Write([]byte) (int, error) {
	w.writes++
	return 0, errors.New("disk full")
}

func TestRunLogWriteError(t *testing.T) {
	p := shProc(t, "echo a; sleep 0.05; echo b; sleep 0.05; echo c")
	fw := &failingWriter{}
	p.log = fw
	res, err := p.run(context.Background())
	if err != nil || res.exitCode != 0 {
		t.Fatalf("run: %v %+v", err, res)
	}
	if res.logErr == nil || res.logErr.Error() != "write event log: disk full" {
		t.Errorf("logErr = %v", res.logErr)
	}
	if fw.writes != 1 {
		t.Errorf("log written %d times; want it to stop after the first failure", fw.writes)
	}
	if res.output != "a\nb\nc\n" {
		t.Errorf("output %q", res.output)
	}
}

func TestTail(t *testing.T) {
	var tl tail
	for i := range 1000 {
		tl.add([]byte("line " + strconv.Itoa(i)))
	}
	out := tl.String()
	if n := strings.Count(out, "\n"); n != tailLines || !strings.HasPrefix(out, "line 800\n") || !strings.HasSuffix(out, "line 999\n") {
		t.Errorf("%d lines: %.20q ... %q", n, out, out[len(out)-10:])
	}

	tl = tail{}
	long := strings.Repeat("y", 3000)
	for range 100 {
		tl.add([]byte(long))
	}
	if out := tl.String(); len(out) != tailBytes || !strings.HasSuffix(out, long+"\n") {
		t.Errorf("long lines: %d bytes", len(out))
	}
	if len(tl.buf) > 2*tailBytes {
		t.Errorf("tail holds %d bytes", len(tl.buf))
	}

	tl = tail{}
	tl.add(bytes.Repeat([]byte("z"), 3*tailBytes))
	if out := tl.String(); len(out) != tailBytes || len(tl.buf) > tailBytes+1 {
		t.Errorf("huge line: %d bytes out, %d held", len(out), len(tl.buf))
	}
}

func TestLastLine(t *testing.T) {
	tests := []struct{ out, want string }{
		{"", ""},
		{"one\n", "one"},
		{"one\ntwo  \n\n \n", "two"},
		{"x\n" + strings.Repeat("é", 400) + "\n", strings.Repeat("é", maxMessageLine/2) + "…"},
	}
	for _, tt := range tests {
		r := procResult{output: tt.out}
		if got := r.lastLine(); got != tt.want {
			t.Errorf("lastLine(%.30q) = %.40q, want %.40q", tt.out, got, tt.want)
		}
	}
}

func TestShortDuration(t *testing.T) {
	tests := map[time.Duration]string{
		30 * time.Second:                   "30s",
		150 * time.Millisecond:             "150ms",
		30 * time.Minute:                   "30m",
		time.Hour:                          "1h",
		90 * time.Second:                   "1m30s",
		time.Hour + 30*time.Minute:         "1h30m",
		time.Hour + time.Second:            "1h0m1s",
		2*time.Hour + 500*time.Millisecond: "2h0m0.5s",
	}
	for d, want := range tests {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestAppendJSONString checks the hand-written encoder against
// encoding/json on random bytes: same decoded string.
func TestAppendJSONString(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cases := [][]byte{nil, []byte(`"\`), []byte("\x00\x1f\x7f\u2028\u2029\ufeff"), []byte("\xff\xfe é ✓ 😀 \xe2\x82")}
	for range 2000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		cases = append(cases, b)
	}
	for _, c := range cases {
		var got, want string
		if err := json.Unmarshal(appendJSONString(nil, c), &got); err != nil {
			t.Fatalf("%q: %v", c, err)
		}
		std, _ := json.Marshal(string(c))
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%q: got %q want %q", c, got, want)
		}
	}
}

// TestRunReadsBothStreamsConcurrently: a process that fills the stderr
// pipe while we would be waiting on stdout must not deadlock.
func TestRunReadsBothStreamsConcurrently(t *testing.T) {
	p := shProc(t, "head -c 1000000 /dev/zero | tr '\\0' e >&2; echo out")
	var h handled
	p.onLine = h.handle
	p.timeout = 10 * time.Second
	res, err := p.run(context.Background())
	if err != nil || res.timedOut || len(h.lines["stdout"]) != 1 {
		t.Errorf("run: %v timedOut %v stdout %q", err, res.timedOut, h.lines["stdout"])
	}
}

func TestRunGraceKillEndsDaemons(t *testing.T) {
	t.Parallel()
	// The group's leader ignores SIGTERM and waits; a daemon it started in
	// a session of its own ignores SIGTERM too. The kill after grace ends
	// the daemon as well, not only the group: left to init, it would run
	// on for good in the worktree the next step gets.
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Fatalf("this test needs setsid (util-linux): %v", err)
	}
	pidFile := filepath.Join(t.TempDir(), "daemon.pid")
	p := shProc(t, `trap '' TERM; setsid sh -c 'trap "" TERM; echo $$ > `+pidFile+`.tmp; mv `+pidFile+`.tmp `+pidFile+`; while :; do sleep 0.05; done' </dev/null >/dev/null 2>&1 & `+
		`until [ -e `+pidFile+` ]; do sleep 0.01; done; echo ready; sleep 100`)
	p.timeout = 300 * time.Millisecond
	p.grace = 300 * time.Millisecond
	res, err := p.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !res.timedOut || res.signal != syscall.SIGKILL {
		t.Errorf("timedOut %v signal %v output %q", res.timedOut, res.signal, res.output)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the daemon never started: %v (output %q)", err, res.output)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	// A killed process can still be exiting for a moment: wait for it to
	// go. One that was never sent SIGKILL (ignoring SIGTERM, looping)
	// stays until the suite's patience runs out.
	deadline := time.Now().Add(testenv.Patience())
	for daemonRuns(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the step's daemon %d still runs after the kill", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// daemonRuns reports whether pid is a live process (not a zombie).
func daemonRuns(pid int) bool {
	for _, p := range Processes() {
		if p.PID == pid && !p.Zombie {
			return true
		}
	}
	return false
}
