package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// buildBenchBinary builds codemachine for a benchmark that times whole
// processes, and copies it, as `make build` does. The Go linker writes its
// output through a shared mapping; the same bytes written with write(2),
// as cp, an installer or a download writes them, start 1.2-1.3x faster on
// the machines these figures come from (the same number of page faults,
// less time in each: the page cache holds the two files differently).
// Users run such a copy, so the benchmarks do too. It is built as make
// build builds it (benchBuildCommand).
func buildBenchBinary(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	linked := filepath.Join(dir, "codemachine.link")
	if out, err := benchBuildCommand(linked).CombinedOutput(); err != nil {
		tb.Fatalf("build: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "codemachine")
	if err := copyExecutable(linked, bin); err != nil {
		tb.Fatal(err)
	}
	if err := os.Remove(linked); err != nil {
		tb.Fatal(err)
	}
	return bin
}

// benchBuildCommand is the go build of the benchmarks' binary, with make
// build's flags and environment. Without the version and commit the linker
// sets, every command reads the module's build information, about 45 more
// page faults and a fifth more time for version. Without CGO_ENABLED=0
// (go's default is cgo wherever a C compiler is installed) the binary is
// linked dynamically, and every process first runs the dynamic loader and
// libc's set-up: 1.25x the wall time of a version (paired runs).
func benchBuildCommand(out string) *exec.Cmd {
	cmd := exec.Command("go", "build", "-tags", buildTags, "-trimpath",
		"-ldflags", "-s -w -X main.version=bench -X main.commit=0000000000000000000000000000000000000000",
		"-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

// TestBenchBinaryBuiltAsMakeBuild checks that the benchmarks time the
// binary make build builds: its build line's environment and flags are the
// benchmark build's.
func TestBenchBinaryBuiltAsMakeBuild(t *testing.T) {
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^build:\n\t(.*) \$\(GO\) build (.*)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("no go build line under the Makefile's build target")
	}
	cmd := benchBuildCommand("out")
	for _, kv := range strings.Fields(string(m[1])) {
		if !slices.Contains(cmd.Env, kv) {
			t.Errorf("make build sets %s; the benchmarks' build does not", kv)
		}
	}
	for _, flag := range []string{"-trimpath", "-tags $(TAGS)", `-ldflags "$(LDFLAGS)"`} {
		if !strings.Contains(string(m[2]), flag) {
			t.Errorf("make build's line has no %s: compare it with benchBuildCommand's", flag)
		}
	}
	if !regexp.MustCompile(`(?m)^LDFLAGS\s*:=\s*-s -w -X main\.version=\S+ -X main\.commit=`).Match(makefile) {
		t.Error("the Makefile's LDFLAGS are not -s -w and the version and commit, as the benchmarks' build's")
	}
	args := strings.Join(cmd.Args, " ")
	for _, flag := range []string{"-trimpath", "-tags " + buildTags, "-ldflags -s -w -X main.version=", "-X main.commit="} {
		if !strings.Contains(args, flag) {
			t.Errorf("the benchmarks' build has no %s, which make build gives", flag)
		}
	}
}

// copyExecutable writes a copy of the file src at dst, mode 0755.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
