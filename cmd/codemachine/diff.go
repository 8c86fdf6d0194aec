package main

import (
	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
)

func diffCommand() *cli.Command {
	return &cli.Command{
		Name:      "diff",
		Usage:     "show the change a step or task landed (or its failed or review work)",
		ArgsUsage: "STEP[/TASK] | REV",
		Description: `Shows the latest commit of a step or task on the current branch. When the step failed
more recently, shows its partial work kept on refs/codemachine/failed/...; any git revision
works too.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "stat", Usage: "the diffstat instead of the patch, after the commit and its message (as git show --stat)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("diff needs exactly one STEP, STEP/TASK or revision")
			}
			out := newOutput(c)
			o, err := newOrchestrator(c, nil)
			if err != nil {
				return err
			}
			return o.Diff(c.Context, c.Args().First(), out.w, orchestrator.DiffOptions{Color: out.color, Stat: c.Bool("stat")})
		},
	}
}
