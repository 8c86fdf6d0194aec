package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/codemachine/codemachine/internal/testenv"
)

// cmdActEnv: actenv DIR exports ACT, the path of nektos/act (built from
// the Go module proxy into the test cache the first time), and fills DIR
// with links to the pinned agent CLIs (from the test cache), so that a
// workflow's "command -v claude || npm install ..." finds them and
// installs nothing.
func cmdActEnv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: actenv DIR")
	}
	act, err := testenv.Act(context.Background())
	ts.Check(err)
	ts.Setenv("ACT", act)
	bins, err := testenv.Install(context.Background())
	ts.Check(err)
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o755))
	for name, path := range bins {
		ts.Check(os.Symlink(path, filepath.Join(dir, name)))
	}
}

// TestCIPinsAreTested keeps the CI workflow's CLI versions the ones the
// tests install.
func TestCIPinsAreTested(t *testing.T) {
	for key, c := range map[string]testenv.CLI{"Claude": testenv.Claude, "Codex": testenv.Codex, "Gemini": testenv.Gemini, "Opencode": testenv.Opencode} {
		if ciPins[key] != c.Spec() {
			t.Errorf("ci pin %s = %q, tested %q", key, ciPins[key], c.Spec())
		}
	}
}
