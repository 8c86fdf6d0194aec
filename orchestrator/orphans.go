package orchestrator

import (
	"path/filepath"
	"strings"

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
		if pgid > 1 && groupWorksIn(pgid, pool) && agents.KillGroupTree(pgid) {
			n++
		}
	}
	return n
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
