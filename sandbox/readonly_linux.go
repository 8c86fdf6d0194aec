//go:build linux

package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pseudoFS are the file systems whose mounts stay as they are: they hold
// no one's files, and a program may need to write some of theirs
// (/proc/self/oom_score_adj, a pseudo-terminal).
var pseudoFS = []string{
	"proc", "sysfs", "devpts", "cgroup", "cgroup2", "mqueue", "securityfs", "debugfs", "tracefs",
	"pstore", "bpf", "fusectl", "configfs", "binfmt_misc", "hugetlbfs", "autofs", "nsfs", "efivarfs",
	"selinuxfs", "rpc_pipefs",
}

// readOnlyOutside makes every mount of the launcher's namespace read-only
// but the writable paths, each first bound onto itself so that it is a
// mount of its own and keeps its write access. Landlock governs what a
// step writes into files and directories, but not a file's metadata: on
// its own it lets a step chmod, chown, touch or set extended attributes
// on any file it can read (the user's checkout, their .git), and a
// read-only mount refuses all of those (EROFS), to root too. Device files
// stay writable on a read-only mount. The mounts that hold the visible
// paths (the repository, HOME) must end up read-only; others are made
// so as far as the kernel lets.
func readOnlyOutside(writable, visible []string) error {
	keep := outermost(resolved(writable))
	for _, w := range keep {
		if err := unix.Mount(w, w, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind writable %s: %w", w, err)
		}
	}
	// The working directory still refers to the directory as it was
	// before the binds, under the mount that becomes read-only: enter it
	// again, through the bind.
	if wd, err := os.Getwd(); err == nil {
		if err := os.Chdir(wd); err != nil {
			return fmt.Errorf("enter %s again: %w", wd, err)
		}
	}
	mounts, err := mountPoints()
	if err != nil {
		return err
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	for _, m := range mounts {
		if slices.Contains(pseudoFS, m.fstype) || slices.ContainsFunc(keep, func(w string) bool { return within(m.point, w) }) {
			continue
		}
		// A mount point the launcher cannot reach (under a directory it
		// may not search) or that another mount hides is left: the
		// check below says whether what matters was reached.
		_ = unix.MountSetattr(unix.AT_FDCWD, m.point, unix.AT_SYMLINK_NOFOLLOW, attr)
	}
	for _, v := range resolved(visible) {
		if slices.ContainsFunc(keep, func(w string) bool { return within(v, w) }) {
			continue
		}
		var st unix.Statfs_t
		if err := unix.Statfs(v, &st); err != nil {
			return fmt.Errorf("check %s is read-only: %w", v, err)
		}
		if st.Flags&unix.ST_RDONLY == 0 {
			return fmt.Errorf("could not make the mount of %s read-only", v)
		}
	}
	return nil
}

// resolved are paths with their symbolic links followed, those that do
// not exist left out.
func resolved(paths []string) []string {
	var out []string
	for _, p := range paths {
		if r, err := filepath.EvalSymlinks(p); err == nil && filepath.IsAbs(r) {
			out = append(out, r)
		}
	}
	return out
}

// mount is one line of /proc/self/mountinfo: where, and what file system.
type mount struct {
	point, fstype string
}

// mountPoints lists the namespace's mounts, in mountinfo's order
// (parents before the mounts on them).
func mountPoints() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		m, ok := parseMountInfo(sc.Text())
		if ok {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("list mounts: /proc/self/mountinfo lists none")
	}
	return out, nil
}

// parseMountInfo reads the mount point (field 5) and the file system type
// (the first field after the " - " separator) of a mountinfo line.
func parseMountInfo(line string) (mount, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	fields, rest := strings.Fields(pre), strings.Fields(post)
	if !ok || len(fields) < 5 || len(rest) < 1 {
		return mount{}, false
	}
	return mount{point: unescapeMountInfo(fields[4]), fstype: rest[0]}, true
}

// unescapeMountInfo undoes mountinfo's octal escapes (\040 for a space,
// \011, \012, \134).
func unescapeMountInfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
