package agents

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A private config dir (Request.Home set) is made from the user's own
// before every run: settings and instructions are copied afresh, logins
// copied unless the user's copy is as it was when codemachine last copied
// it (so a token the CLI refreshed here is kept until the user's changes;
// see seedLogin), and directories of definitions the CLI only reads (agents,
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
	credentials []string // logins: see seedLogin
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

// seedHome makes dst, a private config dir under home (Request.Home),
// from src (see homeSpec): what dst holds beyond h's credentials and kept
// entries is removed, then the config files are copied, the credentials
// seeded (seedLogin) and the directories linked. Missing sources are
// skipped; src "" only empties dst, but for the credentials, which are
// then seeded as absent.
func seedHome(src, dst, home string, h homeSpec) error {
	if err := realDirs(home, dst); err != nil {
		return fmt.Errorf("private config dir: %w", err)
	}
	if err := resetDir(dst, append(slices.Clone(h.credentials), h.kept...)); err != nil {
		return fmt.Errorf("reset private config dir: %w", err)
	}
	if err := seedLogins(src, dst, home, h.credentials); err != nil {
		return fmt.Errorf("seed private config dir: %w", err)
	}
	if src == "" {
		return nil
	}
	for _, f := range h.config {
		if err := copyFile(filepath.Join(src, f), filepath.Join(dst, f)); err != nil {
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

// realDirs makes dst, a directory under home, and every directory between
// them real directories of their own: whatever a step left in their place
// (home is writable to the steps that use it) is removed first. A symbolic
// link there, followed, would have codemachine, unconfined, empty and fill
// the directory it names (resetDir, seedLogin, copyFile): a step that put
// one to ~/.claude at home/claude would have the user's own config dir
// emptied before the next run of Claude Code in that slot. home itself is
// made (its parent is not the steps' to write).
func realDirs(home, dst string) error {
	rel, err := filepath.Rel(home, dst)
	if err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("%s is not under %s", dst, home)
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	dir := home
	for _, name := range strings.Split(rel, string(filepath.Separator)) {
		dir = filepath.Join(dir, name)
		fi, err := os.Lstat(dir)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// loginsPath is where codemachine records what it last seeded of the
// user's logins into the private config dirs under home: beside home,
// where a step, which may write home, cannot.
func loginsPath(home string) string { return filepath.Clean(home) + ".logins" }

// loginAbsent is the recorded state of a login the user does not have.
const loginAbsent = "absent"

// seedLogins seeds each of the logins names from src into dst (see
// seedLogin), with the record beside home.
func seedLogins(src, dst, home string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	if home == "" {
		return errors.New("logins: no private dir")
	}
	record := loginsPath(home)
	states := readLogins(record)
	changed := false
	for _, f := range names {
		key, err := filepath.Rel(home, filepath.Join(dst, f))
		if err != nil || !filepath.IsLocal(key) {
			return fmt.Errorf("login %s is not under %s", filepath.Join(dst, f), home)
		}
		key = filepath.ToSlash(key)
		from := ""
		if src != "" {
			from = filepath.Join(src, f)
		}
		state, err := seedLogin(from, filepath.Join(dst, f), states[key])
		if err != nil {
			return err
		}
		if states[key] != state {
			states[key], changed = state, true
		}
	}
	if !changed {
		return nil
	}
	return writeLogins(record, states)
}

// seedLogin makes dst, a login in a private config dir, the user's login
// src unless src is as it was when codemachine last seeded dst (last, the
// recorded state: the SHA-256 of src's content, or loginAbsent): then
// dst is kept as the CLI left it, for a token it refreshed there may have
// made the user's stale (a refresh token used once). Any change on the
// user's side (a new login, a refresh by the user's own CLI, a logout)
// wins, and so does the user's copy where nothing is recorded. The files'
// modification times are never asked: a step may write dst and set its
// time to anything. It returns src's state, to record.
func seedLogin(src, dst, last string) (string, error) {
	data, perm, err := readLogin(src)
	if err != nil {
		return "", err
	}
	state := loginAbsent
	if data != nil {
		sum := sha256.Sum256(data)
		state = hex.EncodeToString(sum[:])
	}
	fi, err := os.Lstat(dst)
	missing := errors.Is(err, fs.ErrNotExist)
	switch {
	case err != nil && !missing:
		return "", fmt.Errorf("login %s: %w", dst, err)
	case state == last && (!missing && fi.Mode().IsRegular() || missing && data == nil):
		// The CLI's own file (a token it refreshed; a login made in
		// its UI where the user has none), or no login on either side.
		return state, nil
	case data == nil:
		if err := os.RemoveAll(dst); err != nil {
			return "", fmt.Errorf("login %s: %w", dst, err)
		}
		return state, nil
	}
	if err := writeFileAtomic(dst, data, perm); err != nil {
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	return state, nil
}

// readLogin reads the user's login file p (following links), nil when
// there is none ("", missing, or not a regular file).
func readLogin(p string) (data []byte, perm fs.FileMode, err error) {
	if p == "" {
		return nil, 0, nil
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.Mode().IsRegular() {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("login %s: %w", p, err)
	}
	if data, err = os.ReadFile(p); err != nil {
		return nil, 0, fmt.Errorf("login %s: %w", p, err)
	}
	if data == nil {
		data = []byte{} // an empty login is a login
	}
	return data, fi.Mode().Perm(), nil
}

// readLogins reads the record of seeded logins (login path relative to
// the private dir -> state); a missing or unreadable one is empty, which
// makes every login the user's again.
func readLogins(path string) map[string]string {
	states := map[string]string{}
	data, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(data, &states) != nil {
		return map[string]string{}
	}
	return states
}

// writeLogins replaces the record of seeded logins. Written after the
// logins themselves: a crash in between leaves the old record, whose
// states then differ from the user's copies, which are seeded again.
func writeLogins(path string, states map[string]string) error {
	data, err := json.Marshal(states)
	if err != nil {
		return fmt.Errorf("record logins: %w", err)
	}
	if err := writeFileAtomic(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("record logins: %w", err)
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

// copyFile copies the regular file src to dst (creating dst's parent),
// with src's permissions; a missing or irregular src is skipped.
func copyFile(src, dst string) error {
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
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(dst, data, si.Mode().Perm()); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// writeFileAtomic writes data to dst with perm through a temporary file
// renamed over it (creating dst's parent): dst is never half written, and
// a link or directory a step left at dst is replaced, never followed.
func writeFileAtomic(dst string, data []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), perm)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
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
