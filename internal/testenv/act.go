package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ActModule is nektos/act, the runner of GitHub Actions workflows that the
// tests execute `codemachine init --ci github`'s workflow with (its
// self-hosted platform mode runs the steps on the host, without Docker).
const ActModule = "github.com/nektos/act@v0.2.89"

// Act returns the path of the act binary, built from the Go module proxy
// into the test cache (CacheDir) the first time (about a minute).
func Act(ctx context.Context) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "act@v0.2.89")
	bin := filepath.Join(dir, "act")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "install", ActModule)
	cmd.Dir = os.TempDir() // outside any module: the proxy's go.mod of act decides
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", ActModule, err, out)
	}
	return bin, nil
}
