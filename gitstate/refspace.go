package gitstate

import (
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
