// Package testenv holds test helpers shared by codemachine's packages: a
// hermetic git environment and temporary repositories, and the real coding
// CLIs (Claude Code, Codex, Gemini CLI, opencode) at pinned versions,
// installed from npm into a cache outside the repository and configured to
// talk only to a fake model server on 127.0.0.1 (see internal/fakellm).
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// CLI describes one coding CLI at the version the harness pins: the one
// measured in shared/agent-clis.
type CLI struct {
	Name    string // engine name: "claude", "codex", "gemini", "opencode"
	Package string // npm package
	Version string // exact npm version
	Bin     string // executable name in node_modules/.bin
}

// Spec is the npm install argument, "package@version".
func (c CLI) Spec() string { return c.Package + "@" + c.Version }

// The CLIs, in the order codemachine's engine "auto" tries them.
var (
	Claude   = CLI{Name: "claude", Package: "@anthropic-ai/claude-code", Version: "2.1.197", Bin: "claude"}
	Codex    = CLI{Name: "codex", Package: "@openai/codex", Version: "0.169.0", Bin: "codex"}
	Gemini   = CLI{Name: "gemini", Package: "@google/gemini-cli", Version: "0.61.0", Bin: "gemini"}
	Opencode = CLI{Name: "opencode", Package: "opencode-ai", Version: "1.18.33", Bin: "opencode"}
)

// CLIs returns the descriptors of all four CLIs.
func CLIs() []CLI { return []CLI{Claude, Codex, Gemini, Opencode} }

// Names returns the names of all four CLIs.
func Names() []string {
	var names []string
	for _, c := range CLIs() {
		names = append(names, c.Name)
	}
	return names
}

// Lookup finds a CLI by name.
func Lookup(name string) (CLI, error) {
	for _, c := range CLIs() {
		if c.Name == name {
			return c, nil
		}
	}
	return CLI{}, fmt.Errorf("unknown CLI %q (known: %s)", name, strings.Join(Names(), ", "))
}

// CacheEnv names the variable that moves the install cache.
const CacheEnv = "CODEMACHINE_TEST_CACHE"

// CacheDir is where CLIs are installed: $CODEMACHINE_TEST_CACHE, else
// ${XDG_CACHE_HOME:-$HOME/.cache}/codemachine-test. It is outside the
// repository so that `git clean` and the module's file walks never see
// node_modules.
func CacheDir() (string, error) {
	if dir := os.Getenv(CacheEnv); dir != "" {
		return filepath.Abs(dir)
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the test cache: set %s or HOME: %w", CacheEnv, err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "codemachine-test"), nil
}

// prefix is the npm prefix of one pinned CLI inside the cache:
// <cache>/<package>@<version>.
func (c CLI) prefix(cache string) string {
	return filepath.Join(cache, filepath.FromSlash(c.Spec()))
}

// BinPath is where the CLI's executable is once installed under cache.
func (c CLI) BinPath(cache string) string {
	return filepath.Join(c.prefix(cache), "node_modules", ".bin", c.Bin)
}

func sortedUnique(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
