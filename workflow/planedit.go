package workflow

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/codemachine/codemachine/internal/lazyre"
)

// Plan edits: what a person does to plan.md by hand, done by a program
// (codemachine's MCP tools). Each returns the plan's new content and
// leaves every byte outside the task it adds or edits as it was, so that
// the edit reads in a diff like a hand edit; the result is parsed again
// and refused if it would not parse cleanly.

// NewTask is a task to add to a plan.
type NewTask struct {
	// ID is the task's id; "" picks the next of the plan's numbered ids
	// (T4 after T3), or T1 in a plan without them.
	ID    string
	Title string
	// Body is the text under the task (indented by two spaces in the file).
	Body  string
	After []string // tasks that must be done first
}

// Placement says where a new task goes: after the task After, before the
// task Before, or (both empty) after the last task.
type Placement struct {
	After, Before string
}

// TaskEdit changes a task; nil fields are kept as they are.
type TaskEdit struct {
	Title *string
	Body  *string
	After *[]string
}

// ErrPlanEdit marks an edit that the plan cannot take (an unknown task, a
// taken id, a dependency on nothing): the caller's mistake, not a failure.
var ErrPlanEdit = errors.New("plan edit")

var numberedIDRE = lazyre.New(`^([A-Za-z]*)(\d+)$`)

// EmptyPlan is the content of a plan file that does not exist yet, before
// its first task.
const EmptyPlan = "# Plan\n\n"

// AddTask returns the plan's content with t added where at says, and the
// id the task got.
func (p *Plan) AddTask(t NewTask, at Placement) ([]byte, string, error) {
	if t.ID == "" {
		t.ID = p.nextID()
	}
	if !taskIDRE().MatchString(t.ID + ":") {
		return nil, "", editErr("task id %q: want letters, digits, '.', '_' or '-', starting with a letter or digit", t.ID)
	}
	if p.Task(t.ID) != nil {
		return nil, "", editErr("%s already has a task %s", p.File, t.ID)
	}
	if err := p.checkNew(t.ID, t.Title, t.After); err != nil {
		return nil, "", err
	}
	if err := checkBody(t.ID, t.Body); err != nil {
		return nil, "", err
	}
	data := p.Data
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte(EmptyPlan)
	}
	pos, err := p.insertAt(data, at)
	if err != nil {
		return nil, "", err
	}
	item := renderTask("-", ' ', t.ID, t.Title, t.Body, t.After)
	var out []byte
	out = append(out, data[:pos]...)
	if pos > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	out = append(out, item...)
	out = append(out, data[pos:]...)
	return out, t.ID, p.reparse(out, t.ID, t.Title, len(p.Tasks)+1)
}

// insertAt is the offset in data where a new task goes.
func (p *Plan) insertAt(data []byte, at Placement) (int, error) {
	switch {
	case at.After != "" && at.Before != "":
		return 0, editErr("a new task goes after one task or before one, not both")
	case at.After != "":
		t := p.Task(at.After)
		if t == nil {
			return 0, editErr("%s has no task %s to add after", p.File, at.After)
		}
		return t.end, nil
	case at.Before != "":
		t := p.Task(at.Before)
		if t == nil {
			return 0, editErr("%s has no task %s to add before", p.File, at.Before)
		}
		return t.start, nil
	case len(p.Tasks) > 0:
		return p.Tasks[len(p.Tasks)-1].end, nil
	}
	return len(data), nil
}

// EditTask returns the plan's content with the task changed as e says. The
// task keeps its id (written out when it was derived from the title, so
// that a new title does not rename it), its bullet and its box.
func (p *Plan) EditTask(id string, e TaskEdit) ([]byte, error) {
	t := p.Task(id)
	if t == nil {
		return nil, editErr("%s has no task %s", p.File, id)
	}
	title, body, after := t.Title, t.Body, t.After
	if e.Title != nil {
		title = *e.Title
	}
	if e.Body != nil {
		body = *e.Body
		if err := checkBody(id, body); err != nil {
			return nil, err
		}
	}
	if e.After != nil {
		after = *e.After
	}
	if err := p.checkNew(id, title, after); err != nil {
		return nil, err
	}
	bullet := string(p.Data[t.start])
	item := renderTask(bullet, p.Data[t.Box], id, title, body, after)
	var out []byte
	out = append(out, p.Data[:t.start]...)
	out = append(out, item...)
	out = append(out, p.Data[t.end:]...)
	return out, p.reparse(out, id, title, len(p.Tasks))
}

// checkNew checks a task's title and dependencies before they are written.
func (p *Plan) checkNew(id, title string, after []string) error {
	title = strings.TrimSpace(title)
	switch {
	case title == "":
		return editErr("task %s needs a title", id)
	case strings.ContainsAny(title, "\r\n"):
		return editErr("task %s: a title is one line (put the rest in the body)", id)
	case afterRE().MatchString(title):
		return editErr("task %s: give dependencies as after, not in the title", id)
	}
	for _, dep := range after {
		switch {
		case dep == id:
			return editErr("task %s cannot depend on itself", id)
		case p.Task(dep) == nil:
			ids := make([]string, 0, len(p.Tasks))
			for _, t := range p.Tasks {
				ids = append(ids, t.ID)
			}
			return editErr("task %s depends on unknown task %q%s", id, dep, suggest(dep, ids))
		}
	}
	return nil
}

// checkBody refuses a body that leaves a code fence (```) open: placed
// last, the plan would still read, but every task added after it later
// would be taken into the fence as text.
func checkBody(id, body string) error {
	var fence fenceState
	for _, line := range strings.Split(body, "\n") {
		if fence.open {
			fence.closeOn(line)
		} else {
			fence.openOn(line, true)
		}
	}
	if fence.open {
		return editErr("task %s: the body leaves a code fence (%s) open; close it", id, strings.Repeat(string(fence.char), fence.n))
	}
	return nil
}

// reparse refuses content that does not parse cleanly (a cycle the edit
// made, say), or that does not read back as the plan with task id
// titled title among n tasks: a code fence that a body leaves open makes
// the lines after it body text, the tasks among them included, and the
// edit would be reported done while its task, or the one after it, is
// gone from the plan.
func (p *Plan) reparse(out []byte, id, title string, n int) error {
	np, err := ParsePlan(p.File, out)
	if err != nil {
		return fmt.Errorf("%w: the edited plan would not parse: %w", ErrPlanEdit, err)
	}
	if t := np.Task(id); t == nil || t.Title != strings.TrimSpace(title) || len(np.Tasks) != n {
		return editErr("the edited plan would not read back with task %s as written (%d tasks, want %d): is a code fence (```) left open in a body?", id, len(np.Tasks), n)
	}
	return nil
}

// nextID is the id after the plan's highest numbered one with the most
// common prefix (T3 -> T4), else T1 (or T2, ... if taken).
func (p *Plan) nextID() string {
	prefix, n := "T", 0
	counts := map[string]int{}
	for _, t := range p.Tasks {
		if m := numberedIDRE().FindStringSubmatch(t.ID); m != nil {
			counts[m[1]]++
		}
	}
	best := 0
	for pre, c := range counts {
		if c > best || (c == best && pre < prefix) {
			prefix, best = pre, c
		}
	}
	for _, t := range p.Tasks {
		if m := numberedIDRE().FindStringSubmatch(t.ID); m != nil && m[1] == prefix {
			if v, err := strconv.Atoi(m[2]); err == nil {
				n = max(n, v)
			}
		}
	}
	for {
		n++
		id := prefix + strconv.Itoa(n)
		if p.Task(id) == nil {
			return id
		}
	}
}

// renderTask writes a task item: its line and its body indented by two
// spaces.
func renderTask(bullet string, box byte, id, title, body string, after []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%c] %s: %s", bullet, box, id, strings.TrimSpace(title))
	if len(after) > 0 {
		deps := slices.Clone(after)
		b.WriteString(" (after: " + strings.Join(deps, ", ") + ")")
	}
	b.WriteByte('\n')
	body = strings.Trim(body, "\n")
	if strings.TrimSpace(body) != "" {
		for _, line := range strings.Split(body, "\n") {
			if strings.TrimSpace(line) == "" {
				b.WriteByte('\n')
				continue
			}
			b.WriteString("  " + strings.TrimRight(line, " \t\r") + "\n")
		}
	}
	return []byte(b.String())
}

func editErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPlanEdit, fmt.Sprintf(format, args...))
}
