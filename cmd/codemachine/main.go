// Command codemachine makes a git repository the workflow engine for AI
// coding agents: workflow files in .codemachine/, one commit per step.
//
// This package is the thin CLI: it parses flags into options, calls the
// orchestrator and maps errors to the documented exit codes (README.md).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/codemachine/codemachine/internal/lazyre"
	// Grows the main goroutine's stack once, before the dependencies'
	// initialisation deepens it (see the package).
	_ "github.com/codemachine/codemachine/internal/stackreserve"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/sandbox"
)

func main() {
	// First: this binary, re-executed, is the launcher that sandboxes
	// every step's processes (package sandbox).
	sandbox.Main()
	os.Exit(Main(os.Args, os.Stdout, os.Stderr))
}

// Main runs the CLI with args (args[0] is the program name) and returns the
// exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, armSignals, stop := interruptContext(stderr)
	defer stop()
	app := newAppFor(stdout, stderr, soleCommand(args))
	catchSignalsIn(app.Commands, "", armSignals)
	args, err := normalizeArgs(app, args)
	if err == nil {
		err = app.RunContext(ctx, args)
	}
	if err == nil {
		return 0
	}
	code := exitCode(err)
	// An error may quote what the repository holds (a commit's subject, a
	// step key from its trailers): it is printed without what would
	// drive the terminal, as the tables are.
	msg := capLines(strings.TrimSpace(orchestrator.Printable(err.Error())))
	if msg != "" && !errors.Is(err, errSilent) {
		fmt.Fprintln(stderr, "codemachine: "+strings.ReplaceAll(msg, "\n", "\n  ")+watcherHint(err))
	}
	return code
}

// errSilent marks an error whose message was already printed.
var errSilent = errors.New("")

// usageError is a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// maxErrorLines bounds what one error prints: a file with a mistake on
// each of its million lines is told by its first problems and a count,
// not by hundreds of megabytes of them (validate --json lists them all).
const maxErrorLines = 100

// capLines keeps the first maxErrorLines lines of msg and counts the rest.
func capLines(msg string) string {
	lines := strings.SplitN(msg, "\n", maxErrorLines+1)
	if len(lines) <= maxErrorLines {
		return msg
	}
	more := strings.Count(lines[maxErrorLines], "\n") + 1
	return strings.Join(lines[:maxErrorLines], "\n") + fmt.Sprintf("\n... and %d more (fix these and run again)", more)
}

// exitError carries an explicit exit code with an already-printed message.
type exitError struct{ code int }

func (e *exitError) Error() string { return "" }

func exitCode(err error) int {
	var ue *usageError
	var ee *exitError
	var ce cli.ExitCoder
	switch {
	case errors.As(err, &ue):
		return orchestrator.ExitUsage
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ce):
		// Only the cli package returns these ("No help topic for ..."):
		// command-line mistakes, whatever code it picked.
		return orchestrator.ExitUsage
	}
	return orchestrator.ExitCode(err)
}

// globalFlags are accepted before and after the command name.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "C", Usage: "run as if started in `DIR`"},
		&cli.BoolFlag{Name: "no-color", Usage: "plain output (also NO_COLOR=1)"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only errors and results"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print more detail"},
	}
}

// jsonFlag is added to commands whose output is data.
var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON"}

func newApp(stdout, stderr io.Writer) *cli.App { return newAppFor(stdout, stderr, "") }

// commandTable is every command, in the order help lists them, with the
// function that builds it: building all of them (their flags, their
// help) is a good part of a one-shot command's start-up, and a command
// that names one needs only that one (newAppFor).
var commandTable = []struct {
	name  string
	build func() *cli.Command
}{
	{"init", initCommand}, {"validate", validateCommand}, {"run", runCommand}, {"status", statusCommand},
	{"log", logCommand}, {"diff", diffCommand}, {"approve", approveCommand}, {"reject", rejectCommand},
	{"rollback", rollbackCommand}, {"retry", retryCommand}, {"open", openCommand}, {"graph", graphCommand},
	{"watch", watchCommand}, {"worker", workerCommand}, {"hooks", hooksCommand}, {"doctor", doctorCommand},
	{"mcp", mcpCommand}, {"ui", uiCommand}, {"schema", schemaCommand}, {"review", reviewCommand},
	{"completion", completionCommand}, {"version", versionCommand}, {"__complete", completeCommand},
}

// buildCommands builds the command called only, or every command when
// only is "".
func buildCommands(only string) []*cli.Command {
	var cmds []*cli.Command
	for _, c := range commandTable {
		if only == "" || c.name == only {
			cmds = append(cmds, c.build())
		}
	}
	return cmds
}

// soleCommand is the command args run when the app needs no other: the
// name after the global flags, when it is a command's; "" otherwise (no
// command, help, an unknown name, or completion, which lists them all).
func soleCommand(args []string) string {
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		if takesValue(globalFlags(), args[i]) {
			i++
		}
		i++
	}
	if i >= len(args) || args[i] == "completion" || args[i] == "__complete" {
		return ""
	}
	for _, c := range commandTable {
		if c.name == args[i] {
			return c.name
		}
	}
	return ""
}

// newAppFor is the app with only the command called only, or with every
// command when only is "".
func newAppFor(stdout, stderr io.Writer, only string) *cli.App {
	app := &cli.App{
		Name:  "codemachine",
		Usage: "make a git repository the workflow engine for AI coding agents",
		Description: `codemachine runs the workflow in .codemachine/ (workflow.yaml, agents/*.md, plan.md):
every agent step lands as its own commit with provenance trailers, state lives in the tree,
and a rollback is a reset.

Exit codes: 0 ok, 1 a step failed, 2 usage/configuration/validation error,
3 waiting for review, 4 budget exceeded, 130 interrupted.`,
		Writer:               stdout,
		ErrWriter:            stderr,
		Flags:                globalFlags(),
		Version:              versionLine(),
		EnableBashCompletion: false,
		Commands:             buildCommands(only),
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageErrorf("%s (see codemachine --help)", flagMessage(err))
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	for _, cmd := range app.Commands {
		cmd.Flags = append(cmd.Flags, globalFlags()...)
		cmd.OnUsageError = onUsageError(cmd.Name)
		for _, sub := range cmd.Subcommands {
			sub.OnUsageError = onUsageError(cmd.Name + " " + sub.Name)
		}
	}
	return app
}

// onUsageError is the usage error of command name (e.g. "run", "review
// push"): a bad flag is one line and exit 2, as for every command.
func onUsageError(name string) cli.OnUsageErrorFunc {
	return func(_ *cli.Context, err error, _ bool) error {
		return usageErrorf("%s: %s (see codemachine %s --help)", name, flagMessage(err), name)
	}
}

// flagRe finds a flag name in the flag package's messages, which spell
// every flag with one dash.
var flagRe = lazyre.New(`(^|[\s:])-([A-Za-z][\w-]+)`)

// flagMessage rewrites the flag package's error messages the way the help
// spells flags: "flag provided but not defined: -bogus" becomes "unknown
// flag --bogus", "-quiet-window" becomes "--quiet-window".
func flagMessage(err error) string {
	msg := strings.Replace(err.Error(), "flag provided but not defined:", "unknown flag", 1)
	msg = strings.Replace(msg, " for flag ", " for ", 1)
	return flagRe().ReplaceAllString(msg, "$1--$2")
}

// notNegative is the action of an int flag that must not be negative.
func notNegative(name string) func(*cli.Context, int) error {
	return func(_ *cli.Context, v int) error {
		if v < 0 {
			dashes := "--"
			if len(name) == 1 {
				dashes = "-"
			}
			return usageErrorf("%s%s must not be negative, got %d", dashes, name, v)
		}
		return nil
	}
}

// maxParallel is the most tasks a --parallel may run at once: the bound of
// a step's own parallel: (1 to 1000), which the flag overrides.
const maxParallel = 1000

// parallelFlag checks --parallel: 1 to maxParallel, as a step's parallel:
// may be; more would start as many worktrees and agents at once, and 0
// would run nothing (left out, the flag leaves each step its own).
func parallelFlag(c *cli.Context, v int) error {
	if err := notNegative("parallel")(c, v); err != nil {
		return err
	}
	if v == 0 || v > maxParallel {
		return usageErrorf("--parallel: want 1 to %d, got %d", maxParallel, v)
	}
	return nil
}

// inRange is the Action of an integer flag that takes lo to hi: a value
// out of that range is a usage error saying the range.
func inRange(name string, lo, hi int) func(*cli.Context, int) error {
	return func(_ *cli.Context, v int) error {
		if v < lo || v > hi {
			return usageErrorf("--%s: want %d to %d, got %d", name, lo, hi, v)
		}
		return nil
	}
}

// normalizeArgs moves a command's flags in front of its positional
// arguments, so that `codemachine run plan --engine replay` works like
// `codemachine run --engine replay plan` (the flag package stops at the
// first positional argument). It also rejects unknown commands, which the
// cli package would only report, with exit code 0.
func normalizeArgs(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	// Find the command name after the global flags.
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		if takesValue(app.Flags, args[i]) {
			i++
		}
		i++
	}
	if i >= len(args) || args[i] == "help" || args[i] == "h" {
		return args, nil
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return nil, usageErrorf("unknown command %q (see codemachine --help)", args[i])
	}
	if cmd.SkipFlagParsing {
		// __complete takes the words typed, flags and all, as they are.
		return args, nil
	}
	// A subcommand (hooks install) takes the flags that follow it.
	for i+1 < len(args) && cmd.Command(args[i+1]) != nil {
		i++
		cmd = cmd.Command(args[i])
	}
	if len(cmd.Subcommands) > 0 && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") &&
		args[i+1] != "help" && args[i+1] != "h" {
		return nil, usageErrorf("unknown %s command %q (see codemachine %s --help)", cmd.Name, args[i+1], cmd.Name)
	}
	out := append([]string{}, args[:i+1]...)
	flags, positional, help := splitFlags(cmd, args[i+1:])
	if help {
		// cli would take the first argument for a help topic ("No help
		// topic for 'STEP'"): the help of the command is what was asked.
		return append(out, "--help"), nil
	}
	out = append(out, flags...)
	return append(out, positional...), nil
}

// splitFlags sorts a command's arguments into its flags (with their
// values) and its positional arguments (all after "--" among them), and
// says whether --help or -h is among the flags.
func splitFlags(cmd *cli.Command, rest []string) (flags, positional []string, help bool) {
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		switch {
		case a == "--":
			return flags, append(positional, rest[j:]...), help
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			help = help || a == "--help" || a == "-h"
			if takesValue(cmd.Flags, a) && j+1 < len(rest) {
				j++
				flags = append(flags, rest[j])
			}
		default:
			positional = append(positional, a)
		}
	}
	return flags, positional, help
}

// takesValue reports whether arg is a flag that takes a separate value.
func takesValue(flags []cli.Flag, arg string) bool {
	if strings.Contains(arg, "=") {
		return false
	}
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if _, ok := f.(*cli.BoolFlag); ok {
				return false
			}
			return true
		}
	}
	return false
}
