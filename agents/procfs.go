package agents

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Process is one entry of the process table as /proc shows it: what
// codemachine needs to find the process groups of agents.
type Process struct {
	PID, PPID, PGID int
	Zombie          bool
}

// Cwd is the process's working directory ("" when it cannot be read).
func (p Process) Cwd() string {
	cwd, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(p.PID), "cwd"))
	return cwd
}

// Processes lists the processes in /proc. Without /proc (other systems)
// it returns nil: callers then fall back to signals and grace periods.
func Processes() []Process {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) < 3 {
			continue
		}
		ppid, _ := strconv.Atoi(string(f[1]))
		pgid, _ := strconv.Atoi(string(f[2]))
		out = append(out, Process{PID: pid, PPID: ppid, PGID: pgid, Zombie: string(f[0]) == "Z"})
	}
	return out
}

// onlyZombies reports whether every process of the group is a zombie.
// kill(-pgid, 0) still succeeds for zombies, and where PID 1 does not reap
// orphans (some containers) they never go away; a runner that waited for
// them would wait forever. Without /proc the answer is false, and the
// caller falls back to the grace period.
func onlyZombies(pgid int) bool {
	procs := Processes()
	if procs == nil {
		return false
	}
	for _, p := range procs {
		if p.PGID == pgid && !p.Zombie {
			return false
		}
	}
	return true
}

// groupTreeTimeout bounds how long KillGroupTree looks for a group's
// descendants before it kills what it found regardless.
const groupTreeTimeout = 2 * time.Second

// KillGroupTree kills process group pgid and every process descended from
// one of its processes, and reports whether there was anything to kill.
// A process the step started in a session of its own (setsid, a daemon
// that ignores SIGTERM) is in no group of the step's, but stays a
// descendant of the group's processes while they live: killed with the
// group alone, it would go to init and run on for good, writing into the
// worktree that the next step works in. So the descendants are stopped
// first (SIGSTOP: a stopped process neither forks nor exits, so the tree
// holds still while it is read again, until no new one turns up), then
// the group is killed, then the stopped ones. Stopping rather than
// killing them first also keeps the group's leader from going on once
// its children die (a shell that waits on them would run its next
// command).
func KillGroupTree(pgid int) bool {
	stopped := map[int]bool{}
	deadline := time.Now().Add(groupTreeTimeout)
	for time.Now().Before(deadline) {
		fresh := false
		for _, pid := range groupDescendants(Processes(), pgid) {
			if !stopped[pid] && syscall.Kill(pid, syscall.SIGSTOP) == nil {
				stopped[pid], fresh = true, true
			}
		}
		if !fresh {
			break
		}
	}
	found := syscall.Kill(-pgid, syscall.SIGKILL) == nil
	for pid := range stopped {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			found = true
		}
	}
	return found
}

// groupDescendants lists the live processes below the live processes of
// group pgid, in the group or not, its leader (pgid itself) aside.
func groupDescendants(procs []Process, pgid int) []int {
	children := map[int][]int{}
	var queue []int
	for _, p := range procs {
		if p.Zombie {
			continue
		}
		children[p.PPID] = append(children[p.PPID], p.PID)
		if p.PGID == pgid {
			queue = append(queue, p.PID)
		}
	}
	seen := map[int]bool{}
	var out []int
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		if pid != pgid {
			out = append(out, pid)
		}
		queue = append(queue, children[pid]...)
	}
	return out
}
