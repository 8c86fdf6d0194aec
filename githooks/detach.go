package githooks

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// Detached is a process to start in the background, outliving the one that
// starts it: a git hook must return at once, and the terminal's Ctrl-C
// must not reach a run that a commit started.
type Detached struct {
	Program string
	Args    []string
	Dir     string
	// Env is the whole environment; variables that point git at a
	// repository (GIT_DIR, GIT_INDEX_FILE, ...), which git sets for its
	// hooks, are dropped so that the process finds the repository of Dir.
	Env []string
	// Log receives stdout and stderr (appended; created when missing).
	Log string
	// Header is written to the log before the process starts.
	Header string
}

// repoVars locate a repository for git.
var repoVars = []string{"GIT_DIR=", "GIT_WORK_TREE=", "GIT_INDEX_FILE=", "GIT_COMMON_DIR=",
	"GIT_OBJECT_DIRECTORY=", "GIT_ALTERNATE_OBJECT_DIRECTORIES=", "GIT_NAMESPACE=", "GIT_PREFIX="}

// StartDetached starts d in a session of its own, with stdin from
// /dev/null, and returns its pid without waiting for it.
func StartDetached(d Detached) (int, error) {
	log, err := os.OpenFile(d.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("start %s: log: %w", d.Program, err)
	}
	defer log.Close()
	if d.Header != "" {
		if _, err := log.WriteString(d.Header); err != nil {
			return 0, fmt.Errorf("start %s: log: %w", d.Program, err)
		}
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", d.Program, err)
	}
	defer null.Close()
	var env []string
outer:
	for _, kv := range d.Env {
		for _, p := range repoVars {
			if strings.HasPrefix(kv, p) {
				continue outer
			}
		}
		env = append(env, kv)
	}
	cmd := exec.Command(d.Program, d.Args...)
	cmd.Dir = d.Dir
	cmd.Env = env
	cmd.Stdin = null
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", d.Program, err)
	}
	pid := cmd.Process.Pid
	// Nobody waits for it: once its parent exits, init reaps it.
	_ = cmd.Process.Release()
	return pid, nil
}
