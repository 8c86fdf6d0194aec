package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
	"golang.org/x/sys/unix"

	"github.com/codemachine/codemachine/orchestrator"
)

// Live progress: while units run, each has a line with its elapsed time
// and its agent's latest activity (the tool it calls, the file it writes),
// taken from the engine's stream (orchestrator.StepActivity). On a
// terminal with colors those lines stay at the bottom and are redrawn in
// place (liveRegion); the run table's other lines are printed above them.
// Elsewhere (a pipe, a log file, NO_COLOR) a unit's start line is printed
// as it starts and each new tool call as a line of its own (plainActivity).

// redrawEvery is how often the live lines may be redrawn for new activity;
// their elapsed times are redrawn every second.
const redrawEvery = 200 * time.Millisecond

// liveRegion is the running units' lines at the bottom of the terminal.
// Its fields are guarded by the output's mu.
type liveRegion struct {
	units []*liveUnit
	// drawn is how many lines of the region are on the screen now.
	drawn int
	// dirty: an activity changed since the last draw.
	dirty    bool
	lastDraw time.Time
	// ticking is set while the redraw goroutine runs (only while units
	// run: an idle watcher draws nothing and wakes up for nothing).
	ticking bool
	width   func() int
	now     func() time.Time
}

// liveUnit is one running unit's line.
type liveUnit struct {
	key, name, label, title string
	started                 time.Time
	activity                string
}

// newLiveRegion draws on out's writer, which is a terminal.
func newLiveRegion(f *os.File) *liveRegion {
	return &liveRegion{width: func() int { return termWidth(f) }, now: time.Now}
}

// termWidth is the terminal's width in columns (80 when it cannot say).
func termWidth(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 80
	}
	return int(ws.Col)
}

// clear takes the region off the screen: the cursor goes up to its first
// line, and everything below is erased. The caller holds out.mu.
func (o *output) clearLive() {
	l := o.live
	if l.drawn > 0 {
		fmt.Fprintf(o.w, "\x1b[%dA\r\x1b[J", l.drawn)
		l.drawn = 0
	}
}

// drawLive writes the region's lines below the cursor, each cut to the
// terminal's width so that none wraps (the next clear counts lines). The
// caller holds out.mu.
func (o *output) drawLive() {
	l := o.live
	width := l.width()
	now := l.now()
	var b strings.Builder
	for _, u := range l.units {
		b.WriteString(o.liveLine(u, now, width))
		b.WriteByte('\n')
	}
	fmt.Fprint(o.w, b.String())
	l.drawn, l.dirty, l.lastDraw = len(l.units), false, now
}

// liveLine is a running unit's line: its name and engine in the run
// table's columns, its elapsed time, and its latest activity (its task's
// title before the first), cut to width.
func (o *output) liveLine(u *liveUnit, now time.Time, width int) string {
	head := fmt.Sprintf("  ▸ %s %s %7s  ", pad(u.name, o.nameW), pad(u.label, o.labelW),
		orchestrator.FormatDuration(now.Sub(u.started)))
	text := u.activity
	if text == "" {
		text = u.title
	}
	room := width - 1 - ansi.StringWidth(head)
	if room < 0 {
		head, text = cutWidth(head, width-1), ""
	} else {
		text = cutWidth(text, room)
	}
	return o.paint(dim, "  ▸") + head[len("  ▸"):] + o.paint(dim, text)
}

// cutWidth cuts s to n columns of the terminal, marking a cut with "…".
// Columns, not runes: a CJK character or an emoji takes two, and a line
// that wraps would leave its second row behind when the region is
// cleared.
func cutWidth(s string, n int) string {
	if n <= 0 {
		return ""
	}
	return ansi.Truncate(s, n, "…")
}

// liveStarted adds a unit's line and starts the redraws if they are not
// running. A unit that starts again before it ended (the next round after
// a reviewer agent's reject) keeps its one line, started afresh.
func (o *output) liveStarted(e orchestrator.Event, r tableRow) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := o.live
	at := e.At
	if at.IsZero() {
		at = l.now()
	}
	unit := &liveUnit{key: e.Key(), name: r.name, label: r.label, title: e.Title, started: at}
	if i := slices.IndexFunc(l.units, func(u *liveUnit) bool { return u.key == unit.key }); i >= 0 {
		l.units[i] = unit
	} else {
		l.units = append(l.units, unit)
	}
	o.clearLive()
	o.drawLive()
	if !l.ticking {
		l.ticking = true
		go o.tick()
	}
}

// stopNote prints a signal's note (stopping, killed) on standard error
// above the live lines: the terminal echoed the Ctrl-C (^C, no newline)
// below them, which goes with them; written past them, the note would be
// erased by their next redraw and the lines left behind. While an agent's
// UI has the terminal, it waits with the other lines until it is given
// back.
func (o *output) stopNote(msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.paused {
		o.held.WriteString(msg + "\n")
		return
	}
	if o.live.drawn > 0 {
		fmt.Fprint(o.w, "\r\x1b[K")
		o.clearLive()
	}
	fmt.Fprintln(o.errW, msg)
	if len(o.live.units) > 0 {
		o.drawLive()
	}
}

// endLive takes the lines of the units a run ended without reporting (a
// Ctrl-C before their process started, a missing CLI that stopped the
// run) off the screen: the run is over and none of them runs.
func (o *output) endLive() {
	if o.live == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clearLive()
	o.live.units = nil
}

// liveActivity notes a unit's latest activity; the next tick draws it.
func (o *output) liveActivity(e orchestrator.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, u := range o.live.units {
		if u.key == e.Key() {
			u.activity = e.Message
			o.live.dirty = true
			return
		}
	}
}

// liveEnded removes a unit's line; the line that reports how it ended is
// printed in its place.
func (o *output) liveEnded(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := o.live
	for i, u := range l.units {
		if u.key == key {
			o.clearLive()
			l.units = append(l.units[:i], l.units[i+1:]...)
			o.drawLive()
			return
		}
	}
}

// tick redraws the region for new activity and every second for the
// elapsed times, until no unit runs.
func (o *output) tick() {
	t := time.NewTicker(redrawEvery)
	defer t.Stop()
	for range t.C {
		o.mu.Lock()
		l := o.live
		if len(l.units) == 0 {
			l.ticking = false
			o.mu.Unlock()
			return
		}
		if !o.paused && (l.dirty || l.now().Sub(l.lastDraw) >= time.Second) {
			o.clearLive()
			o.drawLive()
		}
		o.mu.Unlock()
	}
}

// plainActivity prints a unit's new tool call as a line of its own, with
// the time since the unit started: what a log file gets instead of the
// live lines. Texts and command output are left to the unit's log.
func (o *output) plainActivity(e orchestrator.Event) {
	if e.Activity != "tool" {
		return
	}
	o.mu.Lock()
	key := e.Key()
	started, ok := o.started[key]
	if !ok || o.lastActivity[key] == e.Message {
		o.mu.Unlock()
		return
	}
	o.lastActivity[key] = e.Message
	o.mu.Unlock()
	r := o.row(e)
	o.printf("  %s %s %7s  %s\n", o.paint(dim, "›"), pad(r.name, r.nameW),
		orchestrator.FormatDuration(e.At.Sub(started)), e.Message)
}

// unitStarted remembers when a unit started (plain activity lines count
// from it); unitEnded forgets it.
func (o *output) unitStarted(e orchestrator.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.started[e.Key()] = e.At
}

func (o *output) unitEnded(key string) {
	o.mu.Lock()
	delete(o.started, key)
	delete(o.lastActivity, key)
	o.mu.Unlock()
	if o.live != nil {
		o.liveEnded(key)
	}
}
