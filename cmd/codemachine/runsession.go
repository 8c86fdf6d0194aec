package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/follow"
	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/telemetry"
)

// runSession is what watches a command that runs steps besides its run
// table: the followers it serves (codemachine ui, through the follow
// package) once it holds the lock, and the trace it exports when
// OTEL_EXPORTER_OTLP_ENDPOINT is set.
type runSession struct {
	pub    *follow.Publisher
	tracer *telemetry.Tracer // nil unless OTEL_EXPORTER_OTLP_ENDPOINT is set
}

// openRunOrchestrator opens the repository for a command that runs steps
// (run, retry, watch; command is what its lock file says): its events go
// to the run table, with the agents' activity for the live lines, and to
// whoever follows the run. Close the session when the command ends.
func openRunOrchestrator(c *cli.Context, out *output, command string) (*orchestrator.Orchestrator, *runSession, error) {
	s := &runSession{}
	v, _ := buildInfo()
	tracer, err := telemetry.Start(c.Context, os.Environ(), v, c.App.ErrWriter)
	if err != nil {
		// Traces are for looking at runs; they never stop one.
		fmt.Fprintf(c.App.ErrWriter, "codemachine: note: %v\n", err)
	}
	s.tracer = tracer
	o, err := openOrchestrator(c, orchestrator.Config{Activity: true, MCPCommand: selfCommand("mcp"), OnEvent: func(e orchestrator.Event) {
		out.event(e)
		s.pub.Publish(e)
		s.tracer.Event(e)
	}})
	if err != nil {
		return nil, nil, err
	}
	s.pub = follow.NewPublisher(o.Repo().LocalDir, command)
	return o, s, nil
}

// traceFlush bounds how long a command waits at its end for its last
// spans to be sent.
const traceFlush = 5 * time.Second

// Close stops serving followers and sends the trace's last spans.
func (s *runSession) Close() {
	s.pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), traceFlush)
	defer cancel()
	_ = s.tracer.Shutdown(ctx)
}
