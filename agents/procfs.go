package agents

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
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
