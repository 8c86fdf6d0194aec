package orchestrator

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
)

// bareRepoChange refuses a change that makes, or changes the HEAD, config,
// objects or refs of, a directory that git takes for a bare repository
// (HEAD, objects/ and refs/ in it, see bareRepoAt) in the candidate tree:
// landed, it would be one in the user's checkout (an embedded bare
// repository, what git's safe.bareRepository guards against), and git run
// in that directory takes it for its repository and obeys its config,
// whose core.pager (git log in a terminal), core.sshCommand (git fetch)
// and aliases are commands, run as the user outside any sandbox. tree is
// the step's candidate tree; "" when the change makes none.
func (j *job) bareRepoChange(tree string, changes []gitstate.Change) string {
	dirs := bareRepoCandidates(changes)
	if len(dirs) == 0 {
		return ""
	}
	fsys, err := j.o.repo.TreeFS(tree)
	if err != nil {
		return fmt.Sprintf("cannot check the step's %s for a bare git repository: %v", strings.Join(dirs, ", "), err)
	}
	for _, d := range dirs {
		if bareRepoAt(fsys, d) {
			return fmt.Sprintf("the step made %s a bare git repository (HEAD, objects/, refs/): git run in it in your checkout would obey its config, whose core.pager, core.sshCommand and aliases run commands; remove it, or add it yourself", d)
		}
	}
	return ""
}

// bareRepoCandidates are the directories (below the root, slash-separated,
// in order and once each) whose HEAD, config, objects/ or refs/ the
// changes add or change.
func bareRepoCandidates(changes []gitstate.Change) []string {
	var dirs []string
	seen := map[string]bool{}
	for _, c := range changes {
		if c.Status == 'D' {
			continue
		}
		parts := strings.Split(c.Path, "/")
		for i := 1; i < len(parts); i++ {
			last := i == len(parts)-1
			switch parts[i] {
			case "HEAD", "config":
				if !last {
					continue
				}
			case "objects", "refs":
				if last {
					continue
				}
			default:
				continue
			}
			if d := strings.Join(parts[:i], "/"); !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// bareRepoAt reports whether git takes the directory d of fsys for a git
// directory, as its is_git_directory does: a HEAD that is a symbolic ref
// ("ref: refs/...") or an object name, and objects and refs directories.
func bareRepoAt(fsys fs.FS, d string) bool {
	for _, sub := range []string{"objects", "refs"} {
		if st, err := fs.Stat(fsys, path.Join(d, sub)); err != nil || !st.IsDir() {
			return false
		}
	}
	f, err := fsys.Open(path.Join(d, "HEAD"))
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 256)
	n, _ := io.ReadFull(f, head)
	s := strings.TrimSpace(string(head[:n]))
	if strings.HasPrefix(s, "ref:") {
		return strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(s, "ref:")), "refs/")
	}
	return len(s) >= 40 && strings.Trim(s, "0123456789abcdef") == ""
}
