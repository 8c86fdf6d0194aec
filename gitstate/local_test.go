package gitstate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func readString(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestWriteFileAtomicConcurrentWriters: writers racing on one file each
// leave a whole content, never a mix, and a reader never sees a torn one.
func TestWriteFileAtomicConcurrentWriters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tips.yaml")
	content := func(w, i int) string { return strings.Repeat(fmt.Sprintf("writer %d write %d\n", w, i), 1+(w+i)%7) }
	if err := writeFileAtomic(p, []byte(content(0, 0)), false); err != nil {
		t.Fatal(err)
	}
	valid := map[string]bool{}
	for w := range 4 {
		for i := range 50 {
			valid[content(w, i)] = true
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	torn := make(chan string, 1)
	go func() {
		for {
			select {
			case <-stop:
				close(torn)
				return
			default:
			}
			if data, err := os.ReadFile(p); err == nil && !valid[string(data)] {
				select {
				case torn <- string(data):
				default:
				}
			}
		}
	}()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := writeFileAtomic(p, []byte(content(w, i)), false); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if s, ok := <-torn; ok {
		t.Errorf("a reader saw a torn file: %q", s)
	}
	if got := readString(t, p); !valid[got] {
		t.Errorf("final content %q", got)
	}
}

// TestWriteFileAtomicNewInode: each write is a new file renamed over the
// old, never a write into one a reader may have open; content of any
// length replaces the old whole, synced or not.
func TestWriteFileAtomicNewInode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "switch.yaml")
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	for i, c := range []string{"first, a long line\n", "two\n", "", "four: longer than two\n"} {
		if err := writeFileAtomic(p, []byte(c), i%2 == 0); err != nil {
			t.Fatal(err)
		}
		if got := readString(t, p); got != c {
			t.Fatalf("write %d: content %q, want %q", i, got, c)
		}
		for j, f := range held {
			data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"first, a long line\n", "two\n", "", "four: longer than two\n"}[j]; string(data) != want {
				t.Errorf("write %d changed the file of write %d a reader holds: %q", i, j, data)
			}
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, f)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("%d files in the directory, want 1", len(ents))
	}
}

// TestRemoveLocal: a local file is removed, a missing one is no error, and
// a name that would leave the local directory is refused.
func TestRemoveLocal(t *testing.T) {
	_, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	if err := r.WriteLocalVolatile("running.yaml", map[string]int{"pid": 1}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second removal finds nothing
		if err := r.RemoveLocal("running.yaml"); err != nil {
			t.Fatalf("removal %d: %v", i, err)
		}
	}
	if _, err := r.ReadLocalRaw("running.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read after removal: %v, want not found", err)
	}
	for _, name := range []string{"../config", "/etc/passwd", "", "a/../../x"} {
		if err := r.RemoveLocal(name); err == nil {
			t.Errorf("RemoveLocal(%q) succeeded", name)
		}
	}
}

// TestReadLocalNotAFile: a named pipe where a local file is read hung
// every command that reads it (status, run), waiting for a writer; it and
// a directory are refused as a damaged file is (exit 2), without opening.
func TestReadLocalNotAFile(t *testing.T) {
	_, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	dir, err := r.localPath("")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "holds.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "tips.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"holds.yaml": "a named pipe, socket or device, not a file", "tips.yaml": "a directory, not a file"} {
		done := make(chan error, 1)
		go func() {
			var v map[string]any
			done <- r.ReadLocal(name, &v)
		}()
		select {
		case err := <-done:
			var damaged *DamagedFileError
			if !errors.As(err, &damaged) || damaged.Problem != want {
				t.Errorf("ReadLocal(%s) = %v, want a DamagedFileError: %s", name, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("ReadLocal(%s) hangs", name)
		}
	}
	done := make(chan error, 1)
	go func() { done <- r.WriteLocal("holds.yaml", map[string]int{"a": 1}) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WriteLocal over a named pipe hangs")
	}
}

// TestWriteLocalExchangedInPlace: after its first two writes the file and
// its spare are written in place and exchanged, with no new file; each
// content reads back whole, and a reader that meets a write in progress in
// the inode it opened earlier reads again rather than decode a mix.
func TestWriteLocalExchangedInPlace(t *testing.T) {
	_, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	p := filepath.Join(r.LocalDir(), "running.yaml")
	type doc struct {
		Units map[string]string `yaml:"units"`
	}
	// The files are held open, so that a file removed cannot give its
	// inode number to a new one.
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	for i := range 6 {
		units := map[string]string{}
		for j := range i % 3 * 5 { // short and long contents, alternating
			units[fmt.Sprint("unit-", j)] = fmt.Sprint("write ", i)
		}
		if err := r.WriteLocalExchanged("running.yaml", doc{Units: units}); err != nil {
			t.Fatal(err)
		}
		var got doc
		if err := r.ReadLocal("running.yaml", &got); err != nil || len(got.Units) != len(units) {
			t.Fatalf("write %d read back as %+v, %v", i, got, err)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if i >= 2 {
			same := false
			for _, f := range held {
				if hs, err := f.Stat(); err == nil && os.SameFile(hs, st) {
					same = true
				}
			}
			if !same {
				t.Errorf("write %d made a new file", i)
			}
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, f)
	}
}

// TestSumMatches: a file WriteLocalExchanged writes starts with the
// checksum of the rest; any other file has none and matches.
func TestSumMatches(t *testing.T) {
	body := []byte("pid: 1\nunits:\n  a: now\n")
	whole := prependSum(body)
	mixed := append([]byte(nil), whole...)
	mixed[len(mixed)-3] = 'X'
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"whole", whole, true},
		{"no checksum line", body, true},
		{"empty", nil, true},
		{"the rest changed", mixed, false},
		{"cut short", whole[:len(whole)-4], false},
		{"only the checksum line, cut", whole[:len(sumPrefix)+3], false},
		{"a longer rest", append(append([]byte(nil), whole...), "b: later\n"...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sumMatches(tc.data); got != tc.want {
				t.Errorf("sumMatches(%q) = %v, want %v", tc.data, got, tc.want)
			}
		})
	}
}

// TestReadLocalRereadsAMixedFile: a reader that meets a file whose
// checksum does not match reads it again, and takes it for damaged only
// when it stays so.
func TestReadLocalRereadsAMixedFile(t *testing.T) {
	_, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	if err := r.WriteLocalExchanged("running.yaml", map[string]int{"pid": 1}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(r.LocalDir(), "running.yaml")
	whole := readString(t, p)
	mixed := strings.Replace(whole, "pid: 1", "pid: 7", 1)
	if err := os.WriteFile(p, []byte(mixed), 0o644); err != nil {
		t.Fatal(err)
	}
	fixed := make(chan error, 1)
	go func() {
		time.Sleep(3 * time.Millisecond)
		fixed <- writeFileAtomic(p, []byte(whole), false) // never empty meanwhile
	}()
	var got map[string]int
	err := r.ReadLocal("running.yaml", &got)
	if werr := <-fixed; werr != nil {
		t.Fatal(werr)
	}
	// The fix may come after the rereads on a loaded machine; then the
	// file must have been refused, never decoded as the mix.
	var damaged *DamagedFileError
	switch {
	case err == nil && got["pid"] != 1:
		t.Errorf("read the mix: %v", got)
	case err != nil && !errors.As(err, &damaged):
		t.Errorf("ReadLocal = %v, want the file or a DamagedFileError", err)
	}
	if err := os.WriteFile(p, []byte(mixed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadLocal("running.yaml", &got); !errors.As(err, &damaged) {
		t.Errorf("ReadLocal of a file that stays mixed = %v, want a DamagedFileError", err)
	}
}

// TestWriteLocalExchangedConcurrentReader: a reader racing the writes,
// holding the file open across them as a slow reader would, always
// decodes one whole content.
func TestWriteLocalExchangedConcurrentReader(t *testing.T) {
	_, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	content := func(i int) map[string]string {
		m := map[string]string{}
		for j := range 1 + i%9 {
			m[fmt.Sprint("unit-", j)] = fmt.Sprint("write ", i)
		}
		return m
	}
	if err := r.WriteLocalExchanged("running.yaml", content(0)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	bad := make(chan string, 1)
	go func() {
		defer close(bad)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var got map[string]string
			err := r.ReadLocal("running.yaml", &got)
			i := -1
			if err == nil {
				_, _ = fmt.Sscanf(got["unit-0"], "write %d", &i)
			}
			if err != nil || i < 0 || len(got) != 1+i%9 {
				select {
				case bad <- fmt.Sprintf("%v, %v", got, err):
				default:
				}
				return
			}
		}
	}()
	for i := range 300 {
		if err := r.WriteLocalExchanged("running.yaml", content(i)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if s, ok := <-bad; ok {
		t.Errorf("a reader read %s", s)
	}
}
