package agents

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// credentials names the source each CLI would take its credentials from,
// in the CLI's own order of precedence; NoCredentials when it has none.
func credentials(name string, env []string) string {
	if lookup, ok := credentialLookups[name]; ok {
		if source := lookup(credentialEnv(env)); source != "" {
			return source
		}
	}
	return NoCredentials
}

// credentialLookups find, for each coding CLI, where it would take its
// credentials from, or "" when nowhere.
var credentialLookups = map[string]func(credentialEnv) string{
	"claude":   claudeCredentials,
	"codex":    codexCredentials,
	"gemini":   geminiCredentials,
	"opencode": opencodeCredentials,
}

// credentialEnv is the environment a CLI would run with, as the lookups
// ask about it.
type credentialEnv []string

// set reports whether variable k has a value.
func (env credentialEnv) set(k string) bool { return envValue(env, k) != "" }

// truthy reports whether variable k is set to something other than 0 or
// false, the way the CLIs read their switches.
func (env credentialEnv) truthy(k string) bool {
	v := strings.ToLower(envValue(env, k))
	return v != "" && v != "0" && v != "false"
}

// via names source and, when baseKey points the CLI at another server,
// that server.
func (env credentialEnv) via(source, baseKey string) string {
	if u := envValue(env, baseKey); u != "" {
		return source + " (" + baseKey + "=" + u + ")"
	}
	return source
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return p != "" && err == nil
}

func claudeCredentials(env credentialEnv) string {
	dir := homeDir(env, "CLAUDE_CONFIG_DIR", ".claude")
	switch {
	case env.truthy("CLAUDE_CODE_USE_BEDROCK"):
		return "AWS Bedrock (CLAUDE_CODE_USE_BEDROCK)"
	case env.truthy("CLAUDE_CODE_USE_VERTEX"):
		return "Google Vertex AI (CLAUDE_CODE_USE_VERTEX)"
	case env.set("ANTHROPIC_AUTH_TOKEN"):
		return env.via("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL")
	case env.set("ANTHROPIC_API_KEY"):
		return env.via("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
	case dir != "" && jsonHasKey(filepath.Join(dir, "settings.json"), "apiKeyHelper"):
		return "apiKeyHelper in " + filepath.Join(dir, "settings.json")
	case env.set("CLAUDE_CODE_OAUTH_TOKEN"):
		return "CLAUDE_CODE_OAUTH_TOKEN"
	case dir != "" && fileExists(filepath.Join(dir, ".credentials.json")):
		return "login (" + filepath.Join(dir, ".credentials.json") + ")"
	}
	global := filepath.Join(envValue(env, "HOME"), ".claude.json")
	if envValue(env, "CLAUDE_CONFIG_DIR") != "" {
		global = filepath.Join(dir, ".claude.json")
	}
	if jsonHasKey(global, "primaryApiKey") {
		return "API key in " + global
	}
	return ""
}

func codexCredentials(env credentialEnv) string {
	home := codexHome(env)
	provider, key := codexProvider(filepath.Join(home, "config.toml"))
	switch {
	case key != "" && env.set(key):
		return key + " (model provider " + provider + ")"
	case key != "":
		return NoCredentials + " (model provider " + provider + " reads " + key + ", which is not set)"
	case env.set("CODEX_API_KEY"):
		return "CODEX_API_KEY"
	case env.set("OPENAI_API_KEY"):
		return env.via("OPENAI_API_KEY", "OPENAI_BASE_URL")
	case home != "" && fileExists(filepath.Join(home, "auth.json")):
		return "login (" + filepath.Join(home, "auth.json") + ")"
	}
	return ""
}

func geminiCredentials(env credentialEnv) string {
	dir := ""
	if root := geminiRoot(env); root != "" {
		dir = filepath.Join(root, ".gemini")
	}
	switch {
	case env.truthy("GOOGLE_GENAI_USE_VERTEXAI"):
		return "Google Vertex AI (GOOGLE_GENAI_USE_VERTEXAI)"
	case env.set("GEMINI_API_KEY"):
		return env.via("GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL")
	case env.set("GOOGLE_API_KEY"):
		return "GOOGLE_API_KEY"
	case dir != "" && dotenvHas(filepath.Join(dir, ".env"), "GEMINI_API_KEY"):
		return "GEMINI_API_KEY in " + filepath.Join(dir, ".env")
	case dir != "" && fileExists(filepath.Join(dir, "oauth_creds.json")):
		return "login (" + filepath.Join(dir, "oauth_creds.json") + ")"
	}
	return ""
}

func opencodeCredentials(env credentialEnv) string {
	auth := filepath.Join(homeDir(env, "XDG_DATA_HOME", filepath.Join(".local", "share")), "opencode", "auth.json")
	if providers := jsonKeys(auth); len(providers) > 0 {
		return "login for " + strings.Join(providers, ", ") + " (" + auth + ")"
	}
	var named []string
	for _, n := range opencodeEnvNames(env) {
		if env.set(n) {
			named = append(named, n)
		}
	}
	if len(named) > 0 {
		sort.Strings(named)
		return strings.Join(named, ", ") + " (opencode config)"
	}
	for _, k := range []string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENERATIVE_AI_API_KEY"} {
		if env.set(k) {
			return k
		}
	}
	if strings.Contains(envValue(env, "OPENCODE_CONFIG_CONTENT"), `"apiKey"`) {
		return "apiKey in OPENCODE_CONFIG_CONTENT"
	}
	return ""
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
