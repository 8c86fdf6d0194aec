package gitstate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
)

// ErrNoIdentity is returned (wrapped) by CommitTree when git has no
// committer identity to record.
var ErrNoIdentity = errors.New("git has no committer identity: set one with git config --global user.name \"Your Name\" and git config --global user.email you@example.com")

// CommitSpec describes a commit to create from a tree.
type CommitSpec struct {
	Tree    string
	Parents []string
	Message string
	// Author is recorded as given; When is used only when non-zero (git
	// takes the current time otherwise). The committer is always the user's
	// own git identity.
	Author Signature
}

// Blob is a file to put into a tree: a blob id and a git file mode
// ("100644" when empty). An empty Hash removes the path.
type Blob struct {
	Hash string
	Mode string
}

// HashObject writes data to the object database as a blob and returns its
// id: in-process (looseobj.go) where it can, else with git hash-object.
func (r *Repo) HashObject(ctx context.Context, data []byte) (string, error) {
	if data == nil {
		data = []byte{}
	}
	if id, err := r.writeObject("blob", data); !errors.Is(err, errObjectsByGit) {
		return id, err
	}
	out, err := r.gitWith(ctx, runOpts{Stdin: data}, "hash-object", "-w", "--stdin")
	if err != nil {
		return "", err
	}
	return trimNL(out), nil
}

// CommitTree creates a commit object (no ref moves, no hooks run): in the
// process where it can (commitfast.go), else with git commit-tree.
func (r *Repo) CommitTree(ctx context.Context, spec CommitSpec) (string, error) {
	if spec.Tree == "" {
		return "", errors.New("commit-tree: no tree given")
	}
	if id, err := r.commitInProcess(ctx, spec, time.Now()); !errors.Is(err, errObjectsByGit) {
		return id, err
	}
	args := []string{"commit-tree", spec.Tree}
	sign := r.signsCommits(ctx)
	if sign {
		// git commit-tree is plumbing and leaves commit.gpgSign to
		// git commit; codemachine's commits land as the user's would.
		args = append(args, "-S")
	}
	for _, p := range spec.Parents {
		args = append(args, "-p", p)
	}
	var env []string
	if spec.Author.Name != "" {
		env = append(env, "GIT_AUTHOR_NAME="+spec.Author.Name)
	}
	if spec.Author.Email != "" {
		env = append(env, "GIT_AUTHOR_EMAIL="+spec.Author.Email)
	}
	if !spec.Author.When.IsZero() {
		env = append(env, "GIT_AUTHOR_DATE="+gitDate(spec.Author))
	}
	msg := spec.Message
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	out, err := r.gitWith(ctx, runOpts{Env: env, Stdin: []byte(msg)}, args...)
	if err != nil {
		var ge *GitError
		if errors.As(err, &ge) && isIdentityError(ge.Stderr) {
			return "", fmt.Errorf("git commit-tree: %w", ErrNoIdentity)
		}
		if sign && errors.As(err, &ge) {
			return "", &SigningError{Stderr: ge.Stderr}
		}
		return "", err
	}
	return trimNL(out), nil
}

// SigningError is a commit git could not sign: commit.gpgSign is true and
// the signing program failed (no key, a passphrase with no agent to ask).
type SigningError struct {
	Stderr string
}

// Error gives git's reason for not signing and what to change.
func (e *SigningError) Error() string {
	msg := "git could not sign the commit (commit.gpgSign is true)"
	if line := firstLine(e.Stderr); line != "" {
		msg += ": " + line
	}
	return msg + "; make the key usable without a prompt (gpg-agent, ssh-agent) or set commit.gpgSign to false for this repository"
}

// CheckSigning is a *SigningError when commit.gpgSign asks for signed
// commits and git cannot sign one now (no key, a passphrase and no agent).
// It signs a commit of commit's tree, which nothing refers to (git gc
// prunes it): the one way to ask git's own signing, whatever gpg.format.
func (r *Repo) CheckSigning(ctx context.Context, commit string) error {
	if !r.signsCommits(ctx) {
		return nil
	}
	_, err := r.CommitTree(ctx, CommitSpec{Tree: commit + "^{tree}", Message: "codemachine: can git sign?\n"})
	return err
}

// signsCommits reports whether commit.gpgSign asks for signed commits.
func (r *Repo) signsCommits(ctx context.Context) bool {
	if c, err := r.fastConfigFor(ctx); err == nil {
		if _, set := c.get("commit.gpgsign"); !set {
			return false
		}
		if c.isBool("commit.gpgsign", true) {
			return true
		}
		if c.isBool("commit.gpgsign", false) {
			return false
		}
	}
	out, err := r.read(ctx, "config", "--type=bool", "--get", "commit.gpgsign")
	return err == nil && trimNL(out) == "true"
}

func gitDate(s Signature) string {
	return strconv.FormatInt(s.When.Unix(), 10) + " " + s.When.Format("-0700")
}

// CheckCommitter returns ErrNoIdentity (wrapped) when git could not name
// the committer of a commit made now (no user.email and user.useConfigOnly,
// or no name git can find), so that a run says so before a step runs
// rather than when its commit is made. The configuration and environment
// answer in the process; git var only when they name nobody.
func (r *Repo) CheckCommitter(ctx context.Context) error {
	if c, err := r.fastConfigFor(ctx); err == nil {
		if _, ok := r.identFor(c, false); ok {
			return nil
		}
	}
	_, err := r.read(ctx, "var", "GIT_COMMITTER_IDENT")
	var ge *GitError
	if errors.As(err, &ge) && isIdentityError(ge.Stderr) {
		return fmt.Errorf("git var: %w", ErrNoIdentity)
	}
	if err != nil {
		return fmt.Errorf("find the committer: %w", err)
	}
	return nil
}

func isIdentityError(stderr string) bool {
	for _, p := range []string{"identity unknown", "unable to auto-detect email", "empty ident name", "auto-detection is disabled", "invalid ident"} {
		if strings.Contains(stderr, p) {
			return true
		}
	}
	return false
}

// UpdateRef moves ref to newHash only if it currently points at oldHash
// ("" = the ref must not exist yet). When the ref is elsewhere the error
// wraps ErrRefMoved. Refs under refs/codemachine/ get a reflog so that the
// values they held before stay reachable.
func (r *Repo) UpdateRef(ctx context.Context, ref, newHash, oldHash, msg string) error {
	return r.updateRef(ctx, runOpts{}, ref, newHash, oldHash, msg)
}

func (r *Repo) updateRef(ctx context.Context, opts runOpts, ref, newHash, oldHash, msg string) error {
	if oldHash == "" {
		oldHash = strings.Repeat("0", max(len(newHash), 40))
	}
	args := []string{"update-ref"}
	if msg != "" {
		args = append(args, "-m", msg)
	}
	if strings.HasPrefix(ref, "refs/codemachine/") {
		args = append(args, "--create-reflog")
	}
	args = append(args, ref, newHash, oldHash)
	_, err := r.gitWith(ctx, opts, args...)
	return refError(ref, err)
}

// DeleteRef deletes ref if it points at oldHash; oldHash "" deletes it
// whatever it points at (a missing ref is not an error then).
func (r *Repo) DeleteRef(ctx context.Context, ref, oldHash string) error {
	args := []string{"update-ref", "-d", ref}
	if oldHash != "" {
		args = append(args, oldHash)
	}
	_, err := r.git(ctx, args...)
	return refError(ref, err)
}

// refError classifies update-ref's failures: a ref that is not where the
// caller expected it becomes ErrRefMoved.
func refError(ref string, err error) error {
	var ge *GitError
	if err == nil || !errors.As(err, &ge) {
		return err
	}
	for _, p := range []string{"but expected", "reference already exists", "unable to resolve reference"} {
		if strings.Contains(ge.Stderr, p) {
			return fmt.Errorf("update %s: %w (%s)", ref, ErrRefMoved, strings.TrimPrefix(firstLine(ge.Stderr), "update_ref failed for ref '"+ref+"': "))
		}
	}
	return err
}

// emptyTree returns the id of the empty tree in this repository's hash
// format.
func (r *Repo) emptyTree(ctx context.Context) (string, error) {
	r.mu.Lock()
	t := r.emptyT
	r.mu.Unlock()
	if t != "" {
		return t, nil
	}
	out, err := r.readWith(ctx, runOpts{Stdin: []byte{}}, "hash-object", "-t", "tree", "--stdin")
	if err != nil {
		return "", err
	}
	t = trimNL(out)
	r.mu.Lock()
	r.emptyT = t
	r.mu.Unlock()
	return t, nil
}

// DiffTrees lists the paths that differ between two trees (or commits);
// a == "" compares against the empty tree. Renames are reported as a
// deletion and an addition.
func (r *Repo) DiffTrees(ctx context.Context, a, b string) ([]Change, error) {
	// In process when both sides are object ids: a step's diff is on its hot
	// path, and go-git compares subtrees by id, so only the directories that
	// changed are read.
	if (a == "" || isHash(a)) && isHash(b) {
		if changes, err := r.diffTreesInProcess(a, b); err == nil {
			return changes, nil
		}
	}
	if a == "" {
		t, err := r.emptyTree(ctx)
		if err != nil {
			return nil, err
		}
		a = t
	}
	out, err := r.read(ctx, "diff-tree", "-r", "-z", "--no-renames", "--raw", a, b)
	if err != nil {
		return nil, fmt.Errorf("diff %s %s: %w", a, b, err)
	}
	return parseRawDiff(out)
}

func parseRawDiff(out string) ([]Change, error) {
	var changes []Change
	recs := strings.Split(out, "\x00")
	for i := 0; i+1 < len(recs); i += 2 {
		meta := recs[i]
		if meta == "" {
			break
		}
		f := strings.Fields(strings.TrimPrefix(meta, ":"))
		if len(f) != 5 || f[4] == "" {
			return nil, fmt.Errorf("git diff-tree: malformed record %q", meta)
		}
		c := Change{Path: recs[i+1], Status: f[4][0], OldMode: f[0], NewMode: f[1], OldHash: f[2], NewHash: f[3]}
		if c.Status == 'A' {
			c.OldMode, c.OldHash = "", ""
		}
		if c.Status == 'D' {
			c.NewMode, c.NewHash = "", ""
		}
		changes = append(changes, c)
	}
	return changes, nil
}

// MergeTree merges the changes from base to theirs into ours and returns
// the resulting tree, with the conflicting paths (whose content in the tree
// carries conflict markers). git 2.39's merge-tree has no --merge-base, so
// when base is not exactly the merge base of ours and theirs (or they are
// trees), the three trees are first wrapped in throwaway commits, two
// children of one root, which makes base their merge base.
func (r *Repo) MergeTree(ctx context.Context, base, ours, theirs string) (tree string, conflicts []string, err error) {
	// The two sides changed different files: merged in the process.
	if tree, ok, err := r.mergeDisjoint(base, ours, theirs, nil); err != nil || ok {
		return tree, nil, err
	}
	out, err := r.read(ctx, "merge-base", "--all", ours, theirs)
	if err == nil {
		bases := strings.Fields(out)
		var want string
		var rerr error
		if len(bases) == 1 && bases[0] == base {
			want = base // the merge base itself, by its id: nothing to resolve
		} else if len(bases) == 1 {
			want, rerr = r.read(ctx, "rev-parse", "--verify", "--quiet", "--end-of-options", base+"^{commit}")
		}
		if rerr == nil && len(bases) == 1 && bases[0] == trimNL(want) {
			return r.mergeCommits(ctx, ours, theirs)
		}
	}
	b, err := r.syntheticCommit(ctx, base, "")
	if err != nil {
		return "", nil, err
	}
	o, err := r.syntheticCommit(ctx, ours, b)
	if err != nil {
		return "", nil, err
	}
	t, err := r.syntheticCommit(ctx, theirs, b)
	if err != nil {
		return "", nil, err
	}
	return r.mergeCommits(ctx, o, t)
}

// syntheticEnv gives throwaway commits a fixed identity and date, so they
// need no user identity and the same trees give the same commits.
var syntheticEnv = []string{
	"GIT_AUTHOR_NAME=codemachine", "GIT_AUTHOR_EMAIL=codemachine@localhost", "GIT_AUTHOR_DATE=1000000000 +0000",
	"GIT_COMMITTER_NAME=codemachine", "GIT_COMMITTER_EMAIL=codemachine@localhost", "GIT_COMMITTER_DATE=1000000000 +0000",
}

func (r *Repo) syntheticCommit(ctx context.Context, treeish, parent string) (string, error) {
	if id, err := r.syntheticInProcess(treeish, parent); !errors.Is(err, errObjectsByGit) {
		return id, err
	}
	args := []string{"commit-tree", treeish + "^{tree}"}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	out, err := r.gitWith(ctx, runOpts{Env: syntheticEnv, Stdin: []byte("merge base\n")}, args...)
	if err != nil {
		return "", fmt.Errorf("merge: %w", err)
	}
	return trimNL(out), nil
}

// syntheticInProcess is syntheticCommit written in the process, the
// commit git commit-tree writes with syntheticEnv; errObjectsByGit when
// treeish is not an id.
func (r *Repo) syntheticInProcess(treeish, parent string) (string, error) {
	if _, err := r.objectsDir(); err != nil || !isHash(treeish) || (parent != "" && !isHash(parent)) {
		return "", errObjectsByGit
	}
	tree := treeish
	err := r.goGit(func(g *gitRepo) error {
		if c, err := g.CommitObject(plumbing.NewHash(treeish)); err == nil {
			tree = c.TreeHash.String()
		}
		return nil
	})
	if err != nil || !r.hasObjects(tree, nonEmpty(parent)) {
		return "", errObjectsByGit
	}
	var b strings.Builder
	b.WriteString("tree " + tree + "\n")
	if parent != "" {
		b.WriteString("parent " + parent + "\n")
	}
	b.WriteString("author codemachine <codemachine@localhost> 1000000000 +0000\n")
	b.WriteString("committer codemachine <codemachine@localhost> 1000000000 +0000\n\nmerge base\n")
	return r.writeObject("commit", []byte(b.String()))
}

// nonEmpty is s as a list: none when it is "".
func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// mergeCommits runs git merge-tree on two commits whose merge base is the
// wanted one.
func (r *Repo) mergeCommits(ctx context.Context, ours, theirs string) (string, []string, error) {
	out, err := r.git(ctx, "merge-tree", "--write-tree", "-z", "--name-only", "--no-messages", ours, theirs)
	if err != nil && exitCode(err) != 1 {
		return "", nil, fmt.Errorf("merge %s into %s: %w", theirs, ours, err)
	}
	fields := strings.Split(out, "\x00")
	tree := fields[0]
	if !isHash(tree) {
		return "", nil, fmt.Errorf("merge %s into %s: git merge-tree printed %q", theirs, ours, tree)
	}
	var conflicts []string
	seen := map[string]bool{}
	for _, p := range fields[1:] {
		if p != "" && !seen[p] {
			seen[p] = true
			conflicts = append(conflicts, p)
		}
	}
	if err != nil && len(conflicts) == 0 {
		return "", nil, fmt.Errorf("merge %s into %s: %w", theirs, ours, err)
	}
	return tree, conflicts, nil
}

var tmpSeq atomic.Int64

// tempPath names a fresh file under LocalDir for a temporary index.
func (r *Repo) tempPath(prefix string) (string, error) {
	return r.localPath(fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), tmpSeq.Add(1)))
}

// OverlayTree returns a tree that is tree (or a commit's tree) with the
// given files put in place or, for an empty Hash, removed. It writes the
// trees on the changed paths in-process (looseobj.go) where it can, else
// it has git build it in a temporary index file; either way the user's
// index is never touched.
func (r *Repo) OverlayTree(ctx context.Context, tree string, files map[string]Blob) (string, error) {
	if err := checkOverlayPaths(tree, files); err != nil {
		return "", err
	}
	id, ok, err := r.overlayInProcess(tree, files)
	if ok || (err != nil && !errors.Is(err, errObjectsByGit)) {
		return id, err
	}
	return r.overlayWithGit(ctx, tree, files)
}

// checkOverlayPaths refuses paths that are not plain relative ones, and
// paths into a .git directory.
func checkOverlayPaths(tree string, files map[string]Blob) error {
	for p := range files {
		if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "\n") {
			return fmt.Errorf("overlay %s: invalid path %q", tree, p)
		}
		for _, c := range strings.Split(p, "/") {
			if strings.EqualFold(c, ".git") {
				return fmt.Errorf("overlay %s: invalid path %q", tree, p)
			}
		}
	}
	return nil
}

// overlayWithGit is OverlayTree by git: read-tree, update-index and
// write-tree in a temporary index file.
func (r *Repo) overlayWithGit(ctx context.Context, tree string, files map[string]Blob) (string, error) {
	var info strings.Builder
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		b := files[p]
		if b.Hash == "" {
			fmt.Fprintf(&info, "0 %s\t%s\n", strings.Repeat("0", 40), p)
			continue
		}
		mode := b.Mode
		if mode == "" {
			mode = "100644"
		}
		fmt.Fprintf(&info, "%s %s\t%s\n", mode, b.Hash, p)
	}
	idx, err := r.tempPath("overlay-index")
	if err != nil {
		return "", err
	}
	defer os.Remove(idx)
	env := []string{"GIT_INDEX_FILE=" + idx}
	if _, err := r.gitWith(ctx, runOpts{Env: env}, "read-tree", tree); err != nil {
		return "", fmt.Errorf("overlay %s: %w", tree, err)
	}
	if _, err := r.gitWith(ctx, runOpts{Env: env, Stdin: []byte(info.String())}, "update-index", "--add", "--remove", "--replace", "--index-info"); err != nil {
		return "", fmt.Errorf("overlay %s: %w", tree, err)
	}
	out, err := r.gitWith(ctx, runOpts{Env: env}, "write-tree")
	if err != nil {
		return "", fmt.Errorf("overlay %s: %w", tree, err)
	}
	return trimNL(out), nil
}

// diffTreesInProcess is DiffTrees through go-git; a and b are commit or
// tree ids ("" for a is the empty tree). It walks the two trees itself
// rather than with object.DiffTree, which reads every subtree of each
// directory it compares (to count their children): for a change of one file
// that is every directory's tree object, where this reads only the ones on
// the changed paths.
func (r *Repo) diffTreesInProcess(a, b string) ([]Change, error) {
	var changes []Change
	err := r.goGit(func(g *gitRepo) error {
		treeOf := func(id string) (*treeObj, error) {
			if id == "" {
				return &treeObj{}, nil
			}
			h := plumbing.NewHash(id)
			if c, err := g.CommitObject(h); err == nil {
				return g.TreeObject(c.TreeHash)
			}
			return g.TreeObject(h)
		}
		ta, err := treeOf(a)
		if err != nil {
			return err
		}
		tb, err := treeOf(b)
		if err != nil {
			return err
		}
		w := treeDiffer{g: g}
		if err := w.diff("", ta, tb); err != nil {
			return err
		}
		changes = w.changes
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	return changes, nil
}

// treeDiffer collects the file-level changes between two trees, the way
// git diff-tree -r reports them.
type treeDiffer struct {
	g       *gitRepo
	changes []Change
}

func (w *treeDiffer) diff(prefix string, a, b *treeObj) error {
	inB := make(map[string]*treeObjEntry, len(b.Entries))
	for i := range b.Entries {
		inB[b.Entries[i].Name] = &b.Entries[i]
	}
	for i := range a.Entries {
		ea := &a.Entries[i]
		eb := inB[ea.Name]
		delete(inB, ea.Name)
		path := prefix + ea.Name
		if eb == nil {
			if err := w.side(path, ea, 'D'); err != nil {
				return err
			}
			continue
		}
		if ea.Hash == eb.Hash && ea.Mode == eb.Mode {
			continue
		}
		aDir, bDir := ea.Mode == filemode.Dir, eb.Mode == filemode.Dir
		switch {
		case aDir && bDir:
			ta, err := w.g.TreeObject(ea.Hash)
			if err != nil {
				return err
			}
			tb, err := w.g.TreeObject(eb.Hash)
			if err != nil {
				return err
			}
			if err := w.diff(path+"/", ta, tb); err != nil {
				return err
			}
		case aDir || bDir:
			// A directory replaced by a file or the other way round:
			// everything on the old side goes, everything on the new
			// side comes.
			if err := w.side(path, ea, 'D'); err != nil {
				return err
			}
			if err := w.side(path, eb, 'A'); err != nil {
				return err
			}
		default:
			c := Change{Path: path, Status: 'M', OldMode: modeString(ea.Mode), OldHash: ea.Hash.String(),
				NewMode: modeString(eb.Mode), NewHash: eb.Hash.String()}
			if modeKind(c.OldMode) != modeKind(c.NewMode) {
				c.Status = 'T'
			}
			w.changes = append(w.changes, c)
		}
	}
	for _, eb := range inB {
		if err := w.side(prefix+eb.Name, eb, 'A'); err != nil {
			return err
		}
	}
	return nil
}

// side records an entry present on one side only, status 'A' (added) or
// 'D' (deleted): a file as it is, a directory as every file below it.
func (w *treeDiffer) side(path string, e *treeObjEntry, status byte) error {
	if e.Mode != filemode.Dir {
		c := Change{Path: path, Status: status}
		if status == 'A' {
			c.NewMode, c.NewHash = modeString(e.Mode), e.Hash.String()
		} else {
			c.OldMode, c.OldHash = modeString(e.Mode), e.Hash.String()
		}
		w.changes = append(w.changes, c)
		return nil
	}
	t, err := w.g.TreeObject(e.Hash)
	if err != nil {
		return err
	}
	for i := range t.Entries {
		if err := w.side(path+"/"+t.Entries[i].Name, &t.Entries[i], status); err != nil {
			return err
		}
	}
	return nil
}

// modeString formats a tree entry mode the way git diff-tree prints it.
func modeString(m filemode.FileMode) string {
	return fmt.Sprintf("%06o", uint32(m))
}

// modeKind tells files, symlinks and submodules apart: git reports a change
// between kinds as a type change (T); 100644 <-> 100755 is a modification.
func modeKind(mode string) string {
	switch mode {
	case "120000", "160000", "040000":
		return mode
	}
	return "file"
}
