package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/codemachine/codemachine/orchestrator"
)

// screen replays what the live region writes (text, newlines, carriage
// returns, cursor up, erase below and erase line) into lines: what a
// terminal shows.
func screen(t *testing.T, out string) []string {
	t.Helper()
	lines := [][]byte{nil}
	row := 0
	esc := regexp.MustCompile(`^\x1b\[(\d*)([AJK])`)
	for i := 0; i < len(out); {
		switch {
		case out[i] == '\n':
			row++
			if row == len(lines) {
				lines = append(lines, nil)
			}
			i++
		case out[i] == '\r':
			i++ // the region only returns to column 0 of an empty line, or to erase it
		case out[i] == 0x1b:
			m := esc.FindStringSubmatch(out[i:])
			if m == nil {
				t.Fatalf("unexpected escape at %q", out[i:min(len(out), i+10)])
			}
			switch m[2] {
			case "A":
				n, _ := strconv.Atoi(m[1])
				row -= n
				if row < 0 {
					t.Fatalf("cursor moved above the output")
				}
			case "K":
				lines[row] = nil // after a carriage return: the whole line
			default:
				lines = lines[:row+1]
				lines[row] = nil
			}
			i += len(m[0])
		default:
			lines[row] = append(lines[row], out[i])
			i++
		}
	}
	var text []string
	for _, l := range lines[:len(lines)-1] {
		text = append(text, string(l))
	}
	return text
}

// TestLiveRegion: on a terminal, a running unit is one line redrawn in
// place with its elapsed time and latest activity, cut to the width;
// lines printed meanwhile go above it; when the unit lands its line is
// replaced by the landed line.
func TestLiveRegion(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	o := &output{w: &buf, started: map[string]time.Time{}, lastActivity: map[string]string{}}
	o.live = &liveRegion{width: func() int { return 70 }, now: func() time.Time { return now }}
	o.live.ticking = true // the test draws; no redraw goroutine

	o.event(orchestrator.Event{Kind: orchestrator.StepStarted, At: now, Step: "implement", Task: "T2",
		Engine: "claude", Model: "sonnet", Title: "Parse the config"})
	o.event(orchestrator.Event{Kind: orchestrator.StepStarted, At: now, Step: "docs", Engine: "shell"})
	got := screen(t, buf.String())
	if len(got) != 2 || !strings.Contains(got[0], "▸ implement T2") || !strings.HasSuffix(got[0], "0.0s  Parse the config") {
		t.Fatalf("screen after start:\n%s", strings.Join(got, "\n"))
	}

	now = now.Add(12 * time.Second)
	o.event(orchestrator.Event{Kind: orchestrator.StepActivity, At: now, Step: "implement", Task: "T2",
		Activity: "tool", Message: "Edit internal/config/parse.go with a very long name that does not fit"})
	o.mu.Lock()
	if !o.live.dirty {
		t.Error("activity did not mark the region for redrawing")
	}
	o.clearLive()
	o.drawLive()
	o.mu.Unlock()
	got = screen(t, buf.String())
	if len(got) != 2 || !strings.Contains(got[0], "12s  Edit internal/config") || !strings.HasSuffix(got[0], "…") {
		t.Fatalf("screen after activity:\n%s", strings.Join(got, "\n"))
	}
	for _, l := range got {
		if n := len([]rune(l)); n > 69 {
			t.Errorf("line of %d runes on a 70-column terminal: %q", n, l)
		}
	}

	o.event(orchestrator.Event{Kind: orchestrator.Note, Message: "something to say"})
	o.event(orchestrator.Event{Kind: orchestrator.StepLanded, At: now, Step: "implement", Task: "T2",
		Engine: "claude", Model: "sonnet", Duration: 12 * time.Second, Tokens: 1200, Commit: "0123456789"})
	got = screen(t, buf.String())
	want := []string{"· something to say", "✓ implement T2", "▸ docs"}
	if len(got) != len(want) {
		t.Fatalf("screen after landing:\n%s", strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("line %d: %q, want it to show %q", i, got[i], w)
		}
	}
}

// TestPlainActivity: without a terminal, each new tool call of a running
// unit is a line of its own with the time since the unit started; the same
// call twice, texts and command output are not.
func TestPlainActivity(t *testing.T) {
	var buf bytes.Buffer
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	o := &output{w: &buf, started: map[string]time.Time{}, lastActivity: map[string]string{}}
	o.event(orchestrator.Event{Kind: orchestrator.StepStarted, At: start, Step: "write", Engine: "claude"})
	for i, a := range []struct{ kind, msg string }{
		{"tool", "Write src/app.txt"}, {"tool", "Write src/app.txt"}, {"text", "Done."},
		{"stdout", "ok"}, {"tool", "Bash git add -A"},
	} {
		o.event(orchestrator.Event{Kind: orchestrator.StepActivity, At: start.Add(time.Duration(i+1) * time.Second),
			Step: "write", Activity: a.kind, Message: a.msg})
	}
	o.event(orchestrator.Event{Kind: orchestrator.StepLanded, Step: "write", Engine: "claude", Commit: "abc"})
	o.event(orchestrator.Event{Kind: orchestrator.StepActivity, Step: "write", Activity: "tool", Message: "late"})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("output:\n%s", buf.String())
	}
	for i, want := range []string{`▸ write`, `› write +1\.0s  Write src/app\.txt$`, `› write +5\.0s  Bash git add -A$`, `✓ write`} {
		if !regexp.MustCompile(want).MatchString(lines[i]) {
			t.Errorf("line %d: %q, want %s", i, lines[i], want)
		}
	}
}

// TestLiveLineColumns: a live line is cut to the terminal's columns, not
// its runes: a title in CJK characters or with emoji (two columns each)
// that wrapped would leave its second row on the screen when the region
// is cleared and drawn again.
func TestLiveLineColumns(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, title := range []string{
		strings.Repeat("任务", 30),
		strings.Repeat("🚀 ", 30),
		"ünïcödé " + strings.Repeat("x", 80),
		"short 任务",
	} {
		for _, width := range []int{20, 40, 60, 100} {
			o := &output{started: map[string]time.Time{}, lastActivity: map[string]string{}, nameW: 16, labelW: 16}
			line := o.liveLine(&liveUnit{name: "tasks T1", label: "shell", title: title, started: now}, now, width)
			if w := ansi.StringWidth(line); w > width-1 {
				t.Errorf("width %d, title %q: a line of %d columns: %q", width, title, w, line)
			}
			if ansi.StringWidth(title)+40 < width && !strings.HasSuffix(line, title) {
				t.Errorf("width %d: %q is cut though the title fits", width, line)
			}
		}
	}
}

// TestLiveRegionRestarted: a unit that starts again before it ended (a
// reviewer agent's reject runs the step again in the same run) keeps one
// live line, with the new start's time, and no line is left behind once
// it lands.
func TestLiveRegionRestarted(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	o := &output{w: &buf, started: map[string]time.Time{}, lastActivity: map[string]string{}}
	o.live = &liveRegion{width: func() int { return 70 }, now: func() time.Time { return now }}
	o.live.ticking = true // the test draws; no redraw goroutine

	o.event(orchestrator.Event{Kind: orchestrator.StepStarted, At: now, Step: "gen", Engine: "claude"})
	o.event(orchestrator.Event{Kind: orchestrator.Note, Step: "gen", Message: "reviewer agent reviewer reviews the change (round 1 of 2)"})
	now = now.Add(20 * time.Second)
	o.event(orchestrator.Event{Kind: orchestrator.StepStarted, At: now, Step: "gen", Engine: "claude"})
	got := screen(t, buf.String())
	if live := got[1:]; len(live) != 1 || !strings.Contains(live[0], "▸ gen") || !strings.Contains(live[0], " 0.0s") {
		t.Fatalf("live lines after the second start:\n%s", strings.Join(got, "\n"))
	}
	o.event(orchestrator.Event{Kind: orchestrator.StepLanded, At: now, Step: "gen", Engine: "claude", Commit: "0123456789"})
	got = screen(t, buf.String())
	if len(got) != 2 || !strings.Contains(got[1], "✓ gen") {
		t.Fatalf("screen after landing:\n%s", strings.Join(got, "\n"))
	}
	if n := len(o.live.units); n != 0 {
		t.Errorf("%d live unit(s) left after the unit landed", n)
	}
}

// TestStopNoteAboveLive: the note of a Ctrl-C (written by the signal
// handler while units run) goes above the live lines, with the ^C the
// terminal echoed below them gone; the next redraw neither erases it nor
// leaves a live line behind.
func TestStopNoteAboveLive(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	o := &output{w: &buf, errW: &buf, started: map[string]time.Time{}, lastActivity: map[string]string{}}
	o.live = &liveRegion{width: func() int { return 70 }, now: func() time.Time { return now }}
	o.live.ticking = true // the test draws; no redraw goroutine

	o.event(orchestrator.Event{Kind: orchestrator.StepStarted, At: now, Step: "gen", Engine: "claude"})
	setStopNotes(o.stopNote) // as newOutput does for a live region
	defer setStopNotes(nil)
	buf.WriteString("^C") // the terminal's echo of the key
	stopNote(&buf, "codemachine: stopping")
	got := screen(t, buf.String())
	if len(got) != 2 || got[0] != "codemachine: stopping" || !strings.Contains(got[1], "▸ gen") {
		t.Fatalf("screen after the note:\n%s", strings.Join(got, "\n"))
	}
	o.event(orchestrator.Event{Kind: orchestrator.StepFailed, At: now, Step: "gen", Engine: "claude", Message: "interrupted"})
	got = screen(t, buf.String())
	if len(got) < 2 || got[0] != "codemachine: stopping" || !strings.Contains(got[1], "✗ gen") {
		t.Fatalf("screen after the unit failed:\n%s", strings.Join(got, "\n"))
	}
	for _, l := range got {
		if strings.Contains(l, "▸") {
			t.Errorf("live line left behind: %q", l)
		}
	}
}

// TestRunTableWideNames: the run table pads its step and engine columns to
// terminal columns: a foreach item named in CJK characters (two columns
// each) keeps the columns after it where the other rows have them.
func TestRunTableWideNames(t *testing.T) {
	var buf bytes.Buffer
	o := &output{w: &buf, started: map[string]time.Time{}, lastActivity: map[string]string{}}
	for _, task := range []string{"src/文件名字.go", "src/plain.go", "src/a-much-longer-plain-name.go"} {
		o.event(orchestrator.Event{Kind: orchestrator.StepLanded, Step: "port", Task: task, Engine: "shell", Commit: "0123456789"})
	}
	var cols []int
	for _, l := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		before, _, ok := strings.Cut(l, "shell")
		if !ok {
			t.Fatalf("no engine in %q", l)
		}
		cols = append(cols, ansi.StringWidth(before))
	}
	// Widths grow with the longest name so far: the first two rows are
	// printed with the same width, the third with its own.
	if cols[0] != cols[1] || cols[2] <= cols[1] {
		t.Errorf("the engine column starts at %v: the wide name's row is off\n%s", cols, buf.String())
	}
}
