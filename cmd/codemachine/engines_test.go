package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/codemachine/codemachine/internal/fakellm"
	"github.com/codemachine/codemachine/internal/testenv"
)

// TestEngines runs the scenarios in testdata/engines through the built
// binary with the four real coding CLIs (installed from npm, pinned)
// against the fake model server, offline: workflows landing one commit per
// step with the engines' real usage, cost and session in the trailers,
// recordings replayed, and the faults (API errors, retries, broken streams,
// hangs, resumed sessions). Scripts use three commands besides the usual:
//
//	llm start SCRIPT     start a fake model server playing SCRIPT (YAML)
//	                     and export its URL as FAKELLM_URL
//	llm requests         print the request log, one request per line
//	llm retried STATUS MIN
//	                     check that a request failed with STATUS and that
//	                     the CLI's retry came at least MIN later
//	llm waithang         wait until a request hangs (the CLI is in its
//	                     turn, waiting for the model)
//	llm resumed          check that the request after the one that hung
//	                     carried the session's history and the continue
//	                     prompt
//	cli NAME             set up a fresh home and the environment for CLI
//	                     NAME against the server (testenv.Env), with the
//	                     CLIs on PATH
//	noprocs              check that no process started by the script (its
//	                     CLI home in the environment) is left running
//
// and the condition [root] (the tests run as root).
func TestEngines(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real agent CLIs")
	}
	bins := testenv.RequireCLIs(t)
	var dirs []string
	for _, name := range testenv.Names() {
		dirs = append(dirs, filepath.Dir(bins[name]))
	}
	files, err := filepath.Glob(filepath.Join("testdata", "engines", "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in testdata/engines: %v", err)
	}
	if only := os.Getenv("ENGINES"); only != "" {
		// e.g. ENGINES=gemini: one CLI's scenarios, when working on it
		var keep []string
		for _, f := range files {
			if strings.HasPrefix(filepath.Base(f), only) {
				keep = append(keep, f)
			}
		}
		files = keep
	}
	// The slow scenarios first (opencode starts slowly, Gemini waits 5 s
	// and more before it retries, hangs wait for their timeout), so that
	// they do not start last.
	sort.SliceStable(files, func(i, j int) bool { return scenarioCost(files[i]) > scenarioCost(files[j]) })
	params := scriptParams("")
	params.Dir = ""
	setup := params.Setup
	params.Setup = func(env *testscript.Env) error {
		if err := setup(env); err != nil {
			return err
		}
		env.Values[engineStateKey{}] = &engineState{pathDirs: dirs}
		return nil
	}
	params.Cmds["llm"] = cmdLLM
	params.Cmds["cli"] = cmdCLI
	params.Cmds["noprocs"] = cmdNoProcs

	// A CLI run is mostly process start-up and waiting (for retries, for
	// a timeout), so more scenarios run at once than -parallel
	// (GOMAXPROCS) would allow: each runs synchronously in a worker,
	// without t.Parallel. opencode burns seconds of CPU per start, and
	// several at once slow each other down sharply, so its scenarios run
	// one after the other in a lane of their own.
	lanes := map[bool][]string{}
	for _, f := range files {
		heavy := strings.HasPrefix(filepath.Base(f), "opencode")
		lanes[heavy] = append(lanes[heavy], f)
	}
	var wg sync.WaitGroup
	work := func(queue <-chan string) {
		defer wg.Done()
		for f := range queue {
			p := params
			p.Files = []string{f}
			testscript.RunT(serialT{t}, p)
		}
	}
	for heavy, files := range lanes {
		workers := engineWorkers
		if heavy {
			workers = 1
		}
		queue := make(chan string, len(files))
		for _, f := range files {
			queue <- f
		}
		close(queue)
		for range workers {
			wg.Add(1)
			go work(queue)
		}
	}
	wg.Wait()
}

// engineWorkers is how many scenarios of the other CLIs run at once, beside
// the opencode lane.
const engineWorkers = 3

// scenarioCost orders the scenarios, slowest first.
func scenarioCost(file string) int {
	name := filepath.Base(file)
	c := 0
	switch {
	case strings.HasPrefix(name, "opencode"):
		c += 4
	case strings.HasPrefix(name, "gemini"):
		c += 3
	}
	switch {
	case strings.Contains(name, "faults"), strings.Contains(name, "workflow"):
		c += 3 // three CLI runs, or retries
	case strings.Contains(name, "resume"), strings.Contains(name, "malformed"), strings.Contains(name, "parallel"):
		c += 2
	}
	return c
}

// serialT runs testscript's subtests synchronously in the caller's
// goroutine: Parallel is a no-op, so the workers above decide how many
// run at once.
type serialT struct{ t *testing.T }

func (s serialT) Skip(args ...any)  { s.t.Skip(args...) }
func (s serialT) Fatal(args ...any) { s.t.Fatal(args...) }
func (s serialT) Parallel()         {}
func (s serialT) Log(args ...any)   { s.t.Log(args...) }
func (s serialT) FailNow()          { s.t.FailNow() }
func (s serialT) Verbose() bool     { return testing.Verbose() }
func (s serialT) Run(name string, f func(testscript.T)) {
	s.t.Run(name, func(t *testing.T) { f(serialT{t}) })
}

type engineStateKey struct{}

// engineState is one script's: its fake server and CLI home.
type engineState struct {
	pathDirs []string // the CLIs' bin dirs
	srv      *fakellm.Server
	home     string
}

func stateOf(ts *testscript.TestScript) *engineState {
	return ts.Value(engineStateKey{}).(*engineState)
}

// cmdLLM: llm start SCRIPT | llm requests | llm retried STATUS MIN.
func cmdLLM(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: llm start SCRIPT | llm requests | llm retried STATUS MIN | llm waithang | llm resumed")
	}
	st := stateOf(ts)
	switch args[0] {
	case "start":
		if neg || len(args) != 2 {
			ts.Fatalf("usage: llm start SCRIPT")
		}
		script, err := fakellm.LoadScript(ts.MkAbs(args[1]))
		ts.Check(err)
		srv, err := fakellm.Listen(script, fakellm.Options{})
		ts.Check(err)
		ts.Defer(srv.Close)
		st.srv = srv
		ts.Setenv("FAKELLM_URL", srv.URL())
	case "requests":
		if st.srv == nil {
			ts.Fatalf("llm requests: no server started")
		}
		w := ts.Stdout() // even with no request: this command's output replaces the last one's
		for _, r := range st.srv.Requests() {
			fmt.Fprintf(w, "%s msgs=%d user=%q\n", r.String(), r.Messages, firstLine(r.UserText))
		}
	case "retried":
		if len(args) != 3 {
			ts.Fatalf("usage: llm retried STATUS MIN")
		}
		status, err := strconv.Atoi(args[1])
		ts.Check(err)
		min, err := time.ParseDuration(args[2])
		ts.Check(err)
		reqs := modelRequests(st.srv)
		for i, r := range reqs {
			if r.Status != status || i+1 >= len(reqs) {
				continue
			}
			gap := reqs[i+1].Time.Sub(r.Time)
			ts.Logf("the %d was retried after %v", status, gap.Round(time.Millisecond))
			if (gap >= min) == neg {
				ts.Fatalf("the retry after the %d came after %v, want at least %v", status, gap, min)
			}
			return
		}
		ts.Fatalf("no request answered %d was retried", status)
	case "waithang":
		deadline := time.Now().Add(testenv.Patience())
		for {
			for _, r := range st.srv.Requests() {
				if r.Fault == fakellm.FailHang {
					return
				}
			}
			if time.Now().After(deadline) {
				ts.Fatalf("no request hung within 2m")
			}
			time.Sleep(20 * time.Millisecond)
		}
	case "resumed":
		reqs := modelRequests(st.srv)
		for i := len(reqs) - 2; i >= 0; i-- {
			if reqs[i].Fault != fakellm.FailHang {
				continue
			}
			hung, next := reqs[i], reqs[i+1]
			ok := next.Messages > hung.Messages && strings.HasPrefix(next.UserText, "You were interrupted")
			if ok == neg {
				ts.Fatalf("after the hang (%d messages): %d messages, user text %q; want the history and the continue prompt",
					hung.Messages, next.Messages, firstLine(next.UserText))
			}
			return
		}
		ts.Fatalf("no request hung and was followed by another")
	default:
		ts.Fatalf("llm: unknown subcommand %q", args[0])
	}
}

// modelRequests are the requests of the agent loop (the script's turns).
func modelRequests(s *fakellm.Server) []fakellm.Request {
	var out []fakellm.Request
	for _, r := range s.Requests() {
		if r.Turn >= 0 || r.Exhausted {
			out = append(out, r)
		}
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// cmdCLI: cli NAME prepares $WORK/home for CLI NAME against the running
// fake server and switches the script's environment to testenv.Env's (the
// hermetic git identity included), with the CLIs on PATH.
func cmdCLI(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: cli NAME")
	}
	st := stateOf(ts)
	if st.srv == nil {
		ts.Fatalf("cli: start the fake server first (llm start)")
	}
	st.home = ts.MkAbs("home")
	ts.Check(testenv.PrepareHome(args[0], st.home, st.srv.URL()))
	gitconfig := "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
	ts.Check(os.WriteFile(filepath.Join(st.home, ".gitconfig"), []byte(gitconfig), 0o644))
	for _, kv := range testenv.Env(args[0], st.home, st.srv.URL()) {
		k, v, _ := strings.Cut(kv, "=")
		ts.Setenv(k, v)
	}
	// The script's own PATH finds codemachine; the CLIs come first.
	ts.Setenv("PATH", strings.Join(append(append([]string{}, st.pathDirs...), os.Getenv("PATH")), string(os.PathListSeparator)))
}

// cmdNoProcs fails when a process whose environment holds the script's CLI
// home is still running (zombies aside) a moment after the command that
// started it ended: an agent, or a child it spawned, left behind.
func cmdNoProcs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: noprocs")
	}
	st := stateOf(ts)
	if st.home == "" {
		ts.Fatalf("noprocs: no CLI set up")
	}
	marker := []byte("HOME=" + st.home + "\x00")
	deadline := time.Now().Add(testenv.Patience())
	for {
		left := procsWith(marker)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("processes left behind: %s", strings.Join(left, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procsWith lists the live processes whose environment contains marker.
func procsWith(marker []byte) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, marker) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && bytes.HasPrefix(bytes.TrimSpace(stat[i+1:]), []byte("Z")) {
			continue // a zombie holds nothing
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		var pgid int
		if g, err := syscall.Getpgid(pid); err == nil {
			pgid = g
		}
		found = append(found, fmt.Sprintf("pid %d (group %d): %s", pid, pgid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
	}
	return found
}
