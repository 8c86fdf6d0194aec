package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/internal/testenv"
	"github.com/codemachine/codemachine/sandbox"
)

func TestMain(m *testing.M) {
	// First: the sandbox launcher is this binary re-executed.
	sandbox.Main()
	testscript.Main(m, map[string]func(){
		"codemachine": func() { os.Exit(Main(os.Args, os.Stdout, os.Stderr)) },
		// codemachine-signals is codemachine, telling on stderr after the
		// command whether it caught signals (os/signal's goroutine, which
		// its first Notify starts for good, is running).
		"codemachine-signals": func() {
			code := Main(os.Args, os.Stdout, os.Stderr)
			buf := make([]byte, 1<<20)
			caught := bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("os/signal.loop"))
			fmt.Fprintf(os.Stderr, "signals caught: %v\n", caught)
			os.Exit(code)
		},
		"sockconnect": func() { os.Exit(sockConnect()) },
	})
}

// TestScripts runs the CLI scenarios in testdata/script through the built
// binary, with the real git in a hermetic environment.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, scriptParams("testdata/script"))
}

func scriptParams(dir string) testscript.Params {
	return withOTLP(testscript.Params{
		Dir:                 dir,
		Setup:               hermeticGit,
		RequireExplicitExec: false,
		Condition:           scriptCondition,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":        cmdExits,
			"waitfor":      cmdWaitFor,
			"unixlisten":   cmdUnixListen,
			"unixaccepted": cmdUnixAccepted,
			"noleft":       cmdNoLeft,
			"githttp":      cmdGitHTTP,
			"actenv":       cmdActEnv,
		},
	})
}

// scriptCondition knows [root] (the tests run as root), [sandbox]
// (this system gives steps every protection of the sandbox) and
// [landlock-signals] (Landlock refuses a step's signals to processes
// outside its sandbox: ABI 6 and later).
func scriptCondition(cond string) (bool, error) {
	switch cond {
	case "root":
		return os.Geteuid() == 0, nil
	case "sandbox":
		return agents.ProbeSandbox().Full(), nil
	case "landlock-signals":
		return agents.ProbeSandbox().ABI >= 6, nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

// hermeticGit gives every script its own HOME with a fixed git identity,
// fixed dates and no system configuration, and a warm Go build cache so the
// example's checks do not compile the standard library from scratch.
func hermeticGit(env *testscript.Env) error {
	home := env.WorkDir
	vars := map[string]string{
		"HOME":                   home,
		"XDG_CONFIG_HOME":        filepath.Join(home, ".config"),
		"GIT_CONFIG_NOSYSTEM":    "1",
		"GIT_AUTHOR_NAME":        "Test User",
		"GIT_AUTHOR_EMAIL":       "test@example.com",
		"GIT_COMMITTER_NAME":     "Test User",
		"GIT_COMMITTER_EMAIL":    "test@example.com",
		"GIT_AUTHOR_DATE":        "2026-01-02T03:04:05Z",
		"GIT_COMMITTER_DATE":     "2026-01-02T03:04:05Z",
		"NO_COLOR":               "1",
		"TZ":                     "UTC",
		"LANG":                   "C.UTF-8",
		"CODEMACHINE_RETRY_BASE": "10ms",
		// LEASE is the workers' claim lease in the scripts: short, so
		// that a killed worker's task is taken over soon, and stretched
		// on a slow machine so that a live worker's lease never lapses.
		"LEASE": testenv.Scale(5 * time.Second).String(),
		// STEP_TIMEOUT is the step timeout of the engine scenarios whose
		// CLI must have a request answered (or its session started, or a
		// resumed session finished) before the step times out: long
		// enough for a CLI's start on a loaded machine (seconds), and
		// stretched on a slow one.
		"STEP_TIMEOUT": testenv.Scale(12 * time.Second).String(),
		// RESUME_TIMEOUT is the step timeout of a scenario's run that
		// must finish, not time out: a CLI's start and whole session.
		"RESUME_TIMEOUT": testenv.Scale(2 * time.Minute).String(),
	}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOROOT", "GOTOOLCHAIN", "GOFLAGS", "GOPROXY"} {
		if v := goEnv(k); v != "" {
			vars[k] = v
		}
	}
	vars["GORACE"] = raceOptions()
	// CMBIN is the directory of the codemachine under test, for scripts
	// that set a PATH of their own.
	for _, dir := range filepath.SplitList(env.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(dir, "codemachine")); err == nil {
			vars["CMBIN"] = dir
			break
		}
	}
	for k, v := range vars {
		env.Setenv(k, v)
	}
	gitconfig := "[init]\n\tdefaultBranch = main\n[user]\n\tname = Test User\n\temail = test@example.com\n[advice]\n\tdetachedHead = false\n"
	return os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(gitconfig), 0o644)
}

// raceOptions are the race detector's options for the CLI processes the
// tests start: under -race every one of them would otherwise sleep a second
// at exit (atexit_sleep_ms), which is most of the suite's time.
func raceOptions() string {
	return strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
}

// goEnv reads a Go setting from the environment or, failing that, go env.
func goEnv(key string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// cmdExits runs a program and checks its exit code: exits CODE prog args...
// Its stdout and stderr are kept for the stdout/stderr commands.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("exits: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// cmdWaitFor waits up to a bound for a file to exist: waitfor PATH [SECONDS].
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: waitfor PATH [SECONDS]")
	}
	limit := 30 * time.Second
	if len(args) > 1 {
		n, err := strconv.Atoi(args[1])
		if err != nil {
			ts.Fatalf("waitfor: bad seconds %q", args[1])
		}
		limit = time.Duration(n) * time.Second
	}
	deadline := time.Now().Add(testenv.Scale(limit))
	for {
		_, err := os.Stat(ts.MkAbs(args[0]))
		if (err == nil) != neg {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitfor %s: not there after %s", args[0], limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
