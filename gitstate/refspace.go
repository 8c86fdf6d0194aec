package gitstate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// refSpaceParents are the refs that, when they exist, make git refuse the
// refs codemachine keeps beneath them: git stores refs as paths, so a
// branch named "codemachine" leaves no room for codemachine/review/<step>
// or codemachine/conflict/<step>, whatever the ref backend.
var refSpaceParents = []string{
	"refs/heads/codemachine",
	"refs/heads/codemachine/review",
	"refs/heads/codemachine/conflict",
	"refs/codemachine",
	"refs/codemachine/backup",
	"refs/codemachine/claims",
	"refs/codemachine/failed",
	"refs/codemachine/rejected",
	"refs/codemachine/remote",
	"refs/codemachine/results",
	"refs/codemachine/roles",
	"refs/codemachine/slots",
	"refs/codemachine/superseded",
}

// RefInTheWayError is a ref of the user's where codemachine keeps refs of
// its own beneath it.
type RefInTheWayError struct {
	Ref string // e.g. "refs/heads/codemachine"
}

// Error names the ref that blocks codemachine's and how to move it.
func (e *RefInTheWayError) Error() string {
	if branch, ok := strings.CutPrefix(e.Ref, "refs/heads/"); ok {
		return fmt.Sprintf("branch %s leaves no room for codemachine's branches %s/... (git cannot keep both): rename it, e.g. git branch -m %s %s-old",
			branch, branch, branch, branch)
	}
	return fmt.Sprintf("ref %s leaves no room for codemachine's refs %s/... (git cannot keep both): move it elsewhere, e.g. git update-ref -d %s after saving its commit",
		e.Ref, e.Ref, e.Ref)
}

// CheckRefSpace returns a *RefInTheWayError when a ref exists where
// codemachine needs a directory of refs (refSpaceParents), so that a
// command says so before it runs a step whose result it could then not
// keep. It reads the loose ref files and packed-refs only; a reftable
// repository is left to git's own error.
func (r *Repo) CheckRefSpace() error {
	if _, err := os.Lstat(filepath.Join(r.commonDir, "reftable")); err == nil {
		return nil
	}
	parents := map[string]bool{}
	for _, name := range refSpaceParents {
		parents[name] = true
		st, err := os.Lstat(filepath.Join(r.commonDir, filepath.FromSlash(name)))
		if err == nil && !st.IsDir() {
			return &RefInTheWayError{Ref: name}
		}
	}
	var found string
	eachPackedRef(r.commonDir, func(name, _ string) bool {
		if parents[name] {
			found = name
			return false
		}
		return true
	})
	if found != "" {
		return &RefInTheWayError{Ref: found}
	}
	return nil
}

// MakeRoomForRef moves aside the refs under within (e.g.
// "refs/codemachine/failed/") that leave git no room for ref: a ref named
// like one of ref's directories (refs/codemachine/failed/build before
// refs/codemachine/failed/build/T1 can be written: the step became a
// foreach) and the refs below ref (refs/codemachine/failed/build/T1 before
// refs/codemachine/failed/build: the foreach became one step). They are
// kept, not deleted, under the blocking name with ".aside-<stamp>"
// appended to it (refs/codemachine/failed/build.aside-<stamp>/T1), a name
// no step or task key takes below within. A ref for which stay says true
// (a branch the user has checked out) is left where it is. It returns the
// names it moved, old to new.
func (r *Repo) MakeRoomForRef(ctx context.Context, within, ref, stamp string, stay func(name string) bool) (map[string]string, error) {
	rest, ok := strings.CutPrefix(ref, within)
	if !ok || rest == "" {
		return nil, fmt.Errorf("make room for %s: not below %s", ref, within)
	}
	moved := map[string]string{}
	parts := strings.Split(rest, "/")
	for i := 1; i < len(parts); i++ {
		name := within + strings.Join(parts[:i], "/")
		if hash, found := r.exactRef(name); found && (stay == nil || !stay(name)) {
			to, err := r.asideName(name, stamp)
			if err != nil {
				return moved, err
			}
			if err := r.moveRef(ctx, name, to, hash); err != nil {
				return moved, err
			}
			moved[name] = to
		}
	}
	below, err := r.RefsWithPrefix(ref + "/")
	if err != nil || len(below) == 0 {
		return moved, err
	}
	aside, err := r.asideName(ref, stamp)
	if err != nil {
		return moved, err
	}
	for name, hash := range below {
		if stay != nil && stay(name) {
			continue
		}
		to := aside + "/" + strings.TrimPrefix(name, ref+"/")
		if err := r.moveRef(ctx, name, to, hash); err != nil {
			return moved, err
		}
		moved[name] = to
	}
	return moved, nil
}

// asideName is name.aside-<stamp>, or name.aside-<stamp>-<n>: the first
// that is neither a ref nor a directory of refs yet.
func (r *Repo) asideName(name, stamp string) (string, error) {
	for n := 1; n < 1000; n++ {
		to := name + ".aside-" + stamp
		if n > 1 {
			to += fmt.Sprintf("-%d", n)
		}
		refs, err := r.RefsWithPrefix(to)
		if err != nil {
			return "", err
		}
		taken := false
		for k := range refs {
			if k == to || strings.HasPrefix(k, to+"/") {
				taken = true
				break
			}
		}
		if !taken {
			return to, nil
		}
	}
	return "", fmt.Errorf("no name left to move %s aside", name)
}

// exactRef is the hash of the ref named exactly name, if there is one.
func (r *Repo) exactRef(name string) (string, bool) {
	refs, err := r.RefsWithPrefix(name)
	if err != nil {
		return "", false
	}
	hash, found := refs[name]
	return hash, found
}

// moveRef renames ref from to to (which must not exist), if from still
// points at hash.
func (r *Repo) moveRef(ctx context.Context, from, to, hash string) error {
	if err := r.UpdateRef(ctx, to, hash, "", "codemachine: moved aside from "+from); err != nil {
		return fmt.Errorf("move %s aside: %w", from, err)
	}
	if err := r.DeleteRef(ctx, from, hash); err != nil {
		return fmt.Errorf("move %s aside: %w", from, err)
	}
	return nil
}
