package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

func rollbackCommand() *cli.Command {
	return &cli.Command{
		Name:      "rollback",
		Usage:     "reset the branch to before a step's commit and hold the undone steps",
		ArgsUsage: "STEP[/TASK] | REV",
		Description: `Resets the current branch to the parent of the named step's (or task's, or revision's)
commit. Everything after it is undone too, workflow state included, because it lives in the
tree. The old tip is kept under refs/codemachine/backup/TIME. Undone steps (and unchecked
tasks) that are due again are held: they do not run again with the same inputs until you
change them or run codemachine retry.
Refuses when tracked files have uncommitted changes, unless --force (which saves them first).`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "roll back over uncommitted changes (saved under refs/codemachine/backup/)"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("rollback needs exactly one STEP, STEP/TASK or revision")
			}
			out := newOutput(c)
			o, err := newOrchestrator(c, nil)
			if err != nil {
				return err
			}
			res, err := o.Rollback(c.Context, c.Args().First(), c.Bool("force"))
			if err != nil {
				return err
			}
			if out.json {
				// Empty lists are [] rather than null, as in run --json.
				if res.Undone == nil {
					res.Undone = []string{}
				}
				if res.Held == nil {
					res.Held = []string{}
				}
				return out.printJSON(res)
			}
			out.printf("rolled %s back from %s to %s\n", res.Branch, shortHash(res.From), shortHash(res.To))
			if len(res.Undone) > 0 {
				out.printf("undone: %s\n", strings.Join(res.Undone, ", "))
			}
			if len(res.Others) > 0 {
				out.printf("also undone, not step commits: %s\n", strings.Join(res.Others, "; "))
			}
			if len(res.Held) > 0 {
				out.printf("held:   %s (codemachine retry STEP to run one again)\n", strings.Join(res.Held, ", "))
			}
			out.printf("backup: %s\n", res.Backup)
			if res.Saved != "" {
				out.printf("your uncommitted changes were saved: git stash apply %s\n", res.Saved)
			}
			return nil
		},
	}
}
