package watcher

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestQuietWindow(t *testing.T) {
	r := newFakeRig(t, Options{Quiet: 300 * ms, MaxWait: 2 * time.Second})
	r.send("/repo/a", Write)
	r.c.Advance(299 * ms)
	r.none()
	r.c.Advance(1 * ms)
	if got := r.batch(); !reflect.DeepEqual(got.Paths, []string{"/repo/a"}) || got.Overflow {
		t.Fatalf("batch = %+v", got)
	}
	// Each change restarts the window.
	r.send("/repo/b", Write)
	r.c.Advance(200 * ms)
	r.send("/repo/c", Create)
	r.c.Advance(200 * ms)
	r.none()
	r.c.Advance(100 * ms)
	if got := r.batch(); !reflect.DeepEqual(got.Paths, []string{"/repo/b", "/repo/c"}) {
		t.Fatalf("batch = %+v", got)
	}
	r.none()
}

func TestMaxWait(t *testing.T) {
	r := newFakeRig(t, Options{Quiet: 300 * ms, MaxWait: 2 * time.Second})
	// A change every 100 ms never leaves a quiet window: the batch comes
	// at the max wait, with everything so far.
	for i := range 20 {
		r.send(filepath.Join("/repo", "f", string(rune('a'+i))), Write)
		r.c.Advance(100 * ms)
		if i < 19 {
			r.none()
		}
	}
	got := r.batch()
	if len(got.Paths) != 20 {
		t.Fatalf("batch of %d paths, want 20: %v", len(got.Paths), got.Paths)
	}
	// The stream goes on: a new batch starts.
	r.send("/repo/later", Write)
	r.c.Advance(300 * ms)
	if got := r.batch(); !reflect.DeepEqual(got.Paths, []string{"/repo/later"}) {
		t.Fatalf("batch = %+v", got)
	}
}

func TestBusyConsumerGetsOneBatch(t *testing.T) {
	r := newFakeRig(t, Options{Quiet: 300 * ms})
	// Three quiet periods pass while nobody reads (a pass is running).
	for _, p := range []string{"/repo/a", "/repo/b", "/repo/a"} {
		r.send(p, Write)
		r.c.Advance(300 * ms)
		r.waitTimer()
	}
	if got := r.batch(); !reflect.DeepEqual(got.Paths, []string{"/repo/a", "/repo/b"}) {
		t.Fatalf("batch = %+v", got)
	}
	r.none()
}

func TestOverflowRescans(t *testing.T) {
	root := t.TempDir()
	r := newFakeRig(t, Options{Quiet: 300 * ms})
	if err := r.w.SetDirs([]Dir{{Path: root, Recursive: true}}); err != nil {
		t.Fatal(err)
	}
	if got := r.b.dirs(); !reflect.DeepEqual(got, []string{root}) {
		t.Fatalf("watched %v", got)
	}
	// Directories appear while the queue overflows: no event names them.
	mkdirs(t, filepath.Join(root, "x", "y"))
	r.fail(ErrOverflow)
	r.c.Advance(300 * ms)
	got := r.batch()
	if !got.Overflow {
		t.Fatalf("batch = %+v, want an overflow", got)
	}
	want := []string{root, filepath.Join(root, "x"), filepath.Join(root, "x", "y")}
	if got := r.b.dirs(); !reflect.DeepEqual(got, want) {
		t.Errorf("after the rescan, watched %v, want %v", got, want)
	}
}

func TestBackendErrorReported(t *testing.T) {
	var reported []error
	r := newFakeRig(t, Options{OnError: func(err error) { reported = append(reported, err) }})
	boom := errors.New("inotify broke")
	r.fail(boom)
	r.c.Advance(DefaultQuiet)
	if got := r.batch(); !got.Overflow {
		t.Errorf("batch = %+v, want an overflow (changes may be lost)", got)
	}
	if len(reported) != 1 || !errors.Is(reported[0], boom) {
		t.Errorf("reported %v", reported)
	}
}

func TestNewDirectoriesAreWatchedAndScanned(t *testing.T) {
	root := t.TempDir()
	r := newFakeRig(t, Options{Quiet: 100 * ms})
	if err := r.w.SetDirs([]Dir{{Path: root, Recursive: true}}); err != nil {
		t.Fatal(err)
	}
	// A tree appears at once (mkdir -p, an unpacked archive): the files
	// were written before any watch on their directory existed.
	write(t, filepath.Join(root, "a", "b", "c.txt"), "c")
	write(t, filepath.Join(root, "a", "d.txt"), "d")
	r.send(filepath.Join(root, "a"), Create)
	r.c.Advance(100 * ms)
	got := r.batch()
	for _, p := range []string{"a", "a/b", "a/b/c.txt", "a/d.txt"} {
		if !slices.Contains(got.Paths, filepath.Join(root, filepath.FromSlash(p))) {
			t.Errorf("batch lacks %s: %v", p, got.Paths)
		}
	}
	want := []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b")}
	if got := r.b.dirs(); !reflect.DeepEqual(got, want) {
		t.Errorf("watched %v, want %v", got, want)
	}
	// Removed: its watches and those below go.
	if err := os.RemoveAll(filepath.Join(root, "a")); err != nil {
		t.Fatal(err)
	}
	r.send(filepath.Join(root, "a"), Remove)
	if got := r.b.dirs(); !reflect.DeepEqual(got, []string{root}) {
		t.Errorf("after removal, watched %v", got)
	}
}

// TestWrittenWhileWatchIsAdded: a directory is watched before it is read,
// so what appears in it while its watch is being added (a deeper mkdir -p,
// the first file) is listed even though no event announces it.
func TestWrittenWhileWatchIsAdded(t *testing.T) {
	root := t.TempDir()
	r := newFakeRig(t, Options{Quiet: 100 * ms})
	if err := r.w.SetDirs([]Dir{{Path: root, Recursive: true}}); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(root, "a")
	r.b.onAdd = func(dir string) {
		switch dir {
		case a:
			mkdirs(t, filepath.Join(a, "b"))
		case filepath.Join(a, "b"):
			write(t, filepath.Join(a, "b", "first.txt"), "1")
		}
	}
	mkdirs(t, a)
	r.send(a, Create)
	r.c.Advance(100 * ms)
	got := r.batch()
	if !slices.Contains(got.Paths, filepath.Join(a, "b", "first.txt")) {
		t.Errorf("batch lacks a/b/first.txt: %v", got.Paths)
	}
	if !slices.Contains(r.w.Watched(), filepath.Join(a, "b")) {
		t.Errorf("a/b is not watched: %v", r.w.Watched())
	}
}

func TestNotRecursiveAndSkipped(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, filepath.Join(root, "flat", "sub"), filepath.Join(root, "rec", ".git", "objects"),
		filepath.Join(root, "rec", "node_modules", "x"), filepath.Join(root, "rec", "src"))
	if err := os.Symlink(filepath.Join(root, "flat"), filepath.Join(root, "rec", "link")); err != nil {
		t.Fatal(err)
	}
	var asked [][]string
	r := newFakeRig(t, Options{Ignore: func(dirs []string) []string {
		asked = append(asked, dirs)
		var out []string
		for _, d := range dirs {
			if filepath.Base(d) == "node_modules" {
				out = append(out, d)
			}
		}
		return out
	}})
	err := r.w.SetDirs([]Dir{{Path: filepath.Join(root, "flat")}, {Path: filepath.Join(root, "rec"), Recursive: true}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "flat"), filepath.Join(root, "rec"), filepath.Join(root, "rec", "src")}
	if got := r.w.Watched(); !reflect.DeepEqual(got, want) {
		t.Errorf("watched %v, want %v", got, want)
	}
	if len(asked) != 1 {
		t.Errorf("Ignore called %d times (%v), want once per level with entries", len(asked), asked)
	}
	// A new directory inside a flat watch is not entered; a new ignored
	// one inside a recursive watch neither.
	mkdirs(t, filepath.Join(root, "flat", "new"), filepath.Join(root, "rec", "src", "node_modules"))
	r.send(filepath.Join(root, "flat", "new"), Create)
	r.send(filepath.Join(root, "rec", "src", "node_modules"), Create)
	if got := r.w.Watched(); !reflect.DeepEqual(got, want) {
		t.Errorf("watched %v, want %v", got, want)
	}
}

func TestMissingRootAppears(t *testing.T) {
	root := t.TempDir()
	target := filepath.Join(root, "docs", "specs")
	r := newFakeRig(t, Options{Quiet: 100 * ms})
	if err := r.w.SetDirs([]Dir{{Path: target, Recursive: true}}); err != nil {
		t.Fatal(err)
	}
	if got := r.b.dirs(); !reflect.DeepEqual(got, []string{root}) {
		t.Fatalf("watched %v, want the nearest existing ancestor", got)
	}
	mkdirs(t, filepath.Join(root, "docs"))
	r.send(filepath.Join(root, "docs"), Create)
	if got := r.b.dirs(); !reflect.DeepEqual(got, []string{filepath.Join(root, "docs")}) {
		t.Fatalf("watched %v, want the ancestor moved down", got)
	}
	write(t, filepath.Join(target, "one.md"), "1")
	r.send(target, Create)
	if got := r.b.dirs(); !reflect.DeepEqual(got, []string{target}) {
		t.Fatalf("watched %v, want the root alone", got)
	}
	r.c.Advance(100 * ms)
	if got := r.batch(); !slices.Contains(got.Paths, filepath.Join(target, "one.md")) {
		t.Errorf("batch %v lacks the file that came with the root", got.Paths)
	}
	// The root goes away again: back to watching for it.
	if err := os.RemoveAll(filepath.Join(root, "docs")); err != nil {
		t.Fatal(err)
	}
	r.send(target, Remove)
	if got := r.b.dirs(); !reflect.DeepEqual(got, []string{root}) {
		t.Errorf("watched %v after removal", got)
	}
}

func TestSetDirsReplaces(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, filepath.Join(root, "a", "x"), filepath.Join(root, "b"))
	r := newFakeRig(t, Options{})
	if err := r.w.SetDirs([]Dir{{Path: filepath.Join(root, "a"), Recursive: true}}); err != nil {
		t.Fatal(err)
	}
	if err := r.w.SetDirs([]Dir{{Path: filepath.Join(root, "b")}, {Path: filepath.Join(root, "b") + "/"}}); err != nil {
		t.Fatal(err)
	}
	if got := r.b.dirs(); !reflect.DeepEqual(got, []string{filepath.Join(root, "b")}) {
		t.Errorf("watched %v", got)
	}
}

func TestWatchLimitExplained(t *testing.T) {
	root := t.TempDir()
	r := newFakeRig(t, Options{})
	r.b.addErrs = map[string]error{root: syscall.ENOSPC}
	err := r.w.SetDirs([]Dir{{Path: root}})
	if err == nil || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("SetDirs = %v", err)
	}
	if want := "max_user_watches"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not mention %s", err, want)
	}
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func write(t *testing.T, p, content string) {
	t.Helper()
	mkdirs(t, filepath.Dir(p))
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
