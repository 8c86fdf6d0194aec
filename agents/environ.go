package agents

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/codemachine/codemachine/internal/lazyre"

	"github.com/codemachine/codemachine/sandbox"
)

// allowedNames are the single variables an agent inherits: what
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
	"IS_SANDBOX", "CI",
	// npm's registry (opencode looks its plugin package up there on every
	// run) and the switches that keep npm-based CLIs from checking for
	// updates.
	"npm_config_registry", "npm_config_update_notifier", "NO_UPDATE_NOTIFIER",
	// Claude Code on Vertex AI reads these besides its CLAUDE_* switches
	// (CLAUDE_CODE_USE_VERTEX, CLAUDE_CODE_USE_BEDROCK).
	"CLOUD_ML_REGION", "CLOUDSDK_CONFIG",
	// Claude Code's documented settings outside its CLAUDE_* family.
	"MAX_THINKING_TOKENS", "BASH_DEFAULT_TIMEOUT_MS", "BASH_MAX_TIMEOUT_MS", "BASH_MAX_OUTPUT_LENGTH",
	"MCP_TIMEOUT", "MCP_CONNECT_TIMEOUT_MS", "MCP_TOOL_TIMEOUT", "MAX_MCP_OUTPUT_TOKENS", "USE_BUILTIN_RIPGREP",
	// Node.js 24 honours the proxy variables only with this set.
	"NODE_USE_ENV_PROXY",
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
	// Claude Code's switches (DISABLE_TELEMETRY, DISABLE_AUTOUPDATER,
	// DISABLE_PROMPT_CACHING, DISABLE_NON_ESSENTIAL_MODEL_CALLS, ...):
	// switches only, never secrets.
	"DISABLE_",
	"AWS_", "VERTEX_",
	"GIT_AUTHOR_", "GIT_COMMITTER_",
}

// credentialFamilies are the variable families (and single names) of the
// allow-list that carry a model provider's credentials or settings. Each
// engine gets its own provider's (engineCredentials): a run: command, a
// check or a hook of a shell step needs none of them, and Claude Code has
// no use for OpenAI's key.
var credentialFamilies = []string{
	"ANTHROPIC_", "CLAUDE_", "CODEX_", "OPENAI_", "GEMINI_", "GOOGLE_", "OPENCODE_", "AWS_", "VERTEX_",
	"CLOUD_ML_REGION", "CLOUDSDK_CONFIG",
}

// engineCredentials are the credential families each engine keeps:
// Claude Code on the Anthropic API, on Bedrock (AWS_*) or on Vertex AI
// (VERTEX_REGION_*, CLOUD_ML_REGION, the Google Cloud credentials), Codex
// on OpenAI's, Gemini CLI on Google's (its API key or Vertex AI). opencode
// reaches every provider and keeps them all. The shell and replay engines
// keep none.
var engineCredentials = map[string][]string{
	"claude":   {"ANTHROPIC_", "CLAUDE_", "AWS_", "VERTEX_", "CLOUD_ML_REGION", "CLOUDSDK_CONFIG", "GOOGLE_"},
	"codex":    {"CODEX_", "OPENAI_"},
	"gemini":   {"GEMINI_", "GOOGLE_", "CLOUD_ML_REGION", "CLOUDSDK_CONFIG"},
	"opencode": credentialFamilies,
}

// familyOf is the credential family (or single name) name belongs to, ""
// for none.
func familyOf(name string) string {
	for _, f := range credentialFamilies {
		if name == f || (strings.HasSuffix(f, "_") && strings.HasPrefix(name, f)) {
			return f
		}
	}
	return ""
}

// EnvironFor is Environ for the processes of a step run by engine: the
// engine itself, and the step's command, check and hooks. Of the model
// providers' credentials it keeps only the engine's own (engineCredentials);
// what the user names (CODEMACHINE_PASS_ENV, their engine configuration)
// and the step's env pass as with Environ.
func EnvironFor(engine string, environ []string, extra map[string]string) []string {
	keep := engineCredentials[engine]
	pass := passNames(environ)
	scoped := make([]string, 0, len(environ))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if f := familyOf(k); f != "" && !pass[k] && !slices.Contains(keep, f) {
			continue
		}
		scoped = append(scoped, kv)
	}
	return Environ(scoped, extra)
}

// PassEnv names the variable that lists further variables (separated by
// commas or spaces) an agent inherits: a provider key or gateway setting
// that no engine family covers.
const PassEnv = "CODEMACHINE_PASS_ENV"

// Environ returns the environment an agent runs with: the variables of
// environ (KEY=VALUE, as os.Environ returns) that the allow-list
// admits, then extra (the step's env) on top, sorted by name. Everything
// else is dropped: other services' secrets (GITHUB_TOKEN, NPM_TOKEN, ...)
// and, importantly, git's own GIT_DIR, GIT_INDEX_FILE and GIT_WORK_TREE,
// which git exports to hooks and which would point an agent at the user's
// repository instead of its worktree. AWS_* is kept because Claude Code on
// Bedrock authenticates with it. The variables that point programs at the
// user's sockets (SSH_AUTH_SOCK, DOCKER_HOST, XDG_RUNTIME_DIR, ...: see
// sandbox.SocketVar) are dropped even where a family would admit them.
//
// Besides the allow-list, the variables the user names pass: those listed
// in CODEMACHINE_PASS_ENV, and those the user's own engine configuration
// refers to, so that a custom provider works as it does in a terminal: the
// env_key and env_http_headers of Codex's model providers
// ($CODEX_HOME/config.toml) and opencode's {env:NAME} substitutions (its
// global config files and OPENCODE_CONFIG_CONTENT). Configuration inside a
// repository is not read: an agent's repository must not be able to name
// the variables it receives.
//
// When a name appears twice in environ the last one wins, as in os/exec.
// Entries of environ without '=' and keys of extra that are empty or hold
// '=' or NUL (no process could receive them) are left out.
func Environ(environ []string, extra map[string]string) []string {
	vars := make(map[string]string, len(environ)+len(extra))
	pass := passNames(environ)
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && (allowed(k) || pass[k]) {
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

// passNames are the extra variable names the user asked for (PassEnv) or
// whose use their engine configuration declares.
func passNames(environ []string) map[string]bool {
	names := map[string]bool{}
	for _, n := range strings.FieldsFunc(envValue(environ, PassEnv), func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n'
	}) {
		names[n] = true
	}
	for _, n := range ConfigEnvNames(environ) {
		names[n] = true
	}
	return names
}

// envName matches a variable name as configs write it.
var envName = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ConfigEnvNames returns, sorted, the names of the variables the user's
// engine configuration reads (see Environ): Codex providers' env_key and
// env_http_headers, opencode's {env:NAME}.
func ConfigEnvNames(environ []string) []string {
	seen := map[string]bool{}
	for _, n := range codexEnvNames(filepath.Join(codexHome(environ), "config.toml")) {
		seen[n] = true
	}
	for _, n := range opencodeEnvNames(environ) {
		seen[n] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		if envName().MatchString(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

var (
	codexEnvKeyRe    = lazyre.New(`env_key\s*=\s*["']([A-Za-z_][A-Za-z0-9_]*)["']`)
	codexHeadersRe   = lazyre.New(`env_http_headers\s*=\s*\{([^}]*)\}`)
	tomlValueRe      = lazyre.New(`=\s*["']([A-Za-z_][A-Za-z0-9_]*)["']`)
	opencodeEnvRe    = lazyre.New(`\{env:([A-Za-z_][A-Za-z0-9_]*)\}`)
	codexHeadersSect = lazyre.New(`^\[\s*model_providers\.[^\]]*\benv_http_headers\s*\]$`)
)

// codexEnvNames reads the variable names a Codex config.toml's providers
// take their key (env_key) and headers (env_http_headers, inline or as a
// table) from. A missing or unreadable file names none.
func codexEnvNames(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var names []string
	for _, m := range codexEnvKeyRe().FindAllStringSubmatch(string(data), -1) {
		names = append(names, m[1])
	}
	for _, m := range codexHeadersRe().FindAllStringSubmatch(string(data), -1) {
		for _, v := range tomlValueRe().FindAllStringSubmatch(m[1], -1) {
			names = append(names, v[1])
		}
	}
	inHeaders := false
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			inHeaders = codexHeadersSect().MatchString(line)
			continue
		}
		if inHeaders {
			if _, v, ok := tomlString(line); ok {
				names = append(names, v)
			}
		}
	}
	return names
}

// opencodeEnvNames reads the {env:NAME} substitutions of the user's
// opencode configuration: OPENCODE_CONFIG_CONTENT, the file OPENCODE_CONFIG
// names, and the global config files in $XDG_CONFIG_HOME/opencode.
func opencodeEnvNames(environ []string) []string {
	texts := []string{envValue(environ, "OPENCODE_CONFIG_CONTENT")}
	var files []string
	if f := envValue(environ, "OPENCODE_CONFIG"); f != "" {
		files = append(files, f)
	}
	if dir := homeDir(environ, "XDG_CONFIG_HOME", ".config"); dir != "" {
		for _, name := range []string{"opencode.json", "opencode.jsonc", "config.json"} {
			files = append(files, filepath.Join(dir, "opencode", name))
		}
	}
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil {
			texts = append(texts, string(data))
		}
	}
	var names []string
	for _, text := range texts {
		for _, m := range opencodeEnvRe().FindAllStringSubmatch(text, -1) {
			names = append(names, m[1])
		}
	}
	return names
}

func allowed(name string) bool {
	if sandbox.SocketVar(name) {
		// XDG_RUNTIME_DIR would pass as XDG_*: it and the others point
		// at the user's sockets (see sandbox.SocketVar).
		return false
	}
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
