package orchestrator

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// verify checks a finished unit's change before it may land (DESIGN 8): its
// outputs exist, it left state.yaml and .git alone, and it adds no secrets
// or symlinks out of the repository. It returns "" when all is well.
func (j *job) verify(c *candidate) string {
	snap, u, dir := j.snap, j.u, j.wt.Path()
	after, ours, err := j.rs.snapshotGit(j.wt)
	if err != nil {
		return "the agent damaged its worktree's .git: " + err.Error()
	}
	changes := c.changes
	for _, c := range changes {
		if c.Path == workflow.StateFile {
			return "the agent modified " + workflow.StateFile + " (only codemachine writes it)"
		}
	}
	if touched := j.touchedGit(after, ours); len(touched) > 0 {
		return "the agent wrote inside .git/: " + strings.Join(touched, ", ")
	}
	for _, pattern := range u.step.Outputs {
		if !outputExists(snap, pattern, changes) {
			return fmt.Sprintf("output %s does not exist after the step (it must be produced and committed)", pattern)
		}
	}
	if msg := checkFiles(snap.project.Workflow.MaxFileSizeFor(u.step), dir, changes); msg != "" {
		return msg
	}
	for _, c := range changes {
		if c.NewMode == "120000" {
			if target, err := os.Readlink(filepath.Join(dir, filepath.FromSlash(c.Path))); err == nil && escapes(c.Path, target) {
				return fmt.Sprintf("symlink %s points outside the repository (%s)", c.Path, target)
			}
		}
	}
	scan := changes
	if u.task != nil && !c.agentEditedPlan {
		// The plan changed by codemachine's tick alone: nothing to scan,
		// and a long plan would be scanned at every landing.
		scan = slices.DeleteFunc(slices.Clone(changes), func(ch gitstate.Change) bool { return ch.Path == u.step.Foreach })
	}
	if msg := findSecrets(snap.project.Workflow.AllowSecrets, dir, scan); msg != "" {
		return msg
	}
	return ""
}

// touchedGit lists what changed in .git between the snapshot taken before
// the agent ran and after, leaving out what the agent did not do: the
// user's commits on the working branch and the branches the run itself
// wrote meanwhile (ours, as they were when after was taken).
func (j *job) touchedGit(after gitstate.GitSnapshot, ours map[string]string) []string {
	before := j.gitBefore
	ignore := j.o.userCommits(j.rs.branch, before, after)
	for ref, hash := range ours {
		// A branch this run wrote while the unit ran (another task's
		// conflict or review branch, or one it deleted: "") is not the
		// agent's doing, as long as it is still where the run put it.
		if before.Refs[ref] != hash && after.Refs[ref] == hash {
			ignore[ref] = true
		}
	}
	return before.Changed(after, ignore)
}

// userCommits returns the working branch's ref when it moved forward while
// the unit ran: the user committed meanwhile, which landing handles by
// rebasing the step (DESIGN 8), so it is not the agent writing inside .git.
// A branch moved anywhere else (reset, rewritten) still fails the step.
func (o *Orchestrator) userCommits(branch string, before, after gitstate.GitSnapshot) map[string]bool {
	ref := "refs/heads/" + branch
	old, now := before.Refs[ref], after.Refs[ref]
	if old == "" || now == "" || old == now {
		return map[string]bool{}
	}
	if ok, err := o.repo.IsAncestor(old, now); err != nil || !ok {
		return map[string]bool{}
	}
	return map[string]bool{ref: true}
}

// outputExists reports whether pattern matches a file of the step's result:
// a file of the base commit it did not delete, or one it added or changed.
func outputExists(snap *snapshot, pattern string, changes []gitstate.Change) bool {
	deleted := map[string]bool{}
	for _, c := range changes {
		if ok, _ := doublestar.Match(pattern, c.Path); ok {
			if c.Status == 'D' {
				deleted[c.Path] = true
			} else {
				return true
			}
		}
	}
	matches, err := doublestar.Glob(snap.fsys, pattern, doublestar.WithFilesOnly())
	if err != nil {
		return false
	}
	for _, m := range matches {
		if !deleted[m] {
			return true
		}
	}
	return false
}

// checkFiles refuses a nested git repository (git add records it as a
// gitlink, which would land without its content) and a file added or
// changed over the step's max_file_size that it does not allow.
func checkFiles(limit workflow.FileSize, dir string, changes []gitstate.Change) string {
	for _, c := range changes {
		switch {
		case c.Status == 'D':
		case c.NewMode == "160000":
			return fmt.Sprintf("the step made a nested git repository at %s (it would land as a gitlink without its files): remove %s/.git, or make it a submodule yourself", c.Path, c.Path)
		case c.NewMode == "100644" || c.NewMode == "100755":
			st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(c.Path)))
			if err != nil || st.Size() <= limit.Limit || matchesAny(limit.Allow, c.Path) {
				continue
			}
			return fmt.Sprintf("%s is %s, over max_file_size (%s): allow it with max_file_size: {allow: [%s]}, or raise the limit",
				c.Path, workflow.FormatSize(st.Size()), workflow.FormatSize(limit.Limit), c.Path)
		}
	}
	return ""
}

// matchesAny reports whether p matches one of the globs.
func matchesAny(globs []string, p string) bool {
	for _, g := range globs {
		if ok, _ := doublestar.Match(g, p); ok {
			return true
		}
	}
	return false
}

// escapes reports whether a symlink at linkPath with target leaves the
// repository.
func escapes(linkPath, target string) bool {
	if path.IsAbs(target) || filepath.IsAbs(target) {
		return true
	}
	joined := path.Clean(path.Join(path.Dir(linkPath), filepath.ToSlash(target)))
	return joined == ".." || strings.HasPrefix(joined, "../")
}
