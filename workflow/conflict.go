package workflow

import "strings"

// conflictScan finds, line by line, the first complete block of an
// unresolved merge conflict in a Markdown file (a plan, an agent's
// prompt): a "<<<<<<<" line, then "=======", then ">>>>>>>". Such a file
// still reads as Markdown, both sides as text (a plan's tasks from both
// sides, a prompt with the markers in it), so without this a conflict
// committed by mistake would run. A lone marker line is not enough: text
// may quote one.
type conflictScan struct {
	open, sep int // the lines of the block's opening and separator markers
	found     int // the opening line of the first complete block
}

// line takes the next line (without its line end) and its number.
func (c *conflictScan) line(text string, n int) {
	if c.found > 0 {
		return
	}
	text = strings.TrimSuffix(text, "\r")
	switch {
	case isMarker(text, "<<<<<<<"):
		c.open, c.sep = n, 0
	case text == "=======" && c.open > 0:
		c.sep = n
	case isMarker(text, ">>>>>>>") && c.sep > 0:
		c.found = c.open
	}
}

// conflictBlock is the line of the first complete conflict block of data,
// 0 when it has none.
func conflictBlock(data []byte) int {
	var c conflictScan
	n := 0
	for line := range strings.SplitSeq(string(data), "\n") {
		n++
		if c.line(line, n); c.found > 0 {
			return c.found
		}
	}
	return 0
}

// isMarker reports whether text is a conflict marker line: the marker
// alone, or followed by a space and a label.
func isMarker(text, marker string) bool {
	rest, ok := strings.CutPrefix(text, marker)
	return ok && (rest == "" || rest[0] == ' ')
}
