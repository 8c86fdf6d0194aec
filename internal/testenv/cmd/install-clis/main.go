// Command install-clis installs the pinned agent CLIs (Claude Code, Codex,
// Gemini CLI, opencode) from the npm registry into the test cache outside
// the repository, as `make test` does up front so that the test binaries
// find them installed:
//
//	go run ./internal/testenv/cmd/install-clis [-q] [-act] [NAME...]
//
// With no names it installs all four. With -act it also builds nektos/act
// (testenv.Act) into the cache, which the tests of `init --ci github` run
// the generated workflow with: scripts/test.sh asks for it before the
// suite runs where nothing can be downloaded. It prints "NAME PATH" for
// each executable. The cache is $CODEMACHINE_TEST_CACHE, else
// ${XDG_CACHE_HOME:-$HOME/.cache}/codemachine-test.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/codemachine/codemachine/internal/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("install-clis", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quiet := fs.Bool("q", false, "print nothing but errors")
	act := fs.Bool("act", false, "build nektos/act into the cache as well")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: install-clis [-q] [-act] [NAME...]\nNAME is one of %v; none means all.\n", testenv.Names())
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, n := range fs.Args() {
		if _, err := testenv.Lookup(n); err != nil {
			fmt.Fprintln(stderr, "install-clis:", err)
			return 2
		}
	}
	in := &testenv.Installer{}
	if !*quiet {
		in.Log = stderr
	}
	bins, err := in.Install(ctx, fs.Args()...)
	if err != nil {
		fmt.Fprintln(stderr, "install-clis:", err)
		return 1
	}
	if *act {
		path, err := testenv.Act(ctx)
		if err != nil {
			fmt.Fprintln(stderr, "install-clis:", err)
			return 1
		}
		bins["act"] = path
	}
	if *quiet {
		return 0
	}
	names := make([]string, 0, len(bins))
	for n := range bins {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(stdout, "%s %s\n", n, bins[n])
	}
	return 0
}
