package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/watch"
)

type runArgs struct {
	Steps  []string `json:"steps,omitempty" jsonschema:"STEP or STEP/TASK targets; empty runs everything due"`
	Force  bool     `json:"force,omitempty" jsonschema:"run the named steps even when they are not due"`
	Engine string   `json:"engine,omitempty" jsonschema:"run agent steps with this engine instead of the workflow's"`
	Model  string   `json:"model,omitempty" jsonschema:"run agent steps with this model instead of the workflow's"`
}

type targetArgs struct {
	Target string `json:"target" jsonschema:"STEP or STEP/TASK"`
}

type rejectArgs struct {
	Target  string `json:"target" jsonschema:"STEP or STEP/TASK"`
	Message string `json:"message" jsonschema:"why the work is rejected: the next attempt gets it in its prompt"`
}

// addRunTools adds run, retry, approve and reject.
func (s *server) addRunTools(srv *mcp.Server) {
	mcp.AddTool(srv, &mcp.Tool{Name: "run", Description: "Run what is due (or the named steps and what they need) " +
		"until nothing is due: each step lands as one commit. Returns when the run ends, with what landed, failed or waits for review."}, serialized(s, s.run))
	mcp.AddTool(srv, &mcp.Tool{Name: "retry", Description: "Lift a failed or held step's (or task's) hold or failure " +
		"and run it again. While codemachine watch runs, the watcher is asked to do it."}, serialized(s, s.retry))
	mcp.AddTool(srv, &mcp.Tool{Name: "approve", Description: "Approve a step (or task) waiting for review: " +
		"its commit lands on the current branch."}, serialized(s, s.approve))
	mcp.AddTool(srv, &mcp.Tool{Name: "reject", Description: "Reject a step (or task) waiting for review: " +
		"its review branch is deleted (the work is kept under refs/codemachine/rejected/) and the message committed as feedback for its next attempt."}, serialized(s, s.reject))
}

// runLog collects what a run the server makes reports, and tells the
// client as it goes when the client asked for progress.
type runLog struct {
	mu    sync.Mutex
	lines []string
	ctx   context.Context
	req   *mcp.CallToolRequest
	n     float64
}

func (l *runLog) event(e orchestrator.Event) {
	line := eventLine(e)
	if line == "" {
		return
	}
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.n++
	n := l.n
	l.mu.Unlock()
	if token := l.req.Params.GetProgressToken(); token != nil {
		_ = l.req.Session.NotifyProgress(l.ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: n, Message: line})
	}
}

func (l *runLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// eventLine is a run event as one line of the tool's result ("" for
// those that say nothing a reader needs).
func eventLine(e orchestrator.Event) string {
	key := e.Key()
	switch e.Kind {
	case orchestrator.StepStarted:
		return "started " + key
	case orchestrator.StepLanded:
		return fmt.Sprintf("landed %s as %s (%s tokens, %s, %s)", key, short(e.Commit),
			orchestrator.FormatTokens(e.Tokens), orchestrator.FormatCost(e.CostUSD, e.CostOK), orchestrator.FormatDuration(e.Duration))
	case orchestrator.StepFailed:
		line := fmt.Sprintf("failed %s: %s", key, e.Message)
		if e.Ref != "" {
			line += " (work kept on " + e.Ref + ")"
		}
		return line
	case orchestrator.StepConflict:
		return fmt.Sprintf("not landed %s: %s", key, e.Message)
	case orchestrator.StepReview:
		if e.Message != "" {
			return fmt.Sprintf("review %s: %s", key, e.Message)
		}
		return fmt.Sprintf("waits for review: %s on %s (approve or reject it)", key, e.Ref)
	case orchestrator.StepSkipped:
		return fmt.Sprintf("skipped %s: %s", key, e.Message)
	case orchestrator.StepRetrying:
		return fmt.Sprintf("retrying %s (attempt %d): %s", key, e.Attempt, e.Message)
	case orchestrator.Note:
		if e.Step != "" {
			return key + ": " + e.Message
		}
		return e.Message
	}
	return ""
}

// runResult is a run's tool result: its lines, its totals, and why it
// stopped when that was not success (a failed step is a tool error).
func runResult(log *runLog, sum *orchestrator.Summary, err error) (*mcp.CallToolResult, any, error) {
	var b strings.Builder
	if lines := log.String(); lines != "" {
		b.WriteString(lines + "\n")
	}
	if sum != nil {
		fmt.Fprintf(&b, "%d landed, %d failed, %d waiting for review · %s tokens · %s\n", len(sum.Landed), len(sum.Failed),
			len(sum.Review), orchestrator.FormatTokens(sum.TokensIn+sum.TokensOut), orchestrator.FormatCost(sum.CostUSD, sum.CostUSD > 0))
		if len(sum.Landed)+len(sum.Failed)+len(sum.Review)+len(sum.Skipped) == 0 && err == nil {
			b.WriteString("nothing was due\n")
		}
	}
	res := text("%s", strings.TrimRight(b.String(), "\n"))
	if err != nil {
		res = text("%s\n%s", strings.TrimRight(b.String(), "\n"), err.Error())
		var review *orchestrator.ReviewPendingError
		// Waiting for review is an outcome, not a failure of the call.
		res.IsError = !errors.As(err, &review)
	}
	return res, nil, nil
}

func (s *server) run(ctx context.Context, req *mcp.CallToolRequest, in runArgs) (*mcp.CallToolResult, any, error) {
	if in.Force && len(in.Steps) == 0 {
		return nil, nil, errors.New("force needs the steps to force")
	}
	log := &runLog{ctx: ctx, req: req}
	o, done, err := s.newRunOrchestrator(ctx, log.event)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	sum, err := o.Run(ctx, orchestrator.RunOptions{Overrides: orchestrator.Overrides{Engine: in.Engine, Model: in.Model},
		Steps: in.Steps, Force: in.Force, Command: Command})
	if err != nil && sum == nil {
		return nil, nil, refusal(err, "")
	}
	return runResult(log, sum, err)
}

// needTarget refuses an empty target, which names no step or task.
func needTarget(target string) error {
	if strings.TrimSpace(target) == "" {
		return errors.New("target is empty: name a STEP or STEP/TASK")
	}
	return nil
}

func (s *server) retry(ctx context.Context, req *mcp.CallToolRequest, in targetArgs) (*mcp.CallToolResult, any, error) {
	if err := needTarget(in.Target); err != nil {
		return nil, nil, err
	}
	log := &runLog{ctx: ctx, req: req}
	o, done, err := s.newRunOrchestrator(ctx, log.event)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	sum, err := o.Retry(ctx, in.Target, orchestrator.RunOptions{Command: Command})
	if _, watching := watch.RefusedBy(err); watching {
		pid, qerr := watch.QueueRetry(o, in.Target)
		if qerr == nil {
			return text("handed to codemachine watch (pid %d): it lifts %s's hold or failure and runs it after its current pass", pid, in.Target), nil, nil
		}
		if !errors.Is(qerr, watch.ErrNoWatcher) {
			return nil, nil, qerr
		}
		sum, err = o.Retry(ctx, in.Target, orchestrator.RunOptions{Command: Command})
	}
	if err != nil && sum == nil {
		return nil, nil, refusal(err, "")
	}
	return runResult(log, sum, err)
}

func (s *server) approve(ctx context.Context, _ *mcp.CallToolRequest, in targetArgs) (*mcp.CallToolResult, any, error) {
	if err := needTarget(in.Target); err != nil {
		return nil, nil, err
	}
	res, err := s.o.Approve(ctx, in.Target)
	if r, ok := s.handOver(err, "approve", in.Target, ""); ok {
		return r, nil, nil
	}
	if err != nil {
		return nil, nil, refusal(err, "")
	}
	how := "fast-forward"
	if res.Rebased {
		how = "rebased onto the moved branch"
	}
	return text("approved %s: %s landed (%s)", res.Key, short(res.Commit), how), nil, nil
}

func (s *server) reject(ctx context.Context, _ *mcp.CallToolRequest, in rejectArgs) (*mcp.CallToolResult, any, error) {
	if err := needTarget(in.Target); err != nil {
		return nil, nil, err
	}
	res, err := s.o.Reject(ctx, in.Target, in.Message)
	if r, ok := s.handOver(err, "reject", in.Target, in.Message); ok {
		return r, nil, nil
	}
	if err != nil {
		return nil, nil, refusal(err, "")
	}
	return text("rejected %s: feedback committed in %s; the work is kept on %s", res.Key, short(res.Commit), res.Kept), nil, nil
}

// handOver hands approve or reject to the running watcher when err says
// one holds the lock, as the commands do.
func (s *server) handOver(err error, action, key, message string) (*mcp.CallToolResult, bool) {
	if _, watching := watch.RefusedBy(err); !watching {
		return nil, false
	}
	pid, qerr := watch.QueueReview(s.o, action, key, message)
	if qerr != nil {
		return nil, false
	}
	return text("handed %s %s to codemachine watch (pid %d): it runs what is due after its current pass", action, key, pid), true
}
