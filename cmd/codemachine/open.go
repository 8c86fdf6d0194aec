package main

import (
	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
)

func openCommand() *cli.Command {
	return &cli.Command{
		Name:      "open",
		Usage:     "take the wheel: resume a step's agent session in its own UI, on its latest work",
		ArgsUsage: "STEP[/TASK]",
		Description: `Starts the step's agent in its own interactive UI in this terminal, in a worktree holding
the step's latest work (its work under review, its failed work, or what it landed; work
made on an older commit is brought onto the tip when it applies there), resuming the
session recorded with that work (a new session with the step's prompt when there is none).
When you leave the UI, your change lands as a new commit of the step (for work under
review: a new commit on its review branch, which waits for review again; failed work, which
never landed, lands even when you changed nothing), and the workflow goes on running what
is due.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "engine", Usage: "run with `ENGINE`"},
			&cli.StringFlag{Name: "model", Usage: "run with `MODEL`"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("open needs exactly one STEP or STEP/TASK")
			}
			if err := checkEngineFlags(c.String("engine"), c.String("model")); err != nil {
				return err
			}
			out := newOutput(c)
			tty, err := openTerminal(c)
			if err != nil {
				return err
			}
			if tty == nil {
				return usageErrorf("open needs a terminal (standard input and output): it runs the agent's own UI")
			}
			defer tty.Close()
			o, session, err := openRunOrchestrator(c, out, "codemachine open")
			if err != nil {
				return err
			}
			defer session.Close()
			opts := orchestrator.RunOptions{
				Overrides: orchestrator.Overrides{Engine: c.String("engine"), Model: c.String("model")},
				Command:   "codemachine open",
				Terminal:  tty, OnTerminal: out.pauseTerminal,
			}
			summary, err := o.Open(c.Context, c.Args().First(), opts)
			if err != nil || len(summary.Landed) == 0 {
				return reportRun(out, summary, err)
			}
			// The workflow goes on from the new commit.
			if err := reportRun(out, summary, nil); err != nil {
				return err
			}
			opts.Command, opts.Open = "codemachine run", nil
			summary, err = o.Run(c.Context, opts)
			return reportRun(out, summary, err)
		},
	}
}
