package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/agents"
)

// lockWait bounds how long a hard stop waits for git's index lock in the
// user's checkout to go away: a landing holds it for the few milliseconds
// between updating the files and the branch, and must not be cut there.
const lockWait = 3 * time.Second

// interruptContext returns a context that the first SIGINT, SIGTERM or
// SIGHUP cancels once arm was called: running agents are then stopped
// gracefully (SIGTERM to their process groups, SIGKILL after the grace
// period), their partial work is kept, the lock released, and the command
// exits 130. A second signal stops at once: the agents' process groups are
// killed and the process exits 130 without waiting for them.
//
// SIGHUP is what a closed terminal (a closed window or tmux pane, a lost
// ssh connection) sends: the work of an agent's UI open in it is kept as
// that of a Ctrl-C. A codemachine started with SIGHUP ignored (nohup)
// keeps ignoring it.
//
// Until arm is called the signals keep their default: they end the
// process. Catching them costs a thread and a goroutine (os/signal), a
// measurable part of a command as short as version; the commands that
// change nothing and start nothing do without (signalFree).
func interruptContext(stderr io.Writer) (ctx context.Context, arm, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigc := make(chan os.Signal, 2)
	done := make(chan struct{})
	armed := false
	var once sync.Once
	arm = func() {
		once.Do(func() {
			armed = true
			signal.Notify(sigc, stopSignals()...)
			go onSignals(stderr, sigc, done, cancel)
		})
	}
	stop = func() {
		once.Do(func() {}) // a later arm catches nothing
		if armed {
			signal.Stop(sigc)
			close(done)
		}
		cancel()
	}
	return ctx, arm, stop
}

// onSignals cancels the command on the first signal and stops it at once
// on the second, until done is closed.
func onSignals(stderr io.Writer, sigc <-chan os.Signal, done <-chan struct{}, cancel context.CancelFunc) {
	select {
	case <-sigc:
	case <-done:
		return
	}
	// Counted before the cancellation reaches the agents: what is
	// running at the moment of the signal.
	running := len(childGroups())
	cancel()
	if running > 0 {
		stopNote(stderr, "codemachine: stopping; the running steps keep their partial work (Ctrl-C again kills them at once)")
	} else {
		stopNote(stderr, "codemachine: stopping")
	}
	select {
	case <-sigc:
	case <-done:
		return
	}
	hardStop(stderr)
}

// signalFree are the commands that change nothing and start nothing that
// outlives them: a signal ends them at once, as it ends git status or git
// log, and they do not pay for catching signals. status --remote fetches,
// so it catches them. hooks run starts a run detached from the terminal;
// started by a git hook in the background, where the shell ignores
// SIGINT, it keeps ignoring it (catching it would undo that).
var signalFree = map[string]func(c *cli.Context) bool{
	"version":    nil,
	"validate":   nil,
	"log":        nil,
	"graph":      nil,
	"completion": nil,
	"__complete": nil,
	"hooks run":  nil,
	"status":     func(c *cli.Context) bool { return c.String("remote") == "" },
}

// catchSignalsIn makes every command of cmds (named below prefix) call arm
// before it starts, but those signalFree.
func catchSignalsIn(cmds []*cli.Command, prefix string, arm func()) {
	for _, cmd := range cmds {
		name := prefix + cmd.Name
		catchSignalsIn(cmd.Subcommands, name+" ", arm)
		if cmd.Action == nil {
			continue // a group of subcommands: they arm
		}
		free, listed := signalFree[name]
		before := cmd.Before
		cmd.Before = func(c *cli.Context) error {
			if !listed || (free != nil && !free(c)) {
				arm()
			}
			if before != nil {
				return before(c)
			}
			return nil
		}
	}
}

// stopSignals are the signals interruptContext stops on: SIGINT, SIGTERM
// and, unless it is ignored (nohup), SIGHUP. Notify would undo the ignoring.
func stopSignals() []os.Signal {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	return sigs
}

// hardStop kills the process groups of the running agents, checks and
// hooks (each runs in a group of its own, a child of this process), waits
// briefly for git's index lock of the checkouts in use, and exits 130. Git
// commands run in this process's own group and are left to finish: they
// remove their lock files themselves.
func hardStop(stderr io.Writer) {
	n := killChildGroups()
	for _, dir := range usedGitDirs() {
		waitGone(filepath.Join(dir, "index.lock"), lockWait)
	}
	stopNote(stderr, fmt.Sprintf("codemachine: killed (%d process group(s))", n))
	os.Exit(130)
}

// stopNotes prints the notes a signal makes (stopping, killed) where the
// command's output is drawn: a live region at the bottom of the terminal
// takes them above its lines (output.stopNote). nil: straight to stderr.
var stopNotes struct {
	sync.Mutex
	print func(msg string)
}

// setStopNotes makes fn where the notes of a signal go (nil: stderr).
func setStopNotes(fn func(msg string)) {
	stopNotes.Lock()
	defer stopNotes.Unlock()
	stopNotes.print = fn
}

// stopNote prints one note of a signal (see stopNotes).
func stopNote(stderr io.Writer, msg string) {
	stopNotes.Lock()
	fn := stopNotes.print
	stopNotes.Unlock()
	if fn != nil {
		fn(msg)
		return
	}
	fmt.Fprintln(stderr, msg)
}

// gitDirs are the git directories of the repositories this process
// works on (registered by newOrchestrator).
var gitDirs struct {
	sync.Mutex
	dirs []string
}

func useGitDir(dir string) {
	gitDirs.Lock()
	defer gitDirs.Unlock()
	gitDirs.dirs = append(gitDirs.dirs, dir)
}

func usedGitDirs() []string {
	gitDirs.Lock()
	defer gitDirs.Unlock()
	return append([]string(nil), gitDirs.dirs...)
}

func waitGone(p string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Lstat(p); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killChildGroups sends SIGKILL to every process group led by a child of
// this process (other than its own group) and returns how many it found.
// The children are found in /proc; where there is none, nothing is killed
// and the agents get the SIGTERM the first signal already sent them.
func killChildGroups() int {
	n := 0
	for _, pgid := range childGroups() {
		// With the processes the group's sandbox launcher keeps below it
		// (a daemon in a session of its own), which the group's death
		// alone would leave running, to init.
		if agents.KillGroupTree(pgid) {
			n++
		}
	}
	return n
}

// childGroups are the process groups led by children of this process: the
// agents, checks and hooks running now (git runs in this process's group).
func childGroups() []int {
	self, own := os.Getpid(), syscall.Getpgrp()
	var groups []int
	for _, p := range agents.Processes() {
		if p.PPID == self && p.PGID == p.PID && p.PGID != own {
			groups = append(groups, p.PGID)
		}
	}
	return groups
}
