package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/urfave/cli/v2"
)

// Set by the linker: -X main.version=... -X main.commit=...
var (
	version = "dev"
	commit  = ""
)

// buildInfo fills in the commit from the module's build information when
// the linker did not set it. It is read once: parsing the build
// information (every module's line) is a measurable part of a command
// as short as version, which asks for it three times.
var buildInfo = sync.OnceValues(readBuildInfo)

func readBuildInfo() (string, string) {
	v, c := version, commit
	if v != "dev" && c != "" {
		// make build sets both: the build information has nothing to add.
		return v, c
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	return v, c
}

// versionLine is what version and --version print.
func versionLine() string {
	v, cm := buildInfo()
	return fmt.Sprintf("codemachine %s (commit %s, %s, %s/%s)", v, shortHash(cm), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func init() {
	// --version prints what the version command does; -v stays --verbose.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version, commit and Go version"}
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, c.App.Version) }
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, commit and Go version",
		Description: `Prints the version of this codemachine, the commit it was built from and the Go version
that built it (--json: as an object). codemachine --version prints the same line.`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			out := newOutput(c)
			v, cm := buildInfo()
			if out.json {
				return out.printJSON(map[string]string{"version": v, "commit": cm, "go": runtime.Version(),
					"platform": runtime.GOOS + "/" + runtime.GOARCH})
			}
			out.printf("%s\n", versionLine())
			return nil
		},
	}
}
