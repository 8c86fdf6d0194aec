package orchestrator

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// verify checks a finished unit's change before it may land: its
// outputs exist, it left state.yaml, the workflow's definition and .git
// alone, and it adds no secrets or symlinks out of the repository or into
// .git. It returns "" when all is well.
func (j *job) verify(c *candidate) string {
	snap, u, dir := j.snap, j.u, j.wt.Path()
	changes := c.changes
	for _, c := range changes {
		if c.Path == workflow.StateFile {
			return "the step modified " + workflow.StateFile + " (only codemachine writes it)"
		}
	}
	if msg := feedbackChange(u.key(), changes); msg != "" {
		return msg
	}
	if msg := recordingChange(changes); msg != "" {
		return msg
	}
	if msg := definitionChange(u.step, snap.project.DefinitionFiles, changes); msg != "" {
		return msg
	}
	if msg := j.gitReadsChange(changes); msg != "" {
		return msg
	}
	if touched := j.touchedGit(); len(touched) > 0 {
		return "the agent wrote inside .git/: " + strings.Join(touched, ", ")
	}
	for _, pattern := range u.step.Outputs {
		if !outputExists(snap, pattern, changes) {
			if ignored := ignoredOutput(dir, pattern); ignored != "" {
				return fmt.Sprintf("output %s: the step wrote %s, but git ignores it (.gitignore), so it cannot be committed: stop ignoring it, or leave it out of outputs", pattern, ignored)
			}
			return fmt.Sprintf("output %s does not exist after the step (it must be produced and committed)", pattern)
		}
	}
	if msg := gitAliasPath(changes); msg != "" {
		return msg
	}
	if msg := j.writableChange(changes); msg != "" {
		return msg
	}
	if msg := checkFiles(snap.project.Workflow.MaxFileSizeFor(u.step), dir, changes); msg != "" {
		return msg
	}
	for _, c := range changes {
		if c.NewMode == "120000" {
			if msg := linkProblem(dir, c.Path); msg != "" {
				return msg
			}
		}
	}
	if msg := j.relinkProblem(c.tree, changes); msg != "" {
		return msg
	}
	if msg := j.bareRepoChange(c.tree, changes); msg != "" {
		return msg
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

// feedbackChange refuses a change to the review feedback of
// .codemachine/feedback but the removal of the unit's own (key's), which
// its step commit consumes: feedback is written by a rejection only, and a
// step's agent is given its own as the reviewer's reasons to address. A
// step that planted feedback for another step would speak to that step's
// agent (one with sandbox: off, say) as its reviewer; one that removed
// it would silence the reviewer. "" when the change leaves it alone.
func feedbackChange(key string, changes []gitstate.Change) string {
	for _, c := range changes {
		if c.Path != workflow.FeedbackDir && !strings.HasPrefix(c.Path, workflow.FeedbackDir+"/") {
			continue
		}
		if c.Path == feedbackPath(key) && c.Status == 'D' {
			continue
		}
		return fmt.Sprintf("the step changed %s: review feedback is written by a rejection only (its step's agent is given it as the reviewer's)", c.Path)
	}
	return ""
}

// recordingChange refuses a change below .codemachine/recordings: only
// codemachine writes recordings there (run --record, after the step and
// outside its change), and a later run --engine replay takes them as what
// its agents did and what its reviewer agents answered. A step that
// planted one could land anything in a later replay, or approve its own
// (or another step's) change there. "" when the change leaves them alone.
func recordingChange(changes []gitstate.Change) string {
	for _, c := range changes {
		if c.Path == workflow.RecordingDir || strings.HasPrefix(c.Path, workflow.RecordingDir+"/") {
			return fmt.Sprintf("the step changed %s: recordings are written by run --record only (a later run --engine replay takes them as what its agents and reviewer agents did)", c.Path)
		}
	}
	return ""
}

// writableChange refuses a change below a writable path of the
// workflow's sandbox that lies in the user's working tree (target, a
// cache): the landing writes the user's checkout there, outside the
// sandbox, while other steps, allowed to write there, may be running. One
// of them could turn a directory on the path into a symbolic link between
// the landing's check and its rename, and have the landed file written,
// or the replaced one moved away, wherever the link leads (~/.bashrc).
// The writable path itself, and the directories above it, are in
// directories no step may write. "" when the change stays out of them.
func (j *job) writableChange(changes []gitstate.Change) string {
	root, err := filepath.EvalSymlinks(j.o.repo.Root())
	if err != nil {
		return ""
	}
	var inTree []string
	for _, w := range j.o.workflowWritable(j.snap.project.Workflow) {
		if rel, err := filepath.Rel(root, w); err == nil && filepath.IsLocal(rel) {
			inTree = append(inTree, filepath.ToSlash(rel))
		}
	}
	for _, c := range changes {
		for _, w := range inTree {
			if strings.HasPrefix(c.Path, w+"/") {
				return fmt.Sprintf("the step changed %s, where the sandbox lets steps write your working tree (writable: %s): codemachine does not land files there, as other steps may be changing it meanwhile", c.Path, w)
			}
		}
	}
	return ""
}

// definitionChange refuses a change to the workflow's definition: a file
// it was read from or looked for at the unit's base (workflow.yaml, the
// agents, what a local uses: imports; an agent added where the parse
// looked for one counts, as does a deletion, and a file put where one of
// their directories was). The run reloads the workflow after every
// landing, so such an edit would take effect in the same run: a sandboxed
// step could add a step with sandbox: off, or turn sandbox: required off,
// and have it run at once. A path that one of the step's outputs names
// literally may be written (a step that generates the workflow), but only
// when the step is the repository's own: a step a git source imports
// cannot grant itself that. Globs do not allow it, so that outputs such as
// ".codemachine/*" or "**" do not open the definition unawares. "" when
// the change leaves the definition alone.
func definitionChange(step *workflow.Step, files []string, changes []gitstate.Change) string {
	if len(files) == 0 {
		return ""
	}
	own := step.Source == nil || step.Source.Commit == ""
	for _, c := range changes {
		for _, f := range definitionPaths(files, c.Path) {
			if own && slices.Contains(step.Outputs, f) {
				continue
			}
			verb := "changed"
			switch {
			case f != c.Path:
				return fmt.Sprintf("the step changed %s, where the workflow's definition reads %s (a step may not change the workflow it runs in)", c.Path, f)
			case c.Status == 'D':
				verb = "deleted"
			case c.Status == 'A':
				verb = "added"
			}
			hint := ""
			if own {
				hint = "; list it in the step's outputs to allow it"
			}
			return fmt.Sprintf("the step %s %s, part of the workflow's definition (a step may not change the workflow it runs in%s)", verb, f, hint)
		}
	}
	return ""
}

// definitionPaths are the paths of files (sorted) that a change at p
// affects: p itself, or those under p (p was or becomes a file or a
// symlink where they have a directory).
func definitionPaths(files []string, p string) []string {
	var out []string
	i, _ := slices.BinarySearch(files, p)
	for ; i < len(files); i++ {
		f := files[i]
		if f != p && !strings.HasPrefix(f, p+"/") {
			// Sorted: the paths under p follow p and those of names
			// that only start with p ("p-x", "p.md"), which sort before "p/".
			if !strings.HasPrefix(f, p) {
				break
			}
			continue
		}
		out = append(out, f)
	}
	return out
}

// gitReadsChange refuses a change of what git takes from the working
// tree: its hooks directory where core.hooksPath puts it there
// (.githooks, husky's .husky/_), or a file its configuration includes
// (include.path = ../.gitconfig), or a path above them. Git runs those
// hooks and obeys that configuration (core.hooksPath, core.fsmonitor,
// aliases) outside the sandbox, the user's git and codemachine's own,
// which runs the reference-transaction hook when it moves the branch at
// a landing. "" when the change leaves them alone.
func (j *job) gitReadsChange(changes []gitstate.Change) string {
	ctx := context.Background()
	fail := func(err error) string { return "cannot tell what git reads from the working tree: " + err.Error() }
	hooks, err := j.o.repo.HooksDir(ctx)
	if err != nil {
		return fail(err)
	}
	included, err := j.o.repo.IncludedConfigFiles(ctx)
	if err != nil {
		return fail(err)
	}
	root, err := filepath.EvalSymlinks(j.o.repo.Root())
	if err != nil {
		return fail(err)
	}
	what := map[string]string{}
	for i, p := range append([]string{hooks}, included...) {
		rel, err := filepath.Rel(root, resolveExisting(filepath.Clean(p)))
		if err != nil || !filepath.IsLocal(rel) {
			continue
		}
		what[filepath.ToSlash(rel)] = "which git's configuration includes (include.path): git obeys it outside the sandbox, codemachine's git included"
		if i == 0 {
			what[filepath.ToSlash(rel)] = "in git's hooks directory (core.hooksPath): git runs what is there outside the sandbox, codemachine's git at the next landing included"
		}
	}
	for _, c := range changes {
		for p, why := range what {
			in := c.Path == p || strings.HasPrefix(c.Path, p+"/") || strings.HasPrefix(p, c.Path+"/")
			if in || p == "." && !strings.Contains(c.Path, "/") {
				return fmt.Sprintf("the step changed %s, %s", c.Path, why)
			}
		}
	}
	return ""
}

// touchedGit lists the config and hooks an unsandboxed agent changed in
// the user's git directory (see gitstate.GitSnapshot). In the sandbox the
// git directory is read-only to the agent: whatever changes there meanwhile
// (a checkout, gc, add or commit) is the user's and is not looked at.
func (j *job) touchedGit() []string {
	if j.sandboxed() || j.gitBefore.Files == nil {
		return nil
	}
	after, err := j.o.repo.SnapshotGitDir()
	if err != nil {
		return []string{err.Error()}
	}
	return j.gitBefore.Changed(after)
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

// ignoredOutput is a file matching an output pattern that the step left
// in its worktree dir although its staged tree lacks it (staging adds
// every file git does not ignore), "" when there is none: an output that
// exists but can never land.
func ignoredOutput(dir, pattern string) string {
	matches, err := doublestar.Glob(os.DirFS(dir), pattern, doublestar.WithFilesOnly(), doublestar.WithFailOnIOErrors())
	if err != nil {
		return ""
	}
	for _, m := range matches {
		if m != ".git" && !strings.HasPrefix(m, ".git/") {
			return m
		}
	}
	return ""
}

// checkFiles refuses a nested git repository (git add records it as a
// gitlink, which would land without its content) and a file added or
// changed over the step's max_file_size that it does not allow.
func checkFiles(limit workflow.FileSize, dir string, changes []gitstate.Change) string {
	for _, c := range changes {
		switch {
		case c.Status == 'D':
		case c.NewMode == "160000":
			return nestedRepo(c.Path)
		case c.NewMode == "100644" || c.NewMode == "100755":
			st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(c.Path)))
			if err != nil || !limit.Refuses(c.Path, st.Size()) {
				continue
			}
			return oversize(limit, c.Path, st.Size())
		}
	}
	return ""
}

// nestedRepo says why the nested repository at p may not land.
func nestedRepo(p string) string {
	return fmt.Sprintf("the step made a nested git repository at %s (it would land as a gitlink without its files): remove %s/.git, or make it a submodule yourself", p, p)
}

// oversize says why the file p of size bytes may not land: it is over
// limit.
func oversize(limit workflow.FileSize, p string, size int64) string {
	return fmt.Sprintf("%s is %s, over max_file_size (%s): allow it with max_file_size: {allow: [%s]}, or raise the limit",
		p, workflow.FormatSize(size), workflow.FormatSize(limit.Limit), p)
}

// maxLinkHops is how many symlinks resolving one link may follow, as
// Linux's MAXSYMLINKS: more is a loop.
const maxLinkHops = 40

// linkProblem says why the symlink at linkPath (relative to the worktree
// root) may not land, "" when it may: it leads out of the repository, or
// into a .git (the user's, a nested repository's, a submodule's), where
// whatever later writes through it (a tool, a hook, the user's editor)
// would change git's config, hooks or refs in the user's checkout.
func linkProblem(root, linkPath string) string {
	return linkProblemThrough(root, linkPath, nil)
}

// linkProblemThrough is linkProblem for a link whose resolution passes
// through one of the paths through (slash-separated, relative to root):
// "" for one that does not. Nil through takes every link.
func linkProblemThrough(root, linkPath string, through map[string]bool) string {
	target, err := os.Readlink(filepath.Join(root, filepath.FromSlash(linkPath)))
	if err != nil {
		return ""
	}
	passed := through == nil
	resolved, outside, loop := resolveLink(root, linkPath, target, func(p string) { passed = passed || through[p] })
	if !passed {
		return ""
	}
	switch {
	case loop:
		return fmt.Sprintf("symlink %s does not resolve (%s): more than %d symlinks in a row", linkPath, target, maxLinkHops)
	case outside:
		return fmt.Sprintf("symlink %s points outside the repository (%s)", linkPath, target)
	case resolved != "":
		return fmt.Sprintf("symlink %s points into %s (%s): writing through it would change a git directory", linkPath, resolved, target)
	}
	return ""
}

// relinkProblem checks again, when the change adds, changes or removes
// a symbolic link, the links of the candidate tree it left alone whose
// resolution passes through the changed one: each was checked as it
// landed, but resolves anew. (The user's own links elsewhere stay as the
// user made them, out of the repository or not.)
// An earlier l -> x/d/../../v stayed inside while x/d was a directory;
// the change's x/d -> .. (inside itself) makes l point outside the
// repository. "" when no link of the tree leads outside or into a .git.
func (j *job) relinkProblem(tree string, changes []gitstate.Change) string {
	changed, through := map[string]bool{}, map[string]bool{}
	var relinked []string
	for _, c := range changes {
		changed[c.Path] = true
		if c.OldMode == "120000" || c.NewMode == "120000" {
			relinked = append(relinked, c.Path)
			through[c.Path] = true
		}
	}
	if len(relinked) == 0 {
		return ""
	}
	fsys, err := j.o.repo.TreeFS(tree)
	if err != nil {
		return fmt.Sprintf("cannot check the symbolic links the step's %s changes: %v", strings.Join(relinked, ", "), err)
	}
	var msg string
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 || changed[p] {
			return nil
		}
		if m := linkProblemThrough(j.wt.Path(), p, through); m != "" {
			msg = fmt.Sprintf("%s, through the symbolic links the step changed (%s)", m, strings.Join(relinked, ", "))
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return fmt.Sprintf("cannot check the symbolic links the step's %s changes: %v", strings.Join(relinked, ", "), err)
	}
	return msg
}

// resolveLink resolves target, the target of the symlink at linkPath, in
// the worktree at root, as the user's checkout will once it lands:
// component by component, following the symlinks it meets (the step's own
// and those of its base), where a lexical clean would take "d/.." for the
// link's own directory whatever d links to. outside is set when it leaves
// the repository, loop when it follows too many symlinks; gitDir is the
// path up to a .git it enters ("" for none), where resolving stops: that
// .git is the scratch repository in the worktree, and the user's in the
// checkout.
func resolveLink(root, linkPath, target string, seen func(p string)) (gitDir string, outside, loop bool) {
	var done []string
	if d := path.Dir(linkPath); d != "." {
		done = strings.Split(d, "/")
	}
	rest := strings.Split(filepath.ToSlash(target), "/")
	if path.IsAbs(target) || filepath.IsAbs(target) {
		return "", true, false
	}
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch {
		case c == "" || c == ".":
			continue
		case c == "..":
			if len(done) == 0 {
				return "", true, false
			}
			done = done[:len(done)-1]
			continue
		}
		done = append(done, c)
		seen(path.Join(done...))
		if isGitDirName(c) {
			return path.Join(done...), false, false
		}
		next, err := os.Readlink(filepath.Join(root, filepath.FromSlash(path.Join(done...))))
		if err != nil {
			// Not a symlink, or absent: a dangling link is resolved
			// as far as its target names.
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", false, true
		}
		if path.IsAbs(next) || filepath.IsAbs(next) {
			return "", true, false
		}
		done = done[:len(done)-1]
		rest = append(strings.Split(filepath.ToSlash(next), "/"), rest...)
	}
	return "", false, false
}

// isGitDirName reports whether a path component names a git directory.
// Where file names are case-insensitive by default (macOS, Windows),
// ".GIT" is the same directory as ".git".
func isGitDirName(c string) bool {
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		return strings.EqualFold(c, ".git")
	}
	return c == ".git"
}

// gitAliasPath refuses a change that adds a path with a component git
// takes for .git on another system (gitstate.IsGitAlias), or a symbolic
// link it takes for .gitmodules there (gitstate.IsGitmodulesAlias): git
// add refuses such names (core.protectNTFS) and Stage leaves them out
// (Worktree.GitAlias); should one reach a tree all the same, it would land
// on the user's branch, which
// git fsck (and so a forge that checks pushes) rejects as hasDotgit or
// gitmodulesSymlink, and where a checkout on Windows or macOS would write
// into that clone's .git ("out/.git./config" is "out/.git/config" on
// NTFS) or read the link's target as its submodules. "" when there is
// none.
func gitAliasPath(changes []gitstate.Change) string {
	var added []string
	for _, c := range changes {
		if c.Status != 'D' {
			added = append(added, c.Path)
		}
	}
	if e := gitstate.FirstGitAlias(added); e != nil {
		return e.Error()
	}
	// A symbolic link git takes for .gitmodules: fsck's
	// gitmodulesSymlink, which a checkout on Windows or macOS would
	// follow to read the submodules' configuration.
	for _, c := range changes {
		if name := path.Base(c.Path); c.Status != 'D' && c.NewMode == "120000" && gitstate.IsGitmodulesAlias(name) {
			return (&gitstate.GitAliasError{Path: c.Path, Name: name, Link: true}).Error()
		}
	}
	return ""
}
