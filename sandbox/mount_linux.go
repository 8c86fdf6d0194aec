//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// hideSockets mounts an empty tmpfs over each socket directory (and the
// policy's HideDirs), in the launcher's own mount namespace, then puts
// back at their paths what the step needs that lived there (its
// worktree, the repository, HOME, the PATH, ...), and covers the
// policy's single socket files with /dev/null. Landlock cannot stop a
// connect(2) to a pathname socket before ABI 9; a socket the step cannot
// see it cannot reach. With Landlock on, it last makes every mount but
// the writable paths read-only (readOnlyOutside).
func hideSockets(p Policy, program string) error {
	if err := ownMountNamespace(p.OuterNS); err != nil {
		return err
	}
	// Nothing mounted here may propagate back to the user's namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	hide := hiddenDirs(append(slices.Clone(socketDirs), p.HideDirs...))
	keep := keptPaths(keepCandidates(p, program), hide)
	// The kept paths are copied (their mount trees cloned, detached)
	// before they are covered, and the copies moved back into place. A
	// recursive bind made after the tmpfs would bring the tmpfs along
	// when a kept path is a hidden directory itself or holds one.
	trees := make([]int, len(keep))
	for i, k := range keep {
		fd, err := unix.OpenTree(unix.AT_FDCWD, k, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			return fmt.Errorf("keep %s visible: %w", k, err)
		}
		trees[i] = fd
		defer unix.Close(fd)
	}
	for _, d := range hide {
		if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("mount an empty tmpfs over %s: %w", d, err)
		}
	}
	for i, k := range keep {
		if err := putBack(trees[i], k); err != nil {
			return err
		}
	}
	for _, s := range p.Sockets {
		if err := coverSocket(s); err != nil {
			return err
		}
	}
	if !p.Terminal {
		if err := ownTerminals(); err != nil {
			return err
		}
	}
	if p.Landlock {
		return readOnlyOutside(p.Writable, p.Visible)
	}
	return nil
}

// ownTerminals mounts a devpts instance of the step's own over /dev/pts
// (and its ptmx over /dev/ptmx): a step that is not the user's interactive
// one must not open the user's terminal by its name (codemachine's
// /proc/PID/stat names it), write into it or change its settings, while
// the pseudo-terminals it makes itself (script, expect, a test harness)
// work as before. An interactive step keeps the user's devpts: its
// terminal is one of them.
func ownTerminals() error {
	if fi, err := os.Stat("/dev/pts"); err != nil || !fi.IsDir() {
		return nil
	}
	if err := unix.Mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return fmt.Errorf("mount a devpts of the step's own: %w", err)
	}
	if _, err := os.Stat("/dev/ptmx"); err == nil {
		if err := unix.Mount("/dev/pts/ptmx", "/dev/ptmx", "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind the step's own ptmx: %w", err)
		}
	}
	return nil
}

// ownMountNamespace checks that the launcher runs in a mount namespace
// of its own: mounting in the user's would hide the user's sockets (and
// /tmp) from everyone. Its namespace must differ from outer (what
// codemachine said its own is: the parent's cannot be read from /proc in
// a user namespace), and from its parent's and PID 1's where /proc shows
// them, so that a launcher started by hand, without the namespace,
// refuses whatever its policy says.
func ownMountNamespace(outer string) error {
	self := mountNamespace()
	if self == "" || outer == "" {
		return errors.New("cannot tell the mount namespaces apart")
	}
	others := []string{outer}
	for _, pid := range []int{os.Getppid(), 1} {
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil {
			others = append(others, ns)
		}
	}
	if slices.Contains(others, self) {
		return errors.New("not started in a mount namespace of its own")
	}
	return nil
}

// mountNamespace identifies the process's mount namespace ("" when
// /proc cannot tell).
func mountNamespace() string {
	ns, _ := os.Readlink("/proc/self/ns/mnt")
	return ns
}

// hiddenDirs resolves dirs (symbolic links followed: /var/run is often
// /run), drops those that do not exist and those inside another, and
// sorts them.
func hiddenDirs(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			continue
		}
		r, err := filepath.EvalSymlinks(d)
		if err != nil || r == "/" {
			continue
		}
		if fi, err := os.Stat(r); err == nil && fi.IsDir() {
			out = append(out, r)
		}
	}
	return outermost(out)
}

// keepCandidates are the paths a step needs to see where they are:
// the policy's visible and writable paths, the working directory, HOME,
// every PATH directory, the program (and what its link points to), and
// the targets of /etc's links (resolv.conf often points into /run).
func keepCandidates(p Policy, program string) []string {
	out := slices.Concat(p.Visible, p.Writable)
	if wd, err := os.Getwd(); err == nil {
		out = append(out, wd)
	}
	if h := os.Getenv("HOME"); h != "" {
		out = append(out, h)
	}
	out = append(out, filepath.SplitList(os.Getenv("PATH"))...)
	out = append(out, filepath.Dir(program))
	if r, err := filepath.EvalSymlinks(program); err == nil {
		out = append(out, filepath.Dir(r))
	}
	if entries, err := os.ReadDir("/etc"); err == nil {
		for _, e := range entries {
			if e.Type()&os.ModeSymlink != 0 {
				out = append(out, filepath.Join("/etc", e.Name()))
			}
		}
	}
	return out
}

// keptPaths resolves the candidates and keeps those inside one of the
// hidden directories, outermost only. (A candidate that is a hidden
// directory itself, a HOME in /tmp, say, is bound back whole: the step
// needs it more than it needs it hidden.)
func keptPaths(candidates, hidden []string) []string {
	var out []string
	for _, c := range candidates {
		if !filepath.IsAbs(c) {
			continue
		}
		r, err := filepath.EvalSymlinks(c)
		if err != nil {
			continue
		}
		for _, h := range hidden {
			if within(r, h) {
				out = append(out, r)
				break
			}
		}
	}
	return outermost(out)
}

// putBack makes the mount point for the kept path k inside the tmpfs
// that now covers it and moves the copy of the original (tree) there.
func putBack(tree int, k string) error {
	var st unix.Stat_t
	if err := unix.Fstat(tree, &st); err != nil {
		return fmt.Errorf("stat %s: %w", k, err)
	}
	if err := os.MkdirAll(filepath.Dir(k), 0o755); err != nil {
		return fmt.Errorf("keep %s visible: %w", k, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := os.Mkdir(k, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("keep %s visible: %w", k, err)
		}
	} else if f, err := os.OpenFile(k, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		_ = f.Close()
	} else {
		return fmt.Errorf("keep %s visible: %w", k, err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, k, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("keep %s visible: %w", k, err)
	}
	return nil
}

// coverSocket binds /dev/null over the socket file s, so that connecting
// to it fails. A path that is gone (or hidden already) or is no socket is
// left alone.
func coverSocket(s string) error {
	fi, err := os.Stat(s)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil
	}
	if err := unix.Mount("/dev/null", s, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("cover socket %s: %w", s, err)
	}
	return nil
}

// outermost sorts paths and drops duplicates and those inside another.
func outermost(paths []string) []string {
	slices.Sort(paths)
	var out []string
	for _, p := range paths {
		if len(out) > 0 && within(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// probeNamespace is the probe's work in the launcher: a mount namespace
// of its own where a tmpfs can be mounted.
func probeNamespace(outer string) error {
	if err := ownMountNamespace(outer); err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount a tmpfs: %w", err)
	}
	return nil
}
