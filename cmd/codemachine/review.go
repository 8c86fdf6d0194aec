package main

import (
	"github.com/urfave/cli/v2"
)

func approveCommand() *cli.Command {
	return &cli.Command{
		Name:      "approve",
		Usage:     "land a step's (or task's) review branch on the current branch",
		ArgsUsage: "STEP[/TASK]",
		Description: `A step with review: true lands on branch codemachine/review/STEP[/TASK] and the workflow
waits there. approve merges it: a fast-forward when the branch has not moved, else rebased
like any landing. Steps that need it run at the next codemachine run (or watch trigger).`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("approve needs exactly one STEP or STEP/TASK")
			}
			out := newOutput(c)
			o, err := newOrchestrator(c, nil)
			if err != nil {
				return err
			}
			res, err := o.Approve(c.Context, c.Args().First())
			if err != nil {
				return err
			}
			if out.json {
				return out.printJSON(res)
			}
			how := "fast-forward"
			if res.Rebased {
				how = "rebased onto the moved branch"
			}
			out.printf("approved %s: %s landed (%s)\n", res.Key, shortHash(res.Commit), how)
			return nil
		},
	}
}

func rejectCommand() *cli.Command {
	return &cli.Command{
		Name:      "reject",
		Usage:     "reject a step's review: delete its branch and commit the reason as feedback",
		ArgsUsage: "STEP[/TASK] -m TEXT",
		Description: `Deletes branch codemachine/review/STEP[/TASK] (its commit stays reachable under
refs/codemachine/rejected/STEP[/TASK]) and commits TEXT to .codemachine/feedback/STEP[/TASK].md,
which the step's next attempt receives as .Feedback in its prompt.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "message", Aliases: []string{"m"}, Usage: "why the work is rejected: `TEXT` for the next attempt"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("reject needs exactly one STEP or STEP/TASK")
			}
			if c.String("message") == "" {
				return usageErrorf("reject needs a reason: -m TEXT")
			}
			out := newOutput(c)
			o, err := newOrchestrator(c, nil)
			if err != nil {
				return err
			}
			res, err := o.Reject(c.Context, c.Args().First(), c.String("message"))
			if err != nil {
				return err
			}
			if out.json {
				return out.printJSON(res)
			}
			out.printf("rejected %s: feedback committed in %s; the work is kept on %s\n", res.Key, shortHash(res.Commit), res.Kept)
			return nil
		},
	}
}
