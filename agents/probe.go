package agents

import (
	"context"
	"os"
	"path/filepath"
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
// migrates its state; at a load of 15 on two cores Gemini took over 30 s),
// but doctor must not hang on one that never ends.
const probeTimeout = 2 * time.Minute

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
	case strings.HasPrefix(info.Credentials, NoCredentials):
		// None found, and the CLI's own configuration says which variable
		// it reads ("none found (model provider corp reads CORP_KEY, ...)"):
		// a login would not help.
		info.Hint = "set the variable named above in the environment codemachine runs in"
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
