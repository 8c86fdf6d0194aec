package orchestrator

import (
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/codemachine/codemachine/agents"
)

// stopOrphans kills the process groups that a killed codemachine (pid
// holder, whose stale lock this process took over) left running: agents and
// commands keep running in their own process groups when codemachine dies
// by kill -9, and would go on writing into pooled worktrees that the new run
// hands out again. A group is killed only if one of its
// processes still works inside this repository's worktree pool, so a
// recycled process group id is never touched. It returns how many groups it
// stopped; where /proc is missing it finds none.
func (o *Orchestrator) stopOrphans(holder int) int {
	var r Running
	if err := o.readLocal(runningFile, &r); err != nil || r.PID != holder || len(r.Groups) == 0 {
		return 0
	}
	pool := filepath.Join(o.repo.LocalDir(), "worktrees") + string(filepath.Separator)
	n := 0
	for _, pgid := range r.Groups {
		if pgid > 1 && groupWorksIn(pgid, pool) && endGroup(pgid) {
			n++
		}
	}
	return n
}

// orphanKillTimeout bounds how long endGroup kills a group's descendants
// before it kills the group itself regardless.
const orphanKillTimeout = 2 * time.Second

// endGroup kills process group pgid and every process descended from one
// of its processes, and reports whether the group was there to kill. The
// group's leader is the step's sandbox launcher, a child subreaper: a
// process the step started in a session of its own (setsid, a daemon that
// ignores SIGTERM) is in no group of the step's, but stays the launcher's
// descendant while the launcher lives. Killed first, the launcher would
// leave such a process to init, running on for good, writing into the
// worktree the new run hands out again. So the descendants are killed
// first, again while orphans reparent to the launcher, and the group last.
func endGroup(pgid int) bool {
	deadline := time.Now().Add(orphanKillTimeout)
	for {
		below := groupDescendants(agents.Processes(), pgid)
		if len(below) == 0 || time.Now().After(deadline) {
			break
		}
		for _, pid := range below {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return syscall.Kill(-pgid, syscall.SIGKILL) == nil
}

// groupDescendants lists the live processes below the live processes of
// group pgid, in the group or not, its leader (pgid itself) aside.
func groupDescendants(procs []agents.Process, pgid int) []int {
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

// groupWorksIn reports whether a live process of group pgid has its
// working directory under dir.
func groupWorksIn(pgid int, dir string) bool {
	for _, p := range agents.Processes() {
		if p.PGID == pgid && !p.Zombie && strings.HasPrefix(p.Cwd()+string(filepath.Separator), dir) {
			return true
		}
	}
	return false
}
