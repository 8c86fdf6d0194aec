//go:build linux

package sandbox

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// descendants lists the live (not zombie) descendants of pid, from the
// process table in /proc: children first, then theirs.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, zombie, ok := readStat(filepath.Join("/proc", e.Name(), "stat"))
		if ok && !zombie {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		next := children[queue[0]]
		queue = append(queue[1:], next...)
		out = append(out, next...)
	}
	return out
}

// readStat reads a process's parent and whether it is a zombie from its
// /proc/PID/stat: "pid (comm) state ppid ...", comm may hold spaces and
// parentheses.
func readStat(path string) (ppid int, zombie, ok bool) {
	stat, err := os.ReadFile(path)
	if err != nil {
		return 0, false, false // exited meanwhile
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false, false
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, false, false
	}
	ppid, err = strconv.Atoi(string(f[1]))
	return ppid, string(f[0]) == "Z", err == nil
}
