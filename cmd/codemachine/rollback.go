package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
)

// interactive reports whether a question can be asked: stdin and the
// error output are terminals.
func interactive(c *cli.Context) bool {
	in, ok1 := c.App.Reader.(*os.File)
	errw, ok2 := c.App.ErrWriter.(*os.File)
	if !ok1 || !ok2 {
		return false
	}
	for _, f := range []*os.File{in, errw} {
		fi, err := f.Stat()
		if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
			return false
		}
	}
	return true
}

// confirmUserCommits lists the user's commits a rollback would undo and
// asks whether to go on (the answer is no unless it is y or yes).
func confirmUserCommits(c *cli.Context, commits []string) bool {
	w := c.App.ErrWriter
	fmt.Fprintf(w, "this rollback also undoes %d commit(s) of yours (not step commits):\n", len(commits))
	for _, line := range commits {
		fmt.Fprintf(w, "  %s\n", cell(line))
	}
	fmt.Fprint(w, "the old tip is kept under refs/codemachine/backup/; roll back anyway? [y/N] ")
	answer, _ := bufio.NewReader(c.App.Reader).ReadString('\n')
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}

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
Refuses when tracked files have uncommitted changes, unless --force (which saves them first).
When the rollback would also undo commits of your own (not step commits: a spec edit, a
steering commit), it lists them and asks first on a terminal; without a terminal it refuses
(exit 2, naming them) unless --force.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "roll back over uncommitted changes (saved under refs/codemachine/backup/) and over your own commits without asking"},
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
			opts := orchestrator.RollbackOptions{Force: c.Bool("force")}
			if interactive(c) {
				opts.Confirm = func(commits []string) bool { return confirmUserCommits(c, commits) }
			}
			res, err := o.Rollback(c.Context, c.Args().First(), opts)
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
				out.printf("undone: %s\n", cells(res.Undone, ", "))
			}
			if len(res.Others) > 0 {
				out.printf("also undone, not step commits: %s\n", cells(res.Others, "; "))
			}
			if len(res.Held) > 0 {
				out.printf("held:   %s (codemachine retry %s runs it again)\n", cells(res.Held, ", "), cell(res.Held[0]))
			}
			out.printf("backup: %s\n", res.Backup)
			if res.Saved != "" {
				out.printf("your uncommitted changes were saved: git stash apply %s\n", res.Saved)
			}
			return nil
		},
	}
}
