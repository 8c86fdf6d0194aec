package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/mcpserver"
)

func mcpCommand() *cli.Command {
	return &cli.Command{
		Name:  "mcp",
		Usage: "serve the workflow as MCP tools over stdio (for Claude Code, Codex and other MCP clients)",
		Description: `An MCP server on standard input and output. Its tools: status, log and diff (read only);
plan_list, plan_add, plan_edit, plan_check and plan_uncheck (the tasks of a foreach step's plan:
each change is a commit of the plan file, like a hand edit); run and retry (run steps, one
commit each); approve and reject (settle reviews). Tools that change the repository take the
repository lock like every command, and are refused, saying who holds it, while another
codemachine (a run, a watcher) does; the client's own such calls take turns, each waiting for
the one before it. When standard input ends, the calls already read are answered before it
exits. A message that is not JSON or not JSON-RPC 2.0 gets an error answer (-32700 or -32600),
as does one longer than 16 MiB (-32600) or a call other than ping before initialize (-32600), and
the server reads on.

Add it to Claude Code:   claude mcp add codemachine -- codemachine -C /path/to/repo mcp

A step with mcp: true gives its agent this server for the step's worktree (--worktree): the
plan tools then edit the plan there, uncommitted, and land with the step's commit.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "worktree", Usage: "serve the agent of a step: edit the plan in worktree `DIR`, uncommitted (mcp: true passes it)"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			dir, err := commandDir(c)
			if err != nil {
				return err
			}
			v, _ := buildInfo()
			return mcpserver.Serve(c.Context, mcpserver.Options{Dir: dir, Environ: os.Environ(),
				MCPCommand: selfCommand("mcp"), Worktree: c.String("worktree"), Version: v})
		},
	}
}

// selfCommand is the command line that runs this codemachine with args,
// for the processes it starts that start it again (an agent's MCP
// server). It is the program as it was started, found on PATH when named
// bare, so that it runs the same binary under the same name.
func selfCommand(args ...string) []string {
	prog := os.Args[0]
	switch {
	case !strings.Contains(prog, string(filepath.Separator)):
		if p, err := exec.LookPath(prog); err == nil {
			prog = p
		}
	default:
		if p, err := filepath.Abs(prog); err == nil {
			prog = p
		}
	}
	if !filepath.IsAbs(prog) {
		if p, err := os.Executable(); err == nil {
			prog = p
		}
	}
	return append([]string{prog}, args...)
}
