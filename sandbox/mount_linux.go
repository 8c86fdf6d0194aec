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
	own, others := keepCandidates(p, program)
	steps := layers(hiddenDirs(append(slices.Clone(socketDirs), p.HideDirs...)), resolved(own), resolved(others))
	// The kept paths are copied (their mount trees cloned, detached)
	// before anything is covered, and the copies moved back into place.
	// A recursive bind made after the tmpfs would bring the tmpfs along
	// when a kept path is a hidden directory itself or holds one.
	trees := make([]int, len(steps))
	for i, l := range steps {
		if !l.keep {
			continue
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, l.path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			return fmt.Errorf("keep %s visible: %w", l.path, err)
		}
		trees[i] = fd
		defer unix.Close(fd)
	}
	for i, l := range steps {
		if l.keep {
			if err := putBack(trees[i], l.path); err != nil {
				return err
			}
			continue
		}
		if err := unix.Mount("tmpfs", l.path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("mount an empty tmpfs over %s: %w", l.path, err)
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

// layer is one mount of hideSockets, in the order they are made: an
// empty tmpfs over the hidden directory path, or (keep) the original of
// path put back where a tmpfs covers it.
type layer struct {
	path string
	keep bool
}

// layers orders the mounts that hide the directories hidden (resolved)
// and put back the kept paths: the step's own, own (its worktree, the
// repository, HOME), and others it merely needs to see (the PATH, the
// program's directory). Parents come before what they hold, so that the
// innermost decides what the step sees: a hidden directory inside a kept
// path is covered again (a HOME in /tmp that holds TMPDIR or the runtime
// dir does not bring their sockets back with it). A path of others that
// is a hidden directory itself (a PATH entry /tmp or /run) is not put
// back at all: whole, it would bring back every socket in it. One of own
// is, as the step works there. A mount that changes nothing (a hidden
// directory inside one already covered, a kept path inside one already
// put back) is left out.
func layers(hidden, own, others []string) []layer {
	var all []layer
	for _, h := range hidden {
		all = append(all, layer{path: h})
	}
	for _, k := range own {
		all = append(all, layer{path: k, keep: true})
	}
	for _, k := range others {
		if !slices.Contains(hidden, k) {
			all = append(all, layer{path: k, keep: true})
		}
	}
	// By path, a tmpfs before a put-back at the same path: sorted, a
	// directory comes before what it holds.
	slices.SortStableFunc(all, func(a, b layer) int {
		if c := strings.Compare(a.path, b.path); c != 0 {
			return c
		}
		switch {
		case a.keep == b.keep:
			return 0
		case a.keep:
			return 1
		}
		return -1
	})
	var out []layer
	for _, l := range all {
		// The innermost mount made so far that holds l.path decides
		// what is seen there.
		var under *layer
		for i := range out {
			if within(l.path, out[i].path) && (under == nil || len(out[i].path) >= len(under.path)) {
				under = &out[i]
			}
		}
		switch {
		case l.keep && (under == nil || under.keep):
			continue // not covered, or put back already
		case !l.keep && under != nil && !under.keep:
			continue // covered already
		}
		out = append(out, l)
	}
	return out
}

// hiddenDirs resolves dirs (symbolic links followed: /var/run is often
// /run), drops those that do not exist, the root and duplicates, and
// sorts them. A directory inside another stays: a kept path may put
// the outer one back in part.
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
	slices.Sort(out)
	return slices.Compact(out)
}

// keepCandidates are the paths a step needs to see where they are: its
// own, the policy's visible and writable paths, the working directory and
// HOME (a HOME that is /tmp itself, as some containers have, is put back
// whole: the step needs it more than it needs it hidden), and others:
// every PATH directory, the program (and what its link points to) and its
// directory, and the targets of /etc's links (resolv.conf often points
// into /run).
func keepCandidates(p Policy, program string) (own, others []string) {
	own = slices.Concat(p.Visible, p.Writable)
	if wd, err := os.Getwd(); err == nil {
		own = append(own, wd)
	}
	if h := os.Getenv("HOME"); h != "" {
		own = append(own, h)
	}
	others = append(others, filepath.SplitList(os.Getenv("PATH"))...)
	// The program itself too: where its directory is a hidden one, it
	// is put back alone.
	others = append(others, program, filepath.Dir(program))
	if r, err := filepath.EvalSymlinks(program); err == nil {
		others = append(others, r, filepath.Dir(r))
	}
	if entries, err := os.ReadDir("/etc"); err == nil {
		for _, e := range entries {
			if e.Type()&os.ModeSymlink != 0 {
				others = append(others, filepath.Join("/etc", e.Name()))
			}
		}
	}
	return own, others
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
