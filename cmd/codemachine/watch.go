package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/watch"
)

// minPollInterval is the shortest --poll-interval: each look stats every
// watched directory and file, and a shorter interval turns watching into a
// busy loop that takes a core from the steps it waits for.
const minPollInterval = 100 * time.Millisecond

func watchCommand() *cli.Command {
	return &cli.Command{
		Name:  "watch",
		Usage: "run what is due, then again whenever a commit (or a saved input) makes something due",
		Description: `Runs everything due, then waits. With trigger: commit (the default in workflow.yaml) a
new commit, checkout, reset or merge on the current branch starts a pass; with trigger: save
a saved input file (or plan file) is first committed as "steer: <files>" (only those files),
then a pass runs. Changes are batched: a pass starts after a quiet window (--quiet-window)
and at most --max-wait after the first change; changes during a pass make one pass after it.
codemachine's own commits trigger nothing. A failed step is not retried until its inputs
change or you run "codemachine retry STEP", which hands the retry to the watcher. A reset
that undoes step commits holds those steps, as "codemachine rollback" does.

While it watches, it holds the repository lock: "codemachine run" and "rollback" refuse to
run, and the git hooks (codemachine hooks install) stay quiet; "retry", "approve" and "reject"
are handed to the watcher, which does them after its current pass and runs what they made due.

Ctrl-C (or SIGTERM) stops the running steps gracefully, keeps their partial work on
refs/codemachine/failed/STEP and exits 130; a second Ctrl-C kills them at once.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "engine", Usage: "run agent steps with `ENGINE` (" + engineChoices() + ")"},
			&cli.StringFlag{Name: "model", Usage: "run agent steps with `MODEL`"},
			&cli.BoolFlag{Name: "record", Usage: "store a replay recording of every agent step in its commit"},
			&cli.IntFlag{Name: "parallel", Usage: "run up to `N` tasks of a foreach step at once (overrides the step's parallel)", DefaultText: "the step's", Action: parallelFlag},
			&cli.StringFlag{Name: "trigger", Usage: "start passes on each `MODE` (commit or save), overriding workflow.yaml's trigger"},
			&cli.DurationFlag{Name: "quiet-window", Value: 300 * time.Millisecond, Usage: "wait until changes have been quiet for `DURATION`"},
			&cli.DurationFlag{Name: "max-wait", Value: 2 * time.Second, Usage: "but start at most `DURATION` after the first change"},
			&cli.BoolFlag{Name: "poll", Usage: "poll with stat instead of kernel notifications (network or FUSE file systems)"},
			&cli.DurationFlag{Name: "poll-interval", Value: time.Second, Usage: "with --poll, look every `DURATION` (at least 100ms)"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if err := checkEngineFlags(c.String("engine"), c.String("model")); err != nil {
				return err
			}
			switch c.String("trigger") {
			case "", watch.TriggerCommit, watch.TriggerSave:
			default:
				return usageErrorf("unknown trigger %q (commit or save)", c.String("trigger"))
			}
			if c.Duration("quiet-window") <= 0 || c.Duration("max-wait") <= 0 || c.Duration("poll-interval") <= 0 {
				return usageErrorf("watch: --quiet-window, --max-wait and --poll-interval must be positive")
			}
			if c.IsSet("poll-interval") && !c.Bool("poll") {
				// Without --poll the watcher waits for kernel notifications,
				// which the file systems that need polling never send.
				return usageErrorf("watch: --poll-interval is how often --poll looks: codemachine watch --poll --poll-interval %s", c.Duration("poll-interval"))
			}
			if c.Duration("poll-interval") < minPollInterval {
				return usageErrorf("watch: --poll-interval must be at least %s (each look walks the watched directories), got %s", minPollInterval, c.Duration("poll-interval"))
			}
			out := newOutput(c)
			o, session, err := openRunOrchestrator(c, out, watch.Command)
			if err != nil {
				return err
			}
			defer session.Close()
			opts := watch.Options{
				Run: orchestrator.RunOptions{
					Overrides: orchestrator.Overrides{Engine: c.String("engine"), Model: c.String("model")},
					Record:    c.Bool("record"),
					Parallel:  c.Int("parallel"),
				},
				Trigger:    c.String("trigger"),
				Quiet:      c.Duration("quiet-window"),
				MaxWait:    c.Duration("max-wait"),
				OnTrigger:  out.trigger,
				OnWatching: out.watching,
				OnPass:     out.pass,
				OnNote:     func(msg string) { out.event(orchestrator.Event{Kind: orchestrator.Note, Message: msg}) },
			}
			if c.Bool("poll") {
				opts.Poll = c.Duration("poll-interval")
			}
			return watch.Run(c.Context, o, opts)
		},
	}
}

// watching says what the watcher looks at.
func (o *output) watching(info watch.Info) {
	if o.quiet {
		return
	}
	how := "kernel notifications"
	if info.Poll > 0 {
		how = "polling every " + info.Poll.String()
	}
	o.printf("%s watching %s (trigger: %s; %d directories, %s); Ctrl-C stops\n",
		o.paint(dim, "·"), info.Branch, info.Trigger, info.Dirs, how)
}

// trigger prints why a pass starts: one line, with the time, since a
// watcher runs for hours.
func (o *output) trigger(t watch.Trigger) {
	o.printf("%s %s %s\n", o.paint(bold, "»"), time.Now().Format("15:04:05"), t.Message)
}

// pass prints the end of a pass: its summary line, or what stopped it.
func (o *output) pass(s *orchestrator.Summary, err error) {
	var failed *orchestrator.StepFailedError
	switch {
	case err == nil || errors.As(err, &failed):
		_ = reportRun(o, s, nil)
	case errors.Is(err, orchestrator.ErrInterrupted):
	default:
		// A pass that ends waiting for a review, for you or over budget
		// may have landed steps first: its summary line says so, as
		// run's does, before the reason it stopped.
		_ = reportRun(o, s, err)
		o.mu.Lock()
		fmt.Fprintf(o.errW, "codemachine: %s\n", indent(err.Error(), "  ")[2:])
		o.mu.Unlock()
	}
}

// watcherHint is added to the error of a command refused because
// `codemachine watch` holds the repository: what to do instead.
func watcherHint(err error) string {
	if _, ok := watch.RefusedBy(err); !ok {
		return ""
	}
	return "\n  stop the watcher (Ctrl-C) first; meanwhile it runs what commits make due by itself, holds what a `git reset` undoes, and takes `codemachine retry`"
}
