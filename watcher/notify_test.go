package watcher

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
)

// backends are the real change sources, each with a short quiet window so
// that the tests are quick.
var backends = []struct {
	name string
	new  func(t *testing.T) Backend
}{
	{"notify", func(t *testing.T) Backend {
		b, err := NewNotify()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}},
	{"poll", func(*testing.T) Backend { return NewPoll(20 * ms) }},
}

func realWatcher(t *testing.T, b Backend, dirs ...Dir) *Watcher {
	t.Helper()
	w := New(b, Options{Quiet: 50 * ms, MaxWait: 500 * ms})
	t.Cleanup(func() { w.Close() })
	if err := w.SetDirs(dirs); err != nil {
		t.Fatal(err)
	}
	return w
}

// waitPath reads batches until one names path.
func waitPath(t *testing.T, w *Watcher, path string) Batch {
	t.Helper()
	deadline := time.After(testenv.Patience())
	for {
		select {
		case b := <-w.Batches():
			if slices.Contains(b.Paths, path) {
				return b
			}
		case <-deadline:
			t.Fatalf("no batch named %s", path)
		}
	}
}

func TestEditorSaves(t *testing.T) {
	saves := []struct {
		name string
		save func(t *testing.T, p string)
	}{
		{"in place", func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("- [ ] T1: edited in place\n"); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"write a temporary file, rename it over", func(t *testing.T, p string) {
			tmp := filepath.Join(filepath.Dir(p), ".plan.md.tmp123")
			write(t, tmp, "- [ ] T1: replaced by a rename\n")
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		}},
		{"vim: rename to a backup, write anew, delete the backup", func(t *testing.T, p string) {
			// vim's default (backupcopy=auto on a plain file) probes the
			// directory with a file named 4913 first.
			probe := filepath.Join(filepath.Dir(p), "4913")
			write(t, probe, "")
			if err := os.Remove(probe); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(p, p+"~"); err != nil {
				t.Fatal(err)
			}
			write(t, p, "- [ ] T1: written by vim\n")
			if err := os.Remove(p + "~"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, be := range backends {
		for _, s := range saves {
			t.Run(be.name+"/"+s.name, func(t *testing.T) {
				root := t.TempDir()
				plan := filepath.Join(root, ".codemachine", "plan.md")
				write(t, plan, "- [ ] T1: first\n")
				w := realWatcher(t, be.new(t), Dir{Path: root, Recursive: true})
				s.save(t, plan)
				waitPath(t, w, plan)
			})
		}
	}
}

func TestNewDirectoriesForReal(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			root := t.TempDir()
			w := realWatcher(t, be.new(t), Dir{Path: root, Recursive: true})
			deep := filepath.Join(root, "a", "b", "c")
			// Written immediately after the directories: before any
			// watch on them can exist.
			write(t, filepath.Join(deep, "first.txt"), "1")
			waitPath(t, w, filepath.Join(deep, "first.txt"))
			if !slices.Contains(w.Watched(), deep) {
				t.Fatalf("watched %v lacks %s", w.Watched(), deep)
			}
			// The new directory is watched from now on.
			write(t, filepath.Join(deep, "second.txt"), "2")
			waitPath(t, w, filepath.Join(deep, "second.txt"))
			// .git is never entered.
			write(t, filepath.Join(root, ".git", "HEAD"), "ref: refs/heads/main\n")
			write(t, filepath.Join(root, "after.txt"), "3")
			b := waitPath(t, w, filepath.Join(root, "after.txt"))
			if slices.Contains(b.Paths, filepath.Join(root, ".git", "HEAD")) {
				t.Errorf("a change inside .git was reported: %v", b.Paths)
			}
			if slices.Contains(w.Watched(), filepath.Join(root, ".git")) {
				t.Errorf(".git is watched: %v", w.Watched())
			}
		})
	}
}

func TestIdleIsSilent(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, filepath.Join(root, "a", "f.txt"), "1")
			w := realWatcher(t, be.new(t), Dir{Path: root, Recursive: true})
			select {
			case b := <-w.Batches():
				t.Fatalf("batch while nothing changed: %+v", b)
			case <-time.After(300 * ms):
			}
		})
	}
}

func TestPollDiff(t *testing.T) {
	st := func(mod, size int64, ino uint64, mode os.FileMode) stamp {
		return stamp{mod: mod, size: size, ino: ino, mode: mode}
	}
	tests := []struct {
		name     string
		old, cur map[string]stamp
		want     []Event
	}{
		{"nothing", map[string]stamp{"a": st(1, 1, 1, 0o644)}, map[string]stamp{"a": st(1, 1, 1, 0o644)}, nil},
		{"created and removed", map[string]stamp{"a": st(1, 1, 1, 0o644)}, map[string]stamp{"b": st(1, 1, 2, 0o644)},
			[]Event{{Path: "/d/a", Op: Remove}, {Path: "/d/b", Op: Create}}},
		{"written", map[string]stamp{"a": st(1, 1, 1, 0o644)}, map[string]stamp{"a": st(2, 1, 1, 0o644)},
			[]Event{{Path: "/d/a", Op: Write}}},
		{"grown within the same tick", map[string]stamp{"a": st(1, 1, 1, 0o644)}, map[string]stamp{"a": st(1, 5, 1, 0o644)},
			[]Event{{Path: "/d/a", Op: Write}}},
		{"replaced by a rename", map[string]stamp{"a": st(1, 1, 1, 0o644)}, map[string]stamp{"a": st(1, 1, 9, 0o644)},
			[]Event{{Path: "/d/a", Op: Create}}},
		{"chmod", map[string]stamp{"a": st(1, 1, 1, 0o644)}, map[string]stamp{"a": st(1, 1, 1, 0o755)},
			[]Event{{Path: "/d/a", Op: Chmod}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diffSnapshots("/d", tt.old, tt.cur)
			if !slices.Equal(got, tt.want) {
				t.Errorf("diff = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPollDirectoryGone(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "d")
	mkdirs(t, dir)
	p := NewPoll(10 * ms)
	defer p.Close()
	if err := p.Add(dir); err != nil {
		t.Fatal(err)
	}
	if err := p.Add(filepath.Join(root, "absent")); err == nil {
		t.Error("Add of a missing directory succeeded")
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-p.Events():
		if e != (Event{Path: dir, Op: Remove}) {
			t.Errorf("event %+v", e)
		}
	case <-time.After(testenv.Patience()):
		t.Fatal("no event for the removed directory")
	}
}
