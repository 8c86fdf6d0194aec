package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RequireEnv names the variable that turns a missing CLI from a skip into
// a test failure (as does CI being set).
const RequireEnv = "CODEMACHINE_REQUIRE_CLIS"

// installTimeout bounds a first install from the registry; later calls
// find the CLIs in the cache at once.
const installTimeout = 10 * time.Minute

// RequireCLIs installs the named CLIs (all four when none are named) if
// they are missing and returns their executables by name. When they cannot
// be had (no npm, no registry, an install failure) the test is skipped
// with a loud message, or fails when CI or CODEMACHINE_REQUIRE_CLIS=1 is
// set, so that CI never passes by silently skipping the real CLIs.
func RequireCLIs(t testing.TB, names ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), installTimeout)
	defer cancel()
	var (
		bins map[string]string
		err  error
	)
	if NetIsolated() {
		// No registry in here: only what is in the cache counts, and npm
		// would spend minutes on retries before saying so.
		bins, err = installedOnly(names)
	} else {
		bins, err = Install(ctx, names...)
	}
	if err == nil {
		return bins
	}
	unavailable(t, fmt.Sprintf("THE REAL AGENT CLIs ARE UNAVAILABLE: %v", err),
		"Install them first: go run ./internal/testenv/cmd/install-clis (needs npm and the registry).")
	return nil
}

// RequireNode skips the test, loudly, when node is not on PATH (every
// agent CLI and the installer need it), or fails it where the CLIs are
// required (Required).
func RequireNode(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		unavailable(t, "NODE IS NOT INSTALLED: "+err.Error(), "Install Node.js (with npm); make test needs it.")
	}
}

// unavailable ends a test that lacks a tool it needs: a failure when the
// tools are required, else a skip with a message nobody can miss.
// RequireTools returns the paths of the programs, or skips the test,
// loudly (fails it where the tools are required), when one is missing:
// the terminal tests drive a real terminal (tmux) and real shells (bash,
// zsh, fish). make test installs them from the distribution's packages.
func RequireTools(t testing.TB, names ...string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	for _, name := range names {
		p, err := exec.LookPath(name)
		if err != nil {
			unavailable(t, strings.ToUpper(name)+" IS NOT INSTALLED: "+err.Error(),
				"Install it (apt-get install "+name+"); make test does.")
		}
		paths[name] = p
	}
	return paths
}

func unavailable(t testing.TB, what, hint string) {
	t.Helper()
	const bar = "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
	msg := fmt.Sprintf("\n%s\n!!! %s\n!!! %s\n!!! Set %s=1 (or CI) to make this a failure instead of a skip.\n%s",
		bar, what, hint, RequireEnv, bar)
	if Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Required reports whether missing CLIs must fail the tests: CI is set (to
// anything but "" / "0" / "false") or CODEMACHINE_REQUIRE_CLIS=1.
func Required() bool {
	if os.Getenv(RequireEnv) == "1" {
		return true
	}
	switch strings.ToLower(os.Getenv("CI")) {
	case "", "0", "false":
		return false
	}
	return true
}

// installedOnly finds already installed CLIs without installing any.
func installedOnly(names []string) (map[string]string, error) {
	if len(names) == 0 {
		names = Names()
	}
	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	bins := map[string]string{}
	var missing []string
	for _, n := range sortedUnique(names) {
		c, err := Lookup(n)
		if err != nil {
			return nil, err
		}
		if !installed(c, cache) {
			missing = append(missing, c.Spec())
			continue
		}
		bins[n] = c.BinPath(cache)
	}
	if len(missing) > 0 {
		return nil, errors.New("not installed in " + cache + " and the network is isolated: " + strings.Join(missing, ", "))
	}
	return bins, nil
}

// NetIsolated reports whether this process runs in a network namespace
// whose only interfaces are loopback ones (as under `unshare --net`), so
// that nothing but 127.0.0.1 can be reached.
func NetIsolated() bool {
	ifaces, err := net.Interfaces()
	if err != nil || len(ifaces) == 0 {
		return false
	}
	for _, i := range ifaces {
		if i.Flags&net.FlagLoopback == 0 {
			return false
		}
	}
	return true
}
