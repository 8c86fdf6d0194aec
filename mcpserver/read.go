package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/orchestrator"
)

type noArgs struct{}

type logArgs struct {
	Limit int `json:"limit,omitempty" jsonschema:"how many step commits, newest first: 1 or more (default 20)"`
}

type diffArgs struct {
	Target string `json:"target" jsonschema:"a step id, STEP/TASK, or a git revision"`
	Stat   bool   `json:"stat,omitempty" jsonschema:"only the diffstat"`
}

// addReadTools adds status, log and diff: they read and take no lock.
func (s *server) addReadTools(srv *mcp.Server) {
	mcp.AddTool(srv, &mcp.Tool{Name: "status", Description: "Where the workflow stands at the tip of the current branch: " +
		"each step done, due, running, failed, conflict, review, held, blocked, needs-you or skipped, with the tasks of foreach steps, tokens and cost."},
		func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
			r, err := s.o.Status(orchestrator.Overrides{})
			if err != nil {
				return nil, nil, err
			}
			res, err := jsonResult(statusLine(r), r)
			return res, nil, err
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "log", Description: "The step commits on the current branch, newest first, " +
		"with their engine, model, tokens, cost and duration."},
		func(_ context.Context, _ *mcp.CallToolRequest, in logArgs) (*mcp.CallToolResult, any, error) {
			if in.Limit < 0 {
				// Not the default: a caller asking for -5 has a bug
				// to hear about, not 20 commits.
				return nil, nil, fmt.Errorf("limit must be 1 or more (0 or none: the newest 20), got %d", in.Limit)
			}
			if in.Limit == 0 {
				in.Limit = 20
			}
			entries, err := s.o.Log(in.Limit)
			if err != nil {
				return nil, nil, err
			}
			if entries == nil {
				entries = []orchestrator.LogEntry{}
			}
			res, err := jsonResult("step commits, newest first:", entries)
			return res, nil, err
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "diff", Description: "The change a step or task landed (or its failed or review " +
		"work when that is newer), or any revision's change, as git show prints it."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in diffArgs) (*mcp.CallToolResult, any, error) {
			var b strings.Builder
			if err := s.o.Diff(ctx, in.Target, &b, orchestrator.DiffOptions{Stat: in.Stat}); err != nil {
				return nil, nil, err
			}
			return text("%s", b.String()), nil, nil
		})
}

// statusLine is the line before status's JSON: the branch and a count per
// state.
func statusLine(r *orchestrator.StatusReport) string {
	counts := map[string]int{}
	var order []string
	for _, st := range r.Steps {
		if counts[st.State] == 0 {
			order = append(order, st.State)
		}
		counts[st.State]++
	}
	parts := make([]string, 0, len(order))
	for _, state := range order {
		parts = append(parts, strconv.Itoa(counts[state])+" "+state)
	}
	line := "on " + r.Branch + ": " + strings.Join(parts, ", ")
	if r.Running != nil {
		line += "; " + r.Running.Command + " (pid " + strconv.Itoa(r.Running.PID) + ") is running"
	}
	return line
}

// lockedBy tells whether err is the refusal of a lock another process
// holds, and who that is.
func lockedBy(err error) (pid int, command string, ok bool) {
	var le *gitstate.LockedError
	if errors.As(err, &le) {
		return le.PID, le.Command, true
	}
	return 0, "", false
}
