package gitstate

import "strings"

// GitAlias reports whether name is .git to NTFS or HFS+ as git's fsck
// judges (is_ntfs_dotgit, is_hfs_dotgit): in any case, ".git" or its
// short name "git~1" (to "git~4") followed by nothing but spaces and
// periods up to the end or a ":" (an alternate data stream), or ".git"
// with code points HFS+ ignores (zero-width joiners, direction marks,
// the byte order mark) anywhere in it. git add refuses the NTFS forms
// (core.protectNTFS), and git fsck --strict any tree that holds one.
func GitAlias(name string) bool {
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

// hasGitAlias reports whether a directory or the name of the path p
// (slash-separated) is a GitAlias.
func hasGitAlias(p string) bool {
	for name := range strings.SplitSeq(p, "/") {
		if GitAlias(name) {
			return true
		}
	}
	return false
}
