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

func reviewCommand() *cli.Command {
	return &cli.Command{
		Name:  "review",
		Usage: "review branches as pull requests: push them to a remote",
		Subcommands: []*cli.Command{{
			Name:      "push",
			Usage:     "push the pending review branches (or STEP's) to a remote, described for a pull request",
			ArgsUsage: "[STEP | STEP/TASK]",
			Description: `Pushes codemachine/review/STEP[/TASK] branches to the remote (--remote, else the current
branch's upstream remote, else origin). Each commit's message is first rewritten into a
description a reviewer can read where pull requests are reviewed: what the step was asked
(its agent, prompt and task), its diff stat, then its trailers; forges take a one-commit
branch's message as the pull request's title and description. A re-run step's branch is
pushed over the old one (only over what was there: --force-with-lease).

Merging such a branch on the remote approves it: after you pull the merge, the next
codemachine run (or watch pass) finds the review commit in the branch's history, deletes
the review branch and goes on like codemachine approve. --push-option passes options to the
receiving side (e.g. GitLab's merge_request.create).`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "remote", Usage: "push to `REMOTE` (a remote's name or a URL)"},
				&cli.StringSliceFlag{Name: "push-option", Aliases: []string{"o"}, Usage: "pass `OPTION` to the remote (git push --push-option)"},
				jsonFlag,
			},
			Action: func(c *cli.Context) error {
				if c.NArg() > 1 {
					return usageErrorf("review push takes at most one STEP or STEP/TASK")
				}
				out := newOutput(c)
				o, err := newOrchestrator(c, nil)
				if err != nil {
					return err
				}
				pushed, err := o.PushReviews(c.Context, c.Args().First(), c.String("remote"), c.StringSlice("push-option"))
				if err != nil {
					return err
				}
				if out.json {
					return out.printJSON(pushed)
				}
				for _, p := range pushed {
					out.printf("pushed %s to %s: %s %s\n", p.Branch, p.Remote, shortHash(p.Commit), p.Title)
				}
				return nil
			},
		}},
	}
}
