package main

import (
	"errors"
	"fmt"
	"sort"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
)

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:  "validate",
		Usage: "check workflow.yaml, agents and plans; every error with file:line:col",
		Description: `Checks the workflow as it is in the working tree (uncommitted edits included): schema,
unknown keys, duplicate ids, missing agent files, needs to unknown steps, cycles, globs that
escape the repository, template errors, plan.md task ids and dependencies, foreach files
that no step can write before their step, state.yaml.
Prints every problem at once and exits 2 when there is any. Plan lines that look like tasks
but are not ("- [ ]T3", "-[ ] T4", "- [?] T2") are warned about on stderr, without failing
(and named with the problems when there are any).`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			out := newOutput(c)
			o, err := newOrchestrator(c, nil)
			if err != nil {
				return err
			}
			report, err := o.Validate()
			var verr *orchestrator.ValidationError
			failed := errors.As(err, &verr)
			if out.json {
				switch {
				case failed:
					if perr := out.printJSON(struct {
						OK       bool                   `json:"ok"`
						Errors   []orchestrator.Problem `json:"errors"`
						Warnings []orchestrator.Problem `json:"warnings,omitempty"`
					}{false, verr.Problems, verr.Warnings}); perr != nil {
						return perr
					}
					return &exitError{code: orchestrator.ExitUsage}
				case err == nil:
					return out.printJSON(struct {
						OK bool `json:"ok"`
						*orchestrator.ValidateReport
					}{true, report})
				}
			}
			if failed {
				printWarnings(c, verr.Warnings)
			}
			if err != nil {
				return err
			}
			printWarnings(c, report.Warnings)
			if out.quiet {
				return nil
			}
			out.printf("ok: %s, %s\n", countOf(report.Steps, "step"), countOf(report.Agents, "agent"))
			plans := make([]string, 0, len(report.Plans))
			for p := range report.Plans {
				plans = append(plans, p)
			}
			sort.Strings(plans)
			for _, p := range plans {
				out.printf("    %s: %s\n", p, countOf(report.Plans[p], "task"))
			}
			steps := make([]string, 0, len(report.Fanouts))
			for id := range report.Fanouts {
				steps = append(steps, id)
			}
			sort.Strings(steps)
			for _, id := range steps {
				out.printf("    step %s: %s\n", id, countOf(report.Fanouts[id], "task"))
			}
			return nil
		},
	}
}

// printWarnings writes validate's warnings on stderr, one a line.
func printWarnings(c *cli.Context, warnings []orchestrator.Problem) {
	for _, w := range warnings {
		fmt.Fprintf(c.App.ErrWriter, "codemachine: warning: %s:%d:%d: %s\n", w.File, w.Line, w.Col, w.Message)
	}
}

// countOf is n and word, in the plural unless n is 1: "1 step", "2 steps".
func countOf(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
