package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/codemachine/codemachine/internal/testenv"
)

// TestInteractive runs the scenarios in testdata/interactive: the real
// agent CLIs' own UIs in a tmux terminal against the fake model (the llm
// and cli commands of TestEngines, the term commands of TestTerminal, the
// unlocked command of TestWatch).
func TestInteractive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real agent CLIs")
	}
	t.Parallel()
	tmux := testenv.RequireTools(t, "tmux")["tmux"]
	bins := testenv.RequireCLIs(t)
	var dirs []string
	for _, name := range testenv.Names() {
		dirs = append(dirs, filepath.Dir(bins[name]))
	}
	p := scriptParams("testdata/interactive")
	setup := p.Setup
	p.Setup = func(env *testscript.Env) error {
		if err := setup(env); err != nil {
			return err
		}
		sock, err := os.MkdirTemp("", "cmtmux")
		if err != nil {
			return err
		}
		env.Defer(func() { _ = os.RemoveAll(sock) })
		env.Values[termKey{}] = &termState{tmux: tmux, sock: filepath.Join(sock, "s")}
		env.Values[engineStateKey{}] = &engineState{pathDirs: dirs}
		return nil
	}
	p.Cmds["term"] = cmdTerm
	p.Cmds["llm"] = cmdLLM
	p.Cmds["cli"] = cmdCLI
	p.Cmds["unlocked"] = cmdUnlocked
	testscript.Run(t, p)
}
