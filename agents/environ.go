package agents

import (
	"sort"
	"strings"
)

// allowedNames are the single variables an agent inherits (DESIGN 10): what
// makes the user's terminal work (identity, locale, terminal, temp dir,
// certificates, proxies), the engines' switches that keep them quiet and
// offline-safe, and the toolchain locations that make a check like
// `go test` behave as it does for the user.
var allowedNames = setOf(
	"PATH", "HOME", "USER", "LOGNAME", "SHELL",
	"LANG", "LANGUAGE",
	"TERM", "COLORTERM", "NO_COLOR",
	"TMPDIR", "TZ",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
	"http_proxy", "https_proxy", "no_proxy", "all_proxy",
	"DISABLE_TELEMETRY", "DISABLE_AUTOUPDATER", "DISABLE_ERROR_REPORTING",
	"DISABLE_BUG_COMMAND", "DISABLE_GROWTHBOOK",
	"IS_SANDBOX", "CI",
	"npm_config_registry",
	// Claude Code on Vertex AI reads these besides its CLAUDE_* switches
	// (CLAUDE_CODE_USE_VERTEX, CLAUDE_CODE_USE_BEDROCK).
	"CLOUD_ML_REGION", "CLOUDSDK_CONFIG",
	"GOPATH", "GOCACHE", "GOMODCACHE", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN",
	"CARGO_HOME", "RUSTUP_HOME",
	"NODE_PATH", "NVM_DIR",
	"VIRTUAL_ENV", "PYENV_ROOT",
)

// allowedPrefixes are the variable families an agent inherits: locale and
// XDG directories, each engine's own family (API keys, base URLs,
// gateways), the cloud providers' (Bedrock needs AWS_*, Vertex's region
// overrides are VERTEX_REGION_*), and the git identity so that an agent's
// own commits work.
var allowedPrefixes = []string{
	"LC_", "XDG_",
	"ANTHROPIC_", "CLAUDE_", // CLAUDE_ covers CLAUDE_CODE_*
	"CODEX_", "OPENAI_",
	"GEMINI_", "GOOGLE_",
	"OPENCODE_",
	"AWS_", "VERTEX_",
	"GIT_AUTHOR_", "GIT_COMMITTER_",
}

// Environ returns the environment an agent runs with: the variables of
// environ (KEY=VALUE, as os.Environ returns) that the allow-list of DESIGN 10
// admits, then extra (the step's env) on top, sorted by name. Everything
// else is dropped: other services' secrets (GITHUB_TOKEN, NPM_TOKEN, ...)
// and, importantly, git's own GIT_DIR, GIT_INDEX_FILE and GIT_WORK_TREE,
// which git exports to hooks and which would point an agent at the user's
// repository instead of its worktree. AWS_* is kept because Claude Code on
// Bedrock authenticates with it.
//
// When a name appears twice in environ the last one wins, as in os/exec.
// Entries of environ without '=' and keys of extra that are empty or hold
// '=' or NUL (no process could receive them) are left out.
func Environ(environ []string, extra map[string]string) []string {
	vars := make(map[string]string, len(environ)+len(extra))
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && allowed(k) {
			vars[k] = v
		}
	}
	for k, v := range extra {
		if k != "" && !strings.ContainsAny(k, "=\x00") {
			vars[k] = v
		}
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Slice(env, func(i, j int) bool { return envKey(env[i]) < envKey(env[j]) })
	return env
}

func allowed(name string) bool {
	if _, ok := allowedNames[name]; ok {
		return true
	}
	for _, p := range allowedPrefixes {
		if strings.HasPrefix(name, p) && len(name) > len(p) {
			return true
		}
	}
	return false
}

func envKey(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}

func setOf(names ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		m[n] = struct{}{}
	}
	return m
}
