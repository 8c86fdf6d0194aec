package gitstate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/filesystem/dotgit"

	"github.com/codemachine/codemachine/internal/lazyre"
)

// Repo is one git repository (the worktree containing the directory it was
// opened at). It is safe for concurrent use.
type Repo struct {
	// LockWait bounds how long a git command retries while another process
	// holds a git lock file; 0 means DefaultLockWait.
	LockWait time.Duration

	root      string // the worktree's top level
	gitDir    string // its git dir (.git, or .git/worktrees/<name> for a linked worktree)
	commonDir string // the shared git dir
	env       []string

	writeMu sync.Mutex // the serialized writer for the main worktree and shared state
	mu      sync.Mutex // guards the fields below
	dirMu   map[string]*sync.Mutex
	slots   map[int]bool // pooled worktree slots handed out and not yet finished
	emptyT  string

	ggMu sync.Mutex // go-git is not safe for concurrent use: one reader at a time
	gg   *gitRepo

	objOnce sync.Once    // objDir, found once
	objDir  string       // where loose objects are written in-process; "" when git writes them (looseobj.go)
	ncmd    atomic.Int64 // git processes started; tests use it to prove a path runs none

	// testHook, when set (by tests), runs at named points while a
	// checked-out branch is being moved ("before-lock",
	// "before-ref-update"), so races can be staged deterministically.
	testHook func(stage string)
	// refCache holds what the in-process ref swap reads of the
	// configuration (refswap.go).
	refCache refSettingsCache
	// fastCache holds the configuration the in-process staging and
	// commits read (fastconfig.go).
	fastCache fastConfigCache
	// sysDirs holds sysConfigDirs' answer until ForgetLookups.
	sysDirs sysDirsCache
	// staging keeps emptied staging directories of switches during a run
	// (PoolStaging).
	staging stagingPool
}

// Open finds the repository containing dir. It fails with ErrNotRepo
// (wrapped with dir) outside a repository, and also for a bare repository
// or from inside a .git directory, where there is no worktree to run in.
func Open(dir string) (*Repo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	if st, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("open %s: not a directory", dir)
	}
	r := &Repo{root: abs}
	if root, gitDir, commonDir, ok := discoverFast(abs); ok {
		// The plain case, found without starting git (discover.go).
		r.root, r.gitDir, r.commonDir = root, gitDir, commonDir
		return r, nil
	}
	// Found by git: what it looked up for the directory it started in
	// (which git, on a PATH without what is inside the working tree) is
	// looked up again for the working tree found.
	defer r.ForgetLookups()
	if env := locatingEnv(); len(env) > 0 {
		return r.openFromEnv(dir, env)
	}
	if err := r.discover(dir, nil); err != nil {
		return nil, err
	}
	return r, nil
}

// discover sets r's root, git dir and common dir as git finds them from
// r.root, with env (GIT_DIR and the like) added to the environment.
func (r *Repo) discover(dir string, env []string) error {
	out, err := r.readWith(context.Background(), runOpts{Env: env}, "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-dir", "--git-common-dir")
	if err != nil {
		var ge *GitError
		if errors.As(err, &ge) && strings.Contains(ge.Stderr, "must be run in a work tree") {
			return &NoWorkTreeError{Dir: dir}
		}
		if errors.As(err, &ge) && strings.Contains(ge.Stderr, "not a git repository") {
			return fmt.Errorf("%s: %w", dir, ErrNotRepo)
		}
		if errors.As(err, &ge) {
			if m := dubiousRe().FindStringSubmatch(ge.Stderr); m != nil {
				return &DubiousOwnershipError{Dir: m[1]}
			}
		}
		return fmt.Errorf("open %s: %w", dir, err)
	}
	lines := strings.Split(trimNL(out), "\n")
	if len(lines) != 3 || lines[0] == "" {
		// --show-toplevel prints nothing inside a .git directory.
		return &NoWorkTreeError{Dir: dir}
	}
	r.root, r.gitDir, r.commonDir = filepath.Clean(lines[0]), filepath.Clean(lines[1]), filepath.Clean(lines[2])
	return nil
}

// dubiousRe finds the repository git refuses in "detected dubious
// ownership in repository at '<dir>'".
var dubiousRe = lazyre.New(`detected dubious ownership in repository at '([^']+)'`)

// locatingEnvVars name the repository for git instead of its discovery.
var locatingEnvVars = []string{"GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR"}

// locatingEnv is the user's GIT_DIR, GIT_WORK_TREE and GIT_COMMON_DIR, as
// KEY=VALUE, those that are set.
func locatingEnv() []string {
	var env []string
	for _, k := range locatingEnvVars {
		if v, set := os.LookupEnv(k); set {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// openFromEnv opens the repository that the user's GIT_DIR, GIT_WORK_TREE
// or GIT_COMMON_DIR (env) name, as git does (a git hook in a linked
// worktree gets GIT_DIR; a script may set it). Every command codemachine
// runs leaves them out (baseEnv: its worktrees have git dirs of their
// own), so the repository must be the one git finds from its work tree
// without them: a git dir apart from its work tree (the bare "dotfiles"
// repository, GIT_DIR from another directory) is a *DetachedGitDirError.
func (r *Repo) openFromEnv(dir string, env []string) (*Repo, error) {
	if err := r.discover(dir, env); err != nil {
		return nil, err
	}
	found := &Repo{root: r.root}
	if err := found.discover(r.root, nil); err == nil &&
		found.root == r.root && found.gitDir == r.gitDir && found.commonDir == r.commonDir {
		return r, nil
	}
	return nil, &DetachedGitDirError{Env: env, WorkTree: r.root, GitDir: r.gitDir}
}

// Processes is how many git processes r has started: the benchmarks
// count them per step and per task.
func (r *Repo) Processes() int64 { return r.ncmd.Load() }

// Root is the top-level directory of the worktree.
func (r *Repo) Root() string { return r.root }

// GitDir is the worktree's git directory.
func (r *Repo) GitDir() string { return r.gitDir }

// CommonDir is the git directory shared by all worktrees of the repository.
func (r *Repo) CommonDir() string { return r.commonDir }

// LocalDir is codemachine's per-clone directory, <common dir>/codemachine.
// It is created on first use; when that fails, the callers that write into
// it report the error.
func (r *Repo) LocalDir() string {
	d := filepath.Join(r.commonDir, "codemachine")
	_ = os.MkdirAll(d, 0o755)
	return d
}

// localPath returns a path under LocalDir, creating its parent directory.
func (r *Repo) localPath(elem ...string) (string, error) {
	p := filepath.Join(append([]string{r.commonDir, "codemachine"}, elem...)...)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(p), err)
	}
	return p, nil
}

// goGit runs f with the lazily opened go-git repository. go-git loads the
// pack indexes once and never notices packs written or removed later (by
// the user's git gc or a fetch, also while a run goes on), so when an
// object or a pack is missing the repository is reopened and f retried, a
// few times: a gc may be halfway through replacing the packs.
func (r *Repo) goGit(f func(*gitRepo) error) error {
	r.ggMu.Lock()
	defer r.ggMu.Unlock()
	for attempt := 0; ; attempt++ {
		if r.gg == nil {
			gg, err := openGitRepo(r.gitDir, r.commonDir)
			if err != nil {
				return fmt.Errorf("open %s: %w", r.root, err)
			}
			r.gg = gg
		}
		err := f(r.gg)
		if attempt < goGitRetries && packsChanged(err) {
			r.gg.close()
			r.gg = nil
			if attempt > 0 {
				time.Sleep(time.Duration(attempt) * 10 * time.Millisecond)
			}
			continue
		}
		return err
	}
}

// goGitRetries is how often goGit reopens the repository for one call.
const goGitRetries = 4

// packsChanged reports whether err is go-git's reading of packs that
// changed under it: an object or a pack file it expected is gone.
func packsChanged(err error) bool {
	return errors.Is(err, plumbing.ErrObjectNotFound) || errors.Is(err, dotgit.ErrPackfileNotFound) || errors.Is(err, fs.ErrNotExist)
}
