package testenv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestEnv(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://proxy.example:3128")
	t.Setenv("ANTHROPIC_API_KEY", "sk-real-key")
	t.Setenv("CODEMACHINE_SECRET", "x")
	const url = "http://127.0.0.1:4242"
	home := "/h"
	common := map[string]string{
		"HOME": home, "TMPDIR": "/h/tmp", "NO_COLOR": "1", "CI": "1",
		"XDG_CONFIG_HOME": "/h/.config", "XDG_DATA_HOME": "/h/.local/share", "XDG_STATE_HOME": "/h/.local/state",
		"XDG_CACHE_HOME": "/h/.cache", "XDG_RUNTIME_DIR": "/h/.run",
		"GIT_AUTHOR_NAME": GitName, "GIT_AUTHOR_EMAIL": GitEmail, "GIT_AUTHOR_DATE": GitDate,
		"GIT_COMMITTER_NAME": GitName, "GIT_COMMITTER_EMAIL": GitEmail, "GIT_COMMITTER_DATE": GitDate,
		"GIT_CONFIG_NOSYSTEM": "1", "PATH": os.Getenv("PATH"),
		"npm_config_registry": url + "/npm-registry-sink/",
		// Every traffic-disabling variable of shared/agent-clis, for every CLI.
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
		"DISABLE_ERROR_REPORTING": "1", "DISABLE_BUG_COMMAND": "1", "DISABLE_GROWTHBOOK": "1",
		"GEMINI_TELEMETRY_ENABLED":    "false",
		"OPENCODE_DISABLE_AUTOUPDATE": "1", "OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_SHARE": "1",
		"OPENCODE_DISABLE_DEFAULT_PLUGINS": "1", "OPENCODE_DISABLE_LSP_DOWNLOAD": "1", "OPENCODE_DISABLE_CLAUDE_CODE": "1",
	}
	specific := map[string]map[string]string{
		"claude":   {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": APIKey, "CLAUDE_CONFIG_DIR": "/h/.claude", "IS_SANDBOX": "1"},
		"codex":    {"CODEX_HOME": "/h/.codex", "FAKE_API_KEY": APIKey},
		"gemini":   {"GOOGLE_GEMINI_BASE_URL": url, "GEMINI_API_KEY": APIKey, "GEMINI_CLI_TRUST_WORKSPACE": "true", "GEMINI_CLI_NO_RELAUNCH": "true"},
		"opencode": {},
	}
	for _, cli := range Names() {
		t.Run(cli, func(t *testing.T) {
			env := Env(cli, home, url)
			m := envMap(env)
			if len(m) != len(env) {
				t.Errorf("duplicate variables in %q", env)
			}
			for k, v := range common {
				if m[k] != v {
					t.Errorf("%s=%q, want %q", k, m[k], v)
				}
			}
			for k, v := range specific[cli] {
				if m[k] != v {
					t.Errorf("%s=%q, want %q", k, m[k], v)
				}
			}
			for _, k := range []string{"HTTPS_PROXY", "CODEMACHINE_SECRET", "LC_ALL"} {
				if _, ok := m[k]; ok {
					t.Errorf("%s leaked into the environment", k)
				}
			}
			for other, vars := range specific {
				if other == cli {
					continue
				}
				for k := range vars {
					if _, ok := m[k]; ok && specific[cli][k] == "" {
						t.Errorf("%s's variable %s is set for %s", other, k, cli)
					}
				}
			}
			if cli == "opencode" {
				var cfg map[string]any
				if err := json.Unmarshal([]byte(m["OPENCODE_CONFIG_CONTENT"]), &cfg); err != nil {
					t.Fatalf("OPENCODE_CONFIG_CONTENT is not JSON: %v", err)
				}
				opts := cfg["provider"].(map[string]any)["fake"].(map[string]any)["options"].(map[string]any)
				if opts["baseURL"] != url+"/v1" || cfg["model"] != Model("opencode") {
					t.Errorf("opencode config: baseURL %v, model %v", opts["baseURL"], cfg["model"])
				}
			} else if _, ok := m["OPENCODE_CONFIG_CONTENT"]; ok {
				t.Error("opencode's config is set for another CLI")
			}
		})
	}
}

func TestPrepareHome(t *testing.T) {
	const url = "http://127.0.0.1:4242"
	for _, cli := range Names() {
		t.Run(cli, func(t *testing.T) {
			home := t.TempDir()
			if err := PrepareHome(cli, home, url); err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{"tmp", ".config", ".local/share", ".local/state", ".cache", ".run"} {
				if st, err := os.Stat(filepath.Join(home, d)); err != nil || !st.IsDir() {
					t.Errorf("%s: %v", d, err)
				}
			}
			switch cli {
			case "claude":
				if _, err := os.Stat(filepath.Join(home, ".claude")); err != nil {
					t.Error(err)
				}
			case "codex":
				data, err := os.ReadFile(filepath.Join(home, ".codex", "config.toml"))
				if err != nil {
					t.Fatal(err)
				}
				for _, want := range []string{`base_url = "` + url + `/v1"`, `model = "` + Model("codex") + `"`, `env_key = "FAKE_API_KEY"`,
					"[features]\nplugins = false\nremote_plugin = false\napps = false\nin_app_updates = false"} {
					if !strings.Contains(string(data), want) {
						t.Errorf("config.toml lacks %q:\n%s", want, data)
					}
				}
				if strings.Contains(string(data), "@URL@") {
					t.Error("placeholder left in config.toml")
				}
			case "gemini":
				data, err := os.ReadFile(filepath.Join(home, ".gemini", "settings.json"))
				if err != nil {
					t.Fatal(err)
				}
				var s map[string]map[string]any
				if err := json.Unmarshal(data, &s); err != nil {
					t.Fatal(err)
				}
				if s["security"]["auth"].(map[string]any)["selectedType"] != "gemini-api-key" || s["telemetry"]["enabled"] != false {
					t.Errorf("settings.json: %s", data)
				}
				// A lock left by an earlier run is removed, so the next
				// run does not stall on it.
				lock := filepath.Join(home, ".gemini", "projects.json.lock")
				if err := os.Mkdir(lock, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := PrepareHome(cli, home, url); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(lock); !os.IsNotExist(err) {
					t.Errorf("stale lock still there: %v", err)
				}
			}
		})
	}
	if err := PrepareHome("aider", t.TempDir(), url); err == nil || !strings.Contains(err.Error(), `unknown CLI "aider"`) {
		t.Errorf("unknown CLI: %v", err)
	}
	// A home that cannot be created.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if err := PrepareHome("codex", file, url); err == nil || !strings.HasPrefix(err.Error(), "prepare codex home: ") {
		t.Errorf("home under a file: %v", err)
	}
}

func TestSetup(t *testing.T) {
	home, env := Setup(t, "codex", "http://127.0.0.1:1")
	m := envMap(env)
	if m["HOME"] != home || m["CODEX_HOME"] != filepath.Join(home, ".codex") {
		t.Errorf("env %v", env)
	}
	if _, err := os.Stat(filepath.Join(home, ".codex", "config.toml")); err != nil {
		t.Error(err)
	}
}

func TestModel(t *testing.T) {
	for cli, want := range map[string]string{"claude": "fake-model", "codex": "gpt-5.5", "gemini": "fake-model", "opencode": "fake/fake-model"} {
		if got := Model(cli); got != want {
			t.Errorf("Model(%s) = %s, want %s", cli, got, want)
		}
	}
}
