package main

import (
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/codemachine/codemachine/orchestrator"
)

// columns widens the step and engine/model columns to fit name and label
// (16 at the least) and returns their widths.
func (o *output) columns(name, label string) (int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.nameW = max(o.nameW, 16, ansi.StringWidth(name))
	o.labelW = max(o.labelW, 16, ansi.StringWidth(label))
	return o.nameW, o.labelW
}

// pad is s followed by spaces up to w terminal columns: a file name of
// wide characters (a foreach item) takes two columns a character, which
// fmt's %-*s, counting runes, would not see.
func pad(s string, w int) string {
	return s + strings.Repeat(" ", max(0, w-ansi.StringWidth(s)))
}

// event prints one run event as a line of the run table.
func (o *output) event(e orchestrator.Event) {
	if o.json {
		return
	}
	// Every event widens the columns, so that the lines after it line up.
	switch e.Kind {
	case orchestrator.StepActivity:
		if o.live != nil {
			o.liveActivity(e)
		} else if !o.quiet {
			o.plainActivity(e)
		}
		return
	case orchestrator.StepAttempt, orchestrator.RunStarted, orchestrator.RunFinished:
		return
	case orchestrator.StepLanded, orchestrator.StepFailed, orchestrator.StepConflict, orchestrator.StepReview, orchestrator.StepDelivered, orchestrator.StepSkipped:
		o.unitEnded(e.Key())
	}
	if o.repeated(e) {
		return
	}
	r := o.row(e)
	switch e.Kind {
	case orchestrator.StepStarted:
		o.unitStarted(e)
		switch {
		case o.live != nil:
			o.liveStarted(e, r)
		case !o.quiet:
			o.startedLine(e, r)
		}
	case orchestrator.StepLanded:
		o.landed(e, r)
	case orchestrator.StepFailed:
		o.failed(e, r)
	case orchestrator.StepConflict:
		o.printf("  %s %s %s %7s   %s\n", o.paint(red, "✗"), pad(r.name, r.nameW), pad(r.label, r.labelW),
			orchestrator.FormatDuration(e.Duration), o.paint(red, "not landed: "+firstLineOf(e.Message)))
	case orchestrator.StepReview:
		o.review(e, r)
	case orchestrator.StepDelivered:
		o.printf("  %s %s %s %7s %10s %6s   %s%s\n", o.paint(green, "→"), pad(r.name, r.nameW), pad(r.label, r.labelW),
			orchestrator.FormatDuration(e.Duration), orchestrator.FormatTokens(e.Tokens)+" tok",
			orchestrator.FormatCost(e.CostUSD, e.CostOK), shortHash(e.Commit), o.paint(dim, "  delivered to the integrator"))
	case orchestrator.StepNeedsYou:
		if !o.quiet {
			o.printf("  %s %s %s\n", o.paint(yellow, "◇"), pad(r.name, r.nameW), o.paint(yellow, e.Message))
		}
	case orchestrator.StepSkipped:
		if !o.quiet {
			o.printf("  %s %s %s\n", o.paint(yellow, "–"), pad(r.name, r.nameW), o.paint(yellow, e.Message))
		}
	case orchestrator.StepRetrying:
		if !o.quiet {
			o.printf("  %s %s attempt %d: %s\n", o.paint(yellow, "↻"), pad(r.name, r.nameW), e.Attempt, e.Message)
		}
	case orchestrator.Note:
		if !o.quiet {
			o.note(e)
		}
	}
}

// tableRow is the step and engine/model columns of an event's line, with
// the widths they are padded to.
type tableRow struct {
	name, label   string
	nameW, labelW int
}

// row names the event's step (and task) and engine (and model), and widens
// the columns to fit them.
func (o *output) row(e orchestrator.Event) tableRow {
	r := tableRow{name: e.Step, label: e.Engine}
	if e.Task != "" {
		r.name += " " + e.Task
	}
	if e.Model != "" {
		r.label += "/" + e.Model
	}
	r.nameW, r.labelW = o.columns(r.name, r.label)
	return r
}

func (o *output) startedLine(e orchestrator.Event, r tableRow) {
	if e.Title == "" {
		o.printf("  %s %s %s\n", o.paint(dim, "▸"), pad(r.name, r.nameW), r.label)
		return
	}
	o.printf("  %s %s %s%s\n", o.paint(dim, "▸"), pad(r.name, r.nameW), pad(r.label, r.labelW), o.paint(dim, "  "+e.Title))
}

func (o *output) landed(e orchestrator.Event, r tableRow) {
	tokens := orchestrator.FormatTokens(e.Tokens) + " tok"
	extra := ""
	if e.Rebased {
		extra = o.paint(dim, "  (rebased)")
	}
	switch {
	case e.Stale:
		extra += o.paint(yellow, "  stale: "+e.Message)
	case e.Message != "":
		extra += o.paint(dim, "  "+e.Message) // who approved it in review
	}
	o.printf("  %s %s %s %7s %10s %6s   %s%s\n", o.paint(green, "✓"), pad(r.name, r.nameW), pad(r.label, r.labelW),
		orchestrator.FormatDuration(e.Duration), tokens, orchestrator.FormatCost(e.CostUSD, e.CostOK),
		shortHash(e.Commit), extra)
}

// failed prints the failure's first line, then the last lines of its
// detail (all of it with -v), and where the work and the log are.
func (o *output) failed(e orchestrator.Event, r tableRow) {
	o.printf("  %s %s %s %7s   %s\n", o.paint(red, "✗"), pad(r.name, r.nameW), pad(r.label, r.labelW),
		orchestrator.FormatDuration(e.Duration), o.paint(red, "failed: "+firstLineOf(e.Message)))
	if rest := restLines(e.Message); rest != "" {
		if !o.verbose {
			rest = lastLines(rest, failureLines)
		}
		o.printf("%s\n", o.paint(dim, indent(rest, "      │ ")))
	}
	if e.Ref != "" {
		o.printf("      work kept on %s  (codemachine diff %s)\n", e.Ref, e.Key())
	}
	if e.Log != "" && !o.quiet {
		o.printf("      log: %s\n", e.Log)
	}
}

// review prints a step waiting for review, with the commands that settle
// it, or the message of a review event that is not about a commit.
func (o *output) review(e orchestrator.Event, r tableRow) {
	if e.Message != "" {
		o.printf("  %s %s %s\n", o.paint(yellow, "◆"), pad(r.name, r.nameW), o.paint(yellow, e.Message))
		return
	}
	o.printf("  %s %s %s %7s %10s %6s   %s  review on %s\n", o.paint(yellow, "◆"), pad(r.name, r.nameW), pad(r.label, r.labelW),
		orchestrator.FormatDuration(e.Duration), orchestrator.FormatTokens(e.Tokens)+" tok",
		orchestrator.FormatCost(e.CostUSD, e.CostOK), shortHash(e.Commit), e.Ref)
	o.printf("      codemachine diff %s · codemachine approve %s · codemachine reject %s -m WHY\n", e.Key(), e.Key(), e.Key())
}

func (o *output) note(e orchestrator.Event) {
	prefix := ""
	if e.Step != "" {
		prefix = e.Key() + ": "
	}
	o.printf("  %s %s%s\n", o.paint(dim, "·"), prefix, e.Message)
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

func restLines(s string) string {
	_, rest, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(rest)
}

// failureLines is how many lines of a failure's detail (a failed check's
// output) run prints under it; -v prints all it kept.
const failureLines = 8

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
