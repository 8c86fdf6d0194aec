package main

import (
	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/follow"
	"github.com/codemachine/codemachine/orchestrator"
)

// runSession is what watches a command that runs steps besides its run
// table: the followers it serves (codemachine ui, through the follow
// package) once it holds the lock.
type runSession struct {
	pub *follow.Publisher
}

// openRunOrchestrator opens the repository for a command that runs steps
// (run, retry, watch; command is what its lock file says): its events go
// to the run table, with the agents' activity for the live lines, and to
// whoever follows the run. Close the session when the command ends.
func openRunOrchestrator(c *cli.Context, out *output, command string) (*orchestrator.Orchestrator, *runSession, error) {
	s := &runSession{}
	o, err := openOrchestrator(c, orchestrator.Config{Activity: true, MCPCommand: selfCommand("mcp"), OnEvent: func(e orchestrator.Event) {
		out.event(e)
		s.pub.Publish(e)
	}})
	if err != nil {
		return nil, nil, err
	}
	s.pub = follow.NewPublisher(o.Repo().LocalDir, command)
	return o, s, nil
}

// Close stops serving followers.
func (s *runSession) Close() { s.pub.Close() }
