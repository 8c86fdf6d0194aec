package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/watch"
)

// reviewJSON is approve's and reject's --json output.
type reviewJSON struct {
	*orchestrator.ReviewResult
	// HookRunLog is the log of the run started as a git hook would have
	// (hooks installed), "" when none was started.
	HookRunLog string `json:"hook_run_log,omitempty"`
}

// handToWatcher hands approve or reject to the running watcher when err
// says one holds the lock. handed reports that it did (and said so).
func handToWatcher(out *output, o *orchestrator.Orchestrator, err error, action, key, message string) (handed bool, _ error) {
	if _, watching := watch.RefusedBy(err); !watching {
		return false, nil
	}
	pid, qerr := watch.QueueReview(o, action, key, message)
	switch {
	case errors.Is(qerr, watch.ErrNoWatcher):
		return false, err // it stopped meanwhile: the refusal stands (run the command again)
	case qerr != nil:
		return false, qerr
	case out.json:
		return true, out.printJSON(map[string]any{"queued": action, "key": key, "watcher_pid": pid})
	}
	verb := map[string]string{"approve": "approves", "reject": "rejects"}[action]
	out.printf("handed to codemachine watch (pid %d): it %s %s and runs what is due after its current pass (its output shows the result)\n", pid, verb, key)
	return true, nil
}

// printHookRun says where the run started like a hook's writes its log.
func printHookRun(out *output, o *orchestrator.Orchestrator, log string) {
	if log == "" {
		return
	}
	if rel, err := filepath.Rel(o.Repo().Root(), log); err == nil {
		log = rel
	}
	out.printf("the git hooks are installed: codemachine run started in the background (log: %s)\n", log)
}

func approveCommand() *cli.Command {
	return &cli.Command{
		Name:      "approve",
		Usage:     "land a step's (or task's) review branch on the current branch",
		ArgsUsage: "STEP[/TASK]",
		Description: `A step with review: true lands on branch codemachine/review/STEP[/TASK] and the workflow
waits there. approve merges it: a fast-forward when the branch has not moved, else rebased
like any landing. Steps that need it run at the next codemachine run; with the git hooks
installed, approve starts that run in the background as a commit's hook would (its log is
named), and while codemachine watch runs, approve hands the decision to the watcher, which
approves and runs what is due after its current pass.`,
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
			key := c.Args().First()
			res, err := o.Approve(c.Context, key)
			if handed, herr := handToWatcher(out, o, err, "approve", key, ""); handed || herr != nil {
				return herr
			}
			if err != nil {
				return err
			}
			log := runLikeHook(c, o, "approve")
			if out.json {
				return out.printJSON(reviewJSON{ReviewResult: res, HookRunLog: log})
			}
			how := "fast-forward"
			if res.Rebased {
				how = "rebased onto the moved branch"
			}
			out.printf("approved %s: %s landed (%s)\n", res.Key, shortHash(res.Commit), how)
			printHookRun(out, o, log)
			return nil
		},
	}
}

func rejectCommand() *cli.Command {
	return &cli.Command{
		Name:      "reject",
		Usage:     "reject a step's review: delete its branch and commit the reason as feedback",
		ArgsUsage: "STEP[/TASK] [-m TEXT]",
		Description: `Deletes branch codemachine/review/STEP[/TASK] (its commit stays reachable under
refs/codemachine/rejected/STEP[/TASK]) and commits TEXT to .codemachine/feedback/STEP[/TASK].md,
which the step's next attempt receives as .Feedback in its prompt. Without -m, in a terminal,
TEXT is written in your editor as for git commit (git's GIT_EDITOR, core.editor, VISUAL,
EDITOR); lines starting with # are left out, and an empty TEXT rejects nothing. With the git hooks
installed, reject starts that attempt in the background as a commit's hook would; while
codemachine watch runs, it hands the decision to the watcher.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "message", Aliases: []string{"m"}, Usage: "why the work is rejected: `TEXT` for the next attempt (without it, in a terminal: your editor, as git commit)"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("reject needs exactly one STEP or STEP/TASK")
			}
			key := c.Args().First()
			reason := c.String("message")
			if reason == "" && !inTerminal(c) {
				return usageErrorf("reject needs a reason: -m TEXT")
			}
			out := newOutput(c)
			o, err := newOrchestrator(c, nil)
			if err != nil {
				return err
			}
			if reason == "" {
				// Ask for a reason only when there is something to reject.
				if err := o.CheckReviewPending(c.Context, key); err != nil {
					return err
				}
				if reason, err = reasonFromEditor(c, o.Repo(), key); err != nil {
					return err
				}
			}
			res, err := o.Reject(c.Context, key, reason)
			if handed, herr := handToWatcher(out, o, err, "reject", key, reason); handed || herr != nil {
				return herr
			}
			if err != nil {
				return err
			}
			log := runLikeHook(c, o, "reject")
			if out.json {
				return out.printJSON(reviewJSON{ReviewResult: res, HookRunLog: log})
			}
			out.printf("rejected %s: feedback committed in %s; the work is kept on %s\n", res.Key, shortHash(res.Commit), res.Kept)
			printHookRun(out, o, log)
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
branch's message as the pull request's title and description. A review made on an earlier
commit of the branch is first moved onto its tip (its state.yaml record rebuilt there), so
that pull requests merged one after another do not conflict in state.yaml: after merging one
and pulling, push again; a review merged or approved elsewhere is settled first, as a run
settles it. A re-run or moved branch is pushed over the old one (only over what was there:
--force-with-lease).

Merging such a branch on the remote approves it: after you pull the merge, the next
codemachine run (or watch pass) finds the review commit in the branch's history, deletes
the review branch and goes on like codemachine approve. --push-option passes options to the
receiving side (e.g. GitLab's merge_request.create). With no review pending it pushes nothing
and says so (exit 0, as run with nothing due); STEP without a pending review is an error (exit 2).`,
			Flags: append([]cli.Flag{
				&cli.StringFlag{Name: "remote", Usage: "push to `REMOTE` (a remote's name or a URL)"},
				&cli.StringSliceFlag{Name: "push-option", Aliases: []string{"o"}, Usage: "pass `OPTION` to the remote (git push --push-option)"},
				jsonFlag,
			}, globalFlags()...),
			Action: func(c *cli.Context) error {
				if c.NArg() > 1 {
					return usageErrorf("review push takes at most one STEP or STEP/TASK")
				}
				out := newOutput(c)
				// What it settled first (a review merged as a pull
				// request) is told on stderr, out of the way of --json.
				o, err := newOrchestrator(c, func(e orchestrator.Event) {
					if e.Kind == orchestrator.Note && !out.quiet {
						key := e.Step
						if e.Task != "" {
							key += "/" + e.Task
						}
						fmt.Fprintf(c.App.ErrWriter, "· %s: %s\n", key, e.Message)
					}
				})
				if err != nil {
					return err
				}
				pushed, nothing, err := o.PushReviews(c.Context, c.Args().First(), c.String("remote"), c.StringSlice("push-option"))
				if err != nil {
					return err
				}
				if out.json {
					if pushed == nil {
						pushed = []orchestrator.PushedReview{}
					}
					return out.printJSON(pushed)
				}
				if nothing != "" {
					out.printf("%s\n", nothing)
				}
				for _, p := range pushed {
					if p.UpToDate {
						out.printf("%s is up to date on %s: %s %s\n", p.Branch, p.Remote, shortHash(p.Commit), p.Title)
						continue
					}
					out.printf("pushed %s to %s: %s %s\n", p.Branch, p.Remote, shortHash(p.Commit), p.Title)
				}
				return nil
			},
		}},
	}
}
