package agents

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EngineInfo is what `codemachine doctor` reports about one coding CLI.
type EngineInfo struct {
	Name    string `json:"name"`
	Package string `json:"package"` // the npm package that installs it
	Found   bool   `json:"found"`
	Path    string `json:"path,omitempty"`
	Version string `json:"version,omitempty"`
	// Credentials names where the CLI would take its credentials from
	// with this environment: a variable, a login or config file, or
	// "none found".
	Credentials string `json:"credentials"`
	// Hint says what to do next: install, log in, or why the version
	// could not be read; "" when all is well.
	Hint string `json:"hint,omitempty"`
}

// NoCredentials is EngineInfo.Credentials when no source was found.
const NoCredentials = "none found"

// probeTimeout bounds `CLI --version`: some CLIs start slowly (opencode
// takes seconds of CPU to start, more on a busy machine; a first run
// migrates its state), but doctor must not hang on one that never ends.
const probeTimeout = 30 * time.Second

// Probe looks for the coding CLI name (claude, codex, gemini, opencode) on
// env's PATH, asks it for its version, and works out which credentials it
// would use with env (give it the agents' environment, Environ, to see
// what they would see). It never fails: what it cannot find is in the
// result.
func Probe(name string, env []string) EngineInfo {
	info := EngineInfo{Name: name}
	for _, c := range codingCLIs {
		if c.name == name {
			info.Package = c.pkg
		}
	}
	if info.Package == "" {
		info.Hint = "not a coding CLI engine (claude, codex, gemini, opencode)"
		info.Credentials = NoCredentials
		return info
	}
	info.Credentials = credentials(name, env)
	path, err := lookPath(name, env)
	if err != nil {
		info.Hint = "install: npm install -g " + info.Package
		return info
	}
	info.Found, info.Path = true, path
	version, err := cliVersion(path, env)
	switch {
	case err != nil:
		info.Hint = "`" + name + " --version` failed: " + err.Error()
	case info.Credentials == NoCredentials:
		info.Hint = loginHints[name]
	}
	info.Version = version
	return info
}

// loginHints say how to give each CLI credentials.
var loginHints = map[string]string{
	"claude":   "log in with `claude` (then /login) or set ANTHROPIC_API_KEY",
	"codex":    "log in with `codex login` or set OPENAI_API_KEY",
	"gemini":   "log in with `gemini` or set GEMINI_API_KEY",
	"opencode": "log in with `opencode auth login` or configure a provider in opencode.json",
}

// cliVersion runs `path --version` and returns its first line.
func cliVersion(path string, env []string) (string, error) {
	var first, lastErr string
	p := &proc{path: path, args: []string{"--version"}, dir: os.TempDir(), env: env, timeout: probeTimeout,
		grace: time.Second, onLine: func(stream string, line []byte) {
			s := strings.TrimSpace(string(line))
			switch {
			case s == "":
			case stream == "stderr":
				lastErr = s
			case first == "":
				first = s
			}
		}}
	name := filepath.Base(path)
	pr, err := p.run(context.Background())
	if err != nil {
		return "", err
	}
	if rerr := pr.interrupted(name, probeTimeout, Result{}); rerr != nil {
		return "", rerr
	}
	if pr.exitCode != 0 {
		if lastErr == "" {
			lastErr = pr.lastLine()
		}
		return "", &RunError{Class: Fatal, Engine: name, Msg: oneLine("exit status " + strconv.Itoa(pr.exitCode) + ": " + lastErr)}
	}
	return first, nil
}

// credentials names the source each CLI would take its credentials from,
// in the CLI's own order of precedence.
func credentials(name string, env []string) string {
	set := func(k string) bool { return envValue(env, k) != "" }
	truthy := func(k string) bool {
		v := strings.ToLower(envValue(env, k))
		return v != "" && v != "0" && v != "false"
	}
	exists := func(p string) bool {
		_, err := os.Stat(p)
		return p != "" && err == nil
	}
	via := func(s, baseKey string) string {
		if u := envValue(env, baseKey); u != "" {
			return s + " (" + baseKey + "=" + u + ")"
		}
		return s
	}
	switch name {
	case "claude":
		dir := homeDir(env, "CLAUDE_CONFIG_DIR", ".claude")
		switch {
		case truthy("CLAUDE_CODE_USE_BEDROCK"):
			return "AWS Bedrock (CLAUDE_CODE_USE_BEDROCK)"
		case truthy("CLAUDE_CODE_USE_VERTEX"):
			return "Google Vertex AI (CLAUDE_CODE_USE_VERTEX)"
		case set("ANTHROPIC_AUTH_TOKEN"):
			return via("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL")
		case set("ANTHROPIC_API_KEY"):
			return via("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
		case dir != "" && jsonHasKey(filepath.Join(dir, "settings.json"), "apiKeyHelper"):
			return "apiKeyHelper in " + filepath.Join(dir, "settings.json")
		case set("CLAUDE_CODE_OAUTH_TOKEN"):
			return "CLAUDE_CODE_OAUTH_TOKEN"
		case dir != "" && exists(filepath.Join(dir, ".credentials.json")):
			return "login (" + filepath.Join(dir, ".credentials.json") + ")"
		}
		global := filepath.Join(envValue(env, "HOME"), ".claude.json")
		if envValue(env, "CLAUDE_CONFIG_DIR") != "" {
			global = filepath.Join(dir, ".claude.json")
		}
		if jsonHasKey(global, "primaryApiKey") {
			return "API key in " + global
		}
	case "codex":
		home := codexHome(env)
		provider, key := codexProvider(filepath.Join(home, "config.toml"))
		switch {
		case key != "" && set(key):
			return key + " (model provider " + provider + ")"
		case key != "":
			return NoCredentials + " (model provider " + provider + " reads " + key + ", which is not set)"
		case set("CODEX_API_KEY"):
			return "CODEX_API_KEY"
		case set("OPENAI_API_KEY"):
			return via("OPENAI_API_KEY", "OPENAI_BASE_URL")
		case home != "" && exists(filepath.Join(home, "auth.json")):
			return "login (" + filepath.Join(home, "auth.json") + ")"
		}
	case "gemini":
		dir := ""
		if root := geminiRoot(env); root != "" {
			dir = filepath.Join(root, ".gemini")
		}
		switch {
		case truthy("GOOGLE_GENAI_USE_VERTEXAI"):
			return "Google Vertex AI (GOOGLE_GENAI_USE_VERTEXAI)"
		case set("GEMINI_API_KEY"):
			return via("GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL")
		case set("GOOGLE_API_KEY"):
			return "GOOGLE_API_KEY"
		case dir != "" && dotenvHas(filepath.Join(dir, ".env"), "GEMINI_API_KEY"):
			return "GEMINI_API_KEY in " + filepath.Join(dir, ".env")
		case dir != "" && exists(filepath.Join(dir, "oauth_creds.json")):
			return "login (" + filepath.Join(dir, "oauth_creds.json") + ")"
		}
	case "opencode":
		auth := filepath.Join(homeDir(env, "XDG_DATA_HOME", filepath.Join(".local", "share")), "opencode", "auth.json")
		if providers := jsonKeys(auth); len(providers) > 0 {
			return "login for " + strings.Join(providers, ", ") + " (" + auth + ")"
		}
		var named []string
		for _, n := range opencodeEnvNames(env) {
			if set(n) {
				named = append(named, n)
			}
		}
		if len(named) > 0 {
			sort.Strings(named)
			return strings.Join(named, ", ") + " (opencode config)"
		}
		for _, k := range []string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENERATIVE_AI_API_KEY"} {
			if set(k) {
				return k
			}
		}
		if strings.Contains(envValue(env, "OPENCODE_CONFIG_CONTENT"), `"apiKey"`) {
			return "apiKey in OPENCODE_CONFIG_CONTENT"
		}
	}
	return NoCredentials
}

// codexProvider reads the model provider a Codex config.toml selects and
// the variable its key comes from ("" when it is OpenAI's own, or unset).
func codexProvider(path string) (provider, envKey string) {
	f, err := os.Open(path)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	section := ""
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[] ")
			continue
		}
		k, v, ok := tomlString(line)
		if !ok {
			continue
		}
		switch {
		case section == "" && k == "model_provider":
			provider = v
		case strings.HasPrefix(section, "model_providers.") && k == "env_key":
			keys[strings.TrimPrefix(section, "model_providers.")] = v
		}
	}
	return provider, keys[provider]
}

// jsonKeys returns the sorted top-level keys of a JSON object file.
func jsonKeys(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonHasKey reports whether a JSON object file has key at its top level.
func jsonHasKey(path, key string) bool {
	for _, k := range jsonKeys(path) {
		if k == key {
			return true
		}
	}
	return false
}

// dotenvHas reports whether a .env file assigns key a value.
func dotenvHas(path, key string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "export ")
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == key && strings.Trim(strings.TrimSpace(v), `"'`) != "" {
			return true
		}
	}
	return false
}
