package orchestrator

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// FormatTokens renders a token count the way the run table shows it: 950,
// 18.2k, 1.3M.
func FormatTokens(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d", n)
	case n < 1_000_000:
		return fmt.Sprintf("%.1fk", float64(n)/1000)
	default:
		return fmt.Sprintf("%.1fM", float64(n)/1_000_000)
	}
}

// FormatCost renders a cost in USD, or "—" when the engine reports none.
func FormatCost(usd float64, known bool) string {
	if !known {
		return "—"
	}
	return fmt.Sprintf("$%.2f", usd)
}

// FormatDuration renders a duration compactly: 0.4s, 41s, 2m03s, 1h02m.
func FormatDuration(d time.Duration) string {
	switch {
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second).Seconds()))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// engineLabel is "engine/model", or just the engine when the model is the
// engine's default.
func engineLabel(engine, model string) string {
	if model == "" {
		return engine
	}
	return engine + "/" + model
}

// firstLine returns the first non-empty line of s, trimmed, without a
// leading Markdown heading marker.
func firstLine(s string) string {
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(line), "#"))
		if line != "" {
			return line
		}
	}
	return ""
}

// headline is the first line of a failure for status: the first line,
// and when that ends with a colon (a list follows), the first line of
// what follows, so that the note says what went wrong, not only where
// ("does not match output_schema: at /level: got string, want integer").
func headline(s string) string {
	var lines []string
	for _, line := range strings.Split(printable(s), "\n") {
		if line = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(line), "#")); line != "" {
			lines = append(lines, line)
		}
	}
	switch {
	case len(lines) == 0:
		return ""
	case len(lines) == 1 || !strings.HasSuffix(lines[0], ":"):
		return lines[0]
	case len(lines) == 2:
		return lines[0] + " " + lines[1]
	}
	return lines[0] + " " + lines[1] + " …"
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lastLine returns the last non-empty line of s, trimmed.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Printable is s as printable removes what would drive a terminal, for
// the commands that print text read from commits and state.yaml (a
// trailer, a subject, an engine name), which anyone who can push to the
// branch wrote: without it, status and log would clear the screen or set
// the window's title when they show a crafted commit.
func Printable(s string) string { return printable(s) }

// printable is s without what would drive a terminal rather than show
// as text: escape sequences (colors, cursor moves, screen clears, window
// titles) and the other control characters but newlines and tabs. A
// command's stderr, an agent's text and a reviewer's reasons reach the
// run's live lines, its table and status as they are otherwise.
func printable(s string) string {
	if !hasControls(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x1b:
			i += escapeLen(s[i:])
			continue
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f:
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// hasControls reports whether s holds a control character other than a
// newline or a tab.
func hasControls(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f || c == 0xc2 && i+1 < len(s) && s[i+1] >= 0x80 && s[i+1] <= 0x9f {
			return true
		}
	}
	return false
}

// escapeLen is the length of the escape sequence s starts with (s[0] is
// ESC): a CSI sequence up to its final byte, an OSC, DCS, SOS, PM or APC
// string up to its terminator (BEL or ESC \\), else ESC and the one
// character after it.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[':
		for j := 2; j < len(s); j++ {
			if s[j] >= 0x40 && s[j] <= 0x7e {
				return j + 1
			}
		}
		return len(s)
	case ']', 'P', 'X', '^', '_':
		for j := 2; j < len(s); j++ {
			switch {
			case s[j] == 0x07:
				return j + 1
			case s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\':
				return j + 2
			}
		}
		return len(s)
	}
	_, size := utf8.DecodeRuneInString(s[1:])
	return 1 + size
}
