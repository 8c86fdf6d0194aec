package gitstate

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/codemachine/codemachine/internal/fastread"
)

// discoverFast finds the repository containing the absolute directory dir
// the way git's discovery does in the plain case, without starting git: the
// nearest dir/.git upward, a directory (the main worktree's git dir) or a
// "gitdir: " file (a linked worktree's, whose commondir file names the
// shared git dir), on the same file system as dir, owned by this user.
//
// ok is false whenever git could decide otherwise, and Open asks git then:
// a GIT_* variable that steers discovery or the configuration, a path
// inside a .git directory or a bare-looking directory on the way up, a
// mount point crossed, a symbolic link for .git, another owner (git's
// safe.directory check), or a repository configuration that sets
// core.worktree or core.bare, includes other files, or has extensions.
func discoverFast(dir string) (root, gitDir, commonDir string, ok bool) {
	for _, k := range []string{"GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES",
		"GIT_DISCOVERY_ACROSS_FILESYSTEM", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_CONFIG"} {
		if _, set := os.LookupEnv(k); set {
			return "", "", "", false
		}
	}
	start, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", "", "", false
	}
	var dev uint64
	for d := start; ; d = filepath.Dir(d) {
		if filepath.Base(d) == ".git" {
			return "", "", "", false
		}
		st, err := os.Stat(d)
		if err != nil {
			return "", "", "", false
		}
		sys, isUnix := st.Sys().(*syscall.Stat_t)
		if !isUnix {
			return "", "", "", false
		}
		if d == start {
			dev = uint64(sys.Dev)
		} else if uint64(sys.Dev) != dev {
			return "", "", "", false
		}
		if root, gitDir, commonDir, found, ok := gitDirAt(d); found {
			return root, gitDir, commonDir, ok
		}
		if isFile(filepath.Join(d, "HEAD")) && isDir(filepath.Join(d, "objects")) && isDir(filepath.Join(d, "refs")) {
			return "", "", "", false // a bare repository, or a git dir: git says what it is
		}
		if parent := filepath.Dir(d); parent == d {
			return "", "", "", false // no repository: git says so
		}
	}
}

// gitDirAt looks at d/.git: found says there is one; ok that it is a
// plain one this reader can vouch for.
func gitDirAt(d string) (root, gitDir, commonDir string, found, ok bool) {
	dotgit := filepath.Join(d, ".git")
	st, err := os.Lstat(dotgit)
	if err != nil {
		return "", "", "", !os.IsNotExist(err), false
	}
	if dst, err := os.Stat(d); err != nil || !ownedByMe(st) || !ownedByMe(dst) {
		return "", "", "", true, false
	}
	switch {
	case st.IsDir():
		gitDir, commonDir = dotgit, dotgit
		if _, err := os.Lstat(filepath.Join(gitDir, "commondir")); err == nil {
			return "", "", "", true, false
		}
	case st.Mode().IsRegular():
		data, err := fastread.ReadFile(dotgit)
		target, isLink := strings.CutPrefix(strings.TrimRight(string(data), "\r\n"), "gitdir: ")
		if err != nil || !isLink || target == "" || strings.ContainsAny(target, "\r\n") {
			return "", "", "", true, false
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(d, target)
		}
		if gitDir, err = filepath.EvalSymlinks(target); err != nil {
			return "", "", "", true, false
		}
		commonDir = gitDir
		if data, err := fastread.ReadFile(filepath.Join(gitDir, "commondir")); err == nil {
			c := strings.TrimRight(string(data), "\r\n")
			if !filepath.IsAbs(c) {
				c = filepath.Join(gitDir, c)
			}
			if commonDir, err = filepath.EvalSymlinks(c); err != nil {
				return "", "", "", true, false
			}
		} else if !os.IsNotExist(err) {
			return "", "", "", true, false
		}
		if gst, err := os.Stat(gitDir); err != nil || !ownedByMe(gst) {
			return "", "", "", true, false
		}
	default:
		return "", "", "", true, false
	}
	if !isFile(filepath.Join(gitDir, "HEAD")) || !isDir(filepath.Join(commonDir, "objects")) || !plainConfig(commonDir) {
		return "", "", "", true, false
	}
	return d, gitDir, commonDir, true, true
}

// plainConfig reports whether the repository's configuration leaves
// discovery as it is: no core.worktree, core.bare, include or extension
// (those, or anything else unusual, are for git to read).
func plainConfig(commonDir string) bool {
	data, err := fastread.ReadFile(filepath.Join(commonDir, "config"))
	if err != nil {
		return false
	}
	lower := bytes.ToLower(data)
	for _, w := range []string{"worktree", "include", "extensions"} {
		if bytes.Contains(lower, []byte(w)) {
			return false
		}
	}
	return plainBare(lower)
}

// plainBare reports whether every bare setting in the lowercased config
// text says false, as git init writes it.
func plainBare(lower []byte) bool {
	for _, line := range bytes.Split(lower, []byte("\n")) {
		k, v, found := bytes.Cut(line, []byte("="))
		if bytes.Contains(k, []byte("bare")) && (!found || string(bytes.TrimSpace(v)) != "false") {
			return false
		}
	}
	return true
}

func ownedByMe(st os.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == os.Geteuid()
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
