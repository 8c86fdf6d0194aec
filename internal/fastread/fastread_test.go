//go:build unix

package fastread

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestReadFileAsOS: the content and the error are os.ReadFile's, for
// files of every size around the buffer's, a /proc file (whose size
// says 0), a missing file and a directory.
func TestReadFileAsOS(t *testing.T) {
	dir := t.TempDir()
	names := []string{"/proc/self/status", filepath.Join(dir, "missing"), dir}
	for _, n := range []int{0, 1, 511, 512, 513, 4096, 70000} {
		p := filepath.Join(dir, "f"+string(rune('a'+len(names))))
		if err := os.WriteFile(p, bytes.Repeat([]byte{'x', '\n'}, n)[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, p)
	}
	for _, name := range names {
		want, wantErr := os.ReadFile(name)
		got, err := ReadFile(name)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Errorf("%s: error %v, os.ReadFile's %v", name, err, wantErr)
			continue
		}
		if name == "/proc/self/status" {
			// Another process's numbers: the same lines, the same start.
			if !bytes.HasPrefix(got, []byte("Name:")) || bytes.Count(got, []byte("\n")) != bytes.Count(want, []byte("\n")) {
				t.Errorf("%s: %q, os.ReadFile's %q", name, got, want)
			}
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, os.ReadFile's %d", name, len(got), len(want))
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v, want fs.ErrNotExist", err)
	}
	var pe *fs.PathError
	if _, err := ReadFile(dir); !errors.As(err, &pe) || pe.Op != "read" {
		t.Errorf("a directory: %v, want os.ReadFile's read error", err)
	}
}

// TestReadFileRefusesNamedPipes: a named pipe nobody writes to (left
// where a cache or a ref is read) is refused at once, not waited on;
// so is a device.
func TestReadFileRefusesNamedPipes(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	for _, name := range []string{fifo, "/dev/null"} {
		done := make(chan error, 1)
		go func() {
			_, err := ReadFile(name)
			done <- err
		}()
		var pe *fs.PathError
		if err := <-done; !errors.Is(err, ErrNotRegular) || !errors.As(err, &pe) || pe.Path != name {
			t.Errorf("%s: %v, want ErrNotRegular", name, err)
		}
	}
}

// TestOpenAsOS: Open reads what os.Open reads, gives os.Open's error for a
// missing file, and leaves the file out of the poller (no deadline can be
// set on it).
func TestOpenAsOS(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("pid 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 16)
	if n, err := f.ReadAt(buf, 0); string(buf[:n]) != "pid 1\n" {
		t.Errorf("read %q, %v", buf[:n], err)
	}
	if err := f.SetReadDeadline(time.Now()); !errors.Is(err, os.ErrNoDeadline) {
		t.Errorf("SetReadDeadline: %v, want os.ErrNoDeadline (not polled)", err)
	}
	missing := filepath.Join(dir, "missing")
	_, wantErr := os.Open(missing)
	if _, err := Open(missing); err == nil || err.Error() != wantErr.Error() || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing file: %v, os.Open's %v", err, wantErr)
	}
}
