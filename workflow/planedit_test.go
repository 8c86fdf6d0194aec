package workflow

import (
	"errors"
	"strings"
	"testing"
)

const editPlan = `# Plan

Intro text.

- [x] T1: Create the layout
  Details of T1.

    indented more
- [ ] T2: Parse the config (after: T1)
* [ ] Write the README

Notes after the tasks.
`

func mustPlan(t *testing.T, data string) *Plan {
	t.Helper()
	p, err := ParsePlan("plan.md", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ptr[T any](v T) *T { return &v }

// TestAddTask: a new task goes after a task (after its body, before the
// blank lines that follow it), before one, or after the last; everything
// else stays byte for byte; an id is picked when none is given.
func TestAddTask(t *testing.T) {
	p := mustPlan(t, editPlan)
	cases := []struct {
		name   string
		task   NewTask
		at     Placement
		wantID string
		want   string // the new item
		before string // the text of editPlan the item goes in front of
	}{
		{"after T1", NewTask{Title: "Add logging", Body: "Use slog.\n\nAt info level.", After: []string{"T1"}},
			Placement{After: "T1"}, "T3",
			"- [ ] T3: Add logging (after: T1)\n  Use slog.\n\n  At info level.\n", "- [ ] T2:"},
		{"before T2", NewTask{ID: "setup", Title: "Set up"}, Placement{Before: "T2"}, "setup",
			"- [ ] setup: Set up\n", "- [ ] T2:"},
		{"at the end", NewTask{Title: "Ship it", After: []string{"T2", "write-the-readme"}}, Placement{}, "T3",
			"- [ ] T3: Ship it (after: T2, write-the-readme)\n", "\nNotes after"},
		{"after the last", NewTask{Title: "Last"}, Placement{After: "write-the-readme"}, "T3",
			"- [ ] T3: Last\n", "\nNotes after"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, id, err := p.AddTask(c.task, c.at)
			if err != nil {
				t.Fatal(err)
			}
			if id != c.wantID {
				t.Errorf("id %q, want %q", id, c.wantID)
			}
			i := strings.Index(editPlan, c.before)
			want := editPlan[:i] + c.want + editPlan[i:]
			if string(out) != want {
				t.Errorf("got:\n%s\nwant:\n%s", out, want)
			}
		})
	}
}

// TestAddTaskRefused: what the plan cannot take is an ErrPlanEdit that
// says why.
func TestAddTaskRefused(t *testing.T) {
	p := mustPlan(t, editPlan)
	for _, c := range []struct {
		task NewTask
		at   Placement
		want string
	}{
		{NewTask{ID: "T1", Title: "again"}, Placement{}, "already has a task T1"},
		{NewTask{Title: "x", After: []string{"T9"}}, Placement{}, `unknown task "T9"`},
		{NewTask{Title: ""}, Placement{}, "needs a title"},
		{NewTask{Title: "two\nlines"}, Placement{}, "one line"},
		{NewTask{Title: "x (after: T1)"}, Placement{}, "not in the title"},
		{NewTask{ID: "bad id", Title: "x"}, Placement{}, "task id"},
		{NewTask{Title: "x"}, Placement{After: "T7"}, "no task T7"},
		{NewTask{Title: "x"}, Placement{After: "T1", Before: "T2"}, "not both"},
	} {
		_, _, err := p.AddTask(c.task, c.at)
		if !errors.Is(err, ErrPlanEdit) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("add %+v at %+v: %v, want an ErrPlanEdit saying %q", c.task, c.at, err, c.want)
		}
	}
}

// TestAddTaskToEmptyPlan: a plan that does not exist yet gets a heading
// and its first task, T1.
func TestAddTaskToEmptyPlan(t *testing.T) {
	p := &Plan{File: "plan.md"}
	out, id, err := p.AddTask(NewTask{Title: "First"}, Placement{})
	if err != nil {
		t.Fatal(err)
	}
	if id != "T1" || string(out) != "# Plan\n\n- [ ] T1: First\n" {
		t.Errorf("got %s:\n%s", id, out)
	}
	// A plan whose last line has no newline gets one before the new task.
	p = mustPlan(t, "- [ ] a: A")
	out, _, err = p.AddTask(NewTask{Title: "B"}, Placement{})
	if err != nil || string(out) != "- [ ] a: A\n- [ ] T1: B\n" {
		t.Errorf("got %q, %v", out, err)
	}
}

// TestEditTask: an edit rewrites only the task's item; a title derived id
// is written out so that the id stays; the box and bullet stay; an edit
// that would make a cycle is refused.
func TestEditTask(t *testing.T) {
	p := mustPlan(t, editPlan)
	out, err := p.EditTask("T1", TaskEdit{Title: ptr("Create the module layout")})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(editPlan, "- [x] T1: Create the layout\n  Details of T1.\n\n    indented more\n",
		"- [x] T1: Create the module layout\n  Details of T1.\n\n    indented more\n", 1)
	if string(out) != want {
		t.Errorf("title edit:\n%s", out)
	}
	out, err = p.EditTask("write-the-readme", TaskEdit{Title: ptr("Write the docs"), Body: ptr("In docs/."), After: &[]string{"T2"}})
	if err != nil {
		t.Fatal(err)
	}
	want = strings.Replace(editPlan, "* [ ] Write the README\n", "* [ ] write-the-readme: Write the docs (after: T2)\n  In docs/.\n", 1)
	if string(out) != want {
		t.Errorf("edit:\n%s", out)
	}
	out, err = p.EditTask("T2", TaskEdit{After: &[]string{}})
	if err != nil || !strings.Contains(string(out), "- [ ] T2: Parse the config\n* [ ]") {
		t.Errorf("dropping the dependencies: %v\n%s", err, out)
	}
	if _, err := p.EditTask("T1", TaskEdit{After: &[]string{"T2"}}); !errors.Is(err, ErrPlanEdit) || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("a cycle: %v", err)
	}
	if _, err := p.EditTask("T9", TaskEdit{}); !errors.Is(err, ErrPlanEdit) {
		t.Errorf("unknown task: %v", err)
	}
}

// TestPlanEditOpenFence: a body that leaves a code fence open turns the
// lines after it into body text, tasks included. Such an edit is refused
// rather than reported done with its task, or the next one, gone.
func TestPlanEditOpenFence(t *testing.T) {
	p := mustPlan(t, "# Plan\n- [ ] T1: one\n- [ ] T2: two\n")
	open := "Run this:\n```sh\nmake"
	if _, _, err := p.AddTask(NewTask{Title: "fenced", Body: open}, Placement{After: "T1"}); !errors.Is(err, ErrPlanEdit) || !strings.Contains(err.Error(), "code fence") {
		t.Errorf("adding a task whose open fence takes in T2: %v, want an ErrPlanEdit about the fence", err)
	}
	if _, err := p.EditTask("T1", TaskEdit{Body: &open}); !errors.Is(err, ErrPlanEdit) || !strings.Contains(err.Error(), "code fence") {
		t.Errorf("editing T1's body to take in T2: %v, want an ErrPlanEdit about the fence", err)
	}
	// Nor as the last task, where the plan would still read but the next
	// task added would be taken into the fence.
	if _, _, err := p.AddTask(NewTask{Title: "fenced", Body: open}, Placement{}); !errors.Is(err, ErrPlanEdit) || !strings.Contains(err.Error(), "leaves a code fence (```) open") {
		t.Errorf("adding a last task whose body leaves a fence open: %v, want an ErrPlanEdit about the fence", err)
	}
	if _, err := p.EditTask("T2", TaskEdit{Body: ptr("~~~~\ncode\n~~~")}); !errors.Is(err, ErrPlanEdit) || !strings.Contains(err.Error(), "leaves a code fence (~~~~) open") {
		t.Errorf("editing the last task's body to leave a fence open: %v, want an ErrPlanEdit about the fence", err)
	}
	// The last task's open fence (written by hand) takes in every task
	// added after it.
	q := mustPlan(t, "# Plan\n- [ ] T1: one\n  ```\n  code\n")
	if _, _, err := q.AddTask(NewTask{Title: "two"}, Placement{}); !errors.Is(err, ErrPlanEdit) || !strings.Contains(err.Error(), "T2 as written (1 tasks, want 2)") {
		t.Errorf("adding after a fence left open: %v, want an ErrPlanEdit saying T2 would not read back", err)
	}
	// A closed fence, even holding what looks like a task, is a body.
	closed := "```\n- [ ] T9: not a task\n```"
	out, id, err := p.AddTask(NewTask{Title: "fenced", Body: closed}, Placement{After: "T1"})
	if err != nil || id != "T3" {
		t.Fatalf("adding a task with a closed fence: %q, %v", id, err)
	}
	if got := mustPlan(t, string(out)); len(got.Tasks) != 3 || got.Task("T3").Body != closed {
		t.Errorf("plan after the add:\n%s", out)
	}
}
