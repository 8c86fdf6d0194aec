package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/internal/testenv"
)

// TestRun installs with the fake npm of testenv's testdata.
func TestRun(t *testing.T) {
	testenv.RequireNode(t)
	npm, err := filepath.Abs("../../testdata/fake-npm")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(npm, filepath.Join(bin, "npm")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_NPM_LOG", filepath.Join(t.TempDir(), "log"))
	cache := t.TempDir()
	t.Setenv(testenv.CacheEnv, cache)

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"gemini", "codex"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := "codex " + testenv.Codex.BinPath(cache) + "\ngemini " + testenv.Gemini.BinPath(cache) + "\n"
	if stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	if strings.Count(stderr.String(), "installed ") != 2 {
		t.Errorf("stderr %q, want two install lines", stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"-q", "codex"}, &stdout, &stderr); code != 0 || stdout.Len()+stderr.Len() != 0 {
		t.Errorf("-q when installed: exit %d, output %q %q", code, stdout.String(), stderr.String())
	}

	for _, args := range [][]string{{"aider"}, {"-nope"}} {
		stderr.Reset()
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}

	t.Setenv("FAKE_NPM_FAIL", "1")
	stderr.Reset()
	if code := run(context.Background(), []string{"claude"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "install-clis: install @anthropic-ai/claude-code@2.1.197") {
		t.Errorf("failing npm: exit %d, stderr %q", code, stderr.String())
	}
}
