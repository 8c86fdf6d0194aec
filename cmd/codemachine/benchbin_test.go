package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// buildBenchBinary builds codemachine for a benchmark that times whole
// processes, and copies it, as `make build` does. The Go linker writes its
// output through a shared mapping; the same bytes written with write(2),
// as cp, an installer or a download writes them, start 1.2-1.3x faster on
// the machines these figures come from (the same number of page faults,
// less time in each: the page cache holds the two files differently).
// Users run such a copy, so the benchmarks do too. It is built with make
// build's flags: without the version and commit the linker sets, every
// command reads the module's build information, about 45 more page faults
// and a fifth more time for version.
func buildBenchBinary(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	linked := filepath.Join(dir, "codemachine.link")
	args := []string{"build", "-tags", buildTags, "-trimpath",
		"-ldflags", "-s -w -X main.version=bench -X main.commit=0000000000000000000000000000000000000000",
		"-o", linked, "."}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
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
