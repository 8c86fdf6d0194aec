package gitstate

import (
	"fmt"
	"strings"
)

// GitAliasError is a path a step made with a component that git takes for
// .git on another system (IsGitAlias), or a symbolic link whose name git
// takes for .gitmodules there (IsGitmodulesAlias): git add refuses such a
// path (core.protectNTFS, core.protectHFS), and git update-index drops it
// with no more than a warning, so the step would land without it.
type GitAliasError struct {
	Path string // slash-separated, relative to the worktree
	Name string // the component git takes for .git, or the link's name
	// Link says Path is a symbolic link named like .gitmodules.
	Link bool
}

// Error names the path that aliases .git and why it is refused.
func (e *GitAliasError) Error() string {
	if e.Link {
		return fmt.Sprintf("the step made %s a symbolic link, whose name %q is .gitmodules on Windows or macOS (git refuses it: gitmodulesSymlink)", e.Path, e.Name)
	}
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
	return hfsIs(name, ".git")
}

// IsGitmodulesAlias reports whether name is .gitmodules to NTFS or HFS+
// as git's fsck judges (is_ntfs_dotgitmodules, is_hfs_dotgitmodules),
// which refuses a symbolic link of that name (gitmodulesSymlink: a
// checkout there would read the link's target as the submodules'
// configuration): in any case, ".gitmodules", its short name "gitmod~1"
// (to "gitmod~4") or the short name NTFS falls back to ("gi7eba~N"),
// followed by nothing but spaces and periods up to the end or a ":", or
// ".gitmodules" with code points HFS+ ignores anywhere in it.
func IsGitmodulesAlias(name string) bool {
	lower := strings.ToLower(name)
	rest, ok := strings.CutPrefix(lower, ".gitmodules")
	if !ok && len(lower) >= 8 && strings.HasPrefix(lower, "gitmod~") && lower[7] >= '1' && lower[7] <= '4' {
		rest, ok = lower[8:], true
	}
	if !ok {
		rest, ok = ntfsFallbackName(name, "gi7eba")
	}
	if ok {
		before, _, _ := strings.Cut(rest, ":")
		if strings.Trim(before, " .") == "" {
			return true
		}
	}
	return hfsIs(name, ".gitmodules")
}

// ntfsFallbackName matches name against the short name NTFS makes when
// the plain one is taken, as git's is_ntfs_dot_generic does: up to six
// characters of prefix (compared without regard to ASCII case), "~", a
// digit from 1 to 9 and more digits, eight characters in all. It returns
// what follows them.
func ntfsFallbackName(name, prefix string) (rest string, ok bool) {
	sawTilde := false
	for i := 0; i < 8; i++ {
		if i >= len(name) {
			return "", false
		}
		c := name[i]
		switch {
		case sawTilde:
			if c < '0' || c > '9' {
				return "", false
			}
		case c == '~':
			i++
			if i >= len(name) || name[i] < '1' || name[i] > '9' {
				return "", false
			}
			sawTilde = true
		case i >= 6 || c&0x80 != 0:
			return "", false
		default:
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != prefix[i] {
				return "", false
			}
		}
	}
	return strings.ToLower(name[8:]), true
}

// hfsIs reports whether name is want (compared without regard to case)
// once the code points HFS+ ignores (zero-width joiners, direction marks,
// the byte order mark) are left out.
func hfsIs(name, want string) bool {
	if isASCII(name) {
		// Nothing to leave out (the ignored code points are not ASCII):
		// the stage asks this of every name in the worktree, and building
		// a copy of each was most of the time it took.
		return strings.EqualFold(name, want)
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 0x200c && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x206a && r <= 0x206f, r == 0xfeff:
			continue
		}
		b.WriteRune(r)
	}
	return strings.EqualFold(b.String(), want)
}

// isASCII reports whether s holds no byte outside ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// hasGitAlias reports whether a directory or the name of the path p
// (slash-separated) is .git elsewhere (IsGitAlias).
func hasGitAlias(p string) bool {
	return FirstGitAlias([]string{p}) != nil
}
