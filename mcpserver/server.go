// Package mcpserver is `codemachine mcp`: the workflow as MCP tools, over
// stdio, built on the official Go SDK. A person in Claude Code (or any MCP
// client) can read the status, the step commits and their diffs, steer the
// plan (list, add, edit, check and uncheck tasks: each a commit, like a
// hand edit), run or retry steps and settle reviews. Tools that change the
// repository take the repository lock like every command and are refused,
// saying who holds it, while another codemachine does.
//
// Started for an agent inside a step (a step's mcp: true; Options.Worktree
// set), the server edits the plan in the step's worktree instead, without
// committing (the step commit carries the edit) and without the lock (the
// run that started the agent holds it), and offers no tool that runs
// steps or settles reviews.
//
// It is a client of the orchestrator, like watch: the orchestrator does
// not know about it.
package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codemachine/codemachine/follow"
	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/telemetry"
)

// Command is what the lock file says while a tool of the server holds the
// lock.
const Command = "codemachine mcp"

// Options configure a server.
type Options struct {
	// Dir is a directory inside the repository.
	Dir string
	// Environ is the user's environment (for the agents the run tool runs).
	Environ []string
	// MCPCommand starts this server, for the agents of steps with mcp:
	// true that the run tool runs (orchestrator.Config.MCPCommand).
	MCPCommand []string
	// Worktree, when set, is the worktree of the step whose agent the
	// server serves: plan edits go there, uncommitted.
	Worktree string
	// Version is codemachine's, told to clients.
	Version string
}

// server holds what the tools share.
type server struct {
	opts Options
	o    *orchestrator.Orchestrator // for reads; runs get one of their own
	// turn is held (a token in it) by the call that changes the
	// repository now: a client's calls take turns instead of refusing
	// each other on the repository lock their own server holds.
	turn chan struct{}
}

// serialized is h taking its turn among the server's calls that change
// the repository: it waits for the one before it (or for the client to
// cancel it) and then takes the repository lock as every command does,
// refused only by another codemachine.
func serialized[In any](s *server, h mcp.ToolHandlerFor[In, any]) mcp.ToolHandlerFor[In, any] {
	return func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
		select {
		case s.turn <- struct{}{}:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		defer func() { <-s.turn }()
		return h(ctx, req, in)
	}
}

// New returns the MCP server with the tools Options allow.
func New(opts Options) (*mcp.Server, error) {
	o, err := orchestrator.New(orchestrator.Config{Dir: opts.Dir, Environ: opts.Environ})
	if err != nil {
		return nil, err
	}
	s := &server{opts: opts, o: o, turn: make(chan struct{}, 1)}
	instructions := "codemachine runs this repository's workflow (.codemachine/workflow.yaml): each agent step lands as one commit. " +
		"Use status to see what is done and due, the plan_* tools to steer the tasks of foreach steps, run to run what is due."
	if opts.Worktree != "" {
		instructions = "You run inside a codemachine step. Use the plan_* tools to read and write the plan's tasks " +
			"instead of editing the Markdown; your edits are part of this step's commit. Do not commit yourself."
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "codemachine", Version: opts.Version},
		&mcp.ServerOptions{Instructions: instructions})
	s.addReadTools(srv)
	s.addPlanTools(srv)
	if opts.Worktree == "" {
		s.addRunTools(srv)
	}
	return srv, nil
}

// Serve runs the server on stdin and stdout until the client goes away or
// ctx ends; the calls read before stdin ends are answered first.
func Serve(ctx context.Context, opts Options) error {
	return serve(ctx, opts, os.Stdin, os.Stdout)
}

// serve is Serve on in and out.
func serve(ctx context.Context, opts Options, in io.ReadCloser, out io.Writer) error {
	srv, err := New(opts)
	if err != nil {
		return err
	}
	// The calls read before standard input ends are answered before the
	// server stops, and what the SDK would end the connection for is
	// answered as an error instead (stdio.go).
	calls := newOpenCalls()
	w := newHeldWriter(out, calls)
	// Messages reach the SDK whole and at most maxMessage long, each with
	// its newline: its own limit is never what ends the connection.
	return srv.Run(ctx, &mcp.IOTransport{Reader: newHeldReader(in, calls, w.answerError), Writer: w, MaxLineLength: 2*maxMessage + 1})
}

// text is a tool result of text.
func text(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

// jsonResult is a tool result holding v as indented JSON, after a line
// that says what it is. <, > and & stay as they are (a subject's "echo ok
// > gate.txt"), as the CLI's --json writes them: the reader is a model or
// a person, not an HTML page.
func jsonResult(what string, v any) (*mcp.CallToolResult, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return text("%s\n%s", what, bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}

// refusal rewrites a lock conflict into what to do about it; other errors
// pass as they are. Tool errors reach the model as the result's text.
func refusal(err error, alternative string) error {
	pid, cmd, ok := lockedBy(err)
	if !ok {
		return err
	}
	msg := fmt.Sprintf("refused: another codemachine holds this repository (%s, pid %d)", cmd, pid)
	if strings.HasSuffix(cmd, "watch") {
		msg += "; it runs what commits make due by itself"
	}
	if alternative != "" {
		msg += "; " + alternative
	}
	return errors.New(msg)
}

// newRunOrchestrator opens the repository for a run the server makes:
// its events go to onEvent, to `codemachine ui` and other followers, as
// the run command's do, and to its trace when OTEL_EXPORTER_OTLP_* asks
// for one. Call done when the run ends.
func (s *server) newRunOrchestrator(ctx context.Context, onEvent func(orchestrator.Event)) (*orchestrator.Orchestrator, func(), error) {
	// A run the server makes exports its trace like the run command's
	// (OTEL_EXPORTER_OTLP_*); a note about the exporter goes to standard
	// error, which MCP clients keep as the server's log.
	tracer, err := telemetry.Start(ctx, s.opts.Environ, s.opts.Version, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "codemachine: note: %v\n", err)
	}
	var pub *follow.Publisher
	o, err := orchestrator.New(orchestrator.Config{Dir: s.opts.Dir, Environ: s.opts.Environ, Activity: true,
		MCPCommand: s.opts.MCPCommand, OnEvent: func(e orchestrator.Event) {
			onEvent(e)
			pub.Publish(e)
			tracer.Event(e)
		}})
	if err != nil {
		_ = tracer.Shutdown(ctx)
		return nil, nil, err
	}
	pub = follow.NewPublisher(o.Repo().LocalDir, Command)
	done := func() {
		pub.Close()
		flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), traceFlush)
		defer cancel()
		_ = tracer.Shutdown(flush)
	}
	return o, done, nil
}

// traceFlush bounds how long a run tool waits at its end for its trace's
// last spans to be sent.
const traceFlush = 5 * time.Second
