package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/worker"
)

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "run due steps and tasks of a shared remote's branch, beside other workers on other machines",
		Description: `Run in a clone whose checked-out branch is on the remote. The worker looks at the
remote, claims the due steps and tasks (refs/codemachine/claims/..., each a lease it renews
while it works) with an atomic push that only one worker can win, runs them exactly as
"codemachine run" does (sandbox, engines, checks), and pushes each result to
refs/codemachine/results/... One worker at a time is the integrator (refs/codemachine/roles/
integrator): it lands the results on the branch in plan order with a compare-and-swap push,
rebasing where the branch moved and keeping conflicts on codemachine/conflict/... A worker
that dies stops renewing: once its lease lapses another worker takes the unit over, and a
late result of a lapsed claim is discarded, never landed twice. An unreachable remote is
retried with back-off. The worker's branch follows the remote's: commit and push elsewhere.

A review: true unit's result goes to the remote's codemachine/review/<key> branch instead
of landing (approve or reject in any clone after a fetch, then push). Steps with a reviewer
agent, interactive steps and steps with an after: hook are left for codemachine run in a
clone, with a message.

With --once it exits 0 when nothing is due, claimed or waiting to land any more (a CI job
ends when the work is done), 3 when what is left waits for a review or a local run, 1 when
units are left that failed; without it, it waits for more work until Ctrl-C. See
docs/workers.md.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "remote", Value: "origin", Usage: "share work through the configured remote `NAME`"},
			&cli.IntFlag{Name: "slots", Value: 1, Usage: "run up to `N` tasks at once", Action: inRange("slots", 1, maxParallel)},
			&cli.BoolFlag{Name: "once", Usage: "exit when nothing is due, claimed or waiting to land"},
			&cli.StringFlag{Name: "id", Usage: "name this worker `ID` on the remote (default: host-pid-random)"},
			&cli.DurationFlag{Name: "lease", Value: worker.DefaultLease, Usage: "claims last `DURATION` unless renewed (renewed every third of it)"},
			&cli.StringFlag{Name: "engine", Usage: "run agent steps with `ENGINE` (" + engineChoices() + ")"},
			&cli.StringFlag{Name: "model", Usage: "run agent steps with `MODEL`"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if err := checkEngineFlags(c.String("engine"), c.String("model")); err != nil {
				return err
			}
			if err := worker.CheckID(c.String("id")); err != nil {
				return usageErrorf("worker --id %q: %v", c.String("id"), err)
			}
			if c.Duration("lease") < 100*time.Millisecond {
				return usageErrorf("worker: --lease must be at least 100ms")
			}
			out := newOutput(c)
			out.saidOnce = map[string]string{} // each pass is a run: its notes once
			o, session, err := openRunOrchestrator(c, out, worker.Command)
			if err != nil {
				return err
			}
			defer session.Close()
			return worker.Run(c.Context, o, worker.Options{
				Remote: c.String("remote"),
				ID:     c.String("id"),
				Slots:  max(c.Int("slots"), 1),
				Once:   c.Bool("once"),
				Lease:  c.Duration("lease"),
				Run: orchestrator.RunOptions{
					Overrides: orchestrator.Overrides{Engine: c.String("engine"), Model: c.String("model")},
				},
				OnNote: func(msg string) { out.event(orchestrator.Event{Kind: orchestrator.Note, Message: "worker: " + msg}) },
			})
		},
	}
}
