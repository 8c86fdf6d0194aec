package testenv

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The configuration files each CLI needs against the fake server, as
// measured in shared/agent-clis; @URL@ stands for the server's base URL.
//
//go:embed config
var configFS embed.FS

// APIKey is the key every CLI is given: the fake server ignores it, the
// CLIs refuse to start without one.
const APIKey = "dummy-key"

// Model is the model name a CLI must be told to use (flag -m/--model) so
// that its requests match the configuration PrepareHome writes. Codex's
// model comes from its config.toml ("gpt-5.5", a slug in its bundled
// catalog, which is what makes it offer apply_patch).
func Model(cli string) string {
	switch cli {
	case "codex":
		return "gpt-5.5"
	case "opencode":
		return "fake/fake-model"
	}
	return "fake-model"
}

// trafficOff are the variables that stop the CLIs from calling home
// (telemetry, update checks, error reports, feature flags, model lists,
// plugin downloads). All of them are set for every CLI, so that a CLI an
// agent starts from its shell is contained too.
var trafficOff = []string{
	"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
	"DISABLE_TELEMETRY=1",
	"DISABLE_AUTOUPDATER=1",
	"DISABLE_ERROR_REPORTING=1",
	"DISABLE_BUG_COMMAND=1",
	"DISABLE_GROWTHBOOK=1",
	"GEMINI_TELEMETRY_ENABLED=false",
	"OPENCODE_DISABLE_AUTOUPDATE=1",
	"OPENCODE_DISABLE_MODELS_FETCH=1",
	"OPENCODE_DISABLE_SHARE=1",
	"OPENCODE_DISABLE_DEFAULT_PLUGINS=1",
	"OPENCODE_DISABLE_LSP_DOWNLOAD=1",
	"OPENCODE_DISABLE_CLAUDE_CODE=1",
	"NO_UPDATE_NOTIFIER=1",
	"npm_config_update_notifier=false",
}

// The fixed git identity and date of the hermetic environment, so commits
// made in tests (by git or by an agent) are reproducible.
const (
	GitName  = "codemachine test"
	GitEmail = "test@codemachine.invalid"
	GitDate  = "2026-01-01T00:00:00Z"
)

// GitEnv is a hermetic environment for running git: no system or user
// configuration (HOME is home, which should be an empty directory), a fixed
// author and committer with a fixed date, no prompts, the C locale.
func GitEnv(home string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + filepath.Join(home, ".gitconfig"),
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=" + GitName,
		"GIT_AUTHOR_EMAIL=" + GitEmail,
		"GIT_AUTHOR_DATE=" + GitDate,
		"GIT_COMMITTER_NAME=" + GitName,
		"GIT_COMMITTER_EMAIL=" + GitEmail,
		"GIT_COMMITTER_DATE=" + GitDate,
		"LC_ALL=C",
	}
}

// Env is the complete environment for running cli against the fake model
// server at serverURL with home as its fresh HOME: HOME, XDG_* and TMPDIR
// inside home, NO_COLOR=1, CI=1, the hermetic git identity, every
// traffic-disabling variable, npm pointed at the server's sink, and the
// CLI's endpoint, key and configuration variables. Nothing else of the
// calling process leaks in but PATH (and USER/LOGNAME, which some tools
// want). PrepareHome must have run for home (Setup does both).
func Env(cli, home, serverURL string) []string {
	env := []string{"LANG=C.UTF-8", "TERM=dumb", "NO_COLOR=1", "CI=1"}
	for _, k := range []string{"USER", "LOGNAME"} {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	env = append(env, GitEnv(home)...)
	// git's LC_ALL=C would make the CLIs' own output ASCII-only.
	env = without(env, "LC_ALL")
	env = append(env,
		"TMPDIR="+filepath.Join(home, "tmp"),
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"),
		"XDG_STATE_HOME="+filepath.Join(home, ".local", "state"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"XDG_RUNTIME_DIR="+filepath.Join(home, ".run"),
		"NO_PROXY=127.0.0.1,localhost",
		"no_proxy=127.0.0.1,localhost",
		// opencode looks its plugin package up in the npm registry on
		// every run; the sink answers 404 and it carries on.
		"npm_config_registry="+serverURL+"/npm-registry-sink/",
	)
	env = append(env, trafficOff...)
	switch cli {
	case "claude":
		env = append(env,
			"ANTHROPIC_BASE_URL="+serverURL,
			"ANTHROPIC_API_KEY="+APIKey,
			"CLAUDE_CONFIG_DIR="+filepath.Join(home, ".claude"),
			// As root, bypassPermissions is refused without it.
			"IS_SANDBOX=1",
		)
	case "codex":
		env = append(env,
			"CODEX_HOME="+filepath.Join(home, ".codex"),
			"FAKE_API_KEY="+APIKey, // env_key of the fakellm provider in config.toml
		)
	case "gemini":
		env = append(env,
			"GOOGLE_GEMINI_BASE_URL="+serverURL,
			"GEMINI_API_KEY="+APIKey,
			// Without it YOLO is downgraded to "default" approval.
			"GEMINI_CLI_TRUST_WORKSPACE=true",
			"GEMINI_CLI_NO_RELAUNCH=true",
		)
	case "opencode":
		env = append(env, "OPENCODE_CONFIG_CONTENT="+configText("opencode.json", serverURL))
	}
	return env
}

func without(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// configText is an embedded config with @URL@ replaced.
func configText(name, serverURL string) string {
	data, err := configFS.ReadFile("config/" + name)
	if err != nil {
		// The files are embedded at build time; a missing one is a bug
		// caught by every test of this package.
		panic(fmt.Sprintf("testenv: embedded config %s: %v", name, err))
	}
	return strings.ReplaceAll(string(data), "@URL@", serverURL)
}

// PrepareHome makes home ready for Env(cli, home, serverURL): the TMPDIR
// and XDG directories, and the CLI's configuration files (Codex's
// config.toml, Gemini's settings.json, Claude's config dir; opencode's
// config travels in OPENCODE_CONFIG_CONTENT). It may be run again before
// each run in the same home (to resume a session): it then also removes
// the projects.json.lock that Gemini CLI sometimes leaves behind, which
// would stall the next run for about 13 s.
func PrepareHome(cli, home, serverURL string) error {
	dirs := []string{
		"tmp", ".config", ".local/share", ".local/state", ".cache", ".run",
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(home, d), 0o700); err != nil {
			return fmt.Errorf("prepare %s home: %w", cli, err)
		}
	}
	write := func(rel, content string) error {
		p := filepath.Join(home, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("prepare %s home: %w", cli, err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return fmt.Errorf("prepare %s home: %w", cli, err)
		}
		return nil
	}
	switch cli {
	case "claude":
		if err := os.MkdirAll(filepath.Join(home, ".claude"), 0o700); err != nil {
			return fmt.Errorf("prepare claude home: %w", err)
		}
	case "codex":
		return write(".codex/config.toml", configText("codex-config.toml", serverURL))
	case "gemini":
		if err := write(".gemini/settings.json", configText("gemini-settings.json", serverURL)); err != nil {
			return err
		}
		lock := filepath.Join(home, ".gemini", "projects.json.lock")
		if err := os.RemoveAll(lock); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("prepare gemini home: remove stale lock: %w", err)
		}
	case "opencode":
	default:
		if _, err := Lookup(cli); err != nil {
			return fmt.Errorf("prepare home: %w", err)
		}
	}
	return nil
}

// Setup creates a fresh home for one CLI talking to serverURL and returns
// it with the environment to run the CLI in (PrepareHome + Env).
func Setup(t testing.TB, cli, serverURL string) (home string, env []string) {
	t.Helper()
	home = t.TempDir()
	if err := PrepareHome(cli, home, serverURL); err != nil {
		t.Fatal(err)
	}
	return home, Env(cli, home, serverURL)
}
