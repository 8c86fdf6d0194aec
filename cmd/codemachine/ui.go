package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/dashboard"
)

func uiCommand() *cli.Command {
	return &cli.Command{
		Name:  "ui",
		Usage: "a terminal dashboard that follows a run or a watcher from any terminal",
		Description: `A full-screen dashboard of the workflow: the steps and their tasks as a tree with their
states, each running agent's elapsed time and latest activity, and the latest step commits
with their tokens and cost. It follows whichever codemachine holds the repository (a run,
a retry, codemachine watch, a run started by a git hook), live, through that process's
socket under .git/codemachine/; when nothing runs it shows the status and waits for a run.

Keys: ↑/↓ (or k/j) select a step or task; d shows its diff (esc goes back); a approves
it and r rejects it with a message when it waits for review; t retries it (handed to the
watcher when one runs, else run here); o opens it in its agent's own UI (codemachine open,
the dashboard suspended meanwhile); q quits. approve and reject are refused while a
watcher or a run holds the repository, as the commands are.`,
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			// Checked here: without a terminal the dashboard's library
			// falls back to /dev/tty and fails with its own message
			// (exit 1) where there is none, or draws into a pipe.
			if !inTerminal(c) {
				return usageErrorf("ui needs a terminal (standard input and output): it is a full-screen dashboard")
			}
			dir, err := commandDir(c)
			if err != nil {
				return err
			}
			return dashboard.Run(c.Context, dashboard.Options{Dir: dir, Environ: os.Environ(), MCPCommand: selfCommand("mcp"),
				OpenCommand: selfCommand("-C", dir, "open")})
		},
	}
}
