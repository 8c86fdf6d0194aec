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
	"time"
	"unicode"
)

// A landing swaps the branch ref while it holds the user's index lock, so
// the swap is done in the process, the way git's files backend does it
// (git update-ref would add a process start to the time the user's git
// commands fail on the lock): the ref's own lock file created exclusively,
// the current value read under it (the loose file, else packed-refs) and
// compared, the reflogs appended (the ref's, and HEAD's when HEAD points
// to it), the lock renamed over the ref. Repositories this does not cover
// exactly (the reftable format, a reference-transaction hook to run, a
// symbolic ref) use git update-ref.

// errNotInProcess says the in-process swap does not apply.
var errNotInProcess = errors.New("the ref swap needs git")

// refSettings is what the in-process swap needs of the repository's
// configuration: derived from the configuration read once for staging and
// commits (fastConfigFor), so a landing starts no git process of its own.
type refSettings struct {
	usable   bool   // files backend, no reference-transaction hook
	logRefs  string // core.logAllRefUpdates: "always", "true" or "false"
	ident    string // the committer, "Name <email>"
	fixedNow string // GIT_COMMITTER_DATE's "seconds zone", when set
}

// refSettingsCache keeps the committer git var named, for a configuration
// that leaves it to git's guess (see refSettingsFor).
type refSettingsCache struct {
	mu     sync.Mutex
	config *fastConfig // the configuration ident was asked under
	env    string      // and the environment it depends on
	ident  string      // git var GIT_COMMITTER_IDENT's output
}

// refSettingsFor returns the settings under the current configuration.
// The hooks directory is looked at on each call: a reference-transaction
// hook added meanwhile makes git update-ref do the swap.
func (r *Repo) refSettingsFor(ctx context.Context) (*refSettings, error) {
	c, err := r.fastConfigFor(ctx)
	if err != nil {
		return nil, err
	}
	s := &refSettings{logRefs: "true"}
	if lr, ok := c.get("core.logallrefupdates"); ok {
		s.logRefs = normalizeBool(lr)
	} else if v, _ := c.get("core.bare"); normalizeBool(v) == "true" {
		s.logRefs = "false"
	}
	hooks := filepath.Join(r.commonDir, "hooks")
	if hp, _ := c.get("core.hookspath"); hp != "" {
		hooks = hp
		if !filepath.IsAbs(hp) {
			hooks = filepath.Join(r.root, hp)
		}
	}
	_, hookErr := os.Stat(filepath.Join(hooks, "reference-transaction"))
	storage, _ := c.get("extensions.refstorage")
	s.usable = (storage == "" || storage == "files") && errors.Is(hookErr, fs.ErrNotExist)
	if !s.usable {
		return s, nil
	}
	if ident, fixedNow, ok := r.committerInProcess(c); ok {
		s.ident, s.fixedNow = ident, fixedNow
		return s, nil
	}
	ident, err := r.committerByGit(ctx, c)
	if err != nil {
		return nil, err
	}
	// "Name <email> seconds zone": keep the person; the time is the swap's
	// unless GIT_COMMITTER_DATE fixes it.
	if i := strings.LastIndexByte(ident, '>'); i >= 0 {
		s.ident = ident[:i+1]
		if _, set := r.lookupEnv("GIT_COMMITTER_DATE"); set {
			s.fixedNow = strings.TrimSpace(ident[i+1:])
		}
	} else {
		// git var is strict about an unknown committer where update-ref
		// is not: then update-ref it is.
		s.usable = false
	}
	return s, nil
}

// committerInProcess is the committer git var GIT_COMMITTER_IDENT would
// name, without the time, and GIT_COMMITTER_DATE as git records it when it
// is set; ok is false where git would guess or reformat (identFor,
// rawDate).
func (r *Repo) committerInProcess(c *fastConfig) (ident, fixedNow string, ok bool) {
	p, ok := r.identFor(c, false)
	if !ok {
		return "", "", false
	}
	if v, set := r.lookupEnv("GIT_COMMITTER_DATE"); set {
		if fixedNow, ok = rawDate(v); !ok {
			return "", "", false
		}
	}
	return p.name + " <" + p.email + ">", fixedNow, true
}

// committerByGit is git var GIT_COMMITTER_IDENT's output ("" when git
// refuses), asked once per configuration read and environment.
func (r *Repo) committerByGit(ctx context.Context, c *fastConfig) (string, error) {
	var env strings.Builder
	for _, k := range []string{"GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_COMMITTER_DATE", "EMAIL"} {
		v, set := r.lookupEnv(k)
		fmt.Fprintf(&env, "%s %t %q\n", k, set, v)
	}
	r.refCache.mu.Lock()
	defer r.refCache.mu.Unlock()
	if r.refCache.config == c && !c.volatile && r.refCache.env == env.String() {
		return r.refCache.ident, nil
	}
	ident, err := r.read(ctx, "var", "GIT_COMMITTER_IDENT")
	if err != nil {
		var ge *GitError
		if !errors.As(err, &ge) {
			return "", fmt.Errorf("ask git for the committer: %w", err)
		}
		ident = ""
	}
	r.refCache.config, r.refCache.env, r.refCache.ident = c, env.String(), strings.TrimSpace(ident)
	return r.refCache.ident, nil
}

// normalizeBool maps git's spellings of a boolean to "true"/"false";
// anything else ("always") is kept.
func normalizeBool(v string) string {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "true", "yes", "on", "1":
		return "true"
	case "false", "no", "off", "0":
		return "false"
	}
	return strings.ToLower(strings.TrimSpace(v))
}

// swapRef moves cas.ref from cas.old to cas.new, in the process where it
// can and with git update-ref where it cannot.
func (r *Repo) swapRef(ctx context.Context, cas refUpdate, env string, s *refSettings) error {
	if s != nil && s.usable {
		err := r.swapRefInProcess(cas, s)
		if !errors.Is(err, errNotInProcess) {
			return err
		}
	}
	_, err := r.run(ctx, runOpts{Env: []string{env}}, true, cas.args)
	return refError(cas.ref, err)
}

// swapRefInProcess is git's files-backend update of one branch ref.
func (r *Repo) swapRefInProcess(cas refUpdate, s *refSettings) error {
	if !strings.HasPrefix(cas.ref, "refs/heads/") || cas.old == "" {
		return errNotInProcess
	}
	path := filepath.Join(r.commonDir, filepath.FromSlash(cas.ref))
	lock := path + ".lock"
	// The lock is created holding the new commit (a written file linked
	// into place), never empty: Recover tells it from anyone else's lock
	// by that content.
	if err := linkFile(lock, r.LocalDir(), []byte(cas.new+"\n")); err != nil {
		// Held by someone else (git waits a little for it): let git do it.
		return errNotInProcess
	}
	done := false
	defer func() {
		if !done {
			_ = os.Remove(lock)
		}
	}()
	cur, symbolic, err := r.readRefUnderLock(cas.ref, path)
	if err != nil {
		return err
	}
	if symbolic {
		return errNotInProcess
	}
	if cur != cas.old {
		return fmt.Errorf("update %s: %w (it is at %s, expected %s)", cas.ref, ErrRefMoved, short(cur), short(cas.old))
	}
	line := reflogLine(cas, s)
	if err := r.appendReflog(filepath.Join(r.commonDir, "logs", filepath.FromSlash(cas.ref)), line, s.logRefs != "false"); err != nil {
		return err
	}
	if head, err := os.ReadFile(filepath.Join(r.gitDir, "HEAD")); err == nil && strings.TrimSpace(string(head)) == "ref: "+cas.ref {
		if err := r.appendReflog(filepath.Join(r.gitDir, "logs", "HEAD"), line, s.logRefs != "false"); err != nil {
			return err
		}
	}
	if err := os.Rename(lock, path); err != nil {
		return fmt.Errorf("update %s: %w", cas.ref, err)
	}
	done = true
	return nil
}

// readRefUnderLock reads a ref's value as git's files backend does: the
// loose file, else its line in packed-refs; "" when it exists in neither.
func (r *Repo) readRefUnderLock(ref, path string) (hash string, symbolic bool, err error) {
	data, err := os.ReadFile(path)
	if err == nil {
		v := strings.TrimSpace(string(data))
		if strings.HasPrefix(v, "ref:") {
			return "", true, nil
		}
		return v, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("read %s: %w", ref, err)
	}
	packed, err := os.ReadFile(filepath.Join(r.commonDir, "packed-refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read packed-refs: %w", err)
	}
	for _, l := range strings.Split(string(packed), "\n") {
		if h, name, ok := strings.Cut(l, " "); ok && name == ref && !strings.HasPrefix(h, "#") && !strings.HasPrefix(h, "^") {
			return h, false, nil
		}
	}
	return "", false, nil
}

// reflogLine is the entry git writes: old new ident time zone, a tab and
// the message with its whitespace collapsed.
func reflogLine(cas refUpdate, s *refSettings) string {
	when := s.fixedNow
	if when == "" {
		now := time.Now()
		when = fmt.Sprintf("%d %s", now.Unix(), now.Format("-0700"))
	}
	line := fmt.Sprintf("%s %s %s %s", cas.old, cas.new, s.ident, when)
	if msg := strings.Join(strings.FieldsFunc(cas.msg, unicode.IsSpace), " "); msg != "" {
		line += "\t" + msg
	}
	return line + "\n"
}

// appendReflog appends line to a reflog, creating it when create (git's
// core.logAllRefUpdates for branches and HEAD) and it does not exist.
func (r *Repo) appendReflog(path, line string, create bool) error {
	flags := os.O_WRONLY | os.O_APPEND
	if create {
		flags |= os.O_CREATE
		if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
			return fmt.Errorf("write the reflog: %w", err)
		}
	}
	f, err := os.OpenFile(path, flags, 0o666)
	if errors.Is(err, fs.ErrNotExist) && !create {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write the reflog: %w", err)
	}
	_, err = f.WriteString(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the reflog: %w", err)
	}
	return nil
}
