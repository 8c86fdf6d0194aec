package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunStartsNoGitProcess: once a repository's configuration has been
// read (and kept, .git/codemachine/cache/config-list), a run that lands a
// step, a run with nothing due and a run that notes an uncommitted
// workflow edit start no git process: every git command line would show
// in the log of a git on PATH that records them.
func TestRunStartsNoGitProcess(t *testing.T) {
	t.Parallel()
	c := newCLIEnv(t, `version: 1
steps:
  - id: s
    run: 'date +%s%N > out.txt'
    outputs: [out.txt]
`)
	realGit, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	shim := t.TempDir()
	log := filepath.Join(t.TempDir(), "git.log")
	script := "#!/bin/sh\necho \"$*\" >> '" + log + "'\nexec '" + realGit + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(shim, "git"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, kv := range c.env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			c.env[i] = "PATH=" + shim + string(os.PathListSeparator) + v
		}
	}
	// The first run reads the configuration (git config) and keeps it;
	// the git on PATH is part of what it depends on (its system files).
	if code, out := c.cm("run"); code != 0 || !strings.Contains(out, "✓ s ") {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	os.Remove(log)
	checkLog := func(what string) {
		t.Helper()
		if data, err := os.ReadFile(log); err == nil && len(data) > 0 {
			t.Errorf("%s started git:\n%s", what, data)
		}
		os.Remove(log)
	}
	if code, out := c.cm("run", "--force", "s"); code != 0 || !strings.Contains(out, "✓ s ") {
		t.Fatalf("forced run: exit %d\n%s", code, out)
	}
	checkLog("a run landing a step")
	if code, out := c.cm("run"); code != 0 || !strings.Contains(out, "nothing is due") {
		t.Fatalf("idle run: exit %d\n%s", code, out)
	}
	checkLog("a run with nothing due")
	wf := filepath.Join(c.dir, ".codemachine", "workflow.yaml")
	data, err := os.ReadFile(wf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wf, append(data, "# edited\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := c.cm("run"); code != 0 || !strings.Contains(out, "uncommitted changes are not used until committed: .codemachine/workflow.yaml") {
		t.Fatalf("run with an uncommitted edit: exit %d\n%s", code, out)
	}
	checkLog("a run noting an uncommitted edit")
	// The shim works: git's own answer, asked through it, is logged.
	if out, err := c.cmd("sh", "-c", "git status --short").CombinedOutput(); err != nil || !strings.Contains(string(out), "workflow.yaml") {
		t.Fatalf("git status through the shim: %q (%v)", out, err)
	}
	if data, err := os.ReadFile(log); err != nil || !strings.Contains(string(data), "status --short") {
		t.Fatalf("the shim logged %q (%v)", data, err)
	}
}
