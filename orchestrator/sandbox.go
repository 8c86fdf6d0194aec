package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// Every process of a unit (its before hook, engine, check, on_failure and
// after hooks) runs under the sandbox launcher with one policy:
// writes only to the unit's worktree (and the scratch repository
// that is its .git), its TMPDIR, its engine's private config dirs and the paths the
// workflow allows; the user's working tree, .git and home read-only;
// other programs' sockets out of reach; no capability (a codemachine run
// as root runs no step as root in full); nothing it started left running
// once it ends. sandbox: off keeps only the last of these. Where the
// system lacks a protection, auto runs with what there is and says so
// once per run; required refuses to run the unit at all.

// sandboxFor decides how the unit runs: its policy, or a *ConfigError
// when the workflow requires a protection the system lacks.
func (j *job) sandboxFor() (*agents.Sandbox, error) {
	o, u := j.o, j.u
	sb := j.snap.project.Workflow.SandboxFor(u.step)
	if sb.Mode == workflow.SandboxOff {
		return &agents.Sandbox{}, nil
	}
	st := o.cfg.ProbeSandbox()
	if missing := st.Missing(); len(missing) > 0 {
		if sb.Mode == workflow.SandboxRequired {
			where := ""
			if sb.Pos.Line > 0 {
				where = sb.Pos.String() + ": "
			}
			return nil, configErrorf("%sstep %s: sandbox: required, but %s (set sandbox: auto to run with what there is, or off)",
				where, u.key(), strings.Join(missing, "; "))
		}
		j.rs.warnSandbox(o, missing)
	}
	if !st.Writes() {
		return &agents.Sandbox{DropCapabilities: st.Privileges}, nil
	}
	writable, err := o.writablePaths(sb.Writable, o.workflowWritable(j.snap.project.Workflow))
	if err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("step %s: sandbox: %w", u.key(), err)}
	}
	dirs, sockets := agents.UserSockets(o.cfg.Environ)
	root := o.repo.Root()
	return &agents.Sandbox{Landlock: true, Writable: writable, HideDirs: dirs, Sockets: sockets,
		Visible: []string{root, o.repo.CommonDir()}, DropCapabilities: st.Privileges}, nil
}

// warnSandbox tells, once per run, what the sandbox lacks here.
func (rs *runState) warnSandbox(o *Orchestrator, missing []string) {
	rs.sandboxWarned.Do(func() {
		o.emit(Event{Kind: Note, Message: "warning: steps run with a partial sandbox: " + strings.Join(missing, "; ") +
			" (sandbox: required refuses to run so; sandbox: off says it is meant)"})
	})
}

// writablePaths resolves the workflow's writable paths (relative to the
// repository root, absolute, under ~/ in the user's home, or starting with
// $NAME, a variable of the user's environment: one whose variable is unset
// is left out) and creates those that do not exist yet, as directories:
// the sandbox can only allow a path that exists. all are the writable
// paths of every step of the workflow, resolved alike (workflowWritable):
// a symbolic link inside one of them may be a step's (see
// checkWritableLink).
func (o *Orchestrator) writablePaths(paths, all []string) ([]string, error) {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		p, ok, err := o.expandWritable(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			// Checked first as far as it exists: MkdirAll, unconfined,
			// would make the directories where a step's link leads, or
			// a ~/.gnupg with a mode GnuPG then complains of.
			if err := o.checkWritableLink(p, resolveExisting(p), all); err != nil {
				return nil, err
			}
			if err := o.checkCredentialStore(p, resolveExisting(p)); err != nil {
				return nil, err
			}
			if err := os.MkdirAll(p, 0o755); err != nil {
				return nil, fmt.Errorf("create writable path: %w", err)
			}
		}
		if err := o.checkWritableTarget(p, all); err != nil {
			return nil, err
		}
		out = append(out, filepath.Clean(p))
	}
	return out, nil
}

// expandWritable is the absolute path the writable path p names; false
// when it names a variable that is not set.
func (o *Orchestrator) expandWritable(p string) (string, bool, error) {
	if strings.HasPrefix(p, "$") {
		unset := false
		p = os.Expand(p, func(k string) string {
			v := o.getenv(k)
			unset = unset || v == ""
			return v
		})
		if unset {
			return "", false, nil
		}
	}
	switch {
	case p == "~" || strings.HasPrefix(p, "~/"):
		home := o.getenv("HOME")
		if home == "" {
			return "", false, fmt.Errorf("writable path %q: HOME is not set", p)
		}
		p = filepath.Join(home, strings.TrimPrefix(p, "~"))
	case !filepath.IsAbs(p):
		p = filepath.Join(o.repo.Root(), p)
	}
	return filepath.Clean(p), true, nil
}

// workflowWritable are the writable paths of every step of w (the
// workflow's own included), expanded, with their links followed as far
// as they exist: where any step may leave a symbolic link.
func (o *Orchestrator) workflowWritable(w *workflow.Workflow) []string {
	var out []string
	add := func(paths []string) {
		for _, p := range paths {
			if a, ok, err := o.expandWritable(p); err == nil && ok {
				out = append(out, resolveExisting(a))
			}
		}
	}
	add(w.Sandbox.Writable)
	for _, s := range w.Steps {
		add(s.Sandbox.Writable)
	}
	return out
}

// checkWritableTarget refuses a writable path that, its symbolic links
// followed, is or holds the file system's root, the user's home, the
// repository or its git directory, a directory of PATH or git's global
// configuration, or lies inside the workflow's
// .codemachine or in what git keeps in its directory (gitOwned): the workflow's check of the text sees "/" and
// "~" but not /proc/self/root, ~/.., ../.. or a path that a landed commit
// turned into a link to .codemachine.
func (o *Orchestrator) checkWritableTarget(p string, all []string) error {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return fmt.Errorf("writable path %s: %w", p, err)
	}
	// "writable path P is", and where P leads when that is elsewhere.
	is := "writable path " + p + " is"
	if r != filepath.Clean(p) {
		is += " " + r + ","
	}
	guarded := []string{o.repo.Root(), o.repo.CommonDir()}
	if home := o.getenv("HOME"); home != "" {
		guarded = append(guarded, home)
	}
	for _, g := range guarded {
		if rg, err := filepath.EvalSymlinks(g); err == nil && pathWithin(rg, r) {
			return fmt.Errorf("%s a directory that holds %s: that would make it writable (use sandbox: off instead)", is, rg)
		}
	}
	for _, d := range agents.SocketDirs(o.cfg.Environ) {
		if rd := resolveExisting(d); pathWithin(rd, r) {
			return fmt.Errorf("%s a directory that holds %s, which the sandbox hides for the Unix sockets there (X11, tmux, ssh and other agents): they would be in reach (allow a directory of its own below it)", is, rd)
		}
	}
	if src, what := o.unconfinedSourceWithin(r); src != "" {
		return fmt.Errorf("%s a directory that holds %s, %s would run outside the sandbox (allow a narrower path)", is, src, what)
	}
	// The files git's configuration includes (include.path,
	// includeIf.*.path) are its configuration as much as ~/.gitconfig.
	included, err := o.repo.IncludedConfigFiles(context.Background())
	if err != nil {
		return fmt.Errorf("writable path %s: %w", p, err)
	}
	for _, f := range included {
		if pathWithin(resolveExisting(f), r) {
			return fmt.Errorf("%s a directory that holds %s, which your git configuration includes: a hook or command a step set there would run outside the sandbox (allow a narrower path)", is, f)
		}
	}
	if err := o.checkCredentialStore(p, r); err != nil {
		return err
	}
	if rg, err := filepath.EvalSymlinks(filepath.Join(o.repo.Root(), ".codemachine")); err == nil && pathWithin(r, rg) {
		return fmt.Errorf("%s inside %s, which a step may not write", is, rg)
	}
	if rg, err := filepath.EvalSymlinks(o.repo.CommonDir()); err == nil && pathWithin(r, rg) {
		first, _, _ := strings.Cut(strings.TrimPrefix(r, rg+string(filepath.Separator)), string(filepath.Separator))
		if gitOwned(first) {
			return fmt.Errorf("%s in git's %s, which a step may not write", is, first)
		}
	}
	return o.checkWritableLink(p, r, all)
}

// checkWritableLink refuses a writable path p that resolves to r in the
// repository's working tree through a symbolic link: one below the
// repository's root (a link a landed commit made: cache -> src), or one
// outside it that leads in (which a step allowed to write there may have
// made). Followed, it would have the step write the user's checkout where
// the link leads, uncommitted work included. It also refuses p when a
// link its resolution follows is one a step could have made, wherever it
// leads: a link in the working tree that leads into it (a landed commit
// can make one: cache -> target/evil), or one inside another of the
// workflow's writable paths all (a step wrote it there: target/evil ->
// ~/.bashrc). A step could otherwise chain the two and have the next step
// write any file of the user's.
func (o *Orchestrator) checkWritableLink(p, r string, all []string) error {
	root, err := filepath.EvalSymlinks(o.repo.Root())
	if err != nil {
		return fmt.Errorf("writable path %s: %w", p, err)
	}
	links, err := linksFollowed(p)
	if err != nil {
		return fmt.Errorf("writable path %s: %w", p, err)
	}
	for _, l := range links {
		// l.to is not resolved: it may name the repository by the path
		// the user gave (an absolute link the user made).
		into := pathWithin(l.to, root) || pathWithin(l.to, filepath.Clean(o.repo.Root()))
		if pathWithin(l.at, root) && into && !pathWithin(r, root) {
			return fmt.Errorf("writable path %s leads to %s through the symbolic link %s -> %s, in the repository: a commit a step landed can make such a link (allow %s itself)", p, r, l.at, l.to, r)
		}
		for _, w := range all {
			if l.at != w && pathWithin(l.at, w) {
				return fmt.Errorf("writable path %s leads to %s through the symbolic link %s, inside the writable path %s, where a step may have made it (remove the link, or allow %s itself)", p, r, l.at, w, r)
			}
		}
	}
	if !pathWithin(r, root) {
		return nil
	}
	refuse := fmt.Errorf("writable path %s is a symbolic link to %s, in the repository: a step allowed to write it would write there in your working tree (remove the link, or allow %s itself)", p, r, r)
	for _, base := range []string{o.repo.Root(), root} {
		rel, err := filepath.Rel(base, filepath.Clean(p))
		if err != nil || !filepath.IsLocal(rel) {
			continue
		}
		dir := base
		for _, name := range strings.Split(rel, string(filepath.Separator)) {
			dir = filepath.Join(dir, name)
			if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				return refuse
			}
		}
		return nil
	}
	return refuse
}

// linkHop is one symbolic link followed in resolving a path: where it is
// (its directory's links followed) and where it leads, cleaned but not
// followed further.
type linkHop struct {
	at, to string
}

// linksFollowed lists the symbolic links that resolving the absolute path
// p follows, in order: what filepath.EvalSymlinks does, hop by hop.
// Components that do not exist are taken as they are.
func linksFollowed(p string) ([]linkHop, error) {
	var hops []linkHop
	done := string(filepath.Separator)
	rest := strings.Split(filepath.Clean(p), string(filepath.Separator))
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			done = filepath.Dir(done)
			continue
		}
		next := filepath.Join(done, c)
		target, err := os.Readlink(next)
		if err != nil {
			done = next // not a link, or absent
			continue
		}
		if len(hops) >= maxLinkHops {
			return nil, fmt.Errorf("more than %d symbolic links in a row", maxLinkHops)
		}
		to := target
		if !filepath.IsAbs(to) {
			to = filepath.Join(done, to)
		}
		hops = append(hops, linkHop{at: next, to: filepath.Clean(to)})
		if filepath.IsAbs(target) {
			done = string(filepath.Separator)
		}
		rest = append(strings.Split(target, string(filepath.Separator)), rest...)
	}
	return hops, nil
}

// unconfinedSourceWithin returns the first path that codemachine's own
// processes outside the sandbox take programs or configuration from and
// that is r or lies below it, and what a step could leave there ("" for
// none). codemachine runs git from PATH after every step, which reads its
// global and system configuration (a core.hooksPath there runs a
// reference-transaction hook at the landing) and, to fetch and push
// (workers, review branches), ssh's (see credentialStores), and the agents' CLIs and the user's
// shell run what PATH finds. Symbolic links are followed as
// far as the path exists; one that does not exist yet counts, as the step
// could make it.
func (o *Orchestrator) unconfinedSourceWithin(r string) (src, what string) {
	for _, dir := range filepath.SplitList(o.getenv("PATH")) {
		if filepath.IsAbs(dir) && pathWithin(resolveExisting(filepath.Clean(dir)), r) {
			return dir, "a directory of PATH: a program a step left there"
		}
	}
	for _, f := range o.gitConfigFiles() {
		if pathWithin(resolveExisting(f), r) {
			return f, "git's configuration: a hook or command a step set there"
		}
	}
	return "", ""
}

// gitConfigFiles are the global and system configuration files of the
// git that codemachine runs (see git-config(1), FILES), absolute and
// clean: for the XDG one, its directory, which holds git's other files
// (attributes, ignore).
func (o *Orchestrator) gitConfigFiles() []string {
	var files []string
	add := func(f string) {
		if filepath.IsAbs(f) {
			files = append(files, filepath.Clean(f))
		}
	}
	home := o.getenv("HOME")
	if g := o.getenv("GIT_CONFIG_GLOBAL"); g != "" {
		add(g)
	} else {
		if home != "" {
			add(filepath.Join(home, ".gitconfig"))
		}
		if x := o.getenv("XDG_CONFIG_HOME"); x != "" {
			add(filepath.Join(x, "git"))
		} else if home != "" {
			add(filepath.Join(home, ".config", "git"))
		}
	}
	if sys := o.getenv("GIT_CONFIG_SYSTEM"); sys != "" {
		add(sys)
	} else {
		add("/etc/gitconfig")
	}
	return files
}

// configuredScripts are the files of the working tree that the commands
// of git's configuration name (a filter's sh scripts/clean.sh), relative
// and slash-separated, with the key that names them: git runs a filter
// with the working tree as its directory, so staging a step's worktree
// would run the step's copy outside the sandbox (see
// gitstate.Worktree.GuardFiles). A command's first word counts when it
// has a slash (a bare one is looked up on PATH), each later word that is
// not an option when it is relative or in the repository: a relative one
// in .git too, which in a worktree is the step's scratch repository.
func (o *Orchestrator) configuredScripts(ctx context.Context) (map[string]string, error) {
	cmds, err := o.repo.ConfiguredCommands(ctx)
	if err != nil {
		return nil, err
	}
	root, err := filepath.EvalSymlinks(o.repo.Root())
	if err != nil {
		return nil, fmt.Errorf("configured commands: %w", err)
	}
	out := map[string]string{}
	for key, value := range cmds {
		for i, word := range strings.Fields(value) {
			word = strings.Trim(word, `"'`)
			abs := filepath.IsAbs(word)
			switch {
			case word == "" || strings.HasPrefix(word, "-") || strings.ContainsAny(word, "$%`=") || strings.HasPrefix(word, "!"):
				continue
			case i == 0 && !strings.Contains(word, "/"):
				continue
			case abs:
				rel, err := filepath.Rel(root, resolveExisting(filepath.Clean(word)))
				if err != nil || !filepath.IsLocal(rel) {
					continue
				}
				word = rel
			}
			rel := filepath.ToSlash(filepath.Clean(word))
			inGit := rel == ".git" || strings.HasPrefix(rel, ".git/")
			// A relative one in .git (transcrypt's .git/crypt/...) names,
			// in a worktree, the step's own scratch repository, which it
			// may write; an absolute one the user's git directory.
			if filepath.IsLocal(rel) && (!inGit || !abs) {
				out[rel] = key
			}
		}
	}
	return out, nil
}

// resolveExisting is p with the symbolic links of its longest existing
// leading path followed, and the rest as it is.
func resolveExisting(p string) string {
	rest := ""
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest)
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// gitDirNames are the entries of a git directory that git or codemachine
// keep there: a writable path in one of them would let a step plant a
// hook or config, move a ref or rewrite objects, the index, or
// codemachine's journals and private indexes. A directory of another name
// in .git (a test harness's signals) holds nothing of git's.
var gitDirNames = []string{
	"HEAD", "config", "config.worktree", "description", "hooks", "info", "objects", "refs", "logs", "index",
	"packed-refs", "shallow", "modules", "worktrees", "rebase-merge", "rebase-apply", "sequencer", "rr-cache",
	"branches", "remotes", "lfs", "codemachine", "commondir", "gitdir", "fsmonitor--daemon", "fsmonitor--daemon.ipc",
	"COMMIT_EDITMSG", "MERGE_MSG", "MERGE_MODE", "AUTO_MERGE", "BISECT_LOG", "BISECT_TERMS", "BISECT_NAMES",
}

// gitOwned reports whether name, an entry of a git directory, is git's or
// codemachine's (gitDirNames, a *_HEAD or a lock file).
func gitOwned(name string) bool {
	return slices.Contains(gitDirNames, name) || strings.HasSuffix(name, "_HEAD") || strings.HasSuffix(name, ".lock")
}

// pathWithin reports whether path is dir or below it (both clean and
// absolute).
func pathWithin(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+string(filepath.Separator))
}

// unitPolicy is the policy of the unit's processes that run in dir (its
// worktree, or the repository root for the after hook): the unit's
// policy with dir writable when it is the worktree (and with it the
// scratch repository that is its .git), its TMPDIR and its engine's config
// dirs. The user's git directory stays read-only.
func (j *job) unitPolicy(worktree bool) *agents.Sandbox {
	if j.sandbox == nil || !j.sandbox.Landlock {
		return j.sandbox
	}
	p := *j.sandbox
	p.Writable = append([]string(nil), p.Writable...)
	if tmp := envValueOf(j.env, "TMPDIR"); tmp != "" {
		p.Writable = append(p.Writable, tmp)
	}
	if j.u.home != "" {
		p.Writable = append(p.Writable, j.u.home)
	}
	if worktree && j.wt != nil {
		// Its .git, the agent's scratch repository, is inside it.
		p.Writable = append(p.Writable, j.wt.Path())
	}
	return &p
}

// poolPolicy is what the unit may write outside its worktree, as the
// worktree pool compares it with the policy of the slot's last user: a
// slot whose ignored files a more confined step may have planted is not
// handed to this one as it is.
func (j *job) poolPolicy() gitstate.Policy {
	if !j.sandboxed() {
		return gitstate.Policy{}
	}
	return gitstate.Policy{Sandboxed: true, Writable: j.sandbox.Writable}
}

// sandboxed reports whether the unit's processes run with the user's
// working tree and git directory read-only.
func (j *job) sandboxed() bool {
	return j.sandbox != nil && j.sandbox.Landlock
}

// envValueOf is the value of key in a KEY=VALUE list ("" when absent).
func envValueOf(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// sandboxReport is what status says about the sandbox, from the system's
// protections st.
func sandboxReport(w *workflow.Workflow, st agents.SandboxStatus) SandboxReport {
	mode := w.Sandbox.Mode
	if mode == "" {
		mode = workflow.SandboxAuto
	}
	return SandboxReport{Mode: mode, Active: st.Summary(), Missing: st.Missing(), System: st}
}
