package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/codemachine/codemachine/internal/testenv"
)

// malformedDir is the workflow package's corpus of broken inputs: each case
// is the files of a repository plus `want`, the first error line.
const malformedDir = "../../workflow/testdata/malformed"

// problemLine is one problem of a validation error as the CLI prints it:
// the first after "codemachine: ", the others indented under it.
var problemLine = regexp.MustCompile(`^(codemachine: |  )\S+:\d+(:\d+)?: \S`)

// TestMalformed runs `codemachine validate` and `codemachine run` through
// the binary on every case of the corpus, each committed in a repository of
// its own: exit 2 with the case's error on stderr, one line per problem,
// never a Go panic or stack trace.
func TestMalformed(t *testing.T) {
	t.Parallel()
	// testscript.Main (TestMain) put the test binary on PATH under the
	// command's name, so this runs the CLI as a user would.
	bin, err := exec.LookPath("codemachine")
	if err != nil {
		t.Fatalf("codemachine is not on PATH (set up by TestMain): %v", err)
	}
	files, err := filepath.Glob(filepath.Join(malformedDir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 27 {
		t.Fatalf("found %d cases in %s, want at least 27", len(files), malformedDir)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want, dir := writeCase(t, a)
			env := append(testenv.GitEnv(t.TempDir()), "NO_COLOR=1", "GORACE="+raceOptions())

			stdout, stderr, code := runCLI(t, bin, dir, env, "validate")
			if code != 2 {
				t.Errorf("validate: exit %d, want 2\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			if stdout != "" {
				t.Errorf("validate: stdout should be empty, got:\n%s", stdout)
			}
			if !strings.Contains(stderr, want) {
				t.Errorf("validate: stderr does not contain the case's error\nwant: %s\ngot:\n%s", want, stderr)
			}
			checkProblems(t, "validate", stderr)

			stdout, stderr, code = runCLI(t, bin, dir, env, "run")
			checkNoCrash(t, "run", stdout+stderr)
			if isPlanCase(want) {
				// docs/internals.md: plan errors stop only the foreach
				// step, not the run, so the other steps run (and here
				// the first one fails: it asks for an agent CLI that the
				// test does not provide).
				if code != 1 {
					t.Errorf("run: exit %d, want 1 (a plan error fails only its foreach step)\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
				}
				return
			}
			if code != 2 {
				t.Errorf("run: exit %d, want 2\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			if !strings.Contains(stderr, want) {
				t.Errorf("run: stderr does not contain the case's error\nwant: %s\ngot:\n%s", want, stderr)
			}
			checkProblems(t, "run", stderr)
			if out := testenv.Git(t, dir, "for-each-ref", "--format=%(refname)"); out != "refs/heads/main" {
				t.Errorf("run on a broken workflow left refs:\n%s", out)
			}
		})
	}
}

// writeCase writes the case's files into a new repository with one commit
// on main and returns the want line and the repository's path.
func writeCase(t *testing.T, a *txtar.Archive) (want, dir string) {
	t.Helper()
	i := slices.IndexFunc(a.Files, func(f txtar.File) bool { return f.Name == "want" })
	if i < 0 {
		t.Fatal("the case has no want file")
	}
	want = string(bytes.TrimSpace(a.Files[i].Data))
	if want == "" || strings.Contains(want, "\n") {
		t.Fatalf("want must be one line, got %q", want)
	}
	dir = t.TempDir()
	testenv.Git(t, dir, "init", "-q", "-b", "main")
	for _, f := range a.Files {
		if f.Name == "want" {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, dir, "add", "-A")
	testenv.Git(t, dir, "commit", "-q", "-m", "broken workflow")
	return want, dir
}

// runCLI runs the binary in dir and returns its output and exit code.
func runCLI(t *testing.T, bin, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("codemachine %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// checkProblems requires stderr to be problems only, one per line, each
// starting with its position.
func checkProblems(t *testing.T, cmd, stderr string) {
	t.Helper()
	checkNoCrash(t, cmd, stderr)
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	for i, line := range lines {
		if !problemLine.MatchString(line) || (i == 0) != strings.HasPrefix(line, "codemachine: ") {
			t.Errorf("%s: stderr line %d is not one problem with its position: %q", cmd, i+1, line)
		}
	}
}

// checkNoCrash rejects a Go panic or stack trace in the output.
func checkNoCrash(t *testing.T, cmd, output string) {
	t.Helper()
	for _, s := range []string{"panic:", "goroutine ", "runtime.", "runtime/"} {
		if strings.Contains(output, s) {
			t.Errorf("%s: output contains %q (a crash or an internal detail):\n%s", cmd, s, output)
		}
	}
}

// isPlanCase reports whether the case's first error is in a plan file.
func isPlanCase(want string) bool {
	file, _, _ := strings.Cut(want, ":")
	return path.Base(file) == "plan.md"
}
