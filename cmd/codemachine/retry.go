package main

import (
	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
)

func retryCommand() *cli.Command {
	return &cli.Command{
		Name:      "retry",
		Usage:     "lift a hold or failure and run the step (or task) again",
		ArgsUsage: "STEP[/TASK]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "engine", Usage: "run with `ENGINE`"},
			&cli.StringFlag{Name: "model", Usage: "run with `MODEL`"},
			&cli.BoolFlag{Name: "record", Usage: "store a replay recording in the step's commit"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("retry needs exactly one STEP or STEP/TASK")
			}
			if err := checkEngineFlag(c.String("engine")); err != nil {
				return err
			}
			out := newOutput(c)
			o, err := newOrchestrator(c, out.event)
			if err != nil {
				return err
			}
			summary, err := o.Retry(c.Context, c.Args().First(), orchestrator.RunOptions{
				Overrides: orchestrator.Overrides{Engine: c.String("engine"), Model: c.String("model")},
				Record:    c.Bool("record"),
				Command:   "codemachine retry",
			})
			return reportRun(out, summary, err)
		},
	}
}
