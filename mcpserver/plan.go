package mcpserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/workflow"
)

type planArg struct {
	Plan string `json:"plan,omitempty" jsonschema:"the plan file (a foreach step's); needed only when the workflow has more than one"`
}

type planAddArgs struct {
	Title        string   `json:"title" jsonschema:"the task's title, one line"`
	ID           string   `json:"id,omitempty" jsonschema:"the task's id; default: the next number (T4 after T3)"`
	Body         string   `json:"body,omitempty" jsonschema:"details and acceptance criteria, written under the task"`
	After        []string `json:"after,omitempty" jsonschema:"ids of the tasks that must be done first"`
	InsertAfter  string   `json:"insert_after,omitempty" jsonschema:"put the task right after this task (default: after the last task)"`
	InsertBefore string   `json:"insert_before,omitempty" jsonschema:"put the task right before this task"`
	Plan         string   `json:"plan,omitempty" jsonschema:"the plan file; needed only when the workflow has more than one"`
}

type planEditArgs struct {
	ID    string    `json:"id" jsonschema:"the task to change"`
	Title *string   `json:"title,omitempty" jsonschema:"a new title"`
	Body  *string   `json:"body,omitempty" jsonschema:"a new body (empty removes it)"`
	After *[]string `json:"after,omitempty" jsonschema:"new dependencies (empty removes them)"`
	Plan  string    `json:"plan,omitempty" jsonschema:"the plan file; needed only when the workflow has more than one"`
}

type planTaskArgs struct {
	ID   string `json:"id" jsonschema:"the task"`
	Plan string `json:"plan,omitempty" jsonschema:"the plan file; needed only when the workflow has more than one"`
}

// taskView is a task as plan_list shows it.
type taskView struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Done     bool     `json:"done"`
	Runnable bool     `json:"runnable"` // not done, every dependency done: a run starts it
	After    []string `json:"after,omitempty"`
	Body     string   `json:"body,omitempty"`
}

// addPlanTools adds plan_list, plan_add, plan_edit, plan_check and
// plan_uncheck.
func (s *server) addPlanTools(srv *mcp.Server) {
	where := "Each change is a commit of the plan file, as if edited by hand, and the next run (or the watcher) does what the plan now says."
	if s.opts.Worktree != "" {
		where = "Changes are written to the plan file in this step's worktree and land with the step's commit."
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "plan_list", Description: "The tasks of the plan (a foreach step's plan file): " +
		"id, title, done, whether a run would start it now, dependencies and body."}, s.planList)
	mcp.AddTool(srv, &mcp.Tool{Name: "plan_add", Description: "Add a task to the plan, after a given task, before one, " +
		"or at the end. " + where}, serialized(s, s.planAdd))
	mcp.AddTool(srv, &mcp.Tool{Name: "plan_edit", Description: "Change a task's title, body or dependencies; " +
		"its id stays. " + where}, serialized(s, s.planEdit))
	mcp.AddTool(srv, &mcp.Tool{Name: "plan_check", Description: "Mark a task done (check its box), so no run starts it. " +
		where}, serialized(s, s.planSetDone(true)))
	mcp.AddTool(srv, &mcp.Tool{Name: "plan_uncheck", Description: "Mark a task not done (clear its box): the next run " +
		"runs it again, on top of its earlier work. " + where}, serialized(s, s.planSetDone(false)))
}

func (s *server) planList(_ context.Context, _ *mcp.CallToolRequest, in planArg) (*mcp.CallToolResult, any, error) {
	path, data, err := s.readPlan(in.Plan)
	if err != nil {
		return nil, nil, err
	}
	p, perr := workflow.ParsePlan(path, data)
	runnable := map[string]bool{}
	for _, t := range p.Runnable() {
		runnable[t.ID] = true
	}
	tasks := make([]taskView, 0, len(p.Tasks))
	for _, t := range p.Tasks {
		tasks = append(tasks, taskView{ID: t.ID, Title: t.Title, Done: t.Done, Runnable: runnable[t.ID], After: t.After, Body: t.Body})
	}
	what := fmt.Sprintf("%s: %d tasks", path, len(tasks))
	if data == nil {
		what = path + " does not exist yet: plan_add writes its first task"
	}
	if perr != nil {
		what += "\nthe plan has errors (foreach stops until they are fixed):\n" + perr.Error()
	}
	res, err := jsonResult(what, tasks)
	return res, nil, err
}

func (s *server) planAdd(ctx context.Context, _ *mcp.CallToolRequest, in planAddArgs) (*mcp.CallToolResult, any, error) {
	return s.editPlan(ctx, in.Plan, func(p *workflow.Plan) ([]byte, string, error) {
		out, id, err := p.AddTask(workflow.NewTask{ID: in.ID, Title: in.Title, Body: in.Body, After: in.After},
			workflow.Placement{After: in.InsertAfter, Before: in.InsertBefore})
		msg := fmt.Sprintf("plan: add %s %q", id, strings.TrimSpace(in.Title))
		if len(in.After) > 0 {
			msg += " (after " + strings.Join(in.After, ", ") + ")"
		}
		return out, msg, err
	})
}

func (s *server) planEdit(ctx context.Context, _ *mcp.CallToolRequest, in planEditArgs) (*mcp.CallToolResult, any, error) {
	return s.editPlan(ctx, in.Plan, func(p *workflow.Plan) ([]byte, string, error) {
		var what []string
		if in.Title != nil {
			what = append(what, "title")
		}
		if in.Body != nil {
			what = append(what, "body")
		}
		if in.After != nil {
			what = append(what, "dependencies")
		}
		if len(what) == 0 {
			return nil, "", fmt.Errorf("plan_edit %s: give a title, body or after to change", in.ID)
		}
		out, err := p.EditTask(in.ID, workflow.TaskEdit{Title: in.Title, Body: in.Body, After: in.After})
		return out, fmt.Sprintf("plan: edit %s (%s)", in.ID, strings.Join(what, ", ")), err
	})
}

func (s *server) planSetDone(done bool) mcp.ToolHandlerFor[planTaskArgs, any] {
	verb := "check"
	if !done {
		verb = "uncheck"
	}
	return func(ctx context.Context, _ *mcp.CallToolRequest, in planTaskArgs) (*mcp.CallToolResult, any, error) {
		return s.editPlan(ctx, in.Plan, func(p *workflow.Plan) ([]byte, string, error) {
			if p.Task(in.ID) == nil {
				return nil, "", fmt.Errorf("%s has no task %s", p.File, in.ID)
			}
			out, err := p.SetDone(in.ID, done)
			return out, fmt.Sprintf("plan: %s %s", verb, in.ID), err
		})
	}
}

// planEditor computes a plan's new content and the commit message that
// says what changed.
type planEditor func(p *workflow.Plan) (out []byte, msg string, err error)

// editPlan applies edit to the plan: in a step's worktree, to its file;
// otherwise under the repository lock, to the plan as committed at the
// branch tip, committed on the branch like a hand edit.
func (s *server) editPlan(ctx context.Context, plan string, edit planEditor) (*mcp.CallToolResult, any, error) {
	if s.opts.Worktree != "" {
		return s.editWorktreePlan(plan, edit)
	}
	repo := s.o.Repo()
	lock, err := repo.Lock(Command)
	if err != nil {
		return nil, nil, refusal(err, "or edit the plan file and commit it by hand")
	}
	defer lock.Release()
	head, err := repo.Head()
	if err != nil {
		return nil, nil, err
	}
	if head.Branch == "" || head.Commit == "" {
		return nil, nil, errors.New("HEAD is not on a branch with commits: check out a branch first")
	}
	path, data, err := s.readPlan(plan)
	if err != nil {
		return nil, nil, err
	}
	dirty, err := repo.StatusPaths(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	if len(dirty) > 0 {
		return nil, nil, fmt.Errorf("refused: %s has uncommitted changes; commit or stash them first", path)
	}
	if err := noLinkOnPath(repo.Root(), path); err != nil {
		return nil, nil, err
	}
	out, msg, err := s.apply(path, data, edit)
	if err != nil || out == nil {
		return text("%s", msg), nil, err
	}
	file := filepath.Join(repo.Root(), filepath.FromSlash(path))
	if err := writeFile(file, out); err != nil {
		return nil, nil, err
	}
	if err := repo.CommitPaths(ctx, []string{path}, msg); err != nil {
		// The plan file was clean: it goes back to what was committed,
		// and nothing of the refused edit is left behind.
		if rerr := restoreFile(file, data); rerr != nil {
			return nil, nil, fmt.Errorf("commit %s: %w (and putting the file back: %w)", path, err, rerr)
		}
		return nil, nil, fmt.Errorf("commit %s: %w", path, err)
	}
	after, err := repo.Head()
	if err != nil {
		return nil, nil, err
	}
	return text("committed %s on %s: %s", short(after.Commit), after.Branch, msg), nil, nil
}

// editWorktreePlan applies edit to the plan file in the step's worktree.
func (s *server) editWorktreePlan(plan string, edit planEditor) (*mcp.CallToolResult, any, error) {
	path, data, err := s.readPlan(plan)
	if err != nil {
		return nil, nil, err
	}
	if err := noLinkOnPath(s.opts.Worktree, path); err != nil {
		return nil, nil, err
	}
	out, msg, err := s.apply(path, data, edit)
	if err != nil || out == nil {
		return text("%s", msg), nil, err
	}
	if err := writeFile(filepath.Join(s.opts.Worktree, filepath.FromSlash(path)), out); err != nil {
		return nil, nil, err
	}
	return text("wrote %s: %s (it lands with this step's commit)", path, strings.TrimPrefix(msg, "plan: ")), nil, nil
}

// apply runs edit on the plan's content. A nil out with no error means
// nothing changed; msg then says so.
func (s *server) apply(path string, data []byte, edit planEditor) (out []byte, msg string, err error) {
	p, err := workflow.ParsePlan(path, data)
	if err != nil {
		return nil, "", fmt.Errorf("refused: %s has errors; fix them first:\n%w", path, err)
	}
	out, msg, err = edit(p)
	if err != nil {
		return nil, "", err
	}
	if bytes.Equal(out, data) {
		return nil, "nothing to change: " + strings.TrimPrefix(msg, "plan: ") + " is how the plan already reads", nil
	}
	return out, msg, nil
}

// readPlan finds the plan file (plan, or the workflow's only foreach
// plan) and reads it: in a step's worktree, the file there; otherwise as
// committed at HEAD, the plan every run reads. A plan not written yet
// reads as nil.
func (s *server) readPlan(plan string) (string, []byte, error) {
	var fsys fs.FS
	if s.opts.Worktree != "" {
		fsys = os.DirFS(s.opts.Worktree)
	} else {
		head, err := s.o.Repo().Head()
		if err != nil {
			return "", nil, err
		}
		if head.Commit == "" {
			return "", nil, errors.New("no commits yet: commit .codemachine/ first")
		}
		if fsys, err = s.o.Repo().TreeFS(head.Commit); err != nil {
			return "", nil, err
		}
	}
	path, err := pickPlan(fsys, plan)
	if err != nil {
		return "", nil, err
	}
	data, err := fs.ReadFile(fsys, path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, nil, nil
	}
	return path, data, err
}

// pickPlan is the plan file named (which must be a foreach step's), or
// the workflow's only one.
func pickPlan(fsys fs.FS, plan string) (string, error) {
	data, err := fs.ReadFile(fsys, workflow.WorkflowFile)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", workflow.WorkflowFile, err)
	}
	w, err := workflow.ParseWorkflow(workflow.WorkflowFile, data, agents.WorkflowEngines())
	if err != nil {
		return "", err
	}
	var plans []string
	for _, st := range w.Steps {
		if st.Foreach != "" && !slices.Contains(plans, st.Foreach) {
			plans = append(plans, st.Foreach)
		}
	}
	slices.Sort(plans)
	switch {
	case plan != "":
		plan = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(plan)), "./")
		if !slices.Contains(plans, plan) {
			return "", fmt.Errorf("%s is not a plan of the workflow (its foreach plans: %s)", plan, listOr(plans))
		}
		return plan, nil
	case len(plans) == 1:
		return plans[0], nil
	case len(plans) == 0:
		return "", errors.New("the workflow has no foreach step, so there is no plan to steer")
	}
	return "", fmt.Errorf("the workflow has %d plans (%s): name one with plan", len(plans), strings.Join(plans, ", "))
}

func listOr(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}

// writeFile writes a plan file, creating its directory.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// noLinkOnPath refuses a plan file that is, or lies in a directory that
// is, a symbolic link: writing it would write where the link points,
// maybe outside the repository (validate refuses such a plan too).
func noLinkOnPath(root, path string) error {
	p := root
	for _, part := range strings.Split(path, "/") {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // written as a new file, in new directories
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			return fmt.Errorf("refused: %s is a symbolic link (to %s); codemachine edits the plan file itself, not what a link points to", filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator))), target)
		}
	}
	return nil
}

// restoreFile puts back a file's content as it was read, data (nil: it
// did not exist).
func restoreFile(path string, data []byte) error {
	if data == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return os.WriteFile(path, data, 0o644)
}

func short(hash string) string {
	if len(hash) > 7 {
		return hash[:7]
	}
	return hash
}
