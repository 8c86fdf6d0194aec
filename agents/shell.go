package agents

import (
	"context"
	"fmt"
	"time"
)

// shellEngine runs the `run:` steps (and is what checks and hooks can run
// through): `sh -c req.Command` in req.Dir with req.Env.
type shellEngine struct{}

func (shellEngine) Name() string { return "shell" }

// Run runs req.Command. Result.Output is the tail of the combined output;
// Result.Text stays empty. Every failure is Fatal: re-running a command
// that failed would fail the same way.
func (e shellEngine) Run(ctx context.Context, req Request) (Result, error) {
	if req.Command == "" {
		return Result{}, &RunError{Class: Fatal, Engine: e.Name(), Msg: "no command to run"}
	}
	p := &proc{
		path:    "/bin/sh",
		args:    []string{"-c", req.Command},
		dir:     req.Dir,
		env:     req.Env,
		timeout: req.Timeout,
		grace:   req.Grace,
		log:     req.Log,
		onStart: req.OnStart,
		sandbox: req.Sandbox,
	}
	if req.OnEvent != nil {
		p.onLine = func(stream string, line []byte) {
			req.OnEvent(Event{Time: time.Now(), Kind: stream, Text: string(line)})
		}
	}
	pr, err := p.run(ctx)
	if err != nil {
		return Result{}, &RunError{Class: Fatal, Engine: e.Name(), Msg: err.Error()}
	}
	res := Result{ExitCode: pr.exitCode, Duration: pr.duration, Output: pr.output}
	if rerr := pr.interrupted(e.Name(), req.Timeout, res); rerr != nil {
		return res, rerr
	}
	if pr.exitCode != 0 {
		msg := fmt.Sprintf("command exited with status %d", pr.exitCode)
		if pr.signal != 0 {
			msg = fmt.Sprintf("command killed by signal %d (%s)", int(pr.signal), pr.signal)
		}
		if last := pr.lastLine(); last != "" {
			msg += ": " + last
		}
		return res, &RunError{Class: Fatal, Engine: e.Name(), Msg: msg, ExitCode: pr.exitCode, Result: res}
	}
	if pr.logErr != nil {
		// The command succeeded but its record is incomplete; the caller
		// keeps the event log for every run, so say so instead of landing
		// a step whose log silently lost lines.
		return res, &RunError{Class: Fatal, Engine: e.Name(), Msg: pr.logErr.Error(), Result: res}
	}
	return res, nil
}
