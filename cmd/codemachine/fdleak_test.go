package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStepGetsNoInheritedDescriptors: a descriptor codemachine inherited
// without close-on-exec (a shell's 7>>file, a CI runner's pipe) never
// reaches a step, its check or its hooks: Landlock governs what a step
// opens, not what it is handed.
func TestStepGetsNoInheritedDescriptors(t *testing.T) {
	t.Parallel()
	c := newCLIEnv(t, `version: 1
steps:
  - id: s
    run: 'for fd in 3 4; do echo "step wrote to $fd" >&$fd; done; echo done > out.txt'
    check: 'echo "check wrote" >&3; true'
    hooks:
      after: 'echo "after hook wrote" >&3; true'
    outputs: [out.txt]
`)
	outside := filepath.Join(t.TempDir(), "outside.txt")
	var files []*os.File
	for range 2 {
		f, err := os.OpenFile(outside, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	cmd := c.cmd(c.bin, "run")
	cmd.ExtraFiles = files // fds 3 and 4, without close-on-exec
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "✓ s ") {
		t.Fatalf("the step did not land:\n%s", out)
	}
	if got, err := os.ReadFile(outside); err != nil || len(got) > 0 {
		t.Errorf("a step's processes wrote to a descriptor codemachine inherited: %q (%v)", got, err)
	}
}
