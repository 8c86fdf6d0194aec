package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/codemachine/codemachine/internal/testenv"
)

// TestWatchScripts runs the scenarios of watch mode and the git hooks
// (testdata/watch): long-running processes started in the background with
// `start`, observed through their output files and git, with bounded
// waits.
func TestWatchScripts(t *testing.T) {
	t.Parallel()
	p := scriptParams("testdata/watch")
	setup := p.Setup
	p.Setup = func(env *testscript.Env) error {
		if err := setup(env); err != nil {
			return err
		}
		var keys []string
		for _, kv := range env.Vars {
			if k, _, ok := strings.Cut(kv, "="); ok {
				keys = append(keys, k)
			}
		}
		env.Values[envKeys{}] = keys
		return nil
	}
	for name, fn := range map[string]func(*testscript.TestScript, bool, []string){
		"start":     cmdStart,
		"signal":    cmdSignal,
		"await":     cmdAwait,
		"waitlines": cmdWaitLines,
		"poll-git":  cmdPollGit,
		"unlocked":  cmdUnlocked,
		"sleep":     cmdSleep,
	} {
		p.Cmds[name] = fn
	}
	testscript.Run(t, p)
}

// envKeys keys the names of the script's environment variables in
// testscript.Env.Values, so that background processes get the script's
// environment.
type envKeys struct{}

// background is a process started by `start`.
type background struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

var (
	bgMu sync.Mutex
	bgs  = map[*testscript.TestScript]map[string]*background{}
)

// scriptEnv is the script's environment as it is now.
func scriptEnv(ts *testscript.TestScript) []string {
	var env []string
	keys, _ := ts.Value(envKeys{}).([]string)
	for _, k := range keys {
		env = append(env, k+"="+ts.Getenv(k))
	}
	return env
}

// cmdStart starts a program in the background with the script's
// environment, stdout and stderr appended to a file:
// start NAME OUTFILE program [args...]. Processes still running at the end
// of the script are killed.
func cmdStart(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: start NAME OUTFILE program [args...]")
	}
	name, outPath := args[0], ts.MkAbs(args[1])
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	ts.Check(err)
	prog, err := lookPathIn(args[2], ts.Getenv("PATH"))
	ts.Check(err)
	cmd := exec.Command(prog, args[3:]...)
	cmd.Args[0] = args[2]
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = scriptEnv(ts)
	cmd.Stdout, cmd.Stderr = out, out
	ts.Check(cmd.Start())
	out.Close()
	bg := &background{cmd: cmd, done: make(chan struct{})}
	go func() { bg.err = cmd.Wait(); close(bg.done) }()
	bgMu.Lock()
	defer bgMu.Unlock()
	if bgs[ts] == nil {
		bgs[ts] = map[string]*background{}
		ts.Defer(func() {
			bgMu.Lock()
			list := bgs[ts]
			delete(bgs, ts)
			bgMu.Unlock()
			for _, b := range list {
				_ = b.cmd.Process.Kill()
				<-b.done
			}
		})
	}
	if bgs[ts][name] != nil {
		ts.Fatalf("start: %s is already started", name)
	}
	bgs[ts][name] = bg
}

func lookPathIn(prog, path string) (string, error) {
	if strings.Contains(prog, "/") {
		return prog, nil
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, prog)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &exec.Error{Name: prog, Err: exec.ErrNotFound}
}

func findBackground(ts *testscript.TestScript, name string) *background {
	bgMu.Lock()
	defer bgMu.Unlock()
	bg := bgs[ts][name]
	if bg == nil {
		ts.Fatalf("no background process %q", name)
	}
	return bg
}

// cmdSignal sends a signal to a background process: signal NAME INT|TERM|KILL.
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: signal NAME INT|TERM|KILL")
	}
	sig, ok := map[string]syscall.Signal{"INT": syscall.SIGINT, "TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL}[args[1]]
	if !ok {
		ts.Fatalf("signal: unknown signal %q", args[1])
	}
	ts.Check(findBackground(ts, args[0]).cmd.Process.Signal(sig))
}

// cmdAwait waits for a background process to exit and checks its exit
// code: await NAME CODE [SECONDS] (default 30).
func cmdAwait(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: await NAME CODE [SECONDS]")
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	limit := seconds(ts, args[2:], 30)
	bg := findBackground(ts, args[0])
	select {
	case <-bg.done:
	case <-time.After(limit):
		ts.Fatalf("await %s: still running after %s", args[0], limit)
	}
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(bg.err, &ee):
		got = ee.ExitCode()
	case bg.err != nil:
		ts.Fatalf("await %s: %v", args[0], bg.err)
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[0], got, want)
	}
}

// cmdWaitLines waits until a file has at least COUNT lines matching a
// regular expression: waitlines FILE REGEXP [COUNT [SECONDS]] (default 1,
// 30 seconds).
func cmdWaitLines(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 4 {
		ts.Fatalf("usage: waitlines FILE REGEXP [COUNT [SECONDS]]")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	count := 1
	if len(args) > 2 {
		count, err = strconv.Atoi(args[2])
		ts.Check(err)
	}
	var rest []string
	if len(args) > 3 {
		rest = args[3:]
	}
	limit := seconds(ts, rest, 30)
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(limit)
	for {
		data, _ := os.ReadFile(path)
		if len(re.FindAllIndex(data, -1)) >= count {
			return
		}
		if time.Now().After(deadline) {
			ts.Logf("%s:\n%s", args[0], data)
			ts.Fatalf("waitlines: fewer than %d lines match %q after %s", count, args[1], limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cmdPollGit waits until the subject of a commit reachable from HEAD
// matches a regular expression: poll-git REGEXP [SECONDS] (default 30).
func cmdPollGit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: poll-git REGEXP [SECONDS]")
	}
	re, err := regexp.Compile("(?m)" + args[0])
	ts.Check(err)
	limit := seconds(ts, args[1:], 30)
	deadline := time.Now().Add(limit)
	for {
		cmd := exec.Command("git", "log", "--format=%s")
		cmd.Dir = ts.MkAbs(".")
		cmd.Env = append(scriptEnv(ts), "GIT_OPTIONAL_LOCKS=0")
		out, _ := cmd.Output()
		if re.Match(out) {
			return
		}
		if time.Now().After(deadline) {
			ts.Logf("git log:\n%s", out)
			ts.Fatalf("poll-git: no commit subject matches %q after %s", args[0], limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cmdUnlocked waits until no codemachine holds the repository lock of the
// repository in the current directory: unlocked [SECONDS] (default 30).
func cmdUnlocked(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 1 {
		ts.Fatalf("usage: unlocked [SECONDS]")
	}
	limit := seconds(ts, args, 30)
	path := ts.MkAbs(filepath.Join(".git", "codemachine", "lock"))
	deadline := time.Now().Add(limit)
	for {
		if !lockHeld(path) {
			return
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(path)
			ts.Fatalf("unlocked: the lock is still held after %s: %s", limit, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockHeld probes the repository lock the way LockHolder does: a shared
// lock is granted exactly when nobody holds the exclusive one.
func lockHeld(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// cmdSleep waits: sleep DURATION ("500ms", "1s"), to give a process the
// chance to do what it must not do.
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	time.Sleep(d)
}

func seconds(ts *testscript.TestScript, args []string, def int) time.Duration {
	if len(args) == 0 {
		return testenv.Scale(time.Duration(def) * time.Second)
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("bad number of seconds %q", args[0])
	}
	return testenv.Scale(time.Duration(n) * time.Second)
}
