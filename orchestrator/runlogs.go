package orchestrator

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The event logs (.git/codemachine/logs/<run>/ and the hooks-*.log of
// runs started by git hooks) are kept for whoever looks into a step's
// failure or transcript, and pruned after a while, so that a repository a
// watcher, git hooks or a worker advances for months does not fill its
// disk. A log goes only when it is both older than keepLogsFor and not
// among the keepLogRuns newest of its kind: a failed step's log, which
// status names, outlives a burst of runs and a long holiday alike.
const (
	keepLogRuns = 50
	keepLogsFor = 30 * 24 * time.Hour
)

// sweepRunLogs prunes the event logs of earlier runs (see keepLogRuns),
// never the current run's. The caller holds the repository lock. Best
// effort: what cannot be removed is tried again by the next run.
func (o *Orchestrator) sweepRunLogs(current string) {
	pruneLogs(filepath.Join(o.repo.LocalDir(), "logs"), current, o.cfg.Now())
}

// pruneLogs removes from dir the run log directories and hooks logs that
// are past keeping at now, sparing current.
func pruneLogs(dir, current string, now time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var runs, hooks []os.DirEntry
	for _, e := range entries {
		switch {
		case e.Name() == current:
		case e.IsDir() && runIDPattern().MatchString(e.Name()):
			runs = append(runs, e)
		case e.Type().IsRegular() && strings.HasPrefix(e.Name(), "hooks-") && strings.HasSuffix(e.Name(), ".log"):
			hooks = append(hooks, e)
		}
	}
	for _, kind := range [][]os.DirEntry{runs, hooks} {
		for _, e := range pastKeeping(kind, now) {
			removeTree(filepath.Join(dir, e.Name()))
		}
	}
}

// pastKeeping is the entries of one kind that may go: all but the
// keepLogRuns newest (their names sort by the time they were made), and
// of those only the ones last written before now-keepLogsFor.
func pastKeeping(entries []os.DirEntry, now time.Time) []os.DirEntry {
	if len(entries) <= keepLogRuns {
		return nil
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() > entries[j].Name() })
	var old []os.DirEntry
	for _, e := range entries[keepLogRuns:] {
		info, err := e.Info()
		if err == nil && info.ModTime().Before(now.Add(-keepLogsFor)) {
			old = append(old, e)
		}
	}
	return old
}
