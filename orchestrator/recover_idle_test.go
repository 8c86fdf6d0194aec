package orchestrator

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/internal/testenv"
)

// A landing killed while it held the user's index.lock leaves the lock and
// its journal: the user's next git add or commit fails on it until some
// codemachine command recovers. status is the command a user runs to see
// what happened, so it recovers too (RecoverIdle) when no codemachine
// holds the repository, and leaves the dead run's record in the lock file
// so that the next run still takes the lock over from it.
func TestRecoverIdleClearsAKilledLandingsLock(t *testing.T) {
	dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": "version: 1\nsteps:\n  - id: a\n    run: echo a > a.txt\n"})
	o := newTestOrchestrator(t, dir, nil, func(Event) {})
	head := testenv.Git(t, dir, "rev-parse", "HEAD")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := dead.Process.Pid
	local := filepath.Join(dir, ".git", "codemachine")
	if err := os.MkdirAll(local, 0o755); err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("codemachine-switch-%d-1", pid)
	journal := fmt.Sprintf("pid: %d\nmarker: \"%s\\n\"\nroot: %s\nindex: %s\ntmp: %s\nref: refs/heads/main\nold: %s\nnew: %s\npending: true\n",
		pid, marker, dir, filepath.Join(dir, ".git", "index"), filepath.Join(local, "switch-index-x"), head, head)
	lockRecord := fmt.Sprintf("pid %d\ncommand codemachine run\n", pid)
	for name, data := range map[string]string{
		filepath.Join(local, "switch.yaml"):      journal,
		filepath.Join(dir, ".git", "index.lock"): marker + "\n",
		filepath.Join(local, "lock"):             lockRecord,
	} {
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Another codemachine holds the repository: its start recovers.
	held, err := o.repo.Lock("codemachine run")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.RecoverIdle(t.Context(), "codemachine status"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git", "index.lock")); err != nil {
		t.Fatal("the lock was touched while another codemachine held the repository")
	}
	held.Handback()

	if err := o.RecoverIdle(t.Context(), "codemachine status"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, ".git", "index.lock"), filepath.Join(local, "switch.yaml")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left", p)
		}
	}
	testenv.Git(t, dir, "commit", "-q", "--allow-empty", "-m", "the user's commit")
	if data, _ := os.ReadFile(filepath.Join(local, "lock")); !strings.Contains(string(data), fmt.Sprintf("pid %d\n", pid)) {
		t.Errorf("the dead run's record is gone from the lock file: %q", data)
	}
}
