package gitstate

import "testing"

// TestIsGitmodulesAlias: the names git's fsck takes for .gitmodules on
// NTFS or HFS+ (is_ntfs_dotgitmodules, is_hfs_dotgitmodules), and some
// that only look like it.
func TestIsGitmodulesAlias(t *testing.T) {
	for name, want := range map[string]bool{
		".gitmodules": true, ".GITMODULES": true, ".gitmodules.": true, ".gitmodules .": true, ".gitmodules::$DATA": true,
		"gitmod~1": true, "GITMOD~4": true, "gitmod~1 ": true, "gi7eba~1": true, "GI7EBA~9": true, "gi7eb~12": true,
		".gitmodu\u200cles": true, "\ufeff.gitmodules": true,
		"gitmod~5": false, ".gitmodulesx": false, "gitmodules": false, ".gitmodule": false, "gi7ebb~1": false,
		"gi7eba~0": false, "gi7eba~1x": false, "x.gitmodules": false, "gi7eb": false, ".git": false,
	} {
		if got := IsGitmodulesAlias(name); got != want {
			t.Errorf("IsGitmodulesAlias(%q) = %v, want %v", name, got, want)
		}
	}
}
