package gitstate

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/codemachine/codemachine/internal/fastread"
)

// errRefBeingWritten is a loose ref file read empty: git has created it
// and not yet written its hash.
var errRefBeingWritten = errors.New("a ref file is empty (being written)")

// perWorktreeRefs are the namespaces git keeps in each worktree's own git
// dir instead of the shared one.
var perWorktreeRefs = []string{"refs/bisect/", "refs/worktree/", "refs/rewritten/"}

// refsFast lists the refs under prefix as git's files backend stores them,
// reading only the directory that can hold them and packed-refs: go-git
// reads every file under refs/ (every branch, tag and remote-tracking
// branch) for each listing, and `status` lists twice. Loose files win over
// packed-refs; symbolic refs and <ref>.lock files are left out, as
// RefsWithPrefix says. ok is false when it cannot tell (a reftable
// repository, a prefix that reaches per-worktree refs, a file that is no
// ref): go-git answers then.
func refsFast(commonDir, prefix string) (refs map[string]string, ok bool, err error) {
	if !strings.HasPrefix(prefix, "refs/") || strings.Contains(prefix, "..") || strings.Contains(prefix, "\\") {
		return nil, false, nil
	}
	for _, p := range perWorktreeRefs {
		if strings.HasPrefix(prefix, p) || strings.HasPrefix(p, prefix) {
			return nil, false, nil
		}
	}
	if _, err := os.Lstat(filepath.Join(commonDir, "reftable")); err == nil {
		return nil, false, nil
	}
	refs = map[string]string{}
	if ok := packedWithPrefix(commonDir, prefix, refs); !ok {
		return nil, false, nil
	}
	// The deepest directory every name with prefix lies in.
	dir := path.Dir(prefix + "x")
	err = filepath.WalkDir(filepath.Join(commonDir, filepath.FromSlash(dir)), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if noLooseRefs(err) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(commonDir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) || strings.HasSuffix(name, ".lock") {
			return nil
		}
		if !d.Type().IsRegular() {
			return errNotARef
		}
		data, err := fastread.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since the directory was read: packed-refs holds it, or it is gone
		}
		if err != nil {
			return err
		}
		v := strings.TrimSpace(string(data))
		switch {
		case v == "":
			return errRefBeingWritten
		case strings.HasPrefix(v, "ref:"):
			delete(refs, name) // symbolic: no hash reference
		case isHash(v) && len(v) == 2*hashLen:
			refs[name] = v
		default:
			return errNotARef
		}
		return nil
	})
	if errors.Is(err, errNotARef) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	return refs, true, nil
}

// noLooseRefs reports whether a walk error means that no loose ref is
// there: none, or one deleted meanwhile; or a ref where a directory would
// be (a branch named "codemachine" beside refs/heads/codemachine/...),
// beside which git can store no ref under prefix.
func noLooseRefs(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// errNotARef is a file under refs/ that is not a ref as this reader knows
// them; go-git judges it instead.
var errNotARef = errors.New("not a ref")

// packedWithPrefix adds packed-refs' refs under prefix to refs; false when
// the file is not as git writes it.
func packedWithPrefix(commonDir, prefix string, refs map[string]string) bool {
	return eachPackedRef(commonDir, func(name, hash string) bool {
		if strings.HasPrefix(name, prefix) {
			refs[name] = hash
		}
		return true
	})
}

// eachPackedRef calls fn with each ref of packed-refs (none when there is
// no such file) until fn returns false; false when the file cannot be read
// or is not as git writes it.
func eachPackedRef(commonDir string, fn func(name, hash string) bool) bool {
	data, err := fastread.ReadFile(filepath.Join(commonDir, "packed-refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		h, name, found := strings.Cut(line, " ")
		if !found || !isHash(h) || len(h) != 2*hashLen {
			return false
		}
		if !fn(name, h) {
			return true
		}
	}
	return true
}
