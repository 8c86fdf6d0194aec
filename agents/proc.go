package agents

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/codemachine/codemachine/sandbox"
)

// Limits of the process runner. They bound what a flooding or hostile
// process can make codemachine hold in memory; the log keeps everything
// but over-long lines, up to maxLogBytes a run.
const (
	maxLineBytes    = 1 << 20  // a longer line is truncated (log and handler)
	tailBytes       = 64 << 10 // the in-memory tail of the combined output
	tailLines       = 200      // ... of which at most this many lines are kept
	defaultGrace    = 5 * time.Second
	drainTimeout    = time.Second      // for pipes held by processes that left the group
	maxDrain        = 30 * time.Second // ... that keep writing
	groupPollPeriod = 10 * time.Millisecond
	readBufferBytes = 64 << 10
	maxMessageLine  = 300 // bytes of an output line quoted in an error message

	// maxEventBytes replaces maxLineBytes for the stdout of an engine's
	// JSON event stream: an event must reach the parser whole, and one
	// event can carry a long final answer (Claude's result, Codex's
	// agent_message, opencode's text part) or a big tool output.
	maxEventBytes = 16 << 20
)

// maxLogBytes bounds what one run of a process writes to its log
// (.git/codemachine/logs/...): a step that prints without end (yes) wrote
// hundreds of MB a second until its timeout. Past it the lines still reach
// the handler and the tail, and one more line in the log says that it
// stops there. A
// variable for the tests.
var maxLogBytes int64 = 256 << 20

// lineHandler receives every line of a process's output, without its line
// terminator. stream is "stdout" or "stderr". Calls are serialized, so a
// handler needs no locking; line is only valid during the call.
type lineHandler func(stream string, line []byte)

// proc is one process to run: the shared runner under every engine that
// drives a CLI. Engines fill it in from their Request and parse the output
// through onLine.
type proc struct {
	path string   // the program; without a slash it is looked up in env's PATH
	args []string // arguments after the program name
	dir  string   // working directory
	// env is the whole environment of the process; nil means an empty one,
	// never codemachine's own (the allow-list is the caller's job).
	env []string
	// stdin is fed to the process and then closed; nil connects /dev/null.
	// It lets an engine pass a prompt too long for argv (Linux limits one
	// argument to 128 KiB).
	stdin []byte

	timeout time.Duration // 0 = none
	grace   time.Duration // SIGTERM -> SIGKILL; 0 = defaultGrace

	log io.Writer // JSON lines; nil = no log
	// jsonStdout embeds stdout lines that are JSON objects into the log as
	// they are (an engine's event stream) instead of quoting them as text.
	jsonStdout bool
	onLine     lineHandler
	// onStart, when set, gets the process id (also its process group id)
	// right after the start.
	onStart func(pid int)
	// sandbox, when set, runs the program under the sandbox launcher
	// with this policy (see package sandbox); nil runs it directly.
	sandbox *sandbox.Policy
}

// procResult is what the runner observed.
type procResult struct {
	pid      int // also the process group id
	exitCode int // 128+signal when the process was killed by a signal
	signal   syscall.Signal
	timedOut bool
	canceled bool
	duration time.Duration
	output   string // tail of the combined output: last tailBytes, at most tailLines lines
	logErr   error  // the first failed write to the log; logging stopped there
}

// lastLine returns the last non-blank line of the output tail, the most
// useful single line for an error message, cut to maxMessageLine bytes.
func (r *procResult) lastLine() string {
	out := strings.TrimRight(r.output, " \t\r\n")
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	out = strings.TrimSpace(out)
	if len(out) > maxMessageLine {
		cut := maxMessageLine
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "…"
	}
	return out
}

// interrupted returns the error for a run that timed out or was canceled,
// and nil otherwise. Both are Fatal: a timeout would only repeat, and a
// cancel is the user's interrupt.
func (r *procResult) interrupted(engine string, timeout time.Duration, res Result) *RunError {
	switch {
	case r.canceled:
		return &RunError{Class: Fatal, Engine: engine, Msg: "canceled", ExitCode: r.exitCode, Canceled: true, Result: res}
	case r.timedOut:
		return &RunError{Class: Fatal, Engine: engine, Msg: "timed out after " + shortDuration(timeout), ExitCode: r.exitCode, TimedOut: true, Result: res}
	}
	return nil
}

// shortDuration formats d without zero minutes and seconds: "30m", "1h",
// "1m30s", as a person writes a timeout.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// run starts the process in its own session and process group, without
// a controlling terminal, and waits for it. On
// timeout or cancel it sends SIGTERM to the whole group and SIGKILL after
// the grace period. When the process exits, whatever it left running in its
// group (background children holding the output pipes, say) is stopped the
// same way, so a run never leaves processes behind nor hangs on a pipe. The
// error is non-nil only when the process could not be started.
func (p *proc) run(ctx context.Context) (procResult, error) {
	if ctx.Err() != nil {
		return procResult{canceled: true}, nil
	}
	path, err := lookPath(p.path, p.env)
	if err != nil {
		return procResult{}, err
	}
	if err := p.checkDir(); err != nil {
		return procResult{}, err
	}
	sp, err := p.start(path)
	if err != nil {
		return procResult{}, err
	}
	defer closeAll(sp.inW, sp.report)
	if p.onStart != nil {
		p.onStart(sp.cmd.Process.Pid)
	}
	if sp.inW != nil {
		// Written from its own goroutine: a child that does not read would
		// otherwise block us. Closing inW at the end unblocks the write.
		go func() {
			_, _ = sp.inW.Write(p.stdin) // a child that exits early gets what it read
			_ = sp.inW.Close()
		}()
	}

	res := procResult{pid: sp.cmd.Process.Pid}
	sink := newLineSink(p.log, p.jsonStdout, p.onLine)
	var lastRead atomic.Int64 // when output last came, in Unix nanoseconds
	readDone := sink.readAll(progressReader{sp.outR, &lastRead}, progressReader{sp.errR, &lastRead})
	waitDone := make(chan error, 1)
	go func() { waitDone <- sp.cmd.Wait() }()

	g := group{pgid: res.pid, grace: p.graceTime()}
	if sp.report != nil {
		// The launcher ends the processes of its own after the grace
		// period; the group's SIGKILL is the backstop, later.
		g.grace += launcherSlack
	}
	defer g.stop()
	waitErr := p.await(ctx, &g, waitDone, &res)
	g.cleanup(readDone, func() time.Time {
		if sink.busy.Load() > 0 {
			return time.Now() // still handling what was read
		}
		return time.Unix(0, lastRead.Load())
	})
	if !isClosed(readDone) {
		// Something outside the group (a process that called setsid) still
		// holds the pipes: stop reading rather than hang.
		_ = sp.outR.SetReadDeadline(time.Now())
		_ = sp.errR.SetReadDeadline(time.Now())
		<-readDone
	}
	closeAll(sp.outR, sp.errR)
	res.duration = time.Since(sp.at)
	res.output = sink.tail.String()
	res.logErr = sink.finish()
	if err = p.exitStatus(&res, sp.cmd.ProcessState, waitErr); err != nil {
		return res, err
	}
	if msg := readReport(sp.report); msg != "" {
		// The launcher could not set the sandbox up, or not start the
		// program: the program never ran.
		return res, fmt.Errorf("start %s: %s", p.path, msg)
	}
	return res, nil
}

// graceTime is the grace period between SIGTERM and SIGKILL.
func (p *proc) graceTime() time.Duration {
	if p.grace > 0 {
		return p.grace
	}
	return defaultGrace
}

// launcherSlack is how much later than the launcher's own SIGKILL the
// runner kills the launcher's process group.
const launcherSlack = 2 * time.Second

// readReport reads what the sandbox launcher reported on its report pipe
// (nothing when it started the program), once it has exited.
func readReport(r *os.File) string {
	if r == nil {
		return ""
	}
	_ = r.SetReadDeadline(time.Now().Add(drainTimeout))
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	return strings.TrimPrefix(strings.TrimSpace(string(b)), "codemachine sandbox: ")
}

// checkDir checks the working directory, which exec would report missing
// as a missing program.
func (p *proc) checkDir() error {
	if p.dir == "" {
		return nil
	}
	fi, err := os.Stat(p.dir)
	switch {
	case err != nil:
		return fmt.Errorf("start %s: working directory: %w", p.path, err)
	case !fi.IsDir():
		return fmt.Errorf("start %s: working directory %s is not a directory", p.path, p.dir)
	}
	return nil
}

// startedProc is a process that runs, with our ends of its pipes.
type startedProc struct {
	cmd        *exec.Cmd
	outR, errR *os.File // its standard output and error
	inW        *os.File // its standard input; nil without stdin
	report     *os.File // the sandbox launcher's report; nil without a launcher
	at         time.Time
}

// command makes the command that runs the program at path: directly, or
// under the sandbox launcher (with its report pipe, whose read end it
// returns) when the proc has a policy and the system has a launcher.
//
// The process leads a process group of its own either way (its pid is
// the group's id: what the runner signals and codemachine records to stop
// orphans). Without a terminal it also leads a session of its own, which
// has no controlling terminal: /dev/tty does not open there (ENXIO), so
// nothing a step runs can read the user's terminal or push keystrokes
// into the user's shell with TIOCSTI. A terminal run (runTerminal) stays
// in codemachine's session, to be the terminal's foreground group.
func (p *proc) command(path string, terminal bool) (*exec.Cmd, *os.File, error) {
	attr := &syscall.SysProcAttr{Setsid: true}
	if terminal {
		attr = &syscall.SysProcAttr{Setpgid: true}
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        append([]string{p.path}, p.args...),
		Dir:         p.dir,
		SysProcAttr: attr,
	}
	if p.sandbox == nil {
		return cmd, nil, nil
	}
	pol := *p.sandbox
	pol.Grace = p.graceTime()
	l, err := sandbox.Command(pol, path, p.path, p.args)
	if errors.Is(err, sandbox.ErrUnsupported) {
		return cmd, nil, nil // process groups are all there is
	}
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", p.path, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", p.path, err)
	}
	cmd.Path, cmd.Args = l.Path, l.Args
	cmd.ExtraFiles = []*os.File{w}
	l.SetAttr(cmd.SysProcAttr)
	return cmd, r, nil
}

// start starts the program at path in a session (and process group) of
// its own, without a controlling terminal, its output on pipes (sockets
// on Linux: see outputPipe) and its input on a pipe when there is stdin
// to feed.
func (p *proc) start(path string) (*startedProc, error) {
	env := p.env
	if env == nil {
		env = []string{}
	}
	outR, outW, err := outputPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", p.path, err)
	}
	errR, errW, err := outputPipe()
	if err != nil {
		closeAll(outR, outW)
		return nil, fmt.Errorf("start %s: %w", p.path, err)
	}
	cmd, report, err := p.command(path, false)
	if err != nil {
		closeAll(outR, outW, errR, errW)
		return nil, err
	}
	cmd.Env, cmd.Stdout, cmd.Stderr = env, outW, errW
	var inR, inW *os.File
	if p.stdin != nil {
		if inR, inW, err = os.Pipe(); err != nil {
			closeAll(outR, outW, errR, errW, report)
			closeAll(cmd.ExtraFiles...)
			return nil, fmt.Errorf("start %s: %w", p.path, err)
		}
		cmd.Stdin = inR
	}
	at := time.Now()
	err = cmd.Start()
	// The child has its own copies: EOF must come when it closes them.
	closeAll(outW, errW)
	closeAll(cmd.ExtraFiles...)
	if inR != nil {
		closeAll(inR)
	}
	if err != nil {
		closeAll(outR, errR, report)
		if inW != nil {
			closeAll(inW)
		}
		return nil, startError(p.path, cmd, err)
	}
	return &startedProc{cmd: cmd, outR: outR, errR: errR, inW: inW, report: report, at: at}, nil
}

// maxArgStrlen is the most Linux passes in one argument or environment
// variable (MAX_ARG_STRLEN, 32 pages).
const maxArgStrlen = 32 * 4096

// startError is err, cmd's failure to start, wrapped with path; when the
// kernel refused the command line and environment as too big (E2BIG,
// "argument list too long"), it names the value that is, as a foreach
// item or a task body too big for its environment variable would be.
func startError(path string, cmd *exec.Cmd, err error) error {
	if !errors.Is(err, syscall.E2BIG) {
		return fmt.Errorf("start %s: %w", path, err)
	}
	total := 0
	for _, list := range [][]string{cmd.Env, cmd.Args} {
		for _, v := range list {
			total += len(v) + 1
		}
	}
	for _, kv := range cmd.Env {
		if len(kv)+1 > maxArgStrlen {
			name, _, _ := strings.Cut(kv, "=")
			return fmt.Errorf("start %s: the environment variable %s is %s, over the %s Linux passes in one variable: keep large data in a file and name the file instead (%w)",
				path, name, byteSize(len(kv)), byteSize(maxArgStrlen), err)
		}
	}
	return fmt.Errorf("start %s: its command line and environment are %s, more than Linux passes to a program (%w)", path, byteSize(total), err)
}

// byteSize is n bytes for a person: "9.5 MiB", "128 KiB", "12 bytes".
func byteSize(n int) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 0, 64) + " KiB"
	}
	return strconv.Itoa(n) + " bytes"
}

// await waits for the process to exit. On timeout or cancel it has the
// group terminated, and killed once the grace period is over; res says
// which of the two happened.
func (p *proc) await(ctx context.Context, g *group, waitDone <-chan error, res *procResult) error {
	var timeoutC <-chan time.Time
	if p.timeout > 0 {
		t := time.NewTimer(p.timeout)
		defer t.Stop()
		timeoutC = t.C
	}
	ctxDone := ctx.Done()
	for {
		select {
		case err := <-waitDone:
			return err
		case <-timeoutC:
			select {
			case err := <-waitDone: // finished just in time
				return err
			default:
			}
			res.timedOut = true
			timeoutC, ctxDone = nil, nil
			g.terminate()
		case <-ctxDone:
			res.canceled = true
			timeoutC, ctxDone = nil, nil
			g.terminate()
		case <-g.killC:
			g.kill()
		}
	}
}

// exitStatus records how the process ended: its exit code, or 128+signal
// when a signal killed it. The error is for a wait that failed otherwise.
func (p *proc) exitStatus(res *procResult, state *os.ProcessState, waitErr error) error {
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		return fmt.Errorf("wait for %s: %w", p.path, waitErr)
	}
	ws, _ := state.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		res.signal = ws.Signal()
		res.exitCode = 128 + int(res.signal)
	} else {
		res.exitCode = ws.ExitStatus()
	}
	return nil
}

// group controls a process group: SIGTERM first, SIGKILL when the grace
// period is over.
type group struct {
	pgid      int
	grace     time.Duration
	termSent  bool
	killSent  bool
	killTimer *time.Timer
	killC     <-chan time.Time // fires grace after SIGTERM
}

func (g *group) terminate() {
	if g.termSent {
		return
	}
	g.termSent = true
	_ = syscall.Kill(-g.pgid, syscall.SIGTERM) // ESRCH: already gone
	g.killTimer = time.NewTimer(g.grace)
	g.killC = g.killTimer.C
}

func (g *group) kill() {
	g.killSent = true
	g.killC = nil
	// The launcher may still be alive here, waiting on a descendant that
	// would not die: the group alone would leave the daemons the step
	// started in sessions of their own to init (KillGroupTree).
	KillGroupTree(g.pgid)
}

func (g *group) stop() {
	if g.killTimer != nil {
		g.killTimer.Stop()
	}
}

// cleanup runs once the group leader has exited: it stops what is left in
// the group (SIGTERM, then SIGKILL after the grace period) and waits until
// the group is gone and the pipes are closed, or, when someone outside it
// still holds the pipes, until no output came for drainTimeout (lastRead,
// when given, says when some last came: what was in flight when the group
// ended is read whatever the machine's load) or maxDrain passed.
func (g *group) cleanup(readDone <-chan struct{}, lastRead func() time.Time) {
	tick := time.NewTicker(groupPollPeriod)
	defer tick.Stop()
	var drain <-chan time.Time
	var drainTimer *time.Timer
	var goneAt time.Time
	gone, pipesClosed := false, false
	for {
		if !gone && (g.killSent || !groupAlive(g.pgid)) {
			// After SIGKILL nothing in the group can linger but zombies,
			// which close their pipes; polling further could wait forever
			// where no one reaps them.
			gone, goneAt = true, time.Now()
			drainTimer = time.NewTimer(drainTimeout)
			defer drainTimer.Stop()
			drain = drainTimer.C
		}
		if gone && pipesClosed {
			return
		}
		if !gone {
			g.terminate()
		}
		select {
		case <-readDone:
			pipesClosed = true
			readDone = nil // a closed channel would be selected forever
		case <-tick.C:
		case <-g.killC:
			g.kill()
		case <-drain:
			if lastRead == nil || time.Since(lastRead()) >= drainTimeout || time.Since(goneAt) >= maxDrain {
				return
			}
			drainTimer.Reset(drainTimeout - time.Since(lastRead()))
		}
	}
}

// progressReader is r noting when it last read something in last.
type progressReader struct {
	r    io.Reader
	last *atomic.Int64
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// groupAlive reports whether any process of the group is still running
// (zombies do not count: they hold nothing open).
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	return !onlyZombies(pgid)
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// lookPath finds a program in the PATH of env (not codemachine's own), so
// an engine runs what the user's environment would. Relative PATH entries
// are skipped: they would resolve inside the worktree, which the agent
// controls.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	for _, dir := range filepath.SplitList(envValue(env, "PATH")) {
		if !filepath.IsAbs(dir) {
			continue
		}
		path := filepath.Join(dir, file)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s: %w in PATH", file, exec.ErrNotFound)
}

// envValue returns the value of key in a KEY=VALUE list (the last one wins,
// as in exec).
func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// lineSink receives the lines of both streams: it writes them to the log,
// keeps the tail and calls the handler, one line at a time.
type lineSink struct {
	mu     sync.Mutex
	log    *bufio.Writer
	logErr error
	json   bool
	onLine lineHandler
	tail   tail
	buf    []byte // the log line being built
	logged int64  // bytes written to the log
	cut    bool   // the log reached maxLogBytes
	// busy counts the lines being handled: a long event (megabytes of
	// JSON to check and parse, slow on a loaded machine) is output still
	// being read, which the drain after the group ended must wait for.
	busy atomic.Int32
}

func newLineSink(log io.Writer, jsonStdout bool, onLine lineHandler) *lineSink {
	s := &lineSink{json: jsonStdout, onLine: onLine}
	if log != nil {
		s.log = bufio.NewWriterSize(log, 64<<10)
	}
	return s
}

// readAll reads stdout and stderr until both are closed, which closes
// the channel it returns.
func (s *lineSink) readAll(stdout, stderr io.Reader) <-chan struct{} {
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); s.read(stdout, "stdout") }()
	go func() { defer readers.Done(); s.read(stderr, "stderr") }()
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	return done
}

// read splits r into lines until EOF (or a read error, such as the deadline
// set when the pipes are abandoned). Lines longer than maxLineBytes
// (maxEventBytes for an event stream's stdout) are cut there; the rest of
// such a line is skipped, not buffered.
func (s *lineSink) read(r io.Reader, stream string) {
	br := bufio.NewReaderSize(r, readBufferBytes)
	limit := maxLineBytes
	if s.json && stream == "stdout" {
		limit = maxEventBytes
	}
	var long []byte // a line longer than the read buffer, being assembled
	size := 0       // its full length
	for {
		chunk, err := br.ReadSlice('\n')
		complete := err == nil
		if complete {
			chunk = chunk[:len(chunk)-1]
		}
		if len(chunk) > 0 || complete || size > 0 {
			if room := limit - len(long); room > 0 {
				long = append(long, chunk[:min(room, len(chunk))]...)
			}
			size += len(chunk)
			if err != bufio.ErrBufferFull {
				// The line is complete (or the stream ended without a
				// final newline). The reader is idle when its buffer is
				// empty, which is when the log is worth flushing.
				line, truncated := long, 0
				if size > len(long) {
					truncated = size
				} else {
					line = bytes.TrimSuffix(line, []byte{'\r'})
				}
				s.busy.Add(1)
				s.line(stream, line, truncated, br.Buffered() == 0)
				s.busy.Add(-1)
				long, size = long[:0], 0
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// line handles one line; truncated is the full length of a line that was
// cut at its limit, 0 for a whole line.
func (s *lineSink) line(stream string, line []byte, truncated int, flush bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log != nil && s.logErr == nil && !s.cut {
		s.logLine(stream, line, truncated, flush)
	}
	s.tail.add(line)
	if s.onLine != nil {
		s.onLine(stream, line)
	}
}

// logLine writes one line to the log, or, the first time the log would
// pass maxLogBytes, a line of stream "codemachine" saying it stops there.
func (s *lineSink) logLine(stream string, line []byte, truncated int, flush bool) {
	b := append(s.buf[:0], `{"t":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","stream":"`...)
	b = append(b, stream...)
	if raw := bytes.TrimSpace(line); s.json && stream == "stdout" && truncated == 0 && isJSONObject(raw) {
		b = append(b, `","event":`...)
		b = append(b, raw...)
	} else {
		b = append(b, `","line":`...)
		b = appendJSONString(b, line)
	}
	if truncated > 0 {
		b = append(b, `,"truncated":`...)
		b = strconv.AppendInt(b, int64(truncated), 10)
	}
	b = append(b, "}\n"...)
	if s.logged+int64(len(b)) > maxLogBytes {
		s.cut, flush = true, true
		b = append(b[:0], `{"t":"`...)
		b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","stream":"codemachine","line":`...)
		b = appendJSONString(b, []byte(fmt.Sprintf("log: the output past its first %d bytes is not kept here", maxLogBytes)))
		b = append(b, "}\n"...)
	}
	s.buf = b
	s.logged += int64(len(b))
	if _, err := s.log.Write(b); err != nil {
		s.logErr = err
	} else if flush {
		s.logErr = s.log.Flush()
	}
}

// finish flushes the log and returns the first write error.
func (s *lineSink) finish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log != nil && s.logErr == nil {
		s.logErr = s.log.Flush()
	}
	if s.logErr != nil {
		return fmt.Errorf("write event log: %w", s.logErr)
	}
	return nil
}

// isJSONObject reports whether b is one JSON object that can be embedded in
// a log line as it is (valid UTF-8 too, which encoding/json does not check).
func isJSONObject(b []byte) bool {
	return len(b) > 1 && b[0] == '{' && json.Valid(b) && utf8.Valid(b)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does; it avoids encoding/json's allocation per
// line, which matters when a process floods millions of lines.
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c >= 0x20 && c != 0x7f:
				b = append(b, c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029': // valid JSON, but breaks JavaScript readers
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// tail keeps the end of the combined output in bounded memory.
type tail struct{ buf []byte }

func (t *tail) add(line []byte) {
	if len(line) > tailBytes {
		line = line[len(line)-tailBytes:]
	}
	t.buf = append(t.buf, line...)
	t.buf = append(t.buf, '\n')
	if len(t.buf) > 2*tailBytes { // compact now and then, not on every line
		t.buf = t.buf[:copy(t.buf, t.buf[len(t.buf)-tailBytes:])]
	}
}

// String returns the last tailBytes of output, at most tailLines lines.
func (t *tail) String() string {
	b := t.buf
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
	}
	// b ends with '\n'; the tailLines+1-th newline from the end starts the tail.
	n := 0
	for i := len(b) - 2; i >= 0; i-- {
		if b[i] == '\n' {
			if n++; n == tailLines {
				b = b[i+1:]
				break
			}
		}
	}
	return string(b)
}
