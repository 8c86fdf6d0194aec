package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/workflow"
)

func runFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "engine", Usage: "run agent steps with `ENGINE` (" + engineChoices() + "); overrides the workflow"},
		&cli.StringFlag{Name: "model", Usage: "run agent steps with `MODEL`; overrides the workflow"},
		&cli.BoolFlag{Name: "record", Usage: "store a replay recording of every agent step in its commit (.codemachine/recordings/)"},
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what is due and the rendered prompts; run nothing"},
		&cli.IntFlag{Name: "parallel", Usage: "run up to `N` tasks of a foreach step at once (overrides the step's parallel)", DefaultText: "the step's", Action: parallelFlag},
		&cli.BoolFlag{Name: "force", Usage: "run the named steps even when they are not due (not foreach steps: a task runs when its plan box is unchecked, or its file or item changed)"},
		&cli.BoolFlag{Name: "cascade", Usage: "also re-run done tasks whose work no longer matches the plan: reworded since they ran, or after a task that ran or runs again (unchecked in one commit first)"},
		&cli.BoolFlag{Name: "update-uses", Usage: "pin every git source of uses: again, to what its ref names now (one commit changing state.yaml), then run"},
		&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "run the named steps (or, with none named, every agent step) in their agent's own UI in this terminal; the result lands when you leave it"},
		jsonFlag,
	}
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run what is due, one commit per step",
		ArgsUsage: "[STEP | STEP/TASK ...]",
		Description: `Runs every due step in dependency order until nothing is due (or only the named steps
and what they need). Each step runs in a worktree of its own under .git/codemachine and lands
as one commit on the current branch; a failed step lands nothing and keeps its partial work
on refs/codemachine/failed/STEP. Only committed files count: commit your edits first.
A done task re-runs only when you uncheck it: rewording it, or re-running a task it comes
after, leaves its work as it was, and status and the run say so ("done, but ...").
--cascade re-runs such tasks, and every done task that comes after one that runs again.
A workflow's uses: GIT_URL@REF entries are read at the commit pinned in state.yaml: a run pins
a new source first (commit "codemachine: pin uses"); --update-uses pins every source again to
what its ref names now, so the steps whose imported definition or agent changed run again.`,
		Flags: runFlags(),
		Action: func(c *cli.Context) error {
			out := newOutput(c)
			opts := orchestrator.RunOptions{
				Overrides:  orchestrator.Overrides{Engine: c.String("engine"), Model: c.String("model")},
				Steps:      c.Args().Slice(),
				Force:      c.Bool("force"),
				Cascade:    c.Bool("cascade"),
				UpdateUses: c.Bool("update-uses"),
				Record:     c.Bool("record"),
				DryRun:     c.Bool("dry-run"),
				Out:        c.App.Writer,
				Parallel:   c.Int("parallel"),
				Command:    "codemachine run",
			}
			if c.Bool("interactive") {
				opts.Interactive, opts.InteractiveAll = stepNames(opts.Steps), len(opts.Steps) == 0
			}
			tty, err := openTerminal(c)
			if err != nil {
				return err
			}
			if tty != nil {
				defer tty.Close()
				opts.Terminal, opts.OnTerminal = tty, out.pauseTerminal
			} else if c.Bool("interactive") && !opts.DryRun {
				return usageErrorf("run --interactive needs a terminal (standard input and output)")
			}
			if err := checkEngineFlags(opts.Engine, opts.Model); err != nil {
				return err
			}
			if opts.Force && len(opts.Steps) == 0 {
				return usageErrorf("run --force needs the STEP names to force")
			}
			if opts.DryRun && out.json {
				// A dry run's answer is the prompts, as text: --json would
				// be ignored, and a script reading JSON would get text.
				return usageErrorf("run --dry-run prints what is due and its prompts as text, not JSON: codemachine status --json says what is due")
			}
			if opts.UpdateUses && opts.DryRun {
				return usageErrorf("run --update-uses commits new pins, which --dry-run does not: a dry run reads the pinned sources")
			}
			// Flags are checked first: a mistyped flag is the answer
			// wherever the command was started.
			o, session, err := openRunOrchestrator(c, out, opts.Command)
			if err != nil {
				return err
			}
			defer session.Close()
			warnUncommitted(c, o, out)
			summary, err := o.Run(c.Context, opts)
			return reportRun(out, summary, err)
		},
	}
}

// engineChoices lists the engines --engine may name, from the agents
// registry: auto and every engine that runs an agent.
func engineChoices() string {
	return strings.Join(agents.AgentEngines(), ", ")
}

// checkEngineFlags rejects unknown --engine values before anything runs,
// and without the flag an unknown CODEMACHINE_ENGINE, which stands for it;
// and a --model (or CODEMACHINE_MODEL) that no model name can be, which
// would go into commit trailers and command lines.
func checkEngineFlags(engine, model string) error {
	from := "--model: "
	if model == "" {
		model, from = os.Getenv("CODEMACHINE_MODEL"), "CODEMACHINE_MODEL: "
	}
	if msg := workflow.ModelProblem(model); msg != "" {
		return usageErrorf("%s%s", from, msg)
	}
	from = ""
	if engine == "" {
		engine, from = os.Getenv("CODEMACHINE_ENGINE"), "CODEMACHINE_ENGINE: "
	}
	names := agents.AgentEngines()
	if engine == "" || slices.Contains(names, engine) {
		return nil
	}
	engines := slices.DeleteFunc(names, func(name string) bool { return name == agents.AutoEngine })
	return usageErrorf("%sunknown engine %q (%s or %s)", from, engine, strings.Join(engines, ", "), agents.AutoEngine)
}

// warnUncommitted tells the user that edits under .codemachine/ do not count
// until they are committed.
func warnUncommitted(c *cli.Context, o *orchestrator.Orchestrator, out *output) {
	if out.quiet || out.json {
		return
	}
	paths, err := o.UncommittedWorkflowChanges(c.Context)
	if err != nil || len(paths) == 0 {
		return
	}
	if len(paths) > 3 {
		paths = append(paths[:3], "…")
	}
	fmt.Fprintf(c.App.ErrWriter, "codemachine: note: uncommitted changes are not used until committed: %s\n", strings.Join(paths, ", "))
}

// reportRun prints the run's summary (or its JSON) and passes err on.
func reportRun(out *output, s *orchestrator.Summary, err error) error {
	if out.json && s != nil {
		type jsonSummary struct {
			*orchestrator.Summary
			Error    string `json:"error,omitempty"`
			ExitCode int    `json:"exit_code"`
		}
		// Empty lists are [] rather than null, for consumers that iterate.
		cp := *s
		for _, l := range []*[]orchestrator.Event{&cp.Landed, &cp.Failed, &cp.Skipped, &cp.Review} {
			if *l == nil {
				*l = []orchestrator.Event{}
			}
		}
		js := jsonSummary{Summary: &cp, ExitCode: exitCode(err)}
		if err != nil {
			js.Error = err.Error()
		}
		if perr := out.printJSON(js); perr != nil {
			return perr
		}
		return err
	}
	out.endLive()
	if s == nil || out.quiet {
		return err
	}
	skipped, notRun := splitSkipped(s.Skipped)
	switch {
	case len(s.Landed) == 0 && len(s.Failed) == 0 && len(s.Skipped) == 0 && len(s.Review) == 0 && len(s.NeedsYou) == 0 && err == nil:
		out.printf("nothing is due\n")
	case len(s.Landed) > 0 || len(s.Failed) > 0 || len(s.Review) > 0 || len(s.NeedsYou) > 0 || skipped > 0:
		tokens := s.TokensIn + s.TokensOut
		out.printf("%s · %s tokens · %s\n", summaryCounts(s, skipped, notRun), orchestrator.FormatTokens(tokens),
			orchestrator.FormatCost(s.CostUSD, s.CostUSD > 0))
	}
	return err
}

// summaryCounts is the summary line's counts: "2 landed, 1 failed, ...".
func summaryCounts(s *orchestrator.Summary, skipped, notRun int) string {
	parts := []string{fmt.Sprintf("%d landed", len(s.Landed))}
	for _, c := range []struct {
		n    int
		what string
	}{
		{len(s.Review), "waiting for review"}, {len(s.NeedsYou), "needs you"}, {len(s.Failed), "failed"},
		{skipped, "skipped"}, {notRun, "not run"},
	} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return strings.Join(parts, ", ")
}

// splitSkipped counts the summary's skipped units: those recorded as
// skipped (a when: that is false, landed as a commit) and those the run
// passed over without a commit (held after a rollback or reset, failed
// before with the same inputs, interrupted before they started), which
// are not "skipped" in the sense status and the docs give the word.
func splitSkipped(events []orchestrator.Event) (skipped, notRun int) {
	for _, e := range events {
		if e.Commit != "" {
			skipped++
		} else {
			notRun++
		}
	}
	return skipped, notRun
}
