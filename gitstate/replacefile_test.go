package gitstate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
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

// TestWriteFileAtomicReusesTheOldInode: from the third write on, the file
// written is the inode the target held two writes before, so no inode is
// created; content of any length replaces the old whole.
func TestWriteFileAtomicReusesTheOldInode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "running.yaml")
	contents := []string{"first, a long line of content\n", "second\n", "third: longer than the second\n", "", "fifth\n"}
	var inodes []uint64
	for i, c := range contents {
		mode := volatile
		if i%2 == 0 {
			mode = synced
		}
		if err := writeFileAtomic(p, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
		if got := readString(t, p); got != c {
			t.Fatalf("write %d: content %q, want %q", i, got, c)
		}
		inodes = append(inodes, inode(t, p))
	}
	for i := 2; i < len(inodes); i++ {
		if inodes[i] != inodes[i-2] {
			t.Errorf("write %d: inode %d, want the one of write %d (%d)", i, inodes[i], i-2, inodes[i-2])
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != ".running.yaml.spare running.yaml" {
		t.Errorf("left in the directory: %v", names)
	}
}

// TestWriteFileAtomicNeverWritesThroughTheSpare: a spare that is a
// symbolic link, or a file linked under another name too (planted by
// someone who can write the directory), is dropped, never written into:
// what it points at or shares its inode with keeps its content.
func TestWriteFileAtomicNeverWritesThroughTheSpare(t *testing.T) {
	for _, kind := range []string{"symlink", "hardlink", "directory"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "holds.yaml")
			spare := filepath.Join(dir, ".holds.yaml.spare")
			outside := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(outside, []byte("precious\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("old\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			var err error
			switch kind {
			case "symlink":
				err = os.Symlink(outside, spare)
			case "hardlink":
				err = os.Link(outside, spare)
			case "directory":
				err = os.Mkdir(spare, 0o755)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := writeFileAtomic(p, []byte("new\n"), volatile); err != nil {
				t.Fatal(err)
			}
			if got := readString(t, p); got != "new\n" {
				t.Errorf("content %q", got)
			}
			if got := readString(t, outside); got != "precious\n" {
				t.Errorf("written through the spare: %q", got)
			}
		})
	}
}

// TestWriteFileAtomicConcurrentWriters: writers racing on one file each
// leave a whole content, never a mix, and a reader never sees a torn one.
func TestWriteFileAtomicConcurrentWriters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tips.yaml")
	content := func(w, i int) string { return strings.Repeat(fmt.Sprintf("writer %d write %d\n", w, i), 1+(w+i)%7) }
	if err := writeFileAtomic(p, []byte(content(0, 0)), volatile); err != nil {
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
				if err := writeFileAtomic(p, []byte(content(w, i)), volatile); err != nil {
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

// TestWriteFileAtomicFreshInode: an unsynced write of a file whose content
// matters never reuses an inode (a power loss could bring back the content
// it held before), even when a spare is there.
func TestWriteFileAtomicFreshInode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "switch.yaml")
	spare := filepath.Join(dir, ".switch.yaml.spare")
	if err := os.WriteFile(spare, []byte("an old journal\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spareIno := inode(t, spare)
	for i, c := range []string{"one\n", "two\n", "three\n"} {
		if err := writeFileAtomic(p, []byte(c), freshInode); err != nil {
			t.Fatal(err)
		}
		if got := readString(t, p); got != c {
			t.Fatalf("write %d: %q", i, got)
		}
		if inode(t, p) == spareIno {
			t.Fatalf("write %d reused the spare", i)
		}
	}
	if got := readString(t, spare); got != "an old journal\n" {
		t.Errorf("the spare was written: %q", got)
	}
}
