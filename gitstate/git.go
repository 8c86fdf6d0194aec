package gitstate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/codemachine/codemachine/internal/lazyre"
)

// DefaultLockWait is how long a git command keeps retrying while another
// process holds a git lock file before it gives up.
const DefaultLockWait = 10 * time.Second

// runOpts are the extras of one git invocation.
type runOpts struct {
	// Dir is the directory git runs in; "" means the repository root. Pass a
	// pooled worktree's path to operate on that worktree.
	Dir string
	// Env is appended to the environment (later entries win), e.g.
	// GIT_INDEX_FILE or GIT_AUTHOR_DATE.
	Env []string
	// Stdin is fed to git; a byte slice rather than a reader so that a
	// command retried after a lock conflict gets the same input again.
	Stdin []byte

	// lockKey, when set, names the pooled worktree whose writer serializes
	// the command instead of Dir's.
	lockKey string
	// finish: a cancellation does not stop git once it runs, only the
	// start of the command and the waits for another process's lock. For
	// the commands that lock the user's own index: git stopped by a
	// signal sometimes leaves index.lock behind (see exec), which every
	// git command of the user's then fails on.
	finish bool
}

// GitError is a failed git command. Its message is one line: the
// subcommand and the first meaningful line of git's stderr.
type GitError struct {
	Args     []string
	Stderr   string
	ExitCode int // -1 when git could not be started or was killed
}

// Error is "git <subcommand>: <what git said>", on one line.
func (e *GitError) Error() string {
	return "git " + subcommand(e.Args) + ": " + firstLine(e.Stderr)
}

// LockHeldError is returned when a git lock file stayed in place for longer
// than the repository's lock wait. The lock belongs to another process and is
// never removed by codemachine.
type LockHeldError struct {
	Cmd    string        // the git subcommand that could not run
	Path   string        // the lock file, relative to the repository root when inside it
	Waited time.Duration // how long the command kept retrying
}

// Error names the lock file and how long the command waited for it.
func (e *LockHeldError) Error() string {
	return fmt.Sprintf("git %s: %s is held by another process (waited %s); if no git command is running, remove it", e.Cmd, e.Path, e.Waited.Round(time.Millisecond))
}

// lockRe finds the lock file in git's "Unable to create '<path>.lock': File
// exists."; configLockRe the config file in "could not lock config file
// <path>: File exists" (git names the file, the lock is <path>.lock).
var (
	lockRe       = lazyre.New(`'([^']+\.lock)': File exists`)
	configLockRe = lazyre.New(`could not lock config file (\S+): File exists`)
)

// The raw runners below are this package's alone: every git command line
// lives in gitstate, behind a named operation, so that callers say what
// they want done rather than how git spells it.

// git runs a mutating git command through the repository's serialized
// writer and returns its standard output as git printed it.
func (r *Repo) git(ctx context.Context, args ...string) (string, error) {
	return r.gitWith(ctx, runOpts{}, args...)
}

// gitWith is git with extra options. Commands run one at a time per
// repository; a command whose Dir is a pooled worktree is serialized with the
// other commands on that worktree only, because it touches nothing but the
// worktree's private index and HEAD (and writes objects, which git does
// atomically), so parallel slots do not wait for each other.
func (r *Repo) gitWith(ctx context.Context, opts runOpts, args ...string) (string, error) {
	key := opts.lockKey
	if key == "" {
		key = opts.Dir
	}
	if key == "" && writesObjectsOnly(opts, args) {
		key = objectsOnlyKey
	}
	mu := r.writerFor(key)
	mu.Lock()
	defer mu.Unlock()
	return r.run(ctx, opts, true, args)
}

// read runs a read-only git command. It is not serialized, and runs with
// GIT_OPTIONAL_LOCKS=0 so that it never takes the index lock (git status
// would otherwise refresh the index under the user's feet).
func (r *Repo) read(ctx context.Context, args ...string) (string, error) {
	return r.readWith(ctx, runOpts{}, args...)
}

// readWith is read with extra options.
func (r *Repo) readWith(ctx context.Context, opts runOpts, args ...string) (string, error) {
	opts.Env = append([]string{"GIT_OPTIONAL_LOCKS=0"}, opts.Env...)
	return r.run(ctx, opts, false, args)
}

// objectsOnlyKey serializes the commands that write nothing but objects
// (and a private index): they need not wait for the main worktree's
// writer, which may itself wait for them (a landing holding the user's
// index lock while it rebases).
const objectsOnlyKey = "\x00objects"

// writesObjectsOnly tells the commands that objectsOnlyKey serializes:
// those that write objects alone, and read-tree, update-index and
// write-tree on a private index without touching the working tree.
func writesObjectsOnly(opts runOpts, args []string) bool {
	switch subcommand(args) {
	case "hash-object", "commit-tree", "merge-tree", "mktree":
		return true
	case "read-tree", "update-index", "write-tree":
		private := false
		for _, e := range opts.Env {
			private = private || strings.HasPrefix(e, "GIT_INDEX_FILE=")
		}
		return private && !slices.Contains(args, "-u")
	}
	return false
}

// writerFor returns the mutex that serializes writes in dir.
func (r *Repo) writerFor(dir string) *sync.Mutex {
	if dir == "" || dir == r.root {
		return &r.writeMu
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dirMu == nil {
		r.dirMu = map[string]*sync.Mutex{}
	}
	mu := r.dirMu[dir]
	if mu == nil {
		mu = &sync.Mutex{}
		r.dirMu[dir] = mu
	}
	return mu
}

// repoEnvVars locate a repository. They are dropped from the inherited
// environment (git exports some of them to hooks, and codemachine may be
// started from a hook) so that every command works on the repository it is
// pointed at.
var repoEnvVars = []string{
	"GIT_DIR=", "GIT_WORK_TREE=", "GIT_INDEX_FILE=", "GIT_COMMON_DIR=",
	"GIT_OBJECT_DIRECTORY=", "GIT_ALTERNATE_OBJECT_DIRECTORIES=", "GIT_NAMESPACE=", "GIT_PREFIX=",
}

func baseEnv() []string {
	var env []string
outer:
	for _, kv := range os.Environ() {
		for _, p := range repoEnvVars {
			if strings.HasPrefix(kv, p) {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "GIT_TERMINAL_PROMPT=0")
}

// run executes git, retrying with exponential back-off while a lock file of
// another process is in the way.
func (r *Repo) run(ctx context.Context, opts runOpts, retryLocks bool, args []string) (string, error) {
	dir := opts.Dir
	if dir == "" {
		dir = r.root
	}
	env := append(baseEnv(), r.env...)
	env = append(env, opts.Env...)
	wait := r.LockWait
	if wait <= 0 {
		wait = DefaultLockWait
	}
	start := time.Now()
	delay := 10 * time.Millisecond
	for tries := 1; ; tries++ {
		ectx := ctx
		if opts.finish {
			if err := ctx.Err(); err != nil {
				return "", fmt.Errorf("git %s: %w", subcommand(args), err)
			}
			ectx = context.WithoutCancel(ctx)
		}
		out, stderr, code, err := r.exec(ectx, dir, env, opts.Stdin, args)
		if err == nil {
			return out, nil
		}
		if ctx.Err() != nil {
			return out, fmt.Errorf("git %s: %w", subcommand(args), ctx.Err())
		}
		if tries < objectWriteTries && objectWriteRaced(args, stderr) {
			time.Sleep(time.Duration(tries) * 5 * time.Millisecond)
			continue
		}
		lock := lockPath(stderr)
		if lock == "" || !retryLocks {
			return out, &GitError{Args: args, Stderr: stderr, ExitCode: code}
		}
		waited := time.Since(start)
		if waited >= wait {
			return out, &LockHeldError{Cmd: subcommand(args), Path: r.RelPath(lock), Waited: waited}
		}
		d := min(delay, wait-waited)
		select {
		case <-ctx.Done():
			return out, fmt.Errorf("git %s: waiting for %s: %w", subcommand(args), r.RelPath(lock), ctx.Err())
		case <-time.After(d):
		}
		delay = min(2*delay, time.Second)
	}
}

// objectWriteTries bounds the runs of an object-writing command that a
// concurrent git gc got in the way of.
const objectWriteTries = 4

// objectWriteRaced reports a command that writes objects failing because
// a git gc of the user's removed the empty objects/xx directory it was
// writing into (git retries that once, and a gc's prune can win again):
// writing objects is idempotent, so the command runs again.
func objectWriteRaced(args []string, stderr string) bool {
	switch subcommand(args) {
	case "hash-object", "commit-tree", "merge-tree", "mktree", "write-tree", "add", "update-index":
		return strings.Contains(stderr, "unable to create temporary file") ||
			strings.Contains(stderr, "insufficient permission for adding an object")
	}
	return false
}

func (r *Repo) exec(ctx context.Context, dir string, env []string, stdin []byte, args []string) (stdout, stderr string, code int, err error) {
	r.ncmd.Add(1)
	path := r.gitPath()
	cmd := exec.CommandContext(ctx, "git", args...)
	// Found on the PATH git runs with, not on codemachine's own.
	cmd.Path, cmd.Err = findGit(path)
	// On cancellation git gets SIGTERM, on which it removes the lock files
	// it holds; SIGKILL (the default) would leave them blocking the user.
	// Not always: a signal between git's creating a lock and its noting it
	// for removal leaves it, so commands that lock the user's own index
	// are not stopped once they run (runOpts.finish).
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Dir = dir
	// The last PATH of env is the one git gets.
	cmd.Env = append(env[:len(env):len(env)], "PATH="+path)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	err = cmd.Run()
	code = 0
	if err != nil {
		code = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if errb.Len() == 0 {
			errb.WriteString(err.Error())
		}
	}
	return out.String(), errb.String(), code, err
}

// lockPath returns the lock file named in git's stderr, "" when the failure
// is not about a held lock.
func lockPath(stderr string) string {
	if m := lockRe().FindStringSubmatch(stderr); m != nil {
		return m[1]
	}
	if m := configLockRe().FindStringSubmatch(stderr); m != nil {
		return m[1] + ".lock"
	}
	return ""
}

// RelPath is p relative to the repository's top level, for messages; a
// path outside it is returned as it is.
func (r *Repo) RelPath(p string) string {
	if rel, err := filepath.Rel(r.root, p); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return p
}

// subcommand is the first argument that is not a global option.
func subcommand(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-c" || a == "-C":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			return a
		}
	}
	return "(none)"
}

// firstLine is the first "fatal:" or "error:" line of git's stderr without
// its prefix, or failing that the first line that is not a hint or warning.
func firstLine(s string) string {
	fallback := ""
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		// The remote's own error (a push it refused: a ref of its own in
		// the way, a hook) comes first, before git's "failed to push
		// some refs", and says why.
		remote, fromRemote := strings.CutPrefix(line, "remote: ")
		for _, p := range []string{"fatal: ", "error: "} {
			if rest, ok := strings.CutPrefix(line, p); ok {
				return rest
			}
			if rest, ok := strings.CutPrefix(remote, p); fromRemote && ok {
				return "remote: " + rest
			}
		}
		if fallback == "" && line != "" && !strings.HasPrefix(line, "hint:") && !strings.HasPrefix(line, "warning:") {
			fallback = line
		}
	}
	if fallback == "" {
		return "failed"
	}
	return fallback
}

// exitCode is 0 for success, the exit status carried by a *GitError, and
// -1 for other errors.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ge *GitError
	if errors.As(err, &ge) {
		return ge.ExitCode
	}
	return -1
}

// trimNL removes the trailing newline of one-line git output.
func trimNL(s string) string {
	return strings.TrimRight(s, "\n")
}
