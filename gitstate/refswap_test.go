package gitstate

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSwapRefInProcessIsGits: the in-process swap leaves the ref, its
// reflog and HEAD's exactly as git update-ref does, loose or packed.
func TestSwapRefInProcessIsGits(t *testing.T) {
	for _, packed := range []bool{false, true} {
		name := "loose"
		if packed {
			name = "packed"
		}
		t.Run(name, func(t *testing.T) {
			dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
			base := git(t, dir, "rev-parse", "HEAD")
			c1 := stepCommit(t, r, base, map[string]string{"a.txt": "1\n"}, "one")
			c2 := stepCommit(t, r, c1, map[string]string{"a.txt": "2\n"}, "two")
			// git's own entry, to compare with.
			git(t, dir, "update-ref", "-m", "codemachine: land  one", "refs/heads/main", c1, base)
			if packed {
				git(t, dir, "pack-refs", "--all")
				if exists(dir, ".git/refs/heads/main") {
					t.Fatal("not packed")
				}
			}
			s, err := r.refSettingsFor(t.Context())
			if err != nil || !s.usable {
				t.Fatalf("settings %+v, %v", s, err)
			}
			if err := r.swapRefInProcess(newRefUpdate("refs/heads/main", c2, c1, "codemachine: land\n two"), s); err != nil {
				t.Fatal(err)
			}
			if got := git(t, dir, "rev-parse", "main"); got != c2 {
				t.Fatalf("main = %s, want %s", got, c2)
			}
			for _, log := range []string{".git/logs/refs/heads/main", ".git/logs/HEAD"} {
				lines := strings.Split(strings.TrimSpace(read(t, dir, log)), "\n")
				gits, ours := lines[len(lines)-2], lines[len(lines)-1]
				shape := regexp.MustCompile(`^([0-9a-f]{40}) ([0-9a-f]{40}) (.+ <.*>) \d+ [+-]\d{4}\t(.*)$`)
				g, o := shape.FindStringSubmatch(gits), shape.FindStringSubmatch(ours)
				if g == nil || o == nil {
					t.Fatalf("%s:\n%s\n%s", log, gits, ours)
				}
				if o[1] != c1 || o[2] != c2 || o[3] != g[3] || o[4] != "codemachine: land two" || g[4] != "codemachine: land one" {
					t.Errorf("%s: ours %q next to git's %q", log, ours, gits)
				}
			}
			if exists(dir, ".git/refs/heads/main.lock") {
				t.Error("the ref lock is left")
			}
			git(t, dir, "fsck", "--no-progress")
		})
	}
}

func TestSwapRefInProcessRefuses(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	c1 := stepCommit(t, r, base, map[string]string{"a.txt": "1\n"}, "one")
	c2 := stepCommit(t, r, base, map[string]string{"a.txt": "2\n"}, "two")
	s, err := r.refSettingsFor(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Not at the expected commit: moved, nothing written.
	err = r.swapRefInProcess(newRefUpdate("refs/heads/main", c2, c1, "x"), s)
	if !errors.Is(err, ErrRefMoved) || git(t, dir, "rev-parse", "main") != base || exists(dir, ".git/refs/heads/main.lock") {
		t.Errorf("err = %v", err)
	}
	// Someone holds the ref's lock: git decides (it waits a little).
	lock := filepath.Join(dir, ".git", "refs", "heads", "main.lock")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.swapRefInProcess(newRefUpdate("refs/heads/main", c1, base, "x"), s); !errors.Is(err, errNotInProcess) {
		t.Errorf("with the lock held: %v", err)
	}
	if _, err := os.Stat(lock); err != nil {
		t.Error("someone else's lock was removed")
	}
	os.Remove(lock)
	// A reference-transaction hook must run: git update-ref does it.
	write(t, dir, ".git/hooks/reference-transaction", "#!/bin/sh\nexit 0\n")
	git(t, dir, "config", "core.logAllRefUpdates", "true") // the config changed: read again
	if s, err := r.refSettingsFor(t.Context()); err != nil || s.usable {
		t.Errorf("with a reference-transaction hook: %+v, %v", s, err)
	}
}

// TestRefSettingsCommitterIsGitVars: the committer a swap records is git
// var GIT_COMMITTER_IDENT's, found without a git process wherever the
// environment and configuration name it; where git would guess, git var
// is asked once per configuration.
func TestRefSettingsCommitterIsGitVars(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	for _, k := range []string{"GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_COMMITTER_DATE", "EMAIL"} {
		unsetenv(t, k)
	}
	tests := []struct {
		name      string
		setup     func(t *testing.T)
		processes int64 // git processes after the configuration is read
	}{
		{"user.* in the configuration", func(t *testing.T) {
			git(t, dir, "config", "user.name", "Config User")
			git(t, dir, "config", "user.email", "user@example.com")
		}, 0},
		{"committer.* over user.*", func(t *testing.T) {
			git(t, dir, "config", "committer.name", "Committer")
			git(t, dir, "config", "committer.email", "committer@example.com")
		}, 0},
		{"the environment over the configuration", func(t *testing.T) {
			t.Setenv("GIT_COMMITTER_NAME", "Env Name")
			t.Setenv("GIT_COMMITTER_EMAIL", "env@example.com")
		}, 0},
		{"a fixed date", func(t *testing.T) { t.Setenv("GIT_COMMITTER_DATE", "1778049489 +0130") }, 0},
		{"a date git parses", func(t *testing.T) { t.Setenv("GIT_COMMITTER_DATE", "2026-01-02 03:04:05 +0100") }, 1},
		{"an email git cleans up", func(t *testing.T) { t.Setenv("GIT_COMMITTER_EMAIL", " spaced@example.com") }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup(t)
			if _, err := r.fastConfigFor(t.Context()); err != nil {
				t.Fatal(err)
			}
			before := r.Processes()
			s, err := r.refSettingsFor(t.Context())
			if err != nil || !s.usable {
				t.Fatalf("settings %+v, %v", s, err)
			}
			if n := r.Processes() - before; n != tt.processes {
				t.Errorf("%d git processes, want %d", n, tt.processes)
			}
			ident := git(t, dir, "var", "GIT_COMMITTER_IDENT")
			i := strings.LastIndexByte(ident, '>')
			if s.ident != ident[:i+1] {
				t.Errorf("committer %q, git var %q", s.ident, ident)
			}
			if _, set := os.LookupEnv("GIT_COMMITTER_DATE"); set != (s.fixedNow != "") || set && s.fixedNow != strings.TrimSpace(ident[i+1:]) {
				t.Errorf("date %q, git var %q", s.fixedNow, ident)
			}
			// Asked again under the same configuration: no process.
			before = r.Processes()
			if _, err := r.refSettingsFor(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n := r.Processes() - before; n != 0 {
				t.Errorf("asked again: %d git processes", n)
			}
		})
	}
}
