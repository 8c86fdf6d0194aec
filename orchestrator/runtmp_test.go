package orchestrator

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestSweepRunTmpReusesAnEmptyDirectory: the newest earlier run's
// directory of TMPDIRs becomes the current run's when nothing is in it
// (renamed, no directory made or removed), and is removed as before when
// a step left something there or changed a directory's mode.
func TestSweepRunTmpReusesAnEmptyDirectory(t *testing.T) {
	const (
		older   = "20261207T100000Z-aaaaaa"
		newer   = "20261207T110000Z-bbbbbb"
		current = "20261207T120000Z-cccccc"
	)
	inode := func(t *testing.T, p string) uint64 {
		t.Helper()
		st, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Ino
	}
	mkdir := func(t *testing.T, p string) {
		t.Helper()
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, tmp string) // on newer's sandbox TMPDIR
		reused bool
	}{
		{"empty", func(*testing.T, string) {}, true},
		{"a file left", func(t *testing.T, tmp string) { mustWrite(t, filepath.Join(tmp, "x"), "x\n") }, false},
		{"an empty directory left", func(t *testing.T, tmp string) { mkdir(t, filepath.Join(tmp, "d")) }, false},
		{"writable by all", func(t *testing.T, tmp string) {
			if err := os.Chmod(tmp, 0o777); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"closed to its owner", func(t *testing.T, tmp string) {
			if err := os.Chmod(tmp, 0o500); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"a link in its place", func(t *testing.T, tmp string) {
			if err := os.Remove(tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(t.TempDir(), tmp); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"another name beside it", func(t *testing.T, tmp string) { mkdir(t, filepath.Join(filepath.Dir(tmp), "kept")) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := newRepo(t, map[string]string{"a.txt": "a\n"})
			o := newTestOrchestrator(t, dir, nil, nil)
			root := filepath.Join(o.repo.LocalDir(), "tmp")
			// A killed run's, with what its step left: never reused.
			mustWrite(t, filepath.Join(root, older, "off", "left"), "x\n")
			sandboxTmp := filepath.Join(root, newer, "sandbox-0123456789ab")
			mkdir(t, sandboxTmp)
			mkdir(t, filepath.Join(root, newer, "off"))
			tc.tamper(t, sandboxTmp)
			before := inode(t, filepath.Join(root, newer))

			o.sweepRunTmp(current)

			for _, gone := range []string{older, newer} {
				if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
					t.Errorf("%s is still there", gone)
				}
			}
			_, err := os.Lstat(filepath.Join(root, current))
			if !tc.reused {
				if err == nil {
					t.Errorf("the current run's directory was made of a used one")
				}
				return
			}
			if err != nil {
				t.Fatalf("the empty directory was not reused: %v", err)
			}
			if got := inode(t, filepath.Join(root, current)); got != before {
				t.Errorf("the current run's directory is inode %d, want the reused %d", got, before)
			}
			for _, sub := range []string{"off", "sandbox-0123456789ab"} {
				if _, err := os.Lstat(filepath.Join(root, current, sub)); err != nil {
					t.Errorf("the reused directory lost its empty %s: %v", sub, err)
				}
			}
		})
	}
}
