package agents

import (
	"bytes"
	"os"
	"strconv"
)

// onlyZombies reports whether every process of the group is a zombie.
// kill(-pgid, 0) still succeeds for zombies, and where PID 1 does not reap
// orphans (some containers) they never go away; a runner that waited for
// them would wait forever. If /proc cannot be read the answer is false, and
// the caller falls back to the grace period.
func onlyZombies(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
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
		if g, err := strconv.Atoi(string(f[2])); err == nil && g == pgid && string(f[0]) != "Z" {
			return false
		}
	}
	return true
}
