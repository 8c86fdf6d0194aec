package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCLIs(t *testing.T) {
	want := map[string]string{
		"claude":   "@anthropic-ai/claude-code@2.1.197",
		"codex":    "@openai/codex@0.169.0",
		"gemini":   "@google/gemini-cli@0.61.0",
		"opencode": "opencode-ai@1.18.33",
	}
	if len(CLIs()) != len(want) {
		t.Fatalf("%d CLIs", len(CLIs()))
	}
	for name, spec := range want {
		c, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if c.Spec() != spec {
			t.Errorf("%s: %s, want %s (the versions measured in shared/agent-clis)", name, c.Spec(), spec)
		}
		if got := c.BinPath("/c"); got != filepath.Join("/c", filepath.FromSlash(spec), "node_modules", ".bin", c.Bin) {
			t.Errorf("%s: BinPath %s", name, got)
		}
	}
	if _, err := Lookup("aider"); err == nil {
		t.Error("Lookup of an unknown CLI succeeded")
	}
}

func TestCacheDir(t *testing.T) {
	t.Setenv(CacheEnv, "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if got, _ := CacheDir(); got != "/xdg/codemachine-test" {
		t.Errorf("with XDG_CACHE_HOME: %s", got)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got, _ := CacheDir(); got != "/home/u/.cache/codemachine-test" {
		t.Errorf("with HOME: %s", got)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv(CacheEnv, "rel")
	if got, _ := CacheDir(); got != filepath.Join(dir, "rel") {
		t.Errorf("relative %s: %s", CacheEnv, got)
	}
	t.Setenv(CacheEnv, "")
	t.Setenv("HOME", "")
	os.Unsetenv("HOME")
	if _, err := CacheDir(); err == nil {
		t.Error("no HOME, no cache variable: no error")
	}
}
