package agents

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// With Request.Home, each engine runs with a private config dir seeded
// from the user's: settings and credentials copied, definitions linked,
// sessions, logs and caches left behind.
func TestPrivateHomes(t *testing.T) {
	tests := []struct {
		engine string
		// user files (relative to HOME) and whether they reach the
		// private dir (relative to the private config dir)
		user      map[string]string
		copied    map[string]string // user path -> private path
		linked    map[string]string // user dir -> private path
		notCopied []string          // private paths that must not exist
		envKey    string
		envValue  string // relative to Home
	}{
		{
			engine: "claude",
			user: map[string]string{
				".claude/settings.json": `{"model":"opus"}`, ".claude/.credentials.json": "token",
				".claude.json": `{"oauthAccount":{}}`, ".claude/agents/a.md": "agent",
				".claude/projects/x/s.jsonl": "session", ".claude/statsig/cache": "cache",
			},
			copied: map[string]string{".claude/settings.json": "settings.json", ".claude/.credentials.json": ".credentials.json",
				".claude.json": ".claude.json"},
			linked:    map[string]string{".claude/agents": "agents"},
			notCopied: []string{"projects", "statsig"},
			envKey:    "CLAUDE_CONFIG_DIR", envValue: "claude",
		},
		{
			engine: "codex",
			user: map[string]string{
				".codex/config.toml": "model = \"gpt-5.5\"\n", ".codex/auth.json": "{}", ".codex/work.config.toml": "x = 1\n",
				".codex/prompts/p.md": "prompt", ".codex/sessions/2026/01/01/rollout.jsonl": "session", ".codex/log/codex.log": "log",
			},
			copied: map[string]string{".codex/config.toml": "config.toml", ".codex/auth.json": "auth.json",
				".codex/work.config.toml": "work.config.toml"},
			linked:    map[string]string{".codex/prompts": "prompts"},
			notCopied: []string{"sessions", "log"},
			envKey:    "CODEX_HOME", envValue: "codex",
		},
		{
			engine: "gemini",
			user: map[string]string{
				".gemini/settings.json": "{}", ".gemini/oauth_creds.json": "{}", ".gemini/.env": "GEMINI_API_KEY=k\n",
				".gemini/commands/c.toml": "cmd", ".gemini/tmp/proj/chats/c.json": "chat", ".gemini/projects.json": "{}",
			},
			copied: map[string]string{".gemini/settings.json": ".gemini/settings.json", ".gemini/oauth_creds.json": ".gemini/oauth_creds.json",
				".gemini/.env": ".gemini/.env"},
			linked:    map[string]string{".gemini/commands": ".gemini/commands"},
			notCopied: []string{".gemini/tmp", ".gemini/projects.json"},
			envKey:    "GEMINI_CLI_HOME", envValue: "gemini",
		},
		{
			engine: "opencode",
			user: map[string]string{
				".local/share/opencode/auth.json": "{}", ".local/share/opencode/bin/rg": "bin",
				".local/share/opencode/opencode.db": "db", ".local/share/opencode/snapshot/p/HEAD": "ref",
			},
			copied:    map[string]string{".local/share/opencode/auth.json": "opencode/auth.json"},
			linked:    map[string]string{".local/share/opencode/bin": "opencode/bin"},
			notCopied: []string{"opencode/opencode.db", "opencode/snapshot"},
			envKey:    "XDG_DATA_HOME", envValue: "opencode/data",
		},
	}
	for _, tt := range tests {
		t.Run(tt.engine, func(t *testing.T) {
			env, out := fakeCLI(t, tt.engine+"-edit-and-commit")
			home := envValue(env, "HOME")
			for p, c := range tt.user {
				writeFile(t, filepath.Join(home, p), c)
			}
			private := t.TempDir()
			eng, _ := New(tt.engine)
			if _, err := eng.Run(context.Background(), Request{Prompt: "p", Dir: t.TempDir(), Env: env, Home: private}); err != nil {
				t.Fatal(err)
			}
			r := readFakeRun(t, out, 1)
			dir := filepath.Join(private, filepath.FromSlash(tt.envValue))
			if r.env[tt.envKey] != dir {
				t.Fatalf("%s = %q, want %q", tt.envKey, r.env[tt.envKey], dir)
			}
			if r.env["HOME"] != home {
				t.Errorf("HOME changed to %q", r.env["HOME"])
			}
			cfg := dir
			if tt.engine == "opencode" {
				cfg = filepath.Join(private, "opencode", "data")
			}
			for from, to := range tt.copied {
				if got := readFile(t, filepath.Join(cfg, to)); got != tt.user[from] {
					t.Errorf("%s = %q, want a copy of %s", to, got, from)
				}
				if fi, err := os.Lstat(filepath.Join(cfg, to)); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("%s is not a regular file: %v", to, err)
				}
			}
			for from, to := range tt.linked {
				target, err := os.Readlink(filepath.Join(cfg, to))
				if err != nil || target != filepath.Join(home, from) {
					t.Errorf("%s links to %q (%v), want %s", to, target, err, filepath.Join(home, from))
				}
			}
			for _, p := range tt.notCopied {
				if _, err := os.Lstat(filepath.Join(cfg, p)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s was carried into the private dir", p)
				}
			}
		})
	}
}

// A step may write its slot's private dir, and so put a symbolic link to
// the user's own config dir where an engine's private dir (or a directory
// above it) goes. Seeding, which runs unconfined, must replace the link,
// never follow it: it would empty the user's config dir.
func TestPrivateHomeReplacesPlantedLinks(t *testing.T) {
	tests := []struct {
		engine string
		plant  string // the link, relative to the private home
		target string // what it points to, relative to HOME
		user   []string
	}{
		{"claude", "claude", ".claude", []string{".claude/settings.json", ".claude/CLAUDE.md", ".claude/agents/a.md", ".claude/history.jsonl"}},
		{"codex", "codex", ".codex", []string{".codex/config.toml", ".codex/prompts/p.md", ".codex/history.jsonl"}},
		{"gemini", "gemini", "", []string{".gemini/settings.json", ".gemini/commands/c.toml", ".gemini/history/h"}},
		{"opencode", "opencode/data", ".local/share", []string{".local/share/opencode/auth.json", ".local/share/opencode/bin/rg", ".local/share/opencode/log/l"}},
	}
	for _, tt := range tests {
		t.Run(tt.engine, func(t *testing.T) {
			env, _ := fakeCLI(t, tt.engine+"-edit-and-commit")
			home := envValue(env, "HOME")
			for _, p := range tt.user {
				writeFile(t, filepath.Join(home, p), "user's "+p)
			}
			private := t.TempDir()
			link := filepath.Join(private, filepath.FromSlash(tt.plant))
			if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(home, tt.target), link); err != nil {
				t.Fatal(err)
			}
			eng, _ := New(tt.engine)
			if _, err := eng.Run(context.Background(), Request{Prompt: "p", Dir: t.TempDir(), Env: env, Home: private}); err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.user {
				if got, err := os.ReadFile(filepath.Join(home, p)); err != nil || string(got) != "user's "+p {
					t.Errorf("the user's %s: %q, %v", p, got, err)
				}
			}
			if fi, err := os.Lstat(link); err != nil || !fi.IsDir() {
				t.Errorf("%s is not a directory of its own: %v", tt.plant, err)
			}
		})
	}
}

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "sub", "dst")
	writeFile(t, src, "v1")
	if err := copyFile(src, dst); err != nil || readFile(t, dst) != "v1" {
		t.Fatalf("first copy: %v", err)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want the source's 0600", fi.Mode().Perm())
	}
	// A link a step left at dst is replaced, not written through.
	target := filepath.Join(dir, "target")
	writeFile(t, target, "theirs")
	if err := os.Remove(dst); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, dst); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(src, dst); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(dst); err != nil || !fi.Mode().IsRegular() || readFile(t, target) != "theirs" {
		t.Errorf("link at dst followed or kept: %v", err)
	}
	if err := copyFile(filepath.Join(dir, "missing"), filepath.Join(dir, "d2")); err != nil {
		t.Errorf("missing source: %v", err)
	}
}

// A login in a private config dir is the user's unless the user's copy is
// as it was when codemachine last seeded it: a token the CLI refreshed
// there is kept until then, and nothing a step did to it there (its own
// login, a modification time far in the future) outlives a change of the
// user's.
func TestSeedLogins(t *testing.T) {
	user, home := t.TempDir(), filepath.Join(t.TempDir(), "slot-0")
	dst := filepath.Join(home, "claude")
	src, priv := filepath.Join(user, ".credentials.json"), filepath.Join(dst, ".credentials.json")
	seed := func() string {
		t.Helper()
		if err := seedHome(user, dst, home, claudeHome); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(priv); errors.Is(err, fs.ErrNotExist) {
			return "(none)"
		}
		return readFile(t, priv)
	}
	future := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	plant := func(content string) {
		t.Helper()
		writeFile(t, priv, content)
		if err := os.Chtimes(priv, future, future); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-time.Hour)
	userLogin := func(content string) {
		t.Helper()
		writeFile(t, src, content)
		// Older than the private copy: the user's change must win
		// whatever the times say.
		if err := os.Chtimes(src, past, past); err != nil {
			t.Fatal(err)
		}
	}

	userLogin("user-1")
	if got := seed(); got != "user-1" {
		t.Fatalf("first seed: %q", got)
	}
	// The CLI refreshed its token in the private dir: kept while the
	// user's copy is unchanged.
	writeFile(t, priv, "refreshed")
	if got := seed(); got != "refreshed" {
		t.Errorf("refreshed token replaced by the unchanged user's copy: %q", got)
	}
	// A step plants its own login, dated 2099; the user logs in again
	// (an older modification time than the planted file's): the user's
	// login wins.
	plant("attacker")
	userLogin("user-2")
	if got := seed(); got != "user-2" {
		t.Errorf("planted login kept over the user's new one: %q", got)
	}
	plant("attacker")
	userLogin("user-1") // back to an earlier content: still a change
	if got := seed(); got != "user-1" {
		t.Errorf("planted login kept over the user's change: %q", got)
	}
	// The record is out of the private dir, where the step cannot
	// rewrite it; without it, the user's copy wins.
	if _, err := os.Stat(loginsPath(home)); err != nil || strings.HasPrefix(loginsPath(home), home+string(filepath.Separator)) {
		t.Fatalf("record %s: %v", loginsPath(home), err)
	}
	plant("attacker")
	if err := os.Remove(loginsPath(home)); err != nil {
		t.Fatal(err)
	}
	if got := seed(); got != "user-1" {
		t.Errorf("no record: planted login kept: %q", got)
	}
	// The user logs out: so does the private dir.
	plant("attacker")
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	if got := seed(); got != "(none)" {
		t.Errorf("logged-out user: private login %q kept", got)
	}
	// With no login of the user's, one the CLI made in the private dir
	// (a login in its UI) stays, until the user's changes.
	writeFile(t, priv, "made here")
	if got := seed(); got != "made here" {
		t.Errorf("login made in the private dir dropped: %q", got)
	}
	userLogin("user-3")
	if got := seed(); got != "user-3" {
		t.Errorf("user's new login not seeded: %q", got)
	}
	// A link or directory at the login is replaced by the user's.
	if err := os.Remove(priv); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(t.TempDir(), "elsewhere"), priv); err != nil {
		t.Fatal(err)
	}
	if got := seed(); got != "user-3" {
		t.Errorf("link at the login kept: %q", got)
	}
	if err := os.Remove(priv); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(priv, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := seed(); got != "user-3" {
		t.Errorf("directory at the login kept: %q", got)
	}
}

func TestLinkDir(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "private", "link")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := linkDir(src, dst); err != nil {
			t.Fatal(err)
		}
		if target, err := os.Readlink(dst); err != nil || target != src {
			t.Fatalf("link %q, %v", target, err)
		}
	}
	// The source went away: so does the link.
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	if err := linkDir(src, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dangling link kept: %v", err)
	}
	// A real directory the CLI made is left alone.
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := linkDir(src, dst); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(dst); err != nil || !fi.IsDir() {
		t.Errorf("directory replaced: %v", err)
	}
}

// Gemini CLI's projects.json.lock left by a run that exited holding it is
// removed before the next run, in the user's config dir as in a private one.
func TestGeminiStaleLock(t *testing.T) {
	for _, private := range []bool{false, true} {
		env, _ := fakeCLI(t, "gemini-edit-and-commit")
		req := Request{Prompt: "p", Dir: t.TempDir(), Env: env}
		root := envValue(env, "HOME")
		if private {
			req.Home = t.TempDir()
			root = filepath.Join(req.Home, "gemini")
		}
		lock := filepath.Join(root, ".gemini", "projects.json.lock")
		if err := os.MkdirAll(lock, 0o755); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-5 * time.Second)
		if err := os.Chtimes(lock, old, old); err != nil {
			t.Fatal(err)
		}
		eng, _ := New("gemini")
		if _, err := eng.Run(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(lock); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("private %t: stale lock kept (%v)", private, err)
		}
	}
}

func TestRemoveStaleLock(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "projects.json.lock")
	if err := removeStaleLock(lock); err != nil {
		t.Errorf("no lock: %v", err)
	}
	// A fresh lock whose holder releases it meanwhile is not touched.
	if err := os.Mkdir(lock, 0o755); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = os.Remove(lock)
	}()
	start := time.Now()
	if err := removeStaleLock(lock); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*staleLockAge {
		t.Errorf("waited %v", d)
	}
	// A fresh lock nobody releases is removed once it is staleLockAge old.
	if err := os.Mkdir(lock, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := removeStaleLock(lock); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(lock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("abandoned lock kept")
	}
}
