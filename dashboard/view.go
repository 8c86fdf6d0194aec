package dashboard

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/codemachine/codemachine/orchestrator"
)

// stateMarks are the states' marks in the tree.
var stateMarks = map[string]string{
	orchestrator.StateDone: "✓", orchestrator.StateDue: "·", orchestrator.StateRunning: "▸",
	orchestrator.StateFailed: "✗", orchestrator.StateConflict: "✗", orchestrator.StateReview: "◆",
	orchestrator.StateHeld: "‖", orchestrator.StateBlocked: "…", orchestrator.StateNeedsYou: "◇",
}

// plain is text read from the repository (a commit's trailers, a state
// record, a failure's message) on one line and without what would drive
// the terminal: a crafted commit must not redraw the dashboard's screen.
func plain(s string) string {
	return strings.TrimSpace(lineBreaks.Replace(orchestrator.Printable(s)))
}

var lineBreaks = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "\t", " ")

// buildRows flattens the status into the tree's rows, keeping the
// selection on the same key when it is still there.
func (m *model) buildRows() {
	if m.status == nil {
		return
	}
	keep := m.selectedKey()
	m.rows = m.rows[:0]
	for _, s := range m.status.Steps {
		label := s.Engine
		if s.Model != "" {
			label += "/" + s.Model
		}
		m.rows = append(m.rows, row{key: s.ID, state: s.State, label: plain(label), note: plain(s.Reason)})
		for _, t := range s.Tasks {
			note := t.Title
			if t.Reason != "" {
				note += " — " + t.Reason
			}
			m.rows = append(m.rows, row{key: s.ID + "/" + t.ID, state: t.State, note: plain(note), task: true})
		}
	}
	m.selected = min(m.selected, len(m.rows)-1)
	for i, r := range m.rows {
		if r.key == keep {
			m.selected = i
		}
	}
}

// View is the dashboard's screen, on the terminal's alternate screen (the
// shell's own comes back when it quits).
func (m *model) View() tea.View {
	v := tea.NewView(m.screen())
	v.AltScreen = true
	return v
}

// screen is the text of the dashboard's screen.
func (m *model) screen() string {
	if m.mode == modeDiff {
		return m.diffView()
	}
	var lines []string
	lines = append(lines, m.header(), "")
	if m.statusErr != nil {
		lines = append(lines, "  "+firstLine(m.statusErr.Error()))
	}
	tree := m.treeLines()
	footer := m.footer()
	commits := m.commitLines()
	// The tree gets what the header, the commits and the footer leave,
	// scrolled so that the selected row shows.
	room := m.height - len(lines) - len(commits) - len(footer) - 1
	if room < 3 {
		room, commits = m.height-len(lines)-len(footer)-1, nil
	}
	if room > 0 && len(tree) > room {
		start := min(max(0, m.selected-room/2), len(tree)-room)
		tree = tree[start : start+room]
	}
	lines = append(lines, tree...)
	lines = append(lines, "")
	lines = append(lines, commits...)
	for len(lines) < m.height-len(footer) {
		lines = append(lines, "")
	}
	lines = append(lines, footer...)
	for i, l := range lines {
		lines[i] = cut(l, m.width)
	}
	return strings.Join(lines, "\n")
}

// header names the workflow, the branch and what is followed.
func (m *model) header() string {
	h := "codemachine ui"
	if m.status != nil {
		if m.status.Workflow != "" {
			h += " · " + m.status.Workflow
		}
		branch := m.status.Branch
		if branch == "" {
			branch = "a detached HEAD"
		}
		h += fmt.Sprintf(" · on %s at %s", branch, short(m.status.Commit))
	}
	switch {
	case m.ownRun:
		h += " · running a retry"
	case m.holder != "":
		h += " · following " + m.holder
	default:
		h += " · nothing running"
	}
	return h
}

// treeLines are the steps and their tasks, the running ones with their
// elapsed time and latest activity.
func (m *model) treeLines() []string {
	lines := make([]string, 0, len(m.rows))
	stepW, taskW := 16, 8
	for _, r := range m.rows {
		if r.task {
			taskW = columnWidth(taskW, r.key[strings.IndexByte(r.key, '/')+1:])
		} else {
			stepW = columnWidth(stepW, r.key)
		}
	}
	for i, r := range m.rows {
		sel := "  "
		if i == m.selected {
			sel = "› "
		}
		state := r.state
		if m.units[r.key] != nil {
			// The followed run says the unit runs: the status read
			// when it started may predate the run's running file.
			state = orchestrator.StateRunning
		}
		mark := stateMarks[state]
		if mark == "" {
			mark = "?"
		}
		var line string
		if r.task {
			id := r.key[strings.IndexByte(r.key, '/')+1:]
			line = fmt.Sprintf("%s    %s %-*s %-8s", sel, mark, taskW, id, state)
		} else {
			line = fmt.Sprintf("%s%s %-*s %-8s %-22s", sel, mark, stepW, r.key, state, r.label)
		}
		note := r.note
		if u := m.units[r.key]; u != nil {
			// A unit that started after the last tick (the clock the
			// elapsed times are drawn with) has run for no time yet,
			// not for a negative one.
			note = orchestrator.FormatDuration(max(m.now.Sub(u.started), 0))
			if u.activity != "" {
				note += "  " + u.activity
			}
		}
		lines = append(lines, strings.TrimRight(line+" "+note, " "))
	}
	return lines
}

// commitLines are the latest step commits with their tokens and cost.
func (m *model) commitLines() []string {
	if len(m.log) == 0 {
		return nil
	}
	lines := []string{"latest step commits"}
	keys, labels := make([]string, len(m.log)), make([]string, len(m.log))
	keyW, labelW := 18, 22
	for i, e := range m.log {
		keys[i], labels[i] = e.Step, e.Engine
		if e.Task != "" {
			keys[i] += "/" + e.Task
		}
		if e.Model != "" {
			labels[i] += "/" + e.Model
		}
		keys[i], labels[i] = plain(keys[i]), plain(labels[i])
		keyW, labelW = columnWidth(keyW, keys[i]), columnWidth(labelW, labels[i])
	}
	for i, e := range m.log {
		// As the run and log show it (1m10s): the trailer's own form
		// (1m10.123s) would overflow the column.
		dur := plain(e.Duration)
		if d, err := time.ParseDuration(e.Duration); err == nil {
			dur = orchestrator.FormatDuration(d)
		}
		lines = append(lines, fmt.Sprintf("  %s  %-*s %-*s %9s %6s %7s", short(e.Commit), keyW, keys[i], labelW, labels[i],
			orchestrator.FormatTokens(e.TokensIn+e.TokensOut)+" tok", orchestrator.FormatCost(e.CostUSD, e.CostKnown), dur))
	}
	return lines
}

// maxColumn bounds how wide a column grows for its longest cell: a longer
// one (a deep path) overflows its own line rather than pushing every
// line's other columns off the screen.
const maxColumn = 40

// columnWidth is width widened to fit cell, up to maxColumn.
func columnWidth(width int, cell string) int {
	return max(width, min(utf8.RuneCountInString(cell), maxColumn))
}

// footer is the last action's outcome (or the message being typed) and
// the keys.
func (m *model) footer() []string {
	msg := m.message
	if m.mode == modeReject {
		msg = m.rejectPrompt()
	}
	return []string{msg, "↑/↓ select · d diff · a approve · r reject · t retry · o open · q quit"}
}

// rejectPrompt is the line the reject message is typed on. When it is
// wider than the screen, the hint goes first, then the start of the
// message: the end, where the cursor is, stays in view.
func (m *model) rejectPrompt() string {
	head, input := "reject "+m.selectedKey()+": ", string(m.input)
	line := head + input + "▏  (enter sends, esc cancels)"
	if m.width <= 0 || ansi.StringWidth(line) <= m.width {
		return line
	}
	line = head + input + "▏"
	if ansi.StringWidth(line) <= m.width {
		return line
	}
	// The start of the message goes, "…" in its place, until the rest fits.
	rest := m.input
	for len(rest) > 0 && ansi.StringWidth(head+"…"+string(rest)+"▏") > m.width {
		rest = rest[1:]
	}
	return head + "…" + string(rest) + "▏"
}

// diffView shows the diff, scrolled.
func (m *model) diffView() string {
	page := max(1, m.height-2)
	end := min(len(m.diff), m.scroll+page)
	lines := []string{fmt.Sprintf("diff of %s (lines %d-%d of %d)", m.selectedKey(), m.scroll+1, end, len(m.diff))}
	lines = append(lines, m.diff[m.scroll:end]...)
	for len(lines) < m.height-1 {
		lines = append(lines, "")
	}
	lines = append(lines, "↑/↓ scroll · space/b page · esc back")
	for i, l := range lines {
		lines[i] = cut(visible(strings.ReplaceAll(l, "\t", "    ")), m.width)
	}
	return strings.Join(lines, "\n")
}

// visible shows a diff line's control characters (a file's escape
// sequences, carriage returns) as a pager does, ^[ for ESC, instead of
// sending them to the terminal, where they would color, move or clear
// what the dashboard draws.
func visible(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x20:
			b.WriteString("^" + string(rune(r+'@')))
		case r == 0x7f:
			b.WriteString("^?")
		case isControl(r):
			fmt.Fprintf(&b, "<U+%04X>", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isControl reports a C0 or C1 control character or DEL.
func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f
}

// cut shortens a line to the screen's width, in columns: a CJK
// character or an emoji takes two.
func cut(s string, width int) string {
	if width <= 0 {
		return s
	}
	return ansi.Truncate(s, width, "…")
}
