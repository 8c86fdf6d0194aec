package gitstate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrTextConflict is returned by MergeText when the two sides' changes
// overlap.
var ErrTextConflict = errors.New("the changes overlap")

// MergeText is a three-way merge of texts (git merge-file): the changes
// from base to theirs applied to ours. It returns ErrTextConflict when
// they overlap. The texts pass through files in a temporary directory
// under LocalDir, removed afterwards.
func (r *Repo) MergeText(ctx context.Context, base, ours, theirs []byte) ([]byte, error) {
	tmp := filepath.Join(r.LocalDir(), "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("merge texts: %w", err)
	}
	dir, err := os.MkdirTemp(tmp, "merge-")
	if err != nil {
		return nil, fmt.Errorf("merge texts: %w", err)
	}
	defer os.RemoveAll(dir)
	for name, data := range map[string][]byte{"base": base, "ours": ours, "theirs": theirs} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, fmt.Errorf("merge texts: %w", err)
		}
	}
	out, err := r.read(ctx, "merge-file", "-p", "-q",
		filepath.Join(dir, "ours"), filepath.Join(dir, "base"), filepath.Join(dir, "theirs"))
	if code := exitCode(err); code > 0 {
		// merge-file exits with the number of conflicts.
		return nil, ErrTextConflict
	}
	if err != nil {
		return nil, fmt.Errorf("merge texts: %w", err)
	}
	return []byte(out), nil
}
