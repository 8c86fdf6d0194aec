package agents

import (
	"slices"
	"strings"
	"testing"
)

func TestEnviron(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		extra   map[string]string
		want    []string
	}{
		{
			name: "basics kept, sorted",
			environ: []string{"USER=me", "PATH=/usr/bin:/bin", "HOME=/home/me", "SHELL=/bin/zsh", "LOGNAME=me",
				"TERM=xterm-256color", "COLORTERM=truecolor", "NO_COLOR=1", "TMPDIR=/tmp/x", "TZ=UTC", "CI=true", "IS_SANDBOX=1"},
			want: []string{"CI=true", "COLORTERM=truecolor", "HOME=/home/me", "IS_SANDBOX=1", "LOGNAME=me", "NO_COLOR=1",
				"PATH=/usr/bin:/bin", "SHELL=/bin/zsh", "TERM=xterm-256color", "TMPDIR=/tmp/x", "TZ=UTC", "USER=me"},
		},
		{
			name:    "locale",
			environ: []string{"LANG=C.UTF-8", "LANGUAGE=en", "LC_ALL=C", "LC_CTYPE=UTF-8", "LC=bogus", "LC_=empty"},
			want:    []string{"LANG=C.UTF-8", "LANGUAGE=en", "LC_ALL=C", "LC_CTYPE=UTF-8"},
		},
		{
			name: "proxies and certificates, both cases",
			environ: []string{"HTTP_PROXY=h", "HTTPS_PROXY=s", "NO_PROXY=n", "ALL_PROXY=a", "http_proxy=h2", "https_proxy=s2",
				"no_proxy=n2", "all_proxy=a2", "FTP_PROXY=f", "SSL_CERT_FILE=/c.pem", "SSL_CERT_DIR=/c", "NODE_EXTRA_CA_CERTS=/n.pem"},
			want: []string{"ALL_PROXY=a", "HTTPS_PROXY=s", "HTTP_PROXY=h", "NODE_EXTRA_CA_CERTS=/n.pem", "NO_PROXY=n",
				"SSL_CERT_DIR=/c", "SSL_CERT_FILE=/c.pem", "all_proxy=a2", "http_proxy=h2", "https_proxy=s2", "no_proxy=n2"},
		},
		{
			name: "engine families",
			environ: []string{"ANTHROPIC_API_KEY=a", "ANTHROPIC_BASE_URL=http://gw", "CLAUDE_CONFIG_DIR=/c", "CLAUDE_CODE_USE_BEDROCK=1",
				"CODEX_HOME=/x", "OPENAI_API_KEY=o", "GEMINI_API_KEY=g", "GOOGLE_CLOUD_PROJECT=p", "OPENCODE_CONFIG=/oc",
				"AWS_REGION=us-east-1", "AWS_PROFILE=dev", "VERTEX_REGION_CLAUDE_3_5_HAIKU=eu", "CLOUD_ML_REGION=us-east5",
				"CLOUDSDK_CONFIG=/g", "ANTHROPIC=bare", "DISABLE_TELEMETRY=1", "DISABLE_AUTOUPDATER=1",
				"DISABLE_ERROR_REPORTING=1", "DISABLE_BUG_COMMAND=1", "DISABLE_GROWTHBOOK=1", "npm_config_registry=http://r",
				"DISABLE_PROMPT_CACHING=1", "MAX_THINKING_TOKENS=1024", "BASH_DEFAULT_TIMEOUT_MS=1000", "NODE_USE_ENV_PROXY=1",
				"NO_UPDATE_NOTIFIER=1", "npm_config_update_notifier=false", "DISABLE_=bare"},
			want: []string{"ANTHROPIC_API_KEY=a", "ANTHROPIC_BASE_URL=http://gw", "AWS_PROFILE=dev", "AWS_REGION=us-east-1",
				"BASH_DEFAULT_TIMEOUT_MS=1000", "CLAUDE_CODE_USE_BEDROCK=1", "CLAUDE_CONFIG_DIR=/c", "CLOUDSDK_CONFIG=/g", "CLOUD_ML_REGION=us-east5",
				"CODEX_HOME=/x", "DISABLE_AUTOUPDATER=1", "DISABLE_BUG_COMMAND=1", "DISABLE_ERROR_REPORTING=1",
				"DISABLE_GROWTHBOOK=1", "DISABLE_PROMPT_CACHING=1", "DISABLE_TELEMETRY=1", "GEMINI_API_KEY=g",
				"GOOGLE_CLOUD_PROJECT=p", "MAX_THINKING_TOKENS=1024", "NODE_USE_ENV_PROXY=1",
				"NO_UPDATE_NOTIFIER=1", "OPENAI_API_KEY=o", "OPENCODE_CONFIG=/oc", "VERTEX_REGION_CLAUDE_3_5_HAIKU=eu",
				"npm_config_registry=http://r", "npm_config_update_notifier=false"},
		},
		{
			name: "toolchains and git identity",
			environ: []string{"GOPATH=/go", "GOCACHE=/gc", "GOMODCACHE=/gm", "GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local",
				"CARGO_HOME=/c", "RUSTUP_HOME=/r", "NODE_PATH=/n", "NVM_DIR=/nvm", "VIRTUAL_ENV=/v", "PYENV_ROOT=/p",
				"GIT_AUTHOR_NAME=A", "GIT_COMMITTER_EMAIL=c@x", "XDG_CONFIG_HOME=/xc", "GOROOT=/dropped"},
			want: []string{"CARGO_HOME=/c", "GIT_AUTHOR_NAME=A", "GIT_COMMITTER_EMAIL=c@x", "GOCACHE=/gc", "GOFLAGS=-mod=mod",
				"GOMODCACHE=/gm", "GOPATH=/go", "GOPROXY=off", "GOTOOLCHAIN=local", "NODE_PATH=/n", "NVM_DIR=/nvm",
				"PYENV_ROOT=/p", "RUSTUP_HOME=/r", "VIRTUAL_ENV=/v", "XDG_CONFIG_HOME=/xc"},
		},
		{
			name: "secrets and git plumbing dropped",
			environ: []string{"GITHUB_TOKEN=t", "GH_TOKEN=t", "NPM_TOKEN=t", "DATABASE_URL=postgres://", "SSH_AUTH_SOCK=/s",
				"GIT_DIR=/repo/.git", "GIT_INDEX_FILE=/repo/.git/index", "GIT_WORK_TREE=/repo", "GIT_CONFIG_PARAMETERS=x",
				"CODEMACHINE_ENGINE=claude", "path=/lower", "PATHX=/x"},
			want: []string{},
		},
		{
			name:    "last duplicate wins, malformed entries dropped",
			environ: []string{"HOME=/a", "HOME=/b", "PATH", "=x", "USER="},
			want:    []string{"HOME=/b", "USER="},
		},
		{
			name:    "extra overrides and adds anything",
			environ: []string{"HOME=/home/me", "PATH=/bin", "GITHUB_TOKEN=t"},
			extra: map[string]string{"HOME": "/private/home", "CODEMACHINE_STEP": "build", "GITHUB_TOKEN": "step-token",
				"": "empty", "A=B": "bad", "NUL\x00": "bad"},
			want: []string{"CODEMACHINE_STEP=build", "GITHUB_TOKEN=step-token", "HOME=/private/home", "PATH=/bin"},
		},
		{
			name:    "values kept as they are",
			environ: []string{"ANTHROPIC_CUSTOM_HEADERS=X-A: 1\nX-B: 2", "OPENAI_BASE_URL=http://h/v1?a=b=c", "TERM="},
			want:    []string{"ANTHROPIC_CUSTOM_HEADERS=X-A: 1\nX-B: 2", "OPENAI_BASE_URL=http://h/v1?a=b=c", "TERM="},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Environ(tt.environ, tt.extra)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Environ\n got %q\nwant %q", got, tt.want)
			}
			if !slices.IsSortedFunc(got, func(a, b string) int { return strings.Compare(envKey(a), envKey(b)) }) {
				t.Errorf("not sorted: %q", got)
			}
		})
	}
}

// The variables a user's own engine configuration reads pass the
// allow-list, as do those named in CODEMACHINE_PASS_ENV: a custom provider
// works under codemachine as it does in a terminal.
func TestEnvironPassesConfiguredNames(t *testing.T) {
	home := t.TempDir()
	writeFile(t, home+"/.codex/config.toml", `model = "m"
model_provider = "corp"
[model_providers.corp]
base_url = "http://gw/v1"
env_key = "CORP_LLM_KEY"
env_http_headers = { "X-Team" = "CORP_TEAM" }
[model_providers.other.env_http_headers]
"X-Org" = 'CORP_ORG'
[features]
apps = false
`)
	writeFile(t, home+"/.config/opencode/opencode.json",
		`{"provider":{"corp":{"options":{"apiKey":"{env:CORP_OPENCODE_KEY}","baseURL":"{env:CORP_URL}"}}}}`)
	environ := []string{"HOME=" + home, "PATH=/bin", "CORP_LLM_KEY=k1", "CORP_TEAM=t", "CORP_ORG=o",
		"CORP_OPENCODE_KEY=k2", "CORP_URL=http://gw", "CORP_FROM_CONTENT=c", "MY_GATEWAY_TOKEN=g", "OTHER_SECRET=s",
		"CODEMACHINE_PASS_ENV=MY_GATEWAY_TOKEN, UNSET_ONE",
		`OPENCODE_CONFIG_CONTENT={"provider":{"x":{"options":{"apiKey":"{env:CORP_FROM_CONTENT}"}}}}`}
	got := Environ(environ, nil)
	for _, want := range []string{"CORP_LLM_KEY=k1", "CORP_TEAM=t", "CORP_ORG=o", "CORP_OPENCODE_KEY=k2", "CORP_URL=http://gw",
		"CORP_FROM_CONTENT=c", "MY_GATEWAY_TOKEN=g"} {
		if !slices.Contains(got, want) {
			t.Errorf("%s missing from %q", want, got)
		}
	}
	for _, kv := range got {
		if strings.HasPrefix(kv, "OTHER_SECRET=") || strings.HasPrefix(kv, "CODEMACHINE_PASS_ENV=") {
			t.Errorf("%s passed", kv)
		}
	}
	names := ConfigEnvNames(environ)
	want := []string{"CORP_FROM_CONTENT", "CORP_LLM_KEY", "CORP_OPENCODE_KEY", "CORP_ORG", "CORP_TEAM", "CORP_URL"}
	if !slices.Equal(names, want) {
		t.Errorf("ConfigEnvNames = %q, want %q", names, want)
	}
}

func TestEnvironFor(t *testing.T) {
	environ := []string{"PATH=/bin", "ANTHROPIC_API_KEY=a", "CLAUDE_CONFIG_DIR=/c", "OPENAI_API_KEY=o", "CODEX_HOME=/x",
		"GEMINI_API_KEY=g", "GOOGLE_CLOUD_PROJECT=p", "OPENCODE_CONFIG=/oc", "AWS_SECRET_ACCESS_KEY=s",
		"VERTEX_REGION_X=eu", "CLOUD_ML_REGION=r", "CLOUDSDK_CONFIG=/g", "DISABLE_TELEMETRY=1"}
	credentials := func(env []string) []string {
		var out []string
		for _, kv := range env {
			k, _, _ := strings.Cut(kv, "=")
			if k != "PATH" && k != "DISABLE_TELEMETRY" {
				out = append(out, k)
			}
		}
		return out
	}
	tests := []struct {
		engine string
		extra  []string // CODEMACHINE_PASS_ENV and the step's env
		want   []string
	}{
		{"claude", nil, []string{"ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "CLAUDE_CONFIG_DIR", "CLOUDSDK_CONFIG",
			"CLOUD_ML_REGION", "GOOGLE_CLOUD_PROJECT", "VERTEX_REGION_X"}},
		{"codex", nil, []string{"CODEX_HOME", "OPENAI_API_KEY"}},
		{"gemini", nil, []string{"CLOUDSDK_CONFIG", "CLOUD_ML_REGION", "GEMINI_API_KEY", "GOOGLE_CLOUD_PROJECT"}},
		{"opencode", nil, []string{"ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "CLAUDE_CONFIG_DIR", "CLOUDSDK_CONFIG",
			"CLOUD_ML_REGION", "CODEX_HOME", "GEMINI_API_KEY", "GOOGLE_CLOUD_PROJECT", "OPENAI_API_KEY", "OPENCODE_CONFIG",
			"VERTEX_REGION_X"}},
		{"shell", nil, nil},
		{"replay", nil, nil},
		// What the user names passes whatever the engine.
		{"shell", []string{PassEnv + "=AWS_SECRET_ACCESS_KEY"}, []string{"AWS_SECRET_ACCESS_KEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.engine, func(t *testing.T) {
			got := credentials(EnvironFor(tt.engine, append(slices.Clone(environ), tt.extra...), map[string]string{"OPENAI_BASE_URL": "step"}))
			want := append(slices.Clone(tt.want), "OPENAI_BASE_URL")
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("EnvironFor(%s) credentials = %v, want %v (the step's own env always passes)", tt.engine, got, want)
			}
		})
	}
}

// Every coding CLI has its credentials named: one missing from
// engineCredentials would run without any.
func TestEngineCredentialsCoverEveryCLI(t *testing.T) {
	for _, name := range CodingCLIs() {
		if len(engineCredentials[name]) == 0 {
			t.Errorf("engine %s keeps no credentials", name)
		}
	}
}
