package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/githooks"
	"github.com/codemachine/codemachine/orchestrator"
)

func hooksCommand() *cli.Command {
	engineFlags := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: "engine", Usage: "the runs use `ENGINE` (" + engineChoices() + ")"},
			&cli.StringFlag{Name: "model", Usage: "the runs use `MODEL`"},
		}
	}
	sub := []*cli.Command{
		{
			Name:  "install",
			Usage: "install the post-commit, post-merge and post-checkout hooks",
			Description: `Installs git hooks that start "codemachine run" in the background after a commit, a
merge (or pull) and a checkout of a branch, unless codemachine is already running in the
repository (a watcher, or another run). The run logs to .git/codemachine/logs/hooks-*.log.
An existing hook is kept as <hook>.pre-codemachine and runs first, with its arguments
and stdin; "codemachine hooks uninstall" puts it back. core.hooksPath is respected; a hooks
directory that holds files git tracks (.husky, .githooks) is refused, its hooks left as they are,
and so is one in the working tree that git does not ignore (git add -A would commit the hooks).
Installing again updates the hooks. The hooks never slow a commit down or make it fail.`,
			Flags: append(engineFlags(), jsonFlag),
			Action: hooksAction(func(c *cli.Context, dir string) ([]githooks.HookStatus, error) {
				if err := checkEngineFlags(c.String("engine"), c.String("model")); err != nil {
					return nil, err
				}
				var runArgs []string
				for _, f := range []string{"engine", "model"} {
					if v := c.String(f); v != "" {
						runArgs = append(runArgs, "--"+f, v)
					}
				}
				if err := notTrackedHooks(c, dir); err != nil {
					return nil, err
				}
				return githooks.Install(githooks.InstallOptions{Dir: dir, Program: selfPath(), RunArgs: runArgs})
			}, func(out *output, dir string, st []githooks.HookStatus) {
				for _, h := range st {
					extra := ""
					if h.Chained != "" {
						extra = fmt.Sprintf(" (the existing hook is kept as %s and runs first)", filepath.Base(h.Chained))
					}
					out.printf("%s %s in %s%s\n", h.Action, h.Name, dir, extra)
				}
				if !out.quiet {
					out.printf("a commit, merge or checkout now starts `codemachine run` in the background (log: .git/codemachine/logs/hooks-*.log) unless codemachine is already running\n")
				}
			}),
		},
		{
			Name:  "uninstall",
			Usage: "remove codemachine's git hooks and put back the ones they replaced",
			Flags: []cli.Flag{jsonFlag},
			Action: hooksAction(func(_ *cli.Context, dir string) ([]githooks.HookStatus, error) {
				return githooks.Uninstall(dir)
			}, func(out *output, _ string, st []githooks.HookStatus) {
				for _, h := range st {
					switch h.Action {
					case "restored":
						out.printf("restored %s: the hook that was there before is back\n", h.Name)
					case "removed":
						out.printf("removed %s\n", h.Name)
					default:
						if h.State == githooks.StateForeign {
							out.printf("kept %s: it is not codemachine's\n", h.Name)
						}
					}
				}
			}),
		},
		{
			Name:  "status",
			Usage: "show which git hooks are installed",
			Flags: []cli.Flag{jsonFlag},
			Action: hooksAction(func(_ *cli.Context, dir string) ([]githooks.HookStatus, error) {
				return githooks.Status(dir)
			}, func(out *output, dir string, st []githooks.HookStatus) {
				out.printf("hooks directory: %s\n", dir)
				for _, h := range st {
					var what string
					switch h.State {
					case githooks.StateInstalled:
						what = "installed"
						if h.Chained != "" {
							what += fmt.Sprintf(", runs %s first", filepath.Base(h.Chained))
						}
					case githooks.StateForeign:
						what = "another hook, not codemachine's"
					default:
						what = "not installed"
					}
					out.printf("%-14s %s\n", h.Name, what)
				}
			}),
		},
		{
			Name:      "supervise",
			Hidden:    true,
			Usage:     "what the hooks' detached run is: run codemachine ARGS, and recover at once when it is killed",
			ArgsUsage: "-- ARGS...",
			Action:    hooksSupervise,
		},
		{
			Name:      "run",
			Hidden:    true,
			Usage:     "what the installed hooks call: start a detached run when one is wanted",
			ArgsUsage: "HOOK [ARGS...]",
			Flags:     engineFlags(),
			Action:    hooksRun,
		},
	}
	for _, s := range sub {
		s.Flags = append(s.Flags, globalFlags()...)
	}
	return &cli.Command{
		Name:  "hooks",
		Usage: "install, remove or show the git hooks that start a run after a commit, merge or checkout",
		Description: `codemachine hooks install|uninstall|status. The hooks make committing a spec start the
workflow without a watcher running: see "codemachine hooks install --help".`,
		Subcommands: sub,
	}
}

// hooksAction is the action of hooks install, uninstall and status: find
// the hooks directory, do, and print the hooks' states as JSON or as text.
func hooksAction(do func(c *cli.Context, dir string) ([]githooks.HookStatus, error), show func(out *output, dir string, st []githooks.HookStatus)) cli.ActionFunc {
	return func(c *cli.Context) error {
		if err := noArgs(c); err != nil {
			return err
		}
		dir, err := hooksDir(c)
		if err != nil {
			return err
		}
		st, err := do(c, dir)
		var conflict *githooks.ConflictError
		var notHook *githooks.NotAHookError
		var notDir *githooks.NotADirError
		if errors.As(err, &conflict) || errors.As(err, &notHook) || errors.As(err, &notDir) {
			// What is in the hooks directory is the user's to sort out.
			return &orchestrator.ConfigError{Err: err}
		}
		if err != nil {
			return err
		}
		out := newOutput(c)
		if out.json {
			return out.printJSON(st)
		}
		show(out, dir, st)
		return nil
	}
}

// hooksDir opens the repository and finds its hooks directory.
func hooksDir(c *cli.Context) (string, error) {
	o, err := newOrchestrator(c, nil)
	if err != nil {
		return "", err
	}
	return o.Repo().HooksDir(c.Context)
}

// notTrackedHooks refuses to install into a hooks directory that the
// project commits (core.hooksPath = .husky, .githooks): the install would
// rename and rewrite the project's own hooks, or add files that get
// committed with this machine's path to codemachine in them. The user's
// hook can call codemachine's instead, as the message says.
func notTrackedHooks(c *cli.Context, dir string) error {
	o, err := newOrchestrator(c, nil)
	if err != nil {
		return err
	}
	tracked, err := o.Repo().TrackedIn(c.Context, dir)
	if err != nil {
		return err
	}
	if len(tracked) > 0 {
		return &orchestrator.ConfigError{Err: fmt.Errorf("the hooks directory %s (core.hooksPath) is tracked by git (%s): installing would change the project's committed hooks, so nothing was installed; "+
			"to have them start codemachine, add to each of post-commit, post-merge and post-checkout there: %s", dir, tracked[0], hookLine)}
	}
	var hooks []string
	for _, h := range githooks.GitHooks {
		hooks = append(hooks, filepath.Join(dir, h))
	}
	added, err := o.Repo().Unignored(c.Context, hooks)
	if err != nil || len(added) == 0 {
		return err
	}
	// Not committed yet, but it would be: the same refusal as a tracked
	// directory, with the other way out, ignoring it.
	return &orchestrator.ConfigError{Err: fmt.Errorf("the hooks directory %s (core.hooksPath) is in the working tree and not ignored: the hooks would be new files (%s) that `git add -A` commits, so nothing was installed; "+
		"ignore it (add %s/ to .gitignore or .git/info/exclude) and install again, or, to have the project's own hooks start codemachine, add to each of post-commit, post-merge and post-checkout there: %s",
		dir, added[0], path.Dir(added[0]), hookLine)}
}

// hookLine is what a hook of the project's own runs to start codemachine's.
const hookLine = `codemachine hooks run HOOK "$@" </dev/null >/dev/null 2>&1 &`

// hooksRun starts `codemachine run` detached when a hook wants one. Its
// output goes nowhere (the hook discards it): what the run does is in its
// log.
func hooksRun(c *cli.Context) error {
	if c.NArg() < 1 {
		return usageErrorf("hooks run needs the HOOK name")
	}
	hook, args := c.Args().First(), c.Args().Tail()
	// post-checkout HEAD-before HEAD-after 1: only a branch checkout that
	// moved HEAD (0 is a checkout of files).
	if hook == "post-checkout" && (len(args) < 3 || args[2] != "1" || args[0] == args[1]) {
		return nil
	}
	o, err := newOrchestrator(c, nil)
	if err != nil {
		return err
	}
	if ok, reason := o.HookRunWanted(); !ok {
		return fmt.Errorf("%s: no run: %s", hook, reason)
	}
	var flags []string
	for _, f := range []string{"engine", "model"} {
		if v := c.String(f); v != "" {
			flags = append(flags, "--"+f, v)
		}
	}
	_, err = startHookRun(o, hook+" hook", flags)
	return err
}

// startHookRun starts `codemachine -C ROOT run FLAGS...` detached, its
// output in a hooks-*.log under .git/codemachine/logs, and returns that
// log's path. why is the log's header: what started it.
func startHookRun(o *orchestrator.Orchestrator, why string, flags []string) (string, error) {
	repo := o.Repo()
	logs := filepath.Join(repo.LocalDir(), "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return "", err
	}
	now := time.Now()
	log := filepath.Join(logs, fmt.Sprintf("hooks-%s-%d.log", now.UTC().Format("20060102T150405.000Z"), os.Getpid()))
	runArgs := append([]string{"-C", repo.Root(), "run"}, flags...)
	_, err := githooks.StartDetached(githooks.Detached{
		Program: selfPath(), Args: append([]string{"-C", repo.Root(), "hooks", "supervise", "--"}, runArgs...),
		Dir: repo.Root(), Env: os.Environ(), Log: log,
		Header: fmt.Sprintf("codemachine: %s, %s: codemachine %s\n", why, now.Format(time.RFC3339), strings.Join(runArgs, " ")),
	})
	return log, err
}

// hooksSupervise runs `codemachine ARGS` (the hooks' run) and waits for
// it. A run killed outright (kill -9, the OOM killer) while it landed a
// step leaves the user's index.lock or the branch's ref lock behind, and
// in hooks mode no codemachine command comes before the user's next git
// commit, which refuses to run beside them: so the recovery that every
// command does first (finish or undo the landing, remove the locks that
// its journal proves are its own) is done here, right after the kill.
// The run's exit status is this one's.
func hooksSupervise(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return usageErrorf("hooks supervise needs the codemachine ARGS to run")
	}
	cmd := exec.Command(selfPath(), args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return err
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return &exitError{code: exit.ExitCode()}
	}
	out := c.App.Writer
	fmt.Fprintf(out, "codemachine: the run was killed (%s)\n", ws.Signal())
	o, oerr := newOrchestrator(c, func(e orchestrator.Event) {
		if e.Kind == orchestrator.Note {
			fmt.Fprintln(out, "codemachine: recovered: "+e.Message)
		}
	})
	if oerr == nil {
		oerr = o.RecoverIdle(context.WithoutCancel(c.Context), "codemachine hooks (recovering a killed run)")
	}
	if oerr != nil {
		return fmt.Errorf("recover after the killed run: %w", oerr)
	}
	return &exitError{code: 128 + int(ws.Signal())}
}

// runLikeHook starts the run a git hook would start after a commit that
// codemachine made itself (approve, reject: git runs no hook for those),
// when codemachine's post-commit hook is installed and a run is wanted.
// It returns the run's log, "" when it started nothing.
func runLikeHook(c *cli.Context, o *orchestrator.Orchestrator, command string) string {
	dir, err := o.Repo().HooksDir(c.Context)
	if err != nil {
		return ""
	}
	flags, ok := githooks.RunArgs(dir, "post-commit")
	if !ok {
		return ""
	}
	if ok, _ := o.HookRunWanted(); !ok {
		return ""
	}
	log, err := startHookRun(o, "post-commit hook (after "+command+")", flags)
	if err != nil {
		return ""
	}
	return log
}

// selfPath is the path of this codemachine binary as it was started, for
// the hooks to call: a symlink stays a symlink, so that an upgrade of the
// binary behind it keeps the hooks working. Found on PATH, it must be
// this binary: PATH may have gained another codemachine since this one
// started (a bin/codemachine that approve just landed, where direnv's
// PATH_add bin put bin on PATH), which would run outside the sandbox.
func selfPath() string {
	arg0 := os.Args[0]
	if strings.ContainsRune(arg0, os.PathSeparator) {
		if abs, err := filepath.Abs(arg0); err == nil {
			return abs
		}
	}
	exe, exeErr := os.Executable()
	if p, err := exec.LookPath(arg0); err == nil && exeErr == nil && sameFile(p, exe) {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	if exeErr == nil {
		return exe
	}
	return "codemachine"
}

// sameFile reports whether the paths a and b (their links followed) are
// one file.
func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}
