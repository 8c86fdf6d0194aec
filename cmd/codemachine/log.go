package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
)

func logCommand() *cli.Command {
	return &cli.Command{
		Name:  "log",
		Usage: "list step commits with engine, model, tokens, cost and duration",
		Description: `Lists the commits codemachine landed on the current branch (first-parent history,
and after a merge the step commits it brought in, such as a review merged as a pull request),
newest first, with the provenance recorded in their trailers.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "n", Usage: "show at most `N` commits (0 = all)", Action: notNegative("n")},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			out := newOutput(c)
			o, err := newOrchestrator(c, nil)
			if err != nil {
				return err
			}
			entries, err := o.Log(c.Int("n"))
			if err != nil {
				return err
			}
			for _, e := range entries {
				for _, p := range e.Problems {
					fmt.Fprintf(c.App.ErrWriter, "codemachine: warning: commit %s: %s (shown as unknown)\n", shortHash(e.Commit), p)
				}
			}
			if out.json {
				if entries == nil {
					entries = []orchestrator.LogEntry{}
				}
				return out.printJSON(entries)
			}
			if len(entries) == 0 {
				out.printf("no step commits yet\n")
				return nil
			}
			var tab table
			tab.add("COMMIT", "STEP", "ENGINE", "DURATION", "TOKENS", "COST", "SUBJECT")
			for _, e := range entries {
				name := e.Step
				if e.Task != "" {
					name += "/" + e.Task
				}
				label := e.Engine
				if e.Model != "" {
					label += "/" + e.Model
				}
				by := e.By
				if by == orchestrator.ByAgent && e.Review == "" {
					by = "" // the usual case says nothing
				}
				if who := orchestrator.Who(by, e.Review); who != "" {
					label += " (" + who + ")"
				}
				dur := e.Duration
				if d, err := parseDuration(e.Duration); err == nil {
					dur = orchestrator.FormatDuration(d)
				}
				tokens, cost := logUsage(e)
				tab.add(shortHash(e.Commit), cell(name), cell(label), cell(dur), tokens, cost, cell(e.Subject))
			}
			_, err = out.w.Write(tab.bytes())
			return err
		},
	}
}

// logUsage is a log line's tokens and cost: the step's, with its reviewer
// agent's run added (its own figures are in --json's review_usage).
func logUsage(e orchestrator.LogEntry) (tokens, cost string) {
	in, out, usd, known := e.TokensIn, e.TokensOut, e.CostUSD, e.CostKnown
	if r := e.ReviewUsage; r != nil {
		in, out, usd, known = in+r.TokensIn, out+r.TokensOut, usd+r.CostUSD, known || r.CostKnown
	}
	tokens = orchestrator.FormatTokens(in + out)
	switch {
	case e.TokensUnreadable():
		tokens = "?"
	case in+out == 0 && (e.Engine == "shell" || e.Engine == ""):
		// A command, or a step its when: skipped: nothing that counts
		// tokens ran, so "0" would read as a measurement.
		tokens = "—"
	}
	return tokens, orchestrator.FormatCost(usd, known)
}
