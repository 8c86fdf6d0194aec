package gitstate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigListKeptBetweenProcesses: a Repo opened again (another
// codemachine process) takes git config --list's answer from the cache
// while nothing it depends on changed, and asks git again when a file, a
// symbolic link's target or the environment changed; a configuration with
// includes is asked every time.
func TestConfigListKeptBetweenProcesses(t *testing.T) {
	dir, _ := newRepo(t, map[string]string{"a.txt": "a\n"})
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	unsetenv(t, "GIT_CONFIG_PARAMETERS")
	unsetenv(t, "GIT_CONFIG_GLOBAL")
	target := filepath.Join(home, "dotfiles", "gitconfig")
	write(t, home, "dotfiles/gitconfig", "[user]\n\tname = aaaa\n")
	if err := os.Symlink(target, filepath.Join(home, ".gitconfig")); err != nil {
		t.Fatal(err)
	}
	// value opens the repository afresh and reads key, returning the
	// value and the git processes it took.
	value := func(t *testing.T, key string) (string, int64) {
		t.Helper()
		r, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		before := r.Processes() // Open asks git under git -c
		c, err := r.fastConfigFor(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		v, _ := c.get(key)
		return v, r.Processes() - before
	}
	steps := []struct {
		name      string
		change    func(t *testing.T)
		key, want string
		processes int64
	}{
		{"not codemachine's repository", func(t *testing.T) {}, "user.name", "aaaa", 1},
		{"nothing kept there", func(t *testing.T) {
			if exists(dir, ".git/codemachine") {
				t.Fatal(".git/codemachine written in a repository codemachine had not written to")
			}
		}, "user.name", "aaaa", 1},
		{"first read", func(t *testing.T) {
			if err := os.Mkdir(filepath.Join(dir, ".git", "codemachine"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "user.name", "aaaa", 1},
		{"nothing changed", func(t *testing.T) {}, "user.name", "aaaa", 0},
		{"the repository's config", func(t *testing.T) { git(t, dir, "config", "core.abbrev", "12") }, "core.abbrev", "12", 1},
		{"kept again", func(t *testing.T) {}, "core.abbrev", "12", 0},
		{"a linked file's target, same size", func(t *testing.T) {
			write(t, home, "dotfiles/gitconfig", "[user]\n\tname = bbbb\n")
		}, "user.name", "bbbb", 1},
		{"git -c", func(t *testing.T) { t.Setenv("GIT_CONFIG_PARAMETERS", "'user.name'='Param'") }, "user.name", "Param", 1},
		{"git -c gone", func(t *testing.T) { os.Unsetenv("GIT_CONFIG_PARAMETERS") }, "user.name", "bbbb", 1},
		{"an include", func(t *testing.T) {
			write(t, dir, "extra.inc", "[user]\n\tname = included\n")
			git(t, dir, "config", "include.path", filepath.Join(dir, "extra.inc"))
		}, "user.name", "included", 1},
		{"an include is read every time", func(t *testing.T) {}, "user.name", "included", 1},
	}
	for _, s := range steps {
		s.change(t)
		got, n := value(t, s.key)
		if got != s.want || n != s.processes {
			t.Fatalf("%s: %s = %q with %d git processes, want %q with %d", s.name, s.key, got, n, s.want, s.processes)
		}
	}
}

// TestConfigSeesALinkedFilesEdit: one Repo (a long-running watch) reads
// the configuration again when the target of a linked ~/.gitconfig is
// edited.
func TestConfigSeesALinkedFilesEdit(t *testing.T) {
	_, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	home := t.TempDir()
	t.Setenv("HOME", home)
	unsetenv(t, "GIT_CONFIG_GLOBAL")
	write(t, home, "dotfiles/gitconfig", "[user]\n\temail = a@example.com\n")
	if err := os.Symlink(filepath.Join(home, "dotfiles", "gitconfig"), filepath.Join(home, ".gitconfig")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a@example.com", "b@example.com"} {
		write(t, home, "dotfiles/gitconfig", "[user]\n\temail = "+want+"\n")
		c, err := r.fastConfigFor(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := c.get("user.email"); got != want {
			t.Fatalf("user.email = %q, want %q", got, want)
		}
	}
}

// TestConfigCacheKeepsNoSecret: what the cache keeps of the configuration
// is the sections codemachine reads; URLs with passwords, tokens in
// headers or a tool's keys stay in the files their owner put them in, and
// a credential helper that may spell one out keeps the answer out of the
// cache altogether.
func TestConfigCacheKeepsNoSecret(t *testing.T) {
	dir, _ := newRepo(t, map[string]string{"a.txt": "a\n"})
	if err := os.Mkdir(filepath.Join(dir, ".git", "codemachine"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{
		{"remote.origin.url", "https://alice:s3cret1@example.com/r.git"},
		{"remote.origin.pushurl", "https://alice:s3cret2@example.com/r.git"},
		{"http.extraHeader", "Authorization: Bearer s3cret3"},
		{"url.https://bob:s3cret4@example.com/.insteadOf", "https://example.com/"},
		{"github.token", "s3cret5"},
		{"submodule.lib.url", "https://carol:s3cret6@example.com/lib.git"},
		{"credential.helper", "store"},
		{"filter.lfs.clean", "git-lfs clean -- %f"},
		{"user.name", "Kept Name"},
	} {
		git(t, dir, "config", kv[0], kv[1])
	}
	cache := filepath.Join(dir, ".git", "codemachine", "cache", "config-list")
	read := func() (string, int64) {
		t.Helper()
		r, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		c, err := r.fastConfigFor(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		v, _ := c.get("user.name")
		return v, r.Processes()
	}
	read()
	data, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cret", "alice", "bob", "carol", "Bearer"} {
		if strings.Contains(string(data), secret) {
			t.Errorf("the cache holds %q:\n%s", secret, data)
		}
	}
	for _, kept := range []string{"credential.helper\nstore", "filter.lfs.clean\ngit-lfs clean", "user.name\nKept Name"} {
		if !strings.Contains(string(data), kept) {
			t.Errorf("the cache lacks %q:\n%s", kept, data)
		}
	}
	if name, n := read(); name != "Kept Name" || n != 0 {
		t.Errorf("from the cache: user.name %q, %d git processes", name, n)
	}
	// A helper that is a shell snippet may hold a password: nothing is
	// kept, and each process asks git.
	git(t, dir, "config", "--add", "credential.helper", "!f() { echo password=s3cret7; }; f")
	for range 2 {
		if name, n := read(); name != "Kept Name" || n != 1 {
			t.Errorf("with a shell credential helper: user.name %q, %d git processes", name, n)
		}
		if _, err := os.Stat(cache); err == nil {
			t.Error("the cache was kept with a shell credential helper")
		}
	}
}
