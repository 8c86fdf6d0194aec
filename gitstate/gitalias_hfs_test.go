package gitstate

import (
	"strings"
	"testing"
)

// TestHFSIsMatchesItsDefinition: hfsIs, with its shortcut for ASCII
// names, answers as the definition does (the name without the code points
// HFS+ ignores, compared without regard to case).
func TestHFSIsMatchesItsDefinition(t *testing.T) {
	definition := func(name, want string) bool {
		var b strings.Builder
		for _, r := range name {
			if (r >= 0x200c && r <= 0x200f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x206a && r <= 0x206f) || r == 0xfeff {
				continue
			}
			b.WriteRune(r)
		}
		return strings.EqualFold(b.String(), want)
	}
	names := []string{".git", ".GIT", ".Git", "git", ".git.", ".gitx", "x.git", "", ".g\u200cit", "\ufeff.GIT",
		".gi\u212a", ".gitmodules", ".GITMODULES", ".gitmodule\u212a", ".git\u200dmodules", "f000123.txt", "src"}
	for _, want := range []string{".git", ".gitmodules"} {
		for _, n := range names {
			if got, def := hfsIs(n, want), definition(n, want); got != def {
				t.Errorf("hfsIs(%q, %q) = %v, want %v", n, want, got, def)
			}
		}
	}
}
