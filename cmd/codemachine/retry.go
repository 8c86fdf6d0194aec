package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/watch"
)

func retryCommand() *cli.Command {
	return &cli.Command{
		Name:      "retry",
		Usage:     "lift a hold or failure and run the step (or task) again",
		ArgsUsage: "STEP[/TASK]",
		Description: `Lifts the hold a rollback or reset put on STEP (or STEP/TASK), or forgets its last
failure, and runs it again with what it needs; a plain step runs even if it is not due. An
interrupted or timed-out unit resumes its agent's session with its partial work (brought
onto the branch's tip when that moved meanwhile). In a terminal, an interactive step opens
its agent's UI there, as with run. While codemachine watch runs, retry hands the request to
the watcher, which runs it after its current pass. Exits like run.`,
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
			if err := checkEngineFlags(c.String("engine"), c.String("model")); err != nil {
				return err
			}
			out := newOutput(c)
			o, session, err := openRunOrchestrator(c, out, "codemachine retry")
			if err != nil {
				return err
			}
			defer session.Close()
			arg := c.Args().First()
			opts := orchestrator.RunOptions{
				Overrides: orchestrator.Overrides{Engine: c.String("engine"), Model: c.String("model")},
				Record:    c.Bool("record"),
				Command:   "codemachine retry",
			}
			// An interactive step retried in a terminal opens its UI
			// there, as run does.
			tty, err := openTerminal(c)
			if err != nil {
				return err
			}
			if tty != nil {
				defer tty.Close()
				opts.Terminal, opts.OnTerminal = tty, out.pauseTerminal
			}
			summary, err := o.Retry(c.Context, arg, opts)
			if _, watching := watch.RefusedBy(err); watching {
				// The watcher holds the lock: it does the retry.
				pid, qerr := watch.QueueRetry(o, arg)
				switch {
				case qerr == nil && out.json:
					return out.printJSON(map[string]any{"queued": arg, "watcher_pid": pid})
				case qerr == nil:
					out.printf("handed to codemachine watch (pid %d): it lifts %s's hold or failure and runs it after its current pass (its output shows the result)\n", pid, arg)
					return nil
				case errors.Is(qerr, watch.ErrNoWatcher):
					summary, err = o.Retry(c.Context, arg, opts)
				default:
					return qerr
				}
			}
			return reportRun(out, summary, err)
		},
	}
}
