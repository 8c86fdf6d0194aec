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
