package gitstate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// What the in-process staging (stagefast.go) and commits (commitfast.go)
// need of git's configuration, read with one git config --list and read
// again whenever one of the configuration files changes (or every time,
// when the configuration includes other files).

// fastConfig is the configuration as git config --list --show-origin
// gives it: keys lower-cased as git prints them, the last value of each
// key, and the includes with the files that make them.
type fastConfig struct {
	key      string // configKey when it was read
	volatile bool   // includes other files: never reused
	values   map[string]string
	includes []configInclude
}

// configInclude is an include.path or includeIf.*.path entry: its value
// and the origin git shows for it ("file:PATH", "command line:", ...).
type configInclude struct{ origin, value string }

type fastConfigCache struct {
	mu  sync.Mutex
	cur *fastConfig
}

// getenv is the value of an environment variable as the repository's git
// commands see it.
func (r *Repo) getenv(name string) string {
	for i := len(r.env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(r.env[i], name+"="); ok {
			return v
		}
	}
	return os.Getenv(name)
}

// configFiles are the files git reads its configuration from, in the
// repository's environment.
func (r *Repo) configFiles() []string {
	home := r.getenv("HOME")
	xdg := r.getenv("XDG_CONFIG_HOME")
	if xdg == "" && home != "" {
		xdg = filepath.Join(home, ".config")
	}
	files := []string{filepath.Join(r.commonDir, "config"), filepath.Join(r.commonDir, "config.worktree"),
		filepath.Join(r.gitDir, "config.worktree")}
	if g := r.getenv("GIT_CONFIG_GLOBAL"); g != "" {
		files = append(files, g)
	} else {
		if home != "" {
			files = append(files, filepath.Join(home, ".gitconfig"))
		}
		if xdg != "" {
			files = append(files, filepath.Join(xdg, "git", "config"))
		}
	}
	if s := r.getenv("GIT_CONFIG_SYSTEM"); s != "" {
		files = append(files, s)
	} else {
		files = append(files, "/etc/gitconfig")
		for _, dir := range r.sysConfigDirs() {
			files = append(files, filepath.Join(dir, "gitconfig"))
		}
	}
	return files
}

// fastConfigFor returns the configuration, read again when a file changed.
func (r *Repo) fastConfigFor(ctx context.Context) (*fastConfig, error) {
	files := r.configFiles()
	stamps := make([]fileStamp, len(files))
	for i, f := range files {
		s, err := stampOf(f)
		if err != nil {
			return nil, err
		}
		stamps[i] = s
	}
	key := r.configKey(files, stamps)
	r.fastCache.mu.Lock()
	defer r.fastCache.mu.Unlock()
	if c := r.fastCache.cur; c != nil && !c.volatile && c.key == key {
		return c, nil
	}
	if out, ok := r.cachedConfigList(key); ok {
		if c := parseConfigList(out); !c.volatile {
			c.key = key
			r.fastCache.cur = c
			return c, nil
		}
	}
	out, err := r.read(ctx, "config", "-z", "--list", "--show-origin")
	var ge *GitError
	if err != nil && !(errors.As(err, &ge) && ge.ExitCode == 1) {
		return nil, fmt.Errorf("read the configuration: %w", err)
	}
	c := parseConfigList(out)
	c.key = key
	r.fastCache.cur = c
	if !c.volatile {
		r.keepConfigList(key, out)
	}
	return c, nil
}

// parseConfigList reads git config -z --list --show-origin: an origin,
// then "key\nvalue" (or "key" alone for a boolean true), each ended by a
// NUL.
func parseConfigList(out string) *fastConfig {
	c := &fastConfig{values: map[string]string{}}
	fields := strings.Split(out, "\x00")
	for i := 0; i+1 < len(fields); i += 2 {
		k, v, hasValue := strings.Cut(fields[i+1], "\n")
		if k == "" {
			continue
		}
		if !hasValue {
			v = "true" // a key without "=": boolean true
		}
		c.values[k] = v
		if strings.HasPrefix(k, "include.") || strings.HasPrefix(k, "includeif.") {
			c.volatile = true
			if strings.HasSuffix(k, ".path") {
				c.includes = append(c.includes, configInclude{origin: fields[i], value: v})
			}
		}
	}
	return c
}

// get is a key's value and whether it is set.
func (c *fastConfig) get(key string) (string, bool) {
	v, ok := c.values[key]
	return v, ok
}

// isBool reports whether key is unset or set to the boolean want.
func (c *fastConfig) isBool(key string, want bool) bool {
	v, ok := c.values[key]
	if !ok {
		return true
	}
	b := normalizeBool(v)
	if want {
		return b == "true"
	}
	return b == "false"
}

// expandPath expands a leading ~/ of a path from the configuration, as git
// does; "" when it cannot.
func (r *Repo) expandPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		home := r.getenv("HOME")
		if home == "" {
			return ""
		}
		return filepath.Join(home, rest)
	}
	if strings.HasPrefix(p, "~") || strings.HasPrefix(p, "%(prefix)") {
		return ""
	}
	return p
}

// syncObjects reports whether a loose object is synced to disk before its
// rename, as git decides: only when core.fsyncObjectFiles is true or
// core.fsync names loose objects (loose-object, objects, added, committed,
// all); git's default syncs packs but not loose objects. Until the
// configuration has been read in this process, it syncs.
func (r *Repo) syncObjects() bool {
	r.fastCache.mu.Lock()
	c := r.fastCache.cur
	r.fastCache.mu.Unlock()
	if c == nil {
		return true
	}
	return c.syncsLooseObjects()
}

// syncLocal reports whether a durable file under LocalDir (a journal, the
// holds, the tips) is synced to disk before its rename. They record what
// refs and the user's checkout are doing, so they follow git's rule for
// refs: synced only when core.fsync names references (git's default does
// not sync refs or the index). A kill -9 needs no sync at all: the kernel
// keeps what was written. Until the configuration has been read in this
// process, it syncs.
func (r *Repo) syncLocal() bool {
	r.fastCache.mu.Lock()
	c := r.fastCache.cur
	r.fastCache.mu.Unlock()
	if c == nil {
		return true
	}
	return c.syncsReferences()
}

// syncsLooseObjects is syncObjects' reading of the configuration.
func (c *fastConfig) syncsLooseObjects() bool {
	if v, ok := c.get("core.fsyncobjectfiles"); ok && normalizeBool(v) == "true" {
		return true
	}
	return c.fsyncNames("loose-object", "objects", "added", "committed", "all")
}

// syncsReferences reports whether core.fsync names references (reference,
// committed, added, all); git's default does not.
func (c *fastConfig) syncsReferences() bool {
	return c.fsyncNames("reference", "committed", "added", "all")
}

// fsyncNames reports whether core.fsync, read left to right as git reads
// it, ends up including a component that any of names covers.
func (c *fastConfig) fsyncNames(names ...string) bool {
	v, ok := c.get("core.fsync")
	if !ok {
		return false
	}
	sync := false
	for _, part := range strings.Split(v, ",") {
		name := strings.ToLower(strings.TrimSpace(part))
		negated := strings.HasPrefix(name, "-")
		if name == "none" {
			sync = false
			continue
		}
		if slices.Contains(names, strings.TrimPrefix(name, "-")) {
			sync = !negated
		}
	}
	return sync
}
