package agents

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// A private config dir (Request.Home set) is made from the user's own
// before every run: settings and instructions are copied afresh, logins
// copied when the user's copy is newer (so a token the CLI refreshed here
// is kept), and directories of definitions the CLI only reads (agents,
// commands, skills, plugins, extensions) are symbolic links to the user's.
// Everything else in it is removed first, but the CLI's own session store,
// which a resumed run needs: an agent that planted a hook or a command in
// its settings finds them put back at its next run, so nothing it wrote
// there runs later, sandboxed or not. Caches, logs and histories do not
// carry over either: they are what parallel runs contend for.

// homeSpec says how one engine's private config dir is made from the
// user's.
type homeSpec struct {
	config      []string // settings and instructions: copied afresh before every run
	credentials []string // logins: copied when the user's copy is newer
	linked      []string // directories of definitions: links to the user's
	kept        []string // the CLI's session store, kept between runs
}

// homeDir returns the directory the environment's variable key names, or
// $HOME/rel when key is unset ("" when HOME is unset too).
func homeDir(env []string, key, rel string) string {
	if key != "" {
		if v := envValue(env, key); v != "" {
			return v
		}
	}
	home := envValue(env, "HOME")
	if home == "" {
		return ""
	}
	return filepath.Join(home, rel)
}

// seedHome makes dst a private config dir made from src (see homeSpec):
// what dst holds beyond h's credentials and kept entries is removed, then
// the config files are copied, the credentials copied when newer and the
// directories linked. Missing sources are skipped; src "" only empties
// dst.
func seedHome(src, dst string, h homeSpec) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("private config dir: %w", err)
	}
	if err := resetDir(dst, append(slices.Clone(h.credentials), h.kept...)); err != nil {
		return fmt.Errorf("reset private config dir: %w", err)
	}
	if src == "" {
		return nil
	}
	for _, f := range h.config {
		if err := copyIfNewer(filepath.Join(src, f), filepath.Join(dst, f)); err != nil {
			return fmt.Errorf("seed private config dir: %w", err)
		}
	}
	for _, f := range h.credentials {
		if err := copyIfNewer(filepath.Join(src, f), filepath.Join(dst, f)); err != nil {
			return fmt.Errorf("seed private config dir: %w", err)
		}
	}
	for _, d := range h.linked {
		if err := linkDir(filepath.Join(src, d), filepath.Join(dst, d)); err != nil {
			return fmt.Errorf("seed private config dir: %w", err)
		}
	}
	return nil
}

// resetDir removes every entry of dir whose name keep does not list.
func resetDir(dir string, keep []string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !slices.Contains(keep, e.Name()) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyIfNewer copies the regular file src to dst (creating dst's parent)
// unless dst is at least as new. The copy keeps src's permissions and
// modification time, so the next comparison sees them equal.
func copyIfNewer(src, dst string) error {
	si, err := os.Stat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !si.Mode().IsRegular() {
		return nil
	}
	if di, err := os.Stat(dst); err == nil && !si.ModTime().After(di.ModTime()) {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, in)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), si.Mode().Perm())
	}
	if err == nil {
		err = os.Chtimes(tmp.Name(), time.Time{}, si.ModTime())
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// linkDir makes dst a symbolic link to the directory src. A dst that is
// a real directory (the CLI made one) is left alone; a link to elsewhere
// is replaced; a link whose source is gone is removed.
func linkDir(src, dst string) error {
	si, err := os.Stat(src)
	exists := err == nil && si.IsDir()
	di, err := os.Lstat(dst)
	switch {
	case err == nil && di.Mode()&fs.ModeSymlink == 0:
		return nil
	case err == nil:
		if target, _ := os.Readlink(dst); exists && target == src {
			return nil
		}
		if err := os.Remove(dst); err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if !exists {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	return os.Symlink(src, dst)
}

// staleLockAge is how old a lock of the proper-lockfile kind (a directory
// next to the file it guards, whose mtime the holder refreshes every few
// seconds) must be before a run removes it. Gemini CLI takes such a lock
// on projects.json for a few milliseconds while it starts and sometimes
// exits without releasing it; the next run then waits until the lock is
// older than 10 s. The lock records no pid, so age is the only sign that
// its holder is gone.
const staleLockAge = time.Second

// removeStaleLock removes the lock at path when it is older than
// staleLockAge. A younger one is given the rest of that time to go away
// on its own (its holder may still be starting), then removed.
func removeStaleLock(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check lock %s: %w", path, err)
	}
	if age := time.Since(fi.ModTime()); age < staleLockAge {
		time.Sleep(staleLockAge - age)
		if fi2, err := os.Lstat(path); err != nil || !fi2.ModTime().Equal(fi.ModTime()) {
			return nil // released, or refreshed by a live holder
		}
	}
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("remove stale lock %s: %w", path, err)
	}
	return nil
}
