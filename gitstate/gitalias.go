package gitstate

import (
	"fmt"
	"strings"
)

// GitAliasError is a path a step made with a component that git takes for
// .git on another system (IsGitAlias): git add refuses such a name
// (core.protectNTFS, core.protectHFS), and git update-index drops it with
// no more than a warning, so the step would land without it.
type GitAliasError struct {
	Path string // slash-separated, relative to the worktree
	Name string // the component git takes for .git
}

func (e *GitAliasError) Error() string {
	return fmt.Sprintf("the step made %s, whose name %q is .git on Windows or macOS (git refuses it: hasDotgit)", e.Path, e.Name)
}

// FirstGitAlias returns the error for the first of paths (slash-separated)
// with a component IsGitAlias takes for .git, nil when there is none.
func FirstGitAlias(paths []string) *GitAliasError {
	for _, p := range paths {
		for _, name := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
			if IsGitAlias(name) {
				return &GitAliasError{Path: p, Name: name}
			}
		}
	}
	return nil
}

// IsGitAlias reports whether name is .git to NTFS or HFS+ as git's fsck
// judges (is_ntfs_dotgit, is_hfs_dotgit): in any case, ".git" or its
// short name "git~1" (to "git~4") followed by nothing but spaces and
// periods up to the end or a ":" (an alternate data stream), or ".git"
// with code points HFS+ ignores (zero-width joiners, direction marks,
// the byte order mark) anywhere in it.
func IsGitAlias(name string) bool {
	lower := strings.ToLower(name)
	rest, ok := strings.CutPrefix(lower, ".git")
	if !ok && len(lower) >= 5 && strings.HasPrefix(lower, "git~") && lower[4] >= '1' && lower[4] <= '4' {
		rest, ok = lower[5:], true
	}
	if ok {
		before, _, _ := strings.Cut(rest, ":")
		if strings.Trim(before, " .") == "" {
			return true
		}
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 0x200c && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x206a && r <= 0x206f, r == 0xfeff:
			continue
		}
		b.WriteRune(r)
	}
	return strings.EqualFold(b.String(), ".git")
}
