package dashboard

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/codemachine/codemachine/orchestrator"
)

// column is where want starts in line, in runes, or -1.
func column(line, want string) int {
	i := strings.Index(line, want)
	if i < 0 {
		return -1
	}
	return len([]rune(line[:i]))
}

// TestColumnsAlign checks that a task id, a step id or a commit's
// STEP/TASK longer than its column's usual width widens the column for
// every line, so the states and engines stay one under the other.
func TestColumnsAlign(t *testing.T) {
	m := &model{units: map[string]*unitView{}}
	m.rows = []row{
		{key: "impl", state: orchestrator.StateDone, label: "shell"},
		{key: "impl/A", state: orchestrator.StateDone, task: true},
		{key: "impl/write-the-readme-file", state: orchestrator.StateDue, task: true},
		{key: "documentation-of-everything", state: orchestrator.StateBlocked, label: "claude/opus"},
	}
	m.log = []orchestrator.LogEntry{
		{Commit: "0b0fe46aaaaaaaaa", Step: "impl", Task: "write-the-readme-file", Engine: "shell", Duration: "0.8s"},
		{Commit: "8f6de9faaaaaaaaa", Step: "impl", Task: "A", Engine: "claude", Model: "claude-sonnet-4-5-20250929", Duration: "1.0s"},
	}
	tree := m.treeLines()
	tasks := []int{column(tree[1], "done"), column(tree[2], "due")}
	if tasks[0] != tasks[1] {
		t.Errorf("task states at columns %v, want one column:\n%s", tasks, strings.Join(tree, "\n"))
	}
	steps := []int{column(tree[0], "done"), column(tree[3], "blocked")}
	if steps[0] != steps[1] {
		t.Errorf("step states at columns %v, want one column:\n%s", steps, strings.Join(tree, "\n"))
	}
	commits := m.commitLines()
	engines := []int{column(commits[1], "shell"), column(commits[2], "claude/")}
	tokens := []int{column(commits[1], " tok"), column(commits[2], " tok")}
	if engines[0] != engines[1] || tokens[0] != tokens[1] {
		t.Errorf("engines at %v, tokens at %v, want one column each:\n%s", engines, tokens, strings.Join(commits, "\n"))
	}
}

// TestCommitDurations checks that the latest commits show their durations
// as the run and log do (1m10s, 0.1s), not as their trailers hold them
// (1m10.123s, 148ms), which would overflow the column and run into the
// cost before it.
func TestCommitDurations(t *testing.T) {
	m := &model{units: map[string]*unitView{}}
	m.log = []orchestrator.LogEntry{
		{Commit: "0b0fe46aaaaaaaaa", Step: "a", Engine: "shell", Duration: "1m10.123s"},
		{Commit: "8f6de9faaaaaaaaa", Step: "b", Engine: "shell", Duration: "148ms"},
		{Commit: "9a6de9faaaaaaaaa", Step: "c", Engine: "shell", Duration: "soon"},
	}
	lines := m.commitLines()
	for i, want := range []string{"1m10s", "0.1s", "soon"} {
		if end := fmt.Sprintf("— %7s", want); !strings.HasSuffix(lines[i+1], end) {
			t.Errorf("line %q: want it to end with %q", lines[i+1], end)
		}
	}
}

// TestColumnWidth checks that a column grows for a long cell, up to
// maxColumn.
func TestColumnWidth(t *testing.T) {
	tests := []struct {
		width int
		cell  string
		want  int
	}{
		{8, "A", 8},
		{8, "write-the-readme-file", 21},
		{8, strings.Repeat("x", 100), maxColumn},
		{8, "ümlaut-täsk", 11},
	}
	for _, tt := range tests {
		if got := columnWidth(tt.width, tt.cell); got != tt.want {
			t.Errorf("columnWidth(%d, %q) = %d, want %d", tt.width, tt.cell, got, tt.want)
		}
	}
}

// TestElapsedSinceStart checks the elapsed time of a running unit: the
// time since it started at the last tick, and no negative time for one
// that started after the last tick (the tick comes once a second, the
// start event at any time).
func TestElapsedSinceStart(t *testing.T) {
	tick := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	tests := []struct {
		started time.Time
		want    string
	}{
		{tick.Add(-1500 * time.Millisecond), "1.5s"},
		{tick, "0.0s"},
		{tick.Add(100 * time.Millisecond), "0.0s"},
		{tick.Add(900 * time.Millisecond), "0.0s"},
	}
	for _, tt := range tests {
		m := &model{now: tick, units: map[string]*unitView{"impl": {started: tt.started}}}
		m.rows = []row{{key: "impl", state: orchestrator.StateRunning, label: "shell"}}
		line := m.treeLines()[0]
		if !strings.HasSuffix(line, " "+tt.want) {
			t.Errorf("started %v after the tick: %q, want it to end in %q", tt.started.Sub(tick), line, tt.want)
		}
	}
}

// TestRejectPromptShowsCursor: typing a reject message longer than the
// screen is wide keeps its end, where the cursor is, in view; the screen
// is cut in columns (two for a CJK character or an emoji), never wider.
func TestRejectPromptShowsCursor(t *testing.T) {
	for _, input := range []string{"short", "Ünïcode réason 🚀 with a very long text that overflows", strings.Repeat("任务", 40)} {
		for _, width := range []int{30, 50, 80, 200} {
			m := &model{mode: modeReject, input: []rune(input), width: width, height: 10, units: map[string]*unitView{}}
			m.rows = []row{{key: "gate", state: orchestrator.StateReview, label: "shell"}}
			lines := strings.Split(m.screen(), "\n")
			prompt := lines[len(lines)-2]
			if w := ansi.StringWidth(prompt); w > width {
				t.Errorf("width %d: the prompt takes %d columns: %q", width, w, prompt)
			}
			if !strings.Contains(prompt, "▏") {
				t.Errorf("width %d: the cursor is out of view: %q", width, prompt)
			}
			tail := []rune(input)
			if end := string(tail[len(tail)-3:]); !strings.Contains(prompt, end+"▏") {
				t.Errorf("width %d: the end of the message (%q) is out of view: %q", width, end, prompt)
			}
			for _, l := range lines {
				if w := ansi.StringWidth(l); w > width {
					t.Errorf("width %d: a line of %d columns: %q", width, w, l)
				}
			}
		}
	}
}

// TestDiffShowsControls: a diff of a file holding escape sequences shows
// them as a pager does (^[), not as the sequences that would color, move
// or clear the dashboard's screen.
func TestDiffShowsControls(t *testing.T) {
	m := &model{mode: modeDiff, width: 80, height: 10, units: map[string]*unitView{}}
	m.diff = []string{"+plain", "+\x1b[2J\x1b[31mred\x1b[0m", "+\x1b]0;TITLE\x07 bell", "+cr\r del\x7f c1\u009b", "+\ttab"}
	screen := m.screen()
	for _, want := range []string{"+plain", "+^[[2J^[[31mred^[[0m", "+^[]0;TITLE^G bell", "+cr^M del^? c1<U+009B>", "+    tab"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the diff view does not show %q:\n%s", want, screen)
		}
	}
	if strings.ContainsAny(screen, "\x1b\x07\r\x7f\u009b") {
		t.Errorf("the diff view holds control characters: %q", screen)
	}
}

// TestScreenWithoutEscapes: what the repository holds (an engine named in a
// crafted commit's trailer or state record, a failure's message) reaches
// the screen without escape sequences or line breaks.
func TestScreenWithoutEscapes(t *testing.T) {
	m := &model{units: map[string]*unitView{}}
	m.status = &orchestrator.StatusReport{Steps: []orchestrator.StepStatus{{
		ID: "impl", State: orchestrator.StateFailed, Engine: "sh\x1b[2Jell", Model: "m\x1b]0;title\x07",
		Reason: "failed:\n\x1b[31mred",
		Tasks:  []orchestrator.TaskStatus{{ID: "A", State: orchestrator.StateDue, Title: "a", Reason: "x\x1b[5m"}},
	}}}
	m.buildRows()
	m.log = []orchestrator.LogEntry{{Commit: "0b0fe46aaaaaaaaa", Step: "impl\x1b[8m", Engine: "shell\x07", Duration: "1s\x1b[2J"}}
	for _, line := range append(m.treeLines(), m.commitLines()...) {
		if strings.ContainsAny(line, "\x1b\x07\n") {
			t.Errorf("line %q holds a control character", line)
		}
	}
}

// TestFollowedUnitShowsRunning: a unit the followed run says is running is
// drawn running, though the status read when it started may still say due
// (the run writes its running file a moment after a unit starts, and no
// status is read again until a unit starts or ends).
func TestFollowedUnitShowsRunning(t *testing.T) {
	m := &model{units: map[string]*unitView{"slow": {started: time.Now(), activity: "waiting for go"}}, now: time.Now()}
	m.rows = []row{
		{key: "slow", state: orchestrator.StateDue, label: "shell"},
		{key: "gate", state: orchestrator.StateBlocked, label: "shell"},
	}
	tree := m.treeLines()
	if !strings.Contains(tree[0], "▸ slow") || !strings.Contains(tree[0], " running ") {
		t.Errorf("a followed running unit is drawn %q, want it running", tree[0])
	}
	if !strings.Contains(tree[1], "blocked") {
		t.Errorf("a unit the run does not name is drawn %q, want its status", tree[1])
	}
}
