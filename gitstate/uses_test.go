package gitstate

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsesCache: a ref is resolved and kept, a pinned commit is read
// without its source (offline), a fresh cache fetches a pinned commit that
// is no longer at the ref, and a failed fetch is one line.
func TestUsesCache(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t, map[string]string{".codemachine/workflow.yaml": "version: 1\n"})
	url := "file://" + src
	first := git(t, src, "rev-parse", "HEAD")

	c := NewUsesCache(filepath.Join(t.TempDir(), "uses"))
	got, err := c.Resolve(ctx, url, "main")
	if err != nil || got != first {
		t.Fatalf("Resolve = %s, %v; want %s", got, err, first)
	}
	write(t, src, ".codemachine/workflow.yaml", "version: 1\nname: moved\n")
	second := commitAll(t, src, "move main")

	// Offline: the source is gone, the pinned commit is in the cache.
	gone := src + ".gone"
	if err := os.Rename(src, gone); err != nil {
		t.Fatal(err)
	}
	if err := c.Ensure(ctx, url, "main", first); err != nil {
		t.Fatalf("Ensure offline: %v", err)
	}
	fsys, err := c.TreeFS(ctx, url, first)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := fs.ReadFile(fsys, ".codemachine/workflow.yaml"); err != nil || string(data) != "version: 1\n" {
		t.Fatalf("pinned file = %q, %v", data, err)
	}
	_, err = c.Resolve(ctx, url, "main")
	var fe *FetchError
	if !errors.As(err, &fe) || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "git fetch failed: ") {
		t.Fatalf("Resolve of a missing source: %v", err)
	}
	if err := os.Rename(gone, src); err != nil {
		t.Fatal(err)
	}

	// A fresh cache (a clone) fetches the pinned commit, no longer at main.
	fresh := NewUsesCache(filepath.Join(t.TempDir(), "uses"))
	if fresh.Has(ctx, url, first) {
		t.Fatal("a fresh cache has the commit")
	}
	if err := fresh.Ensure(ctx, url, "main", first); err != nil {
		t.Fatalf("Ensure in a fresh cache: %v", err)
	}
	if !fresh.Has(ctx, url, first) || fresh.Has(ctx, url, second) {
		t.Fatal("fresh cache: want the pinned commit only")
	}
	// A commit the source does not have: a FetchError naming it.
	err = fresh.Ensure(ctx, url, "main", strings.Repeat("1", 40))
	if !errors.As(err, &fe) {
		t.Fatalf("Ensure of an unknown commit: %v", err)
	}
}

// TestUsesCacheCreatedConcurrently: codemachines fetching the same source
// into a fresh cache at the same time (each its own UsesCache, as separate
// processes have) all succeed, with one repository in the cache, and an
// empty directory an earlier version left in the way is no obstacle.
func TestUsesCacheCreatedConcurrently(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t, map[string]string{".codemachine/workflow.yaml": "version: 1\n"})
	url := "file://" + src
	head := git(t, src, "rev-parse", "HEAD")
	dir := filepath.Join(t.TempDir(), "uses")
	errs := make(chan error, 6)
	for range 6 {
		go func() {
			got, err := NewUsesCache(dir).Resolve(ctx, url, "main")
			if err == nil && got != head {
				err = errors.New("resolved " + got)
			}
			errs <- err
		}()
	}
	for range 6 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var repos, others []string
	for _, e := range ents {
		switch {
		case strings.HasSuffix(e.Name(), ".git"):
			repos = append(repos, e.Name())
		case !strings.HasSuffix(e.Name(), ".lock"):
			others = append(others, e.Name())
		}
	}
	if len(repos) != 1 || len(others) != 0 {
		t.Errorf("cache holds repositories %v and %v, want one repository and its lock", repos, others)
	}

	other := filepath.Join(t.TempDir(), "uses")
	c := NewUsesCache(other)
	if _, err := c.repo(ctx, url); err != nil {
		t.Fatal(err)
	}
	repoDir := c.repos[url].gitDir
	if err := os.RemoveAll(repoDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(repoDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := NewUsesCache(other).Resolve(ctx, url, "main"); err != nil || got != head {
		t.Errorf("over an empty directory: %s, %v", got, err)
	}
}

// TestCacheDamaged: a fetch that failed on the cache's own repository
// (gone, or a corrupt object stored in it) makes it again; one that failed
// on the source's corrupt object, or on the network, keeps it and the
// pinned commits it may hold.
func TestCacheDamaged(t *testing.T) {
	const dir = "/r/.git/codemachine/cache/uses/0123.git"
	for _, tc := range []struct {
		stderr string
		want   bool
	}{
		{"fatal: not a git repository: '" + dir + "'", true},
		{"fatal: bad config line 1 in file " + dir + "/config", true},
		{"error: inflate: data stream error (incorrect header check)\nerror: unable to unpack 41ac header\nfatal: loose object 41ac (stored in " + dir + "/objects/41/ac) is corrupt", true},
		{"fatal: loose object 41ac (stored in /src/.git/objects/41/ac) is corrupt\nfatal: the remote end hung up unexpectedly", false},
		{"fatal: unable to access 'https://example.com/x/': Could not resolve host: example.com", false},
		{"fatal: couldn't find remote ref nobranch", false},
	} {
		if got := cacheDamaged(tc.stderr, dir); got != tc.want {
			t.Errorf("cacheDamaged(%q) = %v, want %v", tc.stderr, got, tc.want)
		}
	}
}
