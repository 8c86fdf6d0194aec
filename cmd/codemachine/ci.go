package main

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
)

//go:embed ci/github.yml
var githubWorkflow string

// maxCIWorkers is the most workers init --ci writes: GitHub Actions runs
// at most 256 jobs of a matrix and refuses a workflow with more.
const maxCIWorkers = 256

// GitHubWorkflowPath is where `init --ci github` writes the workers' workflow.
const GitHubWorkflowPath = ".github/workflows/codemachine.yml"

// ciPins are the agent CLIs' npm packages the CI workflow installs, at the
// versions codemachine is tested with (internal/testenv's pins; a test
// keeps the two the same).
var ciPins = map[string]string{
	"Claude":   "@anthropic-ai/claude-code@2.1.197",
	"Codex":    "@openai/codex@0.169.0",
	"Gemini":   "@google/gemini-cli@0.61.0",
	"Opencode": "opencode-ai@1.18.33",
}

// renderGitHubWorkflow is the GitHub Actions workflow of `workers` matrix
// jobs, each a `codemachine worker --once --slots slots`, installing
// codemachine at version.
func renderGitHubWorkflow(workers, slots int, version string) ([]byte, error) {
	t, err := template.New("github.yml").Parse(githubWorkflow)
	if err != nil {
		return nil, err
	}
	var matrix []string
	for i := 1; i <= workers; i++ {
		matrix = append(matrix, strconv.Itoa(i))
	}
	data := map[string]any{"Matrix": strings.Join(matrix, ", "), "Slots": slots, "Version": version}
	for k, v := range ciPins {
		data[k] = v
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeCIWorkflow writes the CI system's workflow at the repository root;
// an existing file is kept unless force.
func writeCIWorkflow(root, system string, workers, slots int, force bool) (string, error) {
	if system != "github" {
		return "", usageErrorf("init: unknown CI system %q (github)", system)
	}
	if workers < 1 || workers > maxCIWorkers {
		return "", usageErrorf("init: --workers: want 1 to %d (the most jobs a GitHub Actions matrix runs), got %d", maxCIWorkers, workers)
	}
	if slots < 1 || slots > maxParallel {
		return "", usageErrorf("init: --slots: want 1 to %d, got %d", maxParallel, slots)
	}
	version := "latest"
	if v, _ := buildInfo(); strings.HasPrefix(v, "v") && !strings.Contains(v, "devel") {
		version = v
	}
	data, err := renderGitHubWorkflow(workers, slots, version)
	if err != nil {
		return "", err
	}
	path := filepath.Join(root, filepath.FromSlash(GitHubWorkflowPath))
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		// --force replaces a file; a directory is not for it to remove.
		return "", usageErrorf("init: %s is a directory: move it out of the way first", GitHubWorkflowPath)
	} else if err == nil && !force {
		return "", usageErrorf("init: %s exists (--force overwrites it)", GitHubWorkflowPath)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("init: %w", err)
	}
	return GitHubWorkflowPath, nil
}
