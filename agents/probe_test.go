package agents

import (
	"path/filepath"
	"testing"
)

func TestProbe(t *testing.T) {
	env, _ := fakeCLI(t, "")
	version := filepath.Join(t.TempDir(), "version")
	writeFile(t, version, "2.1.197 (Claude Code)\nsecond line\n")
	env = append(env, "FAKE_STREAM="+version, "ANTHROPIC_API_KEY=k")
	info := Probe("claude", env)
	bin := filepath.Join(filepath.SplitList(envValue(env, "PATH"))[0], "claude")
	want := EngineInfo{Name: "claude", Package: "@anthropic-ai/claude-code", Found: true, Path: bin,
		Version: "2.1.197 (Claude Code)", Credentials: "ANTHROPIC_API_KEY"}
	if info != want {
		t.Errorf("Probe(claude)\n got %+v\nwant %+v", info, want)
	}

	// Found, but without credentials: how to log in.
	info = Probe("gemini", env)
	if !info.Found || info.Credentials != NoCredentials || info.Hint != loginHints["gemini"] {
		t.Errorf("Probe(gemini) = %+v", info)
	}

	// Found, and its configuration names the variable it reads, which is
	// not set: that is a missing credential too (marked, with a hint),
	// not a ready engine.
	codexHome := t.TempDir()
	writeFile(t, filepath.Join(codexHome, "config.toml"), "model_provider = \"corp\"\n[model_providers.corp]\nenv_key = \"CORP_KEY\"\n")
	info = Probe("codex", append(env, "CODEX_HOME="+codexHome, "OPENAI_API_KEY=o"))
	if !info.Found || info.Credentials != NoCredentials+" (model provider corp reads CORP_KEY, which is not set)" ||
		info.Hint != "set the variable named above in the environment codemachine runs in" {
		t.Errorf("Probe(codex) without its provider's key = %+v", info)
	}

	// A version that cannot be read is said so.
	info = Probe("codex", append(env, "FAKE_EXIT=3", "FAKE_STDERR=boom", "OPENAI_API_KEY=o"))
	if !info.Found || info.Hint != "`codex --version` failed: codex: exit status 3: boom" {
		t.Errorf("Probe(codex) with a failing --version = %+v", info)
	}

	// Not on PATH: how to install it.
	info = Probe("opencode", []string{"PATH=" + t.TempDir(), "HOME=" + t.TempDir()})
	if info.Found || info.Path != "" || info.Hint != "install: npm install -g opencode-ai" {
		t.Errorf("Probe(opencode) not installed = %+v", info)
	}
	if info := Probe("aider", env); info.Found || info.Hint == "" {
		t.Errorf("Probe(aider) = %+v", info)
	}
}
