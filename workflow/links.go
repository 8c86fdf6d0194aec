package workflow

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// LinkError is a file of the definition (the workflow, an agent, a plan,
// an items list) that is a symbolic link or lies under one. A run reads
// them as committed, where a link is a file holding its target's name, not
// the target's content; validate reads the working tree, where the link
// would be followed. So that both read the same thing, a link is refused.
type LinkError struct {
	// Path is the link: the file itself or a directory on its way.
	Path   string
	Target string
}

// Error names the link, its target and what to replace it with.
func (e *LinkError) Error() string {
	return fmt.Sprintf("%s is a symbolic link (to %s): codemachine reads its files as committed, where a link is not followed; replace the link with what it points to", e.Path, e.Target)
}

// readDefFile reads name from fsys as fs.ReadFile does, refusing it with
// a *LinkError when it, or a directory on its way, is a symbolic link.
func readDefFile(fsys fs.FS, name string) ([]byte, error) {
	if err := CheckNoLink(fsys, name); err != nil {
		return nil, err
	}
	return ReadRegular(fsys, name)
}

// ErrNotRegular is a named pipe, socket or device where a file is read.
// Opening a named pipe waits for a writer, for ever: such a thing in the
// working tree would hang validate, so it is refused before it is opened.
var ErrNotRegular = errors.New("not a regular file (a named pipe, socket or device), which codemachine does not read")

// ReadRegular reads name from fsys as fs.ReadFile does, refusing with
// ErrNotRegular what is neither a regular file nor a directory (the read
// of a directory fails as it does).
func ReadRegular(fsys fs.FS, name string) ([]byte, error) {
	if fi, err := fs.Stat(fsys, name); err == nil && !fi.IsDir() && !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0 {
		return nil, &fs.PathError{Op: "read", Path: name, Err: ErrNotRegular}
	}
	return fs.ReadFile(fsys, name)
}

// CheckNoLink returns a *LinkError for the first symbolic link on the way
// to name, name included. What does not exist is no link: the read that
// follows says so.
func CheckNoLink(fsys fs.FS, name string) error {
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '/' {
			continue
		}
		p := name[:i]
		fi, err := fs.Lstat(fsys, p)
		if err != nil {
			return nil
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := fs.ReadLink(fsys, p)
			if err != nil {
				target = "?"
			}
			return &LinkError{Path: p, Target: strings.TrimSpace(target)}
		}
	}
	return nil
}
