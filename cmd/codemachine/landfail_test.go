package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLandFailureKeepsWork: a landing that fails for another reason than a
// conflict (here the user's directory is immutable, so the step's new file
// cannot be put in the checkout) stops the run with exit 1 and lands
// nothing, but keeps the step's commit on its failed ref: status and diff
// show it, and retry lands it once the cause is gone.
func TestLandFailureKeepsWork(t *testing.T) {
	t.Parallel()
	c := newCLIEnv(t, `version: 1
steps:
  - id: s
    run: echo new > src/new.txt
    outputs: [src/new.txt]
`)
	src := filepath.Join(c.dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.git("add", "src")
	c.git("commit", "-q", "-m", "src")
	tip := c.git("rev-parse", "HEAD")
	if out, err := exec.Command("chattr", "+i", src).CombinedOutput(); err != nil {
		t.Skipf("cannot make a directory immutable here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", src).Run() })

	code, out := c.cm("run")
	if code != 1 || !strings.Contains(out, "✗ s ") || !strings.Contains(out, "work kept on refs/codemachine/failed/s") {
		t.Fatalf("run: exit %d, want 1 with s failed and its work kept:\n%s", code, out)
	}
	if got := c.git("rev-parse", "HEAD"); got != tip {
		t.Errorf("the branch moved to %s on a failed landing", got)
	}
	if got := c.git("show", "refs/codemachine/failed/s:src/new.txt"); got != "new" {
		t.Errorf("failed ref holds src/new.txt = %q, want the step's work", got)
	}
	if _, out := c.cm("status"); !strings.Contains(out, "not landed: ") {
		t.Errorf("status does not tell of the failed landing:\n%s", out)
	}
	if err := exec.Command("chattr", "-i", src).Run(); err != nil {
		t.Fatal(err)
	}
	if code, out := c.cm("retry", "s"); code != 0 {
		t.Fatalf("retry: exit %d\n%s", code, out)
	}
	if got := c.git("show", "HEAD:src/new.txt"); got != "new" {
		t.Errorf("after retry src/new.txt = %q", got)
	}
	if got := c.git("status", "--porcelain", "--", "notes.txt", "scratch.txt"); got != "M notes.txt\n?? scratch.txt" {
		t.Errorf("the user's own changes: %q", got)
	}
}

// newCLIEnv is a crashEnv (a repository with workflow committed, an
// uncommitted edit and an untracked file of the user's) for the binary
// TestMain put on PATH.
func newCLIEnv(t *testing.T, workflow string) *crashEnv {
	t.Helper()
	bin, err := exec.LookPath("codemachine")
	if err != nil {
		t.Fatalf("codemachine is not on PATH (set up by TestMain): %v", err)
	}
	return newCrashEnvWith(t, bin, workflow)
}
