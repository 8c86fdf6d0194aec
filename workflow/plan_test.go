package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// dumpPlan renders the parsed tasks for golden files.
func dumpPlan(t *testing.T, p *Plan) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p.Tasks); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestParsePlanGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/plan/steering.md")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePlan("plan.md", data)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "plan/steering.golden", dumpPlan(t, p))
	for _, task := range p.Tasks {
		if c := data[task.Box]; !strings.ContainsRune(" xX", rune(c)) {
			t.Errorf("task %s: Box %d points at %q", task.ID, task.Box, c)
		}
	}
}

func TestParsePlanCRLF(t *testing.T) {
	lf, err := os.ReadFile("testdata/plan/steering.md")
	if err != nil {
		t.Fatal(err)
	}
	crlf := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
	pl, err := ParsePlan("plan.md", lf)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := ParsePlan("plan.md", crlf)
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Tasks) != len(pc.Tasks) {
		t.Fatalf("LF: %d tasks, CRLF: %d", len(pl.Tasks), len(pc.Tasks))
	}
	for i := range pl.Tasks {
		a, b := *pl.Tasks[i], *pc.Tasks[i]
		if b.Box != a.Box+a.Line-1 {
			t.Errorf("task %s: CRLF box %d, want %d", a.ID, b.Box, a.Box+a.Line-1)
		}
		a.Box, b.Box = 0, 0
		if !jsonEqual(a, b) {
			t.Errorf("task %d differs:\n LF: %+v\nCRLF: %+v", i, a, b)
		}
	}
	out, err := pc.SetDone("T1", true)
	if err != nil {
		t.Fatal(err)
	}
	assertOneByte(t, crlf, out, pc.Task("T1").Box, 'x')
}

// assertOneByte checks that out equals in except at offset, which holds c.
func assertOneByte(t *testing.T, in, out []byte, offset int, c byte) {
	t.Helper()
	if len(in) != len(out) {
		t.Fatalf("length changed: %d -> %d", len(in), len(out))
	}
	for i := range in {
		switch {
		case i == offset && out[i] != c:
			t.Errorf("byte %d = %q, want %q", i, out[i], c)
		case i != offset && in[i] != out[i]:
			t.Errorf("byte %d changed: %q -> %q", i, in[i], out[i])
		}
	}
}

func TestPlanSetDone(t *testing.T) {
	data := []byte("# Plan\n- [ ] T1: one\n- [x] T2: two (after: T1)\n- [X] T3: three\n")
	p, err := ParsePlan("plan.md", data)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   string
		done bool
		want byte
		same bool
	}{
		{"T1", true, 'x', false},
		{"T1", false, ' ', true},
		{"T2", false, ' ', false},
		{"T2", true, 'x', true},
		{"T3", false, ' ', false},
		{"T3", true, 'X', true},
	}
	for _, tt := range tests {
		out, err := p.SetDone(tt.id, tt.done)
		if err != nil {
			t.Fatalf("SetDone(%s, %v): %v", tt.id, tt.done, err)
		}
		if tt.same {
			if !bytes.Equal(out, data) {
				t.Errorf("SetDone(%s, %v) changed a box already in that state", tt.id, tt.done)
			}
			continue
		}
		assertOneByte(t, data, out, p.Task(tt.id).Box, tt.want)
		again, err := ParsePlan("plan.md", out)
		if err != nil {
			t.Fatal(err)
		}
		if got := again.Task(tt.id).Done; got != tt.done {
			t.Errorf("after SetDone(%s, %v), reparsed Done = %v", tt.id, tt.done, got)
		}
	}
	if !bytes.Equal(p.Data, data) {
		t.Error("SetDone modified Plan.Data")
	}
	if _, err := p.SetDone("T9", true); !errors.Is(err, ErrUnknownTask) {
		t.Errorf("SetDone(T9) error = %v, want ErrUnknownTask", err)
	}
}

func TestParsePlanBOM(t *testing.T) {
	data := []byte("\uFEFF- [ ] T1: first line after a byte order mark\n")
	p, err := ParsePlan("plan.md", data)
	if err != nil || len(p.Tasks) != 1 {
		t.Fatalf("tasks %v, err %v", p.Tasks, err)
	}
	out, err := p.SetDone("T1", true)
	if err != nil {
		t.Fatal(err)
	}
	assertOneByte(t, data, out, 6, 'x')
}

func TestPlanRunnable(t *testing.T) {
	tests := []struct {
		name, plan string
		want       []string
	}{
		{"empty", "# Plan\n", nil},
		{"all open, no deps", "- [ ] A: a\n- [ ] B: b\n", []string{"A", "B"}},
		{"dep open", "- [ ] A: a\n- [ ] B: b (after: A)\n", []string{"A"}},
		{"dep done", "- [x] A: a\n- [ ] B: b (after: A)\n", []string{"B"}},
		{"two deps, one open", "- [x] A: a\n- [ ] B: b\n- [ ] C: c (after: A, B)\n", []string{"B"}},
		{"all done", "- [x] A: a\n- [X] B: b\n", nil},
		{"plan order", "- [ ] Z: z\n- [ ] A: a\n", []string{"Z", "A"}},
		{"later dep", "- [ ] B: b (after: A)\n- [x] A: a\n", []string{"B"}},
		{"unknown dep never ready", "- [ ] B: b (after: Q)\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := ParsePlan("plan.md", []byte(tt.plan))
			var got []string
			for _, task := range p.Runnable() {
				got = append(got, task.ID)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("Runnable() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPlanTitleIDStable: a task whose title gives no slug (no ASCII letter
// or digit: a title in Japanese, Greek, Cyrillic, ...) keeps its id when a
// task is added above it or the plan is reordered, as a slugged title does:
// its id is its work's name in state.yaml, commits and refs, so an id
// taken from its line would hand its record and commit to whatever task
// comes to stand on that line.
func TestPlanTitleIDStable(t *testing.T) {
	before, err := ParsePlan("plan.md", []byte("# Plan\n\n- [x] パーサーを追加\n- [ ] テストを書く\n"))
	if err != nil {
		t.Fatal(err)
	}
	after, err := ParsePlan("plan.md", []byte("# Plan\n\n- [ ] 設定ファイルを読む\n- [x] パーサーを追加\n- [ ] テストを書く\n"))
	if err != nil {
		t.Fatal(err)
	}
	ids := func(p *Plan) map[string]string {
		m := map[string]string{}
		for _, task := range p.Tasks {
			m[task.Title] = task.ID
		}
		return m
	}
	was, now := ids(before), ids(after)
	for title, id := range was {
		if now[title] != id {
			t.Errorf("task %q: id %q became %q when a task was added above it", title, id, now[title])
		}
	}
	if n := now["設定ファイルを読む"]; n == was["パーサーを追加"] || n == was["テストを書く"] {
		t.Errorf("the added task took the id %q of a task that was there before", n)
	}
}

// TestPlanSlugCollisions: titles whose slugs are the same only because
// the slug leaves out letters that are not ASCII are different tasks, with
// ids of their own; ids that collide with nothing, and ASCII titles, keep
// their slug, and titles that differ only in what the slug keeps remain a
// duplicate.
func TestPlanSlugCollisions(t *testing.T) {
	p, err := ParsePlan("plan.md", []byte("- [ ] API を追加\n- [ ] API を削除\n- [x] API\n- [ ] Überprüfen der Eingabe\n- [ ] Añadir API\n- [ ] Anadir API\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"api-" + strings.TrimPrefix(titleID("api を追加"), "task-"), "api-" + strings.TrimPrefix(titleID("api を削除"), "task-"),
		"api", "berpr-fen-der-eingabe", "a-adir-api", "anadir-api"}
	var got []string
	for _, task := range p.Tasks {
		got = append(got, task.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
	if got[0] == got[1] {
		t.Errorf("both tasks have the id %q", got[0])
	}
	if _, err := ParsePlan("plan.md", []byte("- [ ] Café\n- [ ] café\n")); err == nil || !strings.Contains(err.Error(), `duplicate task id "caf-`) {
		t.Errorf("two titles the same but for case: got %v, want a duplicate", err)
	}
}

func TestParsePlanTasks(t *testing.T) {
	tests := []struct {
		name, line string
		want       Task
	}{
		{"id and title", "- [ ] T1: Create it", Task{ID: "T1", Title: "Create it"}},
		{"slug", "- [ ] Write the README!", Task{ID: "write-the-readme", Title: "Write the README!"}},
		{"no letter to slug", "- [ ] ???", Task{ID: "task-a03b221c", Title: "???"}},
		{"no ascii letter", "- [ ] パーサーを追加 (after: T0)", Task{ID: "task-fb38c658", Title: "パーサーを追加", After: []string{"T0"}}},
		{"url is not an id", "- [ ] http://example.com docs", Task{ID: "http-example-com-docs", Title: "http://example.com docs"}},
		{"dotted id", "- [x] v1.2-fix: Fix it", Task{ID: "v1.2-fix", Title: "Fix it", Done: true}},
		{"after", "- [ ] T2: Parse (after: T1, T0)", Task{ID: "T2", Title: "Parse", After: []string{"T1", "T0"}}},
		{"after without commas", "- [ ] T2: Parse (After: T1 T0)", Task{ID: "T2", Title: "Parse", After: []string{"T1", "T0"}}},
		{"parens in the title", "- [ ] T4: Use (not abuse) parens", Task{ID: "T4", Title: "Use (not abuse) parens"}},
		{"star bullet", "* [ ] T5: star", Task{ID: "T5", Title: "star"}},
		{"plus bullet upper X", "+ [X] T6: plus", Task{ID: "T6", Title: "plus", Done: true}},
		{"trailing spaces", "- [ ] T7: spaced   ", Task{ID: "T7", Title: "spaced"}},
		{"unicode title", "- [ ] Überprüfen der Eingabe", Task{ID: "berpr-fen-der-eingabe", Title: "Überprüfen der Eingabe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Dependencies on tasks not in this one-line plan are
			// errors, checked in TestParsePlanErrors; the task is
			// parsed all the same.
			p, _ := ParsePlan("plan.md", []byte(tt.line+"\n"))
			if len(p.Tasks) != 1 {
				t.Fatalf("got %d tasks", len(p.Tasks))
			}
			got := *p.Tasks[0]
			tt.want.Line, tt.want.Box = 1, 3
			if !jsonEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParsePlanErrors(t *testing.T) {
	tests := []struct {
		name, plan string
		want       []string
	}{
		{"duplicate", "- [ ] T1: a\n- [ ] T1: b\n", []string{`plan.md:2:7: duplicate task id "T1" (first at line 1)`}},
		{"duplicate slug", "- [ ] Same\n- [ ] same\n", []string{`plan.md:2:7: duplicate task id "same" (first at line 1)`}},
		{"unknown dep", "- [ ] T1: a (after: T2)\n", []string{`plan.md:1:21: task "T1" depends on unknown task "T2"`}},
		{"unknown dep suggestion", "- [ ] parse-config: a\n- [ ] T2: b (after: parse-cofig)\n",
			[]string{`plan.md:2:21: task "T2" depends on unknown task "parse-cofig" (did you mean "parse-config"?)`}},
		{"self", "- [ ] T1: a (after: T1)\n", []string{`plan.md:1:21: task "T1" depends on itself`}},
		{"cycle of two", "- [ ] A: a (after: B)\n- [ ] B: b (after: A)\n", []string{`plan.md:2:20: dependency cycle: A -> B -> A`}},
		{"two cycles", "- [ ] A: a (after: B)\n- [ ] B: b (after: A)\n- [ ] C: c (after: D)\n- [ ] D: d (after: C)\n",
			[]string{`plan.md:2:20: dependency cycle: A -> B -> A`, `plan.md:4:20: dependency cycle: C -> D -> C`}},
		{"empty title", "- [ ] \n", []string{`plan.md:1:7: task has an empty title`}},
		{"empty title bare box", "- [ ]\n", []string{`plan.md:1:4: task has an empty title`}},
		{"id only", "- [ ] T1:\n", []string{`plan.md:1:10: task has an empty title`}},
		{"ids a git ref cannot hold", "- [ ] T1.lock: a\n- [ ] a..b: b\n- [ ] c.: c\n", []string{
			`plan.md:1:7: task id "T1.lock" has a segment starting with "." or ending with ".lock", which a git ref cannot hold`,
			`plan.md:2:7: task id "a..b" has "..", "@{" or "//", which a git ref cannot hold`,
			`plan.md:3:7: task id "c." starts or ends with "/" or ends with "."`,
		}},
		{"NUL in a title", "- [ ] T1: a\x00b\n", []string{`plan.md:1:12: a NUL byte in a task: its title and body are given to commands as environment variables, which cannot hold one`}},
		{"escape sequence in a title", "- [ ] T1: a \x1b]0;title\x07b\n- [ ] T2: \u009bc\n  body \x1b[31m is text\n", []string{
			`plan.md:1:13: a control character (U+001B) in a task: its title is printed to your terminal and is its commit's subject`,
			`plan.md:2:11: a control character (U+009B) in a task: its title is printed to your terminal and is its commit's subject`,
		}},
		{"Latin-1 in a title", "- [ ] T1: caf\xe9\n- [ ] T2: a \uFFFD is text\n  caf\xe9 in a body is text\n", []string{
			`plan.md:1:14: a byte that is not UTF-8 (0xE9) in a task: save the plan as UTF-8`,
		}},
		{"NUL in a body", "- [ ] T1: a\n  é\x00\n", []string{`plan.md:2:4: a NUL byte in a task: its title and body are given to commands as environment variables, which cannot hold one`}},
		{"NUL outside any task", "# Plan\n\x7fELF\x02\x01\x00\x00\n- [ ] T1: a\n", []string{`plan.md:2:7: a NUL byte: a plan is a Markdown text file, and this one is not text (saved over by a binary file?)`}},
		{"NUL in a fenced body", "- [ ] T1: a\n  ```\n  \x00\n  ```\n", []string{`plan.md:3:3: a NUL byte in a task: its title and body are given to commands as environment variables, which cannot hold one`}},
		{"merge conflict", "- [ ] T1: a\n<<<<<<< HEAD\n- [ ] T2: b\n||||||| base\n=======\n- [ ] T3: b\n>>>>>>> other\n",
			[]string{`plan.md:2:1: unresolved merge conflict: keep what the <<<<<<< ... >>>>>>> block should say, remove the markers and commit`}},
		{"merge conflict after a quoted marker", "<<<<<<< is how git marks a conflict\n```\n<<<<<<< a\n=======\n```\n<<<<<<<\n- [ ] T1: a\n=======\n- [ ] T2: a\n>>>>>>>\n",
			[]string{`plan.md:6:1: unresolved merge conflict: keep what the <<<<<<< ... >>>>>>> block should say, remove the markers and commit`}},
		{"long cycle", "- [ ] T0: a (after: T11)\n- [ ] T1: a (after: T0)\n- [ ] T2: a (after: T1)\n- [ ] T3: a (after: T2)\n- [ ] T4: a (after: T3)\n- [ ] T5: a (after: T4)\n- [ ] T6: a (after: T5)\n- [ ] T7: a (after: T6)\n- [ ] T8: a (after: T7)\n- [ ] T9: a (after: T8)\n- [ ] T10: a (after: T9)\n- [ ] T11: a (after: T10)\n",
			[]string{`plan.md:2:21: dependency cycle: T0 -> T1 -> T2 -> T3 -> T4 -> ... -> T8 -> T9 -> T10 -> T11 -> T0 (12 tasks)`}},
		{"all at once", "- [ ] A: a (after: Z)\n- [ ] A: b\n- [ ]\n", []string{
			`plan.md:1:20: task "A" depends on unknown task "Z"`,
			`plan.md:2:7: duplicate task id "A" (first at line 1)`,
			`plan.md:3:4: task has an empty title`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePlan("plan.md", []byte(tt.plan))
			if err == nil {
				t.Fatal("no error")
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestParsePlanNearMisses: a line that looks like a task but is not one (a
// space missing, a box of another character, an item indented under the
// task before it) makes no task; a warning names its line, so that a typo
// does not drop a task without a word. Prose and a task's own checklist
// are not warned about.
// TestParsePlanAfterInTitle: "(after: ...)" with text after it is part of
// the title, and the task has no dependency: a warning says so.
func TestParsePlanAfterInTitle(t *testing.T) {
	p, err := ParsePlan("plan.md", []byte("- [ ] T1: one\n- [ ] T2: two (after: T1) later\n- [ ] T3: three (after: T1)\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Tasks[1]; got.Title != "two (after: T1) later" || len(got.After) != 0 {
		t.Fatalf("T2: %+v", got)
	}
	want := `plan.md:2:15: (after: ...) is part of task T2's title, not its dependencies, unless it ends the line`
	if len(p.Warnings) != 1 || p.Warnings[0].Error() != want {
		t.Errorf("warnings %v, want %s", p.Warnings, want)
	}
}

// TestParsePlanEmptyAfter: an "(after: )" that names no task reads as a
// dependency and is none; a warning at the parenthesis says so, and the
// task has no dependencies.
func TestParsePlanEmptyAfter(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{"space", "- [ ] T2: two (after: )\n", "plan.md:2:15: (after: ) names no task: task T2 has no dependencies; name the tasks it comes after, or remove it"},
		{"nothing", "- [ ] T2: two (after:)\n", "plan.md:2:15: (after: ) names no task: task T2 has no dependencies; name the tasks it comes after, or remove it"},
		{"separators only", "- [ ] T2: two (After: , ,)\n", "plan.md:2:15: (after: ) names no task: task T2 has no dependencies; name the tasks it comes after, or remove it"},
		{"named", "- [ ] T2: two (after: T1)\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePlan("plan.md", []byte("- [ ] T1: one\n"+tt.line))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range p.Warnings {
				got = append(got, w.Error())
			}
			if strings.Join(got, "\n") != tt.want {
				t.Errorf("warnings %q, want %q", got, tt.want)
			}
			if task := p.Tasks[1]; task.Title != "two" {
				t.Errorf("title %q, want two", task.Title)
			}
		})
	}
}

// TestParsePlanQuotedConflictMarkers: conflict markers that do not make a
// complete block outside a fence (a task about merging that quotes them)
// are text.
func TestParsePlanQuotedConflictMarkers(t *testing.T) {
	plan := "- [ ] T1: explain <<<<<<< markers\n<<<<<<< alone\n```\n=======\n>>>>>>> fenced\n```\n- [ ] T2: b\n"
	p, err := ParsePlan("plan.md", []byte(plan))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tasks) != 2 {
		t.Errorf("got %d tasks, want 2", len(p.Tasks))
	}
}

func TestParsePlanNearMisses(t *testing.T) {
	data := "# Plan\n" +
		"- [ ] T1: a\n" +
		"  - [ ] T5: indented under T1\n" +
		"  - [ ] a step of T1's own\n" +
		"- [ ]T3: c\n" +
		"-[ ] T4: d\n" +
		"- [?] T2: b\n" +
		"- [link](https://example.com) prose\n" +
		"- [ ] T6: e\n" +
		"1. [ ] T7: numbered\n" +
		"2) [x] T9: numbered\n" +
		"3. [link](https://example.com) prose\n" +
		"Text.\n" +
		"  - [ ] T8: indented, under no task\n" +
		"```\n- [?] in a fence\n```\n"
	p, err := ParsePlan("plan.md", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, task := range p.Tasks {
		ids = append(ids, task.ID)
	}
	if strings.Join(ids, " ") != "T1 T6" {
		t.Fatalf("tasks %v, want T1 T6", ids)
	}
	var lines []string
	for _, w := range p.Warnings {
		lines = append(lines, w.Error())
	}
	want := []string{
		`plan.md:3:1: this indented item is part of task T1's body, not a task of its own; ` + nearTaskForm,
		`plan.md:5:1: not a task, though it looks like one; ` + nearTaskForm,
		`plan.md:6:1: not a task, though it looks like one; ` + nearTaskForm,
		`plan.md:7:1: not a task, though it looks like one; ` + nearTaskForm,
		`plan.md:10:1: not a task, though it looks like one; ` + nearTaskForm,
		`plan.md:11:1: not a task, though it looks like one; ` + nearTaskForm,
		`plan.md:14:1: not a task, though it looks like one; ` + nearTaskForm,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// TestParsePlanLoneCR: a plan saved with classic Mac OS line ends (lone
// CRs) read as one line, and so as a plan without tasks, without a word.
func TestParsePlanLoneCR(t *testing.T) {
	p, err := ParsePlan("plan.md", []byte("# Plan\r- [ ] T1: a\r- [ ] T2: b\r"))
	want := "plan.md:1:7: " + loneCRMessage
	if err == nil || err.Error() != want || len(p.Tasks) != 0 {
		t.Errorf("ParsePlan(lone CRs) = %d tasks, %v; want %q", len(p.Tasks), err, want)
	}
	// A stray CR in a plan with LF line ends is text, as before.
	if p, err := ParsePlan("plan.md", []byte("# Plan\nsee\rthis\n- [ ] T1: a\n")); err != nil || len(p.Tasks) != 1 {
		t.Errorf("stray CR: %d tasks, %v", len(p.Tasks), err)
	}
}
