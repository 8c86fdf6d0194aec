package agents

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/fakellm"
	"github.com/codemachine/codemachine/internal/testenv"
)

func TestZZEngineSandboxed(t *testing.T) {
	name := os.Getenv("ZZ_CLI")
	bins := testenv.RequireCLIs(t, name)
	srv := fakellm.Start(t, fakellm.Script{Turns: []fakellm.Turn{
		{Calls: []fakellm.Call{fakellm.WriteFile{Path: "hi.txt", Content: "hi\n"}}},
		{Text: "DONE"},
	}})
	repo := testenv.GitRepo(t)
	home, env := testenv.Setup(t, name, srv.URL())
	env = Environ(append(env, "PATH="+filepath.Dir(bins[name])+":"+os.Getenv("PATH")), nil)
	tmp := filepath.Join(home, "tmp")
	priv := t.TempDir()
	var log bytes.Buffer
	eng, _ := New(name)
	sb := &Sandbox{Landlock: true, Writable: []string{repo, tmp, priv}}
	if os.Getenv("ZZ_OFF") != "" {
		sb = nil
	}
	start := time.Now()
	res, err := eng.Run(context.Background(), Request{Prompt: "do it", Dir: repo, Env: env, Log: &log, Model: testenv.Model(name),
		Timeout: 60 * time.Second, Home: priv, Grace: time.Second,
		Sandbox: sb})
	t.Logf("res=%+v err=%v took %s", res.Text, err, time.Since(start))
}
