package testenv

import (
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestRequired(t *testing.T) {
	tests := []struct {
		ci, require string
		want        bool
	}{
		{"", "", false},
		{"0", "", false},
		{"false", "", false},
		{"FALSE", "", false},
		{"true", "", true},
		{"1", "", true},
		{"", "1", true},
		{"", "0", false},
	}
	for _, tt := range tests {
		t.Setenv("CI", tt.ci)
		t.Setenv(RequireEnv, tt.require)
		if got := Required(); got != tt.want {
			t.Errorf("CI=%q %s=%q: Required() = %t", tt.ci, RequireEnv, tt.require, got)
		}
	}
}

// recorder is a testing.TB whose Skip and Fatal are recorded.
type recorder struct {
	testing.TB
	mu      sync.Mutex
	skipped string
	fatal   string
}

func (r *recorder) Helper() {}

func (r *recorder) Skip(args ...any) {
	r.mu.Lock()
	r.skipped = toString(args)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.mu.Lock()
	r.fatal = toString(args)
	r.mu.Unlock()
	runtime.Goexit()
}

func toString(args []any) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteString(a.(string))
	}
	return b.String()
}

// requireIn runs RequireCLIs with no way to install the CLIs.
func requireIn(t *testing.T) *recorder {
	t.Setenv(CacheEnv, t.TempDir())
	t.Setenv("PATH", t.TempDir()) // no npm, no node
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		RequireCLIs(r, "claude")
	}()
	<-done
	return r
}

func TestRequireCLIsSkipsLoudly(t *testing.T) {
	t.Setenv("CI", "")
	t.Setenv(RequireEnv, "")
	r := requireIn(t)
	if r.fatal != "" || !strings.Contains(r.skipped, "THE REAL AGENT CLIs ARE UNAVAILABLE") || !strings.Contains(r.skipped, "install-clis") {
		t.Errorf("skip %q, fatal %q", r.skipped, r.fatal)
	}
}

func TestRequireCLIsFailsInCI(t *testing.T) {
	t.Setenv("CI", "true")
	r := requireIn(t)
	if r.skipped != "" || !strings.Contains(r.fatal, "THE REAL AGENT CLIs ARE UNAVAILABLE") {
		t.Errorf("skip %q, fatal %q", r.skipped, r.fatal)
	}
}

// TestNetIsolated compares with /proc/net/dev, which lists the interfaces
// of this process's network namespace (/sys/class/net does not: it shows
// the namespace sysfs was mounted in).
func TestNetIsolated(t *testing.T) {
	data, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	onlyLoopback := true
	for _, line := range strings.Split(string(data), "\n")[2:] {
		name, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		names = append(names, name)
		if name != "lo" {
			onlyLoopback = false
		}
	}
	if got := NetIsolated(); got != onlyLoopback {
		t.Errorf("NetIsolated() = %t; interfaces %v", got, names)
	}
}

func TestInstalledOnly(t *testing.T) {
	npmLog(t)
	cache := t.TempDir()
	t.Setenv(CacheEnv, cache)
	if _, err := installedOnly([]string{"codex"}); err == nil || !strings.Contains(err.Error(), "@openai/codex@0.169.0") {
		t.Fatalf("err = %v, want codex missing", err)
	}
	bins, err := (&Installer{Cache: cache, NPM: fakeNPM(t)}).Install(t.Context(), "codex")
	if err != nil {
		t.Fatal(err)
	}
	got, err := installedOnly([]string{"codex"})
	if err != nil || got["codex"] != bins["codex"] {
		t.Errorf("installedOnly = %v, %v", got, err)
	}
}
