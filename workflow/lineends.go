package workflow

import (
	"bytes"
	"unicode/utf8"
)

// loneCRMessage says why a file with classic Mac OS line ends is refused.
const loneCRMessage = "the lines end in a lone carriage return (CR, classic Mac OS line ends), " +
	"so the whole file reads as one line: save it with LF (or CRLF) line ends"

// loneCRLines finds a Markdown file (plan, agent) whose lines end in a lone
// CR: read by lines ending in LF it is one line, a plan without tasks or an
// agent whose front matter is prompt text, silently. It returns the place
// of the first lone CR when they outnumber the LFs; a stray CR in a text
// with LF line ends is text.
func loneCRLines(file string, data []byte) (Pos, bool) {
	first, lone := -1, 0
	for i, b := range data {
		if b == '\r' && (i+1 == len(data) || data[i+1] != '\n') {
			if first < 0 {
				first = i
			}
			lone++
		}
	}
	if lone == 0 || lone <= bytes.Count(data, []byte("\n")) {
		return Pos{}, false
	}
	before := data[:first]
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return Pos{File: file, Line: bytes.Count(before, []byte("\n")) + 1, Col: utf8.RuneCount(before[lineStart:]) + 1}, true
}
