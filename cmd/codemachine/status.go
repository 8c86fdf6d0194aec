package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show every step: done, due, running, failed, conflict, review, held, blocked, needs-you or skipped",
		Description: `Shows where the workflow stands at the tip of the current branch: each step's state,
task progress of foreach steps, tokens and cost, and the commit that landed it. A step in
conflict ran but its commit could not land over changes made meanwhile (on the branch, or
uncommitted edits of the same files): its work is kept on branch codemachine/conflict/STEP,
and a later run tries again. A step in needs-you is interactive and waits for a person at a
terminal (codemachine run in one, or codemachine open STEP); a skipped step's when: is false.

With --remote NAME it also looks at that remote (one fetch) the way "codemachine worker" does,
and shows who works there now: the integrator, each unit a worker runs (its worker and lease),
and how many results wait to land. A remote that is not configured is an error (exit 2),
after the steps. See docs/workers.md.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "engine", Usage: "evaluate as if run with --engine `ENGINE`"},
			&cli.StringFlag{Name: "model", Usage: "evaluate as if run with --model `MODEL`"},
			&cli.StringFlag{Name: "remote", Usage: "also show the workers on remote `NAME` (codemachine worker)"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if err := checkEngineFlags(c.String("engine"), c.String("model")); err != nil {
				return err
			}
			shortLivedGC()
			out := newOutput(c)
			// What recovery did is told on stderr, out of the way of
			// --json.
			o, err := newOrchestrator(c, func(e orchestrator.Event) {
				if e.Kind == orchestrator.Note {
					fmt.Fprintln(os.Stderr, "· "+e.Message)
				}
			})
			if err != nil {
				return err
			}
			if err := o.RecoverIdle(c.Context, "codemachine status"); err != nil {
				return err
			}
			report, err := o.Status(orchestrator.Overrides{Engine: c.String("engine"), Model: c.String("model")})
			if err != nil {
				return err
			}
			var remote *remoteCheck
			if name := c.String("remote"); name != "" {
				head, err := o.Repo().Head()
				if err != nil {
					return err
				}
				remote = checkRemote(c.Context, o.Repo(), head.Branch, name)
			}
			// A remote that is not configured is a mistake on the command
			// line, not news about the workers: the steps are still shown
			// (docs/workers.md), the error goes to stderr with exit 2.
			var remoteErr error
			if remote != nil && remote.URL == "" {
				remoteErr = usageErrorf("status --remote %s: %s", remote.Name, remote.Error)
				remote = nil
			}
			if out.json {
				if remote != nil {
					return out.printJSON(struct {
						*orchestrator.StatusReport
						Remote *remoteCheck `json:"remote"`
					}{report, remote})
				}
				if err := out.printJSON(report); err != nil {
					return err
				}
				return remoteErr
			}
			printStatus(out, report)
			if remote != nil {
				printRemoteCheck(out, remote)
			}
			return remoteErr
		},
	}
}

// shortLivedGC leaves the garbage collector off until the heap reaches
// 256 MiB, for a command that reads, prints and exits in milliseconds: a
// status allocates a few MiB, and collecting them cost about a tenth of
// its CPU time, while the process's peak memory is mostly the binary's
// own pages either way. GOGC or GOMEMLIMIT set by the user are kept.
func shortLivedGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(256 << 20)
	debug.SetGCPercent(-1)
}

func printStatus(out *output, r *orchestrator.StatusReport) {
	if r.Workflow != "" {
		out.printf("%s · ", cell(r.Workflow))
	}
	branch := r.Branch
	if branch == "" {
		branch = "a detached HEAD"
	}
	out.printf("on %s at %s\n", branch, shortHash(r.Commit))
	if r.Running != nil {
		out.printf("running: pid %d (%s)\n", r.Running.PID, r.Running.Command)
	}
	printSandbox(out, r)
	var tab table
	tab.add("STEP", out.paint("0"+bold, "STATE"), "ENGINE", "TOKENS", "COST", "COMMIT", "NOTE")
	for _, s := range r.Steps {
		label := s.Engine
		if s.Model != "" {
			label += "/" + s.Model
		}
		tokens, cost := "", ""
		if s.TokensIn+s.TokensOut > 0 || s.CostKnown {
			tokens = orchestrator.FormatTokens(s.TokensIn + s.TokensOut)
			cost = orchestrator.FormatCost(s.CostUSD, s.CostKnown)
		}
		note := oneLine(s.Reason)
		if s.State != orchestrator.StateReview {
			// Under review, who did the commit that landed before would
			// read as a verdict on the work that waits.
			note = withBy(note, s.By)
		}
		if s.Ref != "" {
			note += " (" + s.Ref + ")"
		}
		tab.add(s.ID, out.stateColor(s.State), cell(label), tokens, cost, shortHash(s.Commit), cell(note))
		for _, t := range s.Tasks {
			note := t.Title
			if t.Reason != "" {
				note += " — " + oneLine(t.Reason)
			}
			if t.By != "" {
				note += " — " + withBy("", t.By)
			}
			tab.add("  "+t.ID, out.stateColor(t.State), "", "", "", shortHash(t.Commit), cell(note))
		}
	}
	_, _ = out.w.Write(tab.bytes())
}

// oneLine is the first line of a note, so that a reason of several lines
// (a when: that fails at run time points at its column on the next ones)
// keeps the table a table; --json has all of it.
func oneLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// withBy adds who did a step's landed work to its note ("by agent,
// approved by Alice"; a command's just "approved by Alice").
func withBy(note, by string) string {
	if by == "" {
		return note
	}
	if !strings.HasPrefix(by, "approved by ") {
		by = "by " + by
	}
	if note == "" {
		return by
	}
	return note + "; " + by
}

// stateColor colors a state word (bold as "01", the codes of the same
// length as the colors', as the table once counted their bytes).
func (o *output) stateColor(state string) string {
	switch state {
	case orchestrator.StateDone:
		return o.paint(green, state)
	case orchestrator.StateFailed, orchestrator.StateConflict:
		return o.paint(red, state)
	case orchestrator.StateDue, orchestrator.StateRunning:
		return o.paint("0"+bold, state)
	}
	return o.paint(yellow, state)
}

// printSandbox says which protection the steps run with: the workflow's
// mode, the steps that set another, and what the system gives.
func printSandbox(out *output, r *orchestrator.StatusReport) {
	sb := r.Sandbox
	var others []string
	for _, s := range r.Steps {
		if s.Sandbox != sb.Mode {
			others = append(others, s.ID+" "+s.Sandbox)
		}
	}
	line := "sandbox: " + sb.Mode
	if len(others) > 0 {
		line += " (" + strings.Join(others, ", ") + ")"
	}
	switch {
	case sb.Mode == "off" && len(others) == 0:
		line += " · steps run unsandboxed; their processes still end with them"
	case len(sb.Missing) > 0:
		line += " · " + out.paint(yellow, sb.Active)
	default:
		line += " · " + sb.Active
	}
	out.printf("%s\n", line)
}
