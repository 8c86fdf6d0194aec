package agents

import (
	"path/filepath"
	"testing"
)

func TestCredentials(t *testing.T) {
	home := t.TempDir()
	file := func(rel, content string) string {
		p := filepath.Join(home, rel)
		writeFile(t, p, content)
		return p
	}
	codexCfg := file("custom/.codex/config.toml", "model_provider = \"corp\"\n[model_providers.corp]\nenv_key = \"CORP_KEY\"\n")
	file("login/.claude/.credentials.json", "{}")
	file("helper/.claude/settings.json", `{"apiKeyHelper":"pass show claude"}`)
	file("key/.claude.json", `{"primaryApiKey":"sk"}`)
	file("login/.codex/auth.json", "{}")
	file("dotenv/.gemini/.env", "export GEMINI_API_KEY='k'\n")
	file("login/.gemini/oauth_creds.json", "{}")
	file("login/.local/share/opencode/auth.json", `{"openrouter":{},"anthropic":{}}`)
	file("config/.config/opencode/opencode.json", `{"provider":{"x":{"options":{"apiKey":"{env:X_KEY}"}}}}`)
	h := func(sub string) string { return "HOME=" + filepath.Join(home, sub) }
	tests := []struct {
		engine string
		env    []string
		want   string
	}{
		{"claude", []string{h("none")}, NoCredentials},
		{"claude", []string{h("none"), "ANTHROPIC_API_KEY=k", "ANTHROPIC_BASE_URL=http://gw"}, "ANTHROPIC_API_KEY (ANTHROPIC_BASE_URL=http://gw)"},
		{"claude", []string{h("none"), "ANTHROPIC_API_KEY=k", "ANTHROPIC_AUTH_TOKEN=t"}, "ANTHROPIC_AUTH_TOKEN"},
		{"claude", []string{h("none"), "CLAUDE_CODE_USE_BEDROCK=1", "ANTHROPIC_API_KEY=k"}, "AWS Bedrock (CLAUDE_CODE_USE_BEDROCK)"},
		{"claude", []string{h("none"), "CLAUDE_CODE_USE_VERTEX=true"}, "Google Vertex AI (CLAUDE_CODE_USE_VERTEX)"},
		{"claude", []string{h("helper")}, "apiKeyHelper in " + filepath.Join(home, "helper/.claude/settings.json")},
		{"claude", []string{h("none"), "CLAUDE_CODE_OAUTH_TOKEN=t"}, "CLAUDE_CODE_OAUTH_TOKEN"},
		{"claude", []string{h("login")}, "login (" + filepath.Join(home, "login/.claude/.credentials.json") + ")"},
		{"claude", []string{h("key")}, "API key in " + filepath.Join(home, "key/.claude.json")},
		{"codex", []string{h("none")}, NoCredentials},
		{"codex", []string{h("custom"), "CORP_KEY=k", "OPENAI_API_KEY=o"}, "CORP_KEY (model provider corp)"},
		{"codex", []string{h("custom"), "OPENAI_API_KEY=o"}, NoCredentials + " (model provider corp reads CORP_KEY, which is not set)"},
		{"codex", []string{h("none"), "CODEX_HOME=" + filepath.Dir(codexCfg), "CORP_KEY=k"}, "CORP_KEY (model provider corp)"},
		{"codex", []string{h("none"), "OPENAI_API_KEY=o"}, "OPENAI_API_KEY"},
		{"codex", []string{h("login")}, "login (" + filepath.Join(home, "login/.codex/auth.json") + ")"},
		{"gemini", []string{h("none")}, NoCredentials},
		{"gemini", []string{h("none"), "GEMINI_API_KEY=k"}, "GEMINI_API_KEY"},
		{"gemini", []string{h("none"), "GOOGLE_API_KEY=k"}, "GOOGLE_API_KEY"},
		{"gemini", []string{h("none"), "GOOGLE_GENAI_USE_VERTEXAI=true"}, "Google Vertex AI (GOOGLE_GENAI_USE_VERTEXAI)"},
		{"gemini", []string{h("dotenv")}, "GEMINI_API_KEY in " + filepath.Join(home, "dotenv/.gemini/.env")},
		{"gemini", []string{h("login")}, "login (" + filepath.Join(home, "login/.gemini/oauth_creds.json") + ")"},
		{"gemini", []string{h("none"), "GEMINI_CLI_HOME=" + filepath.Join(home, "login")}, "login (" + filepath.Join(home, "login/.gemini/oauth_creds.json") + ")"},
		{"opencode", []string{h("none")}, NoCredentials},
		{"opencode", []string{h("login")}, "login for anthropic, openrouter (" + filepath.Join(home, "login/.local/share/opencode/auth.json") + ")"},
		{"opencode", []string{h("config"), "X_KEY=k"}, "X_KEY (opencode config)"},
		{"opencode", []string{h("config")}, NoCredentials},
		{"opencode", []string{h("none"), "OPENAI_API_KEY=k"}, "OPENAI_API_KEY"},
		{"opencode", []string{h("none"), `OPENCODE_CONFIG_CONTENT={"provider":{"f":{"options":{"apiKey":"dummy"}}}}`}, "apiKey in OPENCODE_CONFIG_CONTENT"},
	}
	for _, tt := range tests {
		if got := credentials(tt.engine, tt.env); got != tt.want {
			t.Errorf("%s with %q:\n got %s\nwant %s", tt.engine, tt.env, got, tt.want)
		}
	}
}
