package testenv

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// fakeNPM is the path of testdata/fake-npm. The installer insists on node
// (every CLI runs on it), so without node these tests cannot run.
func fakeNPM(t *testing.T) string {
	t.Helper()
	RequireNode(t)
	p, err := filepath.Abs("testdata/fake-npm")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// npmLog sets up the fake npm's log and returns a reader of its lines.
func npmLog(t *testing.T) func() []string {
	t.Helper()
	log := filepath.Join(t.TempDir(), "npm.log")
	t.Setenv("FAKE_NPM_LOG", log)
	return func() []string {
		data, err := os.ReadFile(log)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		sort.Strings(lines)
		return lines
	}
}

func TestInstall(t *testing.T) {
	calls := npmLog(t)
	cache := t.TempDir()
	in := &Installer{Cache: cache, NPM: fakeNPM(t)}
	bins, err := in.Install(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(bins) != 4 {
		t.Fatalf("bins %v, want all four", bins)
	}
	for _, c := range CLIs() {
		want := filepath.Join(cache, filepath.FromSlash(c.Package)+"@"+c.Version, "node_modules", ".bin", c.Bin)
		if bins[c.Name] != want {
			t.Errorf("%s: bin %s, want %s", c.Name, bins[c.Name], want)
		}
		out, err := exec.Command(bins[c.Name]).Output()
		if err != nil || strings.TrimSpace(string(out)) != c.Version {
			t.Errorf("%s: the installed executable says %q, %v", c.Name, out, err)
		}
	}
	got := calls()
	if len(got) != 4 {
		t.Fatalf("npm ran %d times: %q", len(got), got)
	}
	for _, line := range got {
		// npm must run inside the prefix: from the cache directory it
		// would take "pkg@version" for the (empty) directory of that name.
		spec, cwd, _ := strings.Cut(line, " ")
		if cwd != filepath.Join(cache, filepath.FromSlash(spec)) {
			t.Errorf("npm for %s ran in %s, want its prefix", spec, cwd)
		}
	}

	// Installed: no npm at all, not even a lookup on PATH.
	t.Setenv("PATH", t.TempDir())
	again, err := (&Installer{Cache: cache, NPM: "no-such-npm"}).Install(context.Background(), "codex", "claude", "codex")
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 2 || again["codex"] != bins["codex"] || again["claude"] != bins["claude"] {
		t.Errorf("second install: %v", again)
	}
	if n := len(calls()); n != 4 {
		t.Errorf("npm ran again: %d calls", n)
	}
}

func TestInstallRedoesAnInterruptedInstall(t *testing.T) {
	calls := npmLog(t)
	cache := t.TempDir()
	in := &Installer{Cache: cache, NPM: fakeNPM(t)}
	if _, err := in.Install(context.Background(), "gemini"); err != nil {
		t.Fatal(err)
	}
	// An install killed half way leaves files but no marker.
	if err := os.Remove(filepath.Join(Gemini.prefix(cache), markerFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Install(context.Background(), "gemini"); err != nil {
		t.Fatal(err)
	}
	if n := len(calls()); n != 2 {
		t.Errorf("npm ran %d times, want 2", n)
	}
	marker, err := os.ReadFile(filepath.Join(Gemini.prefix(cache), markerFile))
	if err != nil || strings.TrimSpace(string(marker)) != Gemini.Spec() {
		t.Errorf("marker %q, %v", marker, err)
	}
}

func TestInstallErrors(t *testing.T) {
	npmLog(t)
	t.Run("npm fails", func(t *testing.T) {
		t.Setenv("FAKE_NPM_FAIL", "1")
		cache := t.TempDir()
		_, err := (&Installer{Cache: cache, NPM: fakeNPM(t)}).Install(context.Background(), "opencode")
		var ie *InstallError
		if !errors.As(err, &ie) || ie.CLI != Opencode || !strings.Contains(ie.Output, "404 Not Found") {
			t.Fatalf("err = %v, want an InstallError with npm's output", err)
		}
		if !strings.HasPrefix(err.Error(), "install opencode-ai@1.18.33: exit status 1\n") {
			t.Errorf("message %q", err)
		}
		if installed(Opencode, cache) {
			t.Error("a failed install is marked installed")
		}
	})
	t.Run("wrong version", func(t *testing.T) {
		t.Setenv("FAKE_NPM_VERSION", "9.9.9")
		cache := t.TempDir()
		_, err := (&Installer{Cache: cache, NPM: fakeNPM(t)}).Install(context.Background(), "codex")
		if err == nil || !strings.Contains(err.Error(), "npm installed version 9.9.9, want 0.169.0") {
			t.Fatalf("err = %v", err)
		}
		if installed(Codex, cache) {
			t.Error("a wrong version is marked installed")
		}
	})
	t.Run("no npm", func(t *testing.T) {
		_, err := (&Installer{Cache: t.TempDir(), NPM: "/nonexistent/npm"}).Install(context.Background(), "claude")
		if !errors.Is(err, ErrNoNPM) {
			t.Fatalf("err = %v, want ErrNoNPM", err)
		}
	})
	t.Run("unknown CLI", func(t *testing.T) {
		_, err := (&Installer{Cache: t.TempDir(), NPM: fakeNPM(t)}).Install(context.Background(), "aider")
		if err == nil || err.Error() != `unknown CLI "aider" (known: claude, codex, gemini, opencode)` {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cancelled while waiting for the lock", func(t *testing.T) {
		cache := t.TempDir()
		os.MkdirAll(Claude.prefix(cache), 0o755)
		unlock, err := lockFile(context.Background(), Claude.prefix(cache)+".lock")
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = (&Installer{Cache: cache, NPM: fakeNPM(t)}).Install(ctx, "claude")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

// TestInstallConcurrentProcesses starts several processes installing the
// same CLI at once (as parallel test binaries do): npm runs once.
func TestInstallConcurrentProcesses(t *testing.T) {
	calls := npmLog(t)
	cache := t.TempDir()
	t.Setenv("FAKE_NPM_SLEEP", "0.3")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestInstallHelperProcess$")
			cmd.Env = append(os.Environ(), "TESTENV_HELPER_CACHE="+cache, "TESTENV_HELPER_NPM="+fakeNPM(t))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- errors.New(string(out))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := calls(); len(got) != 1 {
		t.Errorf("npm ran %d times: %q", len(got), got)
	}
}

// TestInstallHelperProcess is the child of TestInstallConcurrentProcesses.
func TestInstallHelperProcess(t *testing.T) {
	cache := os.Getenv("TESTENV_HELPER_CACHE")
	if cache == "" {
		t.Skip("helper process")
	}
	bins, err := (&Installer{Cache: cache, NPM: os.Getenv("TESTENV_HELPER_NPM")}).Install(context.Background(), "claude")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bins["claude"]); err != nil {
		t.Fatal(err)
	}
}

func TestInstallLogs(t *testing.T) {
	npmLog(t)
	var log strings.Builder
	in := &Installer{Cache: t.TempDir(), NPM: fakeNPM(t), Log: &log}
	if _, err := in.Install(context.Background(), "codex"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(log.String(), "installed @openai/codex@0.169.0 into ") {
		t.Errorf("log %q", log.String())
	}
}

func TestPackageInstallUsesCacheEnv(t *testing.T) {
	npmLog(t)
	cache := t.TempDir()
	t.Setenv(CacheEnv, cache)
	// The package-level Install finds npm on PATH.
	dir := t.TempDir()
	if err := os.Symlink(fakeNPM(t), filepath.Join(dir, "npm")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	bins, err := Install(context.Background(), "opencode")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(bins["opencode"], cache+string(os.PathSeparator)) {
		t.Errorf("installed to %s, not under %s", bins["opencode"], cache)
	}
}
