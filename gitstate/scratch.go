package gitstate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// The scratch .git of a pooled worktree: a repository of the agent's own
// whose HEAD is the unit's base (detached), whose index is a copy of the
// private index (same modification time, so that git's racy-file check
// judges the same), and which borrows the user's objects through
// alternates. Whatever the agent left there (commits, refs, hooks, config,
// a .git file pointing elsewhere) is gone before the next unit starts.

// scratchDirs are the directories of a scratch .git, each with exactly
// the entries it holds (a name ending in / is a directory); the top one's
// files are scratchFiles' and the index.
var scratchDirs = map[string][]string{
	"objects":      {"info/"},
	"objects/info": {"alternates"},
	"refs":         {"heads/", "tags/"},
	"refs/heads":   {},
	"refs/tags":    {},
}

// makeScratch makes the worktree's .git what a fresh scratch repository
// is. Where the one there is exactly the layout makeScratch makes, its
// files are brought up to date in place; anything else there (an entry
// more or less, a link, a file with a second name, an unusual mode) and it
// is removed and made afresh. The in-place path creates no file: on a busy
// ext4 each new inode costs 0.3-1 ms, and a scratch made afresh is eleven.
func (w *Worktree) makeScratch(files map[string][]byte) error {
	fail := func(err error) error { return fmt.Errorf("worktree slot %d: make its .git: %w", w.slot, err) }
	if w.refreshScratch(files) == nil {
		return nil
	}
	if err := os.RemoveAll(w.scratch); err != nil {
		return fail(err)
	}
	for _, d := range []string{"objects/info", "refs/heads", "refs/tags"} {
		if err := os.MkdirAll(filepath.Join(w.scratch, d), 0o755); err != nil {
			return fail(err)
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(w.scratch, filepath.FromSlash(name)), data, 0o644); err != nil {
			return fail(err)
		}
	}
	if err := copyIndex(w.index, filepath.Join(w.scratch, "index")); err != nil {
		return fail(err)
	}
	return nil
}

// dropUsedScratch removes a scratch .git that is not exactly a fresh one
// (see checkScratchLayout): what the last step left there must be gone
// before codemachine's git runs over the worktree again. git runs the
// commands of the user's configuration (filter drivers) with the worktree
// as its directory, and one that names a file in .git (transcrypt's
// .git/crypt/...) would run the step's copy there, outside the sandbox,
// as the worktree is moved to its next base or reset.
func (w *Worktree) dropUsedScratch(files map[string][]byte) error {
	if w.checkScratchLayout(files) == nil {
		return nil
	}
	if err := removeTree(w.scratch); err != nil {
		return fmt.Errorf("worktree slot %d: remove the last step's .git: %w", w.slot, err)
	}
	return nil
}

// scratchFiles is the content of each file of a fresh scratch .git but
// the index, by slash-separated name.
func (w *Worktree) scratchFiles() (map[string][]byte, error) {
	r := w.repo
	config, err := r.scratchConfig()
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"HEAD":                    []byte(w.base + "\n"),
		"config":                  config,
		"objects/info/alternates": []byte(filepath.Join(r.commonDir, "objects") + "\n"),
	}
	if shallow, err := os.ReadFile(filepath.Join(r.commonDir, "shallow")); err == nil {
		files["shallow"] = shallow
	}
	if refs, err := r.branchesAndTags(); err == nil {
		files["packed-refs"] = refs
	}
	return files, nil
}

// refreshScratch brings a scratch .git whose layout is exactly a fresh
// one's up to date: each file is written in place, where it differs, and
// the index is copied. Any other layout is an error, and nothing is
// written.
func (w *Worktree) refreshScratch(files map[string][]byte) error {
	if err := w.checkScratchLayout(files); err != nil {
		return err
	}
	for name, data := range files {
		if err := rewriteInPlace(filepath.Join(w.scratch, filepath.FromSlash(name)), data); err != nil {
			return err
		}
	}
	return copyIndexInPlace(w.index, filepath.Join(w.scratch, "index"))
}

// checkScratchLayout checks that the scratch .git holds exactly the
// directories and files of a fresh one with files: no link, no entry more
// or less, directories of plain modes (a missing index is the only
// difference allowed: it is copied in).
func (w *Worktree) checkScratchLayout(files map[string][]byte) error {
	top := []string{"objects/", "refs/", "index"}
	for name := range files {
		if dir, _ := filepath.Split(name); dir == "" {
			top = append(top, name)
		}
	}
	if err := checkScratchDir(w.scratch, top, "index"); err != nil {
		return err
	}
	for dir, want := range scratchDirs {
		if err := checkScratchDir(filepath.Join(w.scratch, filepath.FromSlash(dir)), want, ""); err != nil {
			return err
		}
	}
	return nil
}

// checkScratchDir checks that dir is a plain directory holding exactly the
// entries want (a name ending in / a directory, others regular files);
// optional may be missing.
func checkScratchDir(dir string, want []string, optional string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() || st.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 || st.Mode().Perm()&0o700 != 0o700 || st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s: not a plain directory", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	present := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() {
			name += "/"
		} else if !e.Type().IsRegular() {
			return fmt.Errorf("%s: %s is not a file", dir, name)
		}
		if !slices.Contains(want, name) {
			return fmt.Errorf("%s: unexpected %s", dir, name)
		}
		present[name] = true
	}
	for _, name := range want {
		if !present[name] && name != optional {
			return fmt.Errorf("%s: %s missing", dir, name)
		}
	}
	return nil
}

// rewriteInPlace makes the content of the existing plain file p data,
// writing into it (no new inode) only where it differs. A file that is a
// link, or has another name, is an error and left as it is.
func rewriteInPlace(p string, data []byte) error {
	f, err := openOwnFile(p, os.O_RDWR)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == int64(len(data)) {
		have := make([]byte, len(data))
		if _, err := io.ReadFull(f, have); err == nil && bytes.Equal(have, data) {
			return nil
		}
	}
	return writeWhole(f, data, false)
}

// copyIndexInPlace copies the index src into dst, the scratch's own (or
// creates it when it is missing), with src's modification time.
func copyIndexInPlace(src, dst string) error {
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	f, err := openOwnFile(dst, os.O_WRONLY)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	}
	if err != nil {
		return err
	}
	// Copied by the kernel (copy_file_range) where it can, from the
	// start of the file, then cut to length: an index is up to tens of
	// megabytes.
	_, err = io.Copy(f, in)
	if err == nil {
		err = f.Truncate(st.Size())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Chtimes(dst, st.ModTime(), st.ModTime())
}

// openOwnFile opens p, not following a link, when it is a regular file
// with no other name.
func openOwnFile(p string, flag int) (*os.File, error) {
	f, err := os.OpenFile(p, flag|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !plainSingleLink(st) {
		err = fmt.Errorf("%s: not a plain file of one link", p)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// plainSingleLink reports whether st is a regular file with one link: a
// file whose content no other name shares.
func plainSingleLink(st os.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return st.Mode().IsRegular() && ok && sys.Nlink == 1
}

// writeWhole makes f's content data: written from the start, then cut to
// its length (never to zero first: on ext4 truncating a file to zero
// forces its pending blocks out to disk).
func writeWhole(f *os.File, data []byte, durable bool) error {
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != int64(len(data)) {
		if err := f.Truncate(int64(len(data))); err != nil {
			return err
		}
	}
	if durable {
		return f.Sync()
	}
	return nil
}
