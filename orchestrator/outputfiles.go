package orchestrator

import (
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// outputFiles is what a step's record lists of the files its glob outputs
// matched in its worktree (dir) when it finished, one a line: the files a
// commit would hold, so those .gitignore files exclude are left out.
func outputFiles(dir string, s *workflow.Step) string {
	ig := &ignores{dir: dir, patterns: map[string][]gitignore.Pattern{}}
	files := workflow.MatchedOutputs(os.DirFS(dir), s, gitstate.MaxOutputFiles, ig.ignored)
	return strings.Join(files, "\n")
}

// ignores answers whether a path is ignored by the .gitignore files on its
// way from the worktree's root, each read once.
type ignores struct {
	dir      string
	patterns map[string][]gitignore.Pattern // by directory, "" the root
}

// load is the patterns of one directory's .gitignore.
func (ig *ignores) load(d string) []gitignore.Pattern {
	if ps, ok := ig.patterns[d]; ok {
		return ps
	}
	var ps []gitignore.Pattern
	var domain []string
	if d != "" {
		domain = strings.Split(d, "/")
	}
	// As git, a .gitignore that is not a regular file is not read: a
	// named pipe would block the read forever, a link to /dev/zero fill
	// the memory. Nor is one over gitstate.MaxPatternFile (a sparse file
	// of 20 GB), which the stage refuses.
	p := filepath.Join(ig.dir, filepath.FromSlash(d), ".gitignore")
	var data []byte
	st, err := os.Lstat(p)
	if err == nil && st.Mode().IsRegular() && st.Size() <= gitstate.MaxPatternFile {
		data, err = os.ReadFile(p)
	}
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSuffix(line, "\r")
			if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
				continue
			}
			ps = append(ps, gitignore.ParsePattern(line, domain))
		}
	}
	ig.patterns[d] = ps
	return ps
}

// ignored reports whether the file p (slash-separated, relative) or a
// directory on its way is ignored.
func (ig *ignores) ignored(p string) bool {
	parts := strings.Split(p, "/")
	var ps []gitignore.Pattern
	for i := range parts {
		ps = append(ps, ig.load(path.Join(parts[:i]...))...)
		if len(ps) > 0 && gitignore.NewMatcher(ps).Match(parts[:i+1], i < len(parts)-1) {
			return true
		}
	}
	return false
}
