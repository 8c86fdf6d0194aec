package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// ErrNoNPM reports that npm (or node, which every CLI runs on) is not on
// PATH, so the CLIs cannot be installed or run.
var ErrNoNPM = errors.New("npm and node are needed to install the agent CLIs")

// InstallError is a failed npm install of one CLI.
type InstallError struct {
	CLI    CLI
	Output string // the tail of npm's output
	Err    error
}

// Error names the package and the failure, then npm's output.
func (e *InstallError) Error() string {
	msg := fmt.Sprintf("install %s: %v", e.CLI.Spec(), e.Err)
	if e.Output != "" {
		msg += "\n" + e.Output
	}
	return msg
}

// Unwrap gives the underlying failure (an exec.ExitError, a version
// mismatch, a context error).
func (e *InstallError) Unwrap() error { return e.Err }

// Installer installs pinned CLIs into a cache directory.
type Installer struct {
	// Cache is the cache directory; "" = CacheDir().
	Cache string
	// NPM is the npm executable; "" = "npm" found on PATH.
	NPM string
	// Log receives one line per CLI actually installed (never two writes
	// at once); nil = nothing.
	Log io.Writer
}

// markerFile records, inside a CLI's prefix, that its install completed:
// an interrupted npm install leaves node_modules half written, and the
// marker's absence makes the next Install redo it.
const markerFile = ".codemachine-installed"

// Install installs the named CLIs (all four when none are named) with the
// default Installer and returns the path of each one's executable by name.
func Install(ctx context.Context, names ...string) (map[string]string, error) {
	return (&Installer{}).Install(ctx, names...)
}

// Install makes sure each named CLI (all four when none are named) is in
// the cache at its pinned version and returns its executable's path by
// name. CLIs already installed cost a stat each; missing ones are
// installed in parallel, each under a file lock so that test binaries
// running at the same time install a CLI once and never see it half
// written.
func (in *Installer) Install(ctx context.Context, names ...string) (map[string]string, error) {
	if len(names) == 0 {
		names = Names()
	}
	var clis []CLI
	for _, n := range sortedUnique(names) {
		c, err := Lookup(n)
		if err != nil {
			return nil, err
		}
		clis = append(clis, c)
	}
	cache := in.Cache
	if cache == "" {
		var err error
		if cache, err = CacheDir(); err != nil {
			return nil, err
		}
	}
	bins := map[string]string{}
	var missing []CLI
	for _, c := range clis {
		if installed(c, cache) {
			bins[c.Name] = c.BinPath(cache)
		} else {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return bins, nil
	}
	npm, err := in.npm()
	if err != nil {
		return nil, err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range missing {
		wg.Add(1)
		go func() {
			defer wg.Done()
			did, err := in.installOne(ctx, npm, cache, c)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			bins[c.Name] = c.BinPath(cache)
			if did && in.Log != nil {
				fmt.Fprintf(in.Log, "installed %s into %s\n", c.Spec(), c.prefix(cache))
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return bins, nil
}

func (in *Installer) npm() (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoNPM, err)
	}
	name := in.NPM
	if name == "" {
		name = "npm"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoNPM, err)
	}
	return path, nil
}

// installed reports whether the CLI's install completed: the marker names
// the pinned version and the executable is there.
func installed(c CLI, cache string) bool {
	marker, err := os.ReadFile(filepath.Join(c.prefix(cache), markerFile))
	if err != nil || strings.TrimSpace(string(marker)) != c.Spec() {
		return false
	}
	_, err = os.Stat(c.BinPath(cache))
	return err == nil
}

// installOne installs one CLI under its lock; did is false when another
// process installed it while this one waited for the lock.
func (in *Installer) installOne(ctx context.Context, npm, cache string, c CLI) (did bool, err error) {
	prefix := c.prefix(cache)
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return false, &InstallError{CLI: c, Err: err}
	}
	unlock, err := lockFile(ctx, prefix+".lock")
	if err != nil {
		return false, &InstallError{CLI: c, Err: err}
	}
	defer unlock()
	if installed(c, cache) {
		return false, nil
	}
	// Run npm inside the prefix: from the cache directory, the argument
	// "pkg@version" names an existing directory there and npm would
	// install that (empty) folder instead of the registry package.
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", prefix, c.Spec(),
		"--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = prefix
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return false, &InstallError{CLI: c, Output: tail(out.String(), 2000), Err: err}
	}
	if err := checkVersion(c, prefix); err != nil {
		return false, &InstallError{CLI: c, Output: tail(out.String(), 2000), Err: err}
	}
	if _, err := os.Stat(c.BinPath(cache)); err != nil {
		return false, &InstallError{CLI: c, Err: fmt.Errorf("no executable after install: %w", err)}
	}
	tmp := filepath.Join(prefix, markerFile+".tmp")
	if err := os.WriteFile(tmp, []byte(c.Spec()+"\n"), 0o644); err != nil {
		return false, &InstallError{CLI: c, Err: err}
	}
	if err := os.Rename(tmp, filepath.Join(prefix, markerFile)); err != nil {
		return false, &InstallError{CLI: c, Err: err}
	}
	return true, nil
}

// checkVersion reads the installed package.json rather than running the
// CLI: even --version writes state into HOME.
func checkVersion(c CLI, prefix string) error {
	pj := filepath.Join(prefix, "node_modules", filepath.FromSlash(c.Package), "package.json")
	data, err := os.ReadFile(pj)
	if err != nil {
		return fmt.Errorf("read installed version: %w", err)
	}
	var meta struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return fmt.Errorf("parse %s: %w", pj, err)
	}
	if meta.Version != c.Version {
		return fmt.Errorf("npm installed version %s, want %s", meta.Version, c.Version)
	}
	return nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
