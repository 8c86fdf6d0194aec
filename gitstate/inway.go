package gitstate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// untrackedInWay lists the paths of the working tree at root that a
// switch making changes (from the old commit to the new) would overwrite
// or remove though the old commit does not track them. git's read-tree -m
// -u refuses to overwrite an untracked file, but not an ignored one: it
// writes a file the new commit adds over an ignored file of the user's (a
// local config, a .env.local), removes an ignored directory whole (a
// node_modules, a local database) where the new commit puts a file, and
// an ignored file or symlink where it puts a directory. A step can
// unignore any path in its own .gitignore, so that is how a step's landing
// could destroy files of the user's that git never saw. A path is in the
// way when, for a path the new commit adds: it exists; one of its
// directories is a file or a symlink that the old commit does not track
// there; or it is a directory holding a file the old commit does not have,
// or none of the old commit's at all (an empty directory of the user's).
// Sorted, nil when nothing is in the way.
func untrackedInWay(root string, changes []Change) ([]string, error) {
	tracked := make(map[string]bool, len(changes))
	for _, c := range changes {
		if c.OldMode != "" {
			tracked[c.Path] = true
		}
	}
	found := map[string]bool{}
	checkedDirs := map[string]bool{}
	for _, c := range changes {
		if c.OldMode != "" || c.NewMode == "" {
			continue
		}
		for d := path.Dir(c.Path); d != "." && !checkedDirs[d]; d = path.Dir(d) {
			checkedDirs[d] = true
			st, err := os.Lstat(filepath.Join(root, filepath.FromSlash(d)))
			if err != nil && !isAbsent(err) {
				return nil, fmt.Errorf("look for untracked files in the way: %w", err)
			}
			if err == nil && !st.IsDir() && !tracked[d] {
				found[d] = true
			}
		}
		abs := filepath.Join(root, filepath.FromSlash(c.Path))
		st, err := os.Lstat(abs)
		switch {
		case isAbsent(err):
		case err != nil:
			return nil, fmt.Errorf("look for untracked files in the way: %w", err)
		case !st.IsDir():
			found[c.Path] = true
		default:
			p, err := untrackedUnder(root, c.Path, tracked)
			if err != nil {
				return nil, err
			}
			switch {
			case p != "":
				found[p] = true
			case !trackedUnder(tracked, c.Path):
				// Empty, or only empty directories: git would remove
				// it, the staged switch cannot rename a file over it.
				found[c.Path] = true
			}
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(found))
	for p := range found {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// untrackedUnder returns the first file or symlink under the directory dir
// (relative to root) that is not tracked, "" when there is none.
func untrackedUnder(root, dir string, tracked map[string]bool) (string, error) {
	var first string
	err := filepath.WalkDir(filepath.Join(root, filepath.FromSlash(dir)), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); !tracked[rel] {
			first = rel
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("look for untracked files in the way under %s: %w", dir, err)
	}
	return first, nil
}

// trackedUnder reports whether one of the tracked paths is under dir.
func trackedUnder(tracked map[string]bool, dir string) bool {
	for p := range tracked {
		if strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}

// isAbsent reports whether err says a path does not exist (or one of its
// directories is not a directory).
func isAbsent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// inWayConflict is the conflict of a switch that untrackedInWay refuses.
func inWayConflict(paths []string) *switchConflict {
	return &switchConflict{
		paths: paths,
		msg:   "untracked or ignored files would be overwritten or removed by the landing: " + strings.Join(paths, ", "),
	}
}

// checkInWay returns an inWayConflict when the switch of the working tree
// at root from old to new would overwrite or remove a file that old does
// not track (untrackedInWay), which read-tree -m -u does for ignored ones.
func (r *Repo) checkInWay(root, old, new string) error {
	changes, err := r.diffTreesInProcess(old, new)
	if err != nil {
		return fmt.Errorf("diff %s %s: %w", short(old), short(new), err)
	}
	inWay, err := untrackedInWay(root, changes)
	if err != nil {
		return err
	}
	if len(inWay) > 0 {
		return inWayConflict(inWay)
	}
	return nil
}
