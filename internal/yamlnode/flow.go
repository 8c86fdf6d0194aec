package yamlnode

import (
	"bytes"
	"math"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxReparse bounds the text whose syntax error is placed by reading it
// again (goccy's parser, the bracket scans, yaml.v3 with brackets added):
// each read of megabytes takes seconds, and yaml.v3's line is then kept.
const MaxReparse = 1 << 20

// strayCloser finds the closing bracket of a flow list or mapping that
// does not match the bracket it closes ("[1, 2}"), which is the place of
// libyaml's "did not find expected ',' or ']'" (or '}'): yaml.v3 names the
// line of the list's start there, or none at all on the first line. The
// scan knows the flow syntax (quotes, comments) and, outside brackets,
// just enough of the block syntax to find where a flow value starts; its
// answer is taken only when putting the expected bracket in its place
// makes that message go away.
func strayCloser(data []byte, msg string) (Place, bool) {
	if len(data) > MaxReparse {
		return Place{}, false
	}
	var want byte
	switch msg {
	case "did not find expected ',' or ']'":
		want = ']'
	case "did not find expected ',' or '}'":
		want = '}'
	default:
		return Place{}, false
	}
	off, ok := scanFlow(data, math.MaxInt)
	if !ok || data[off] == want {
		return Place{}, false
	}
	fixed := bytes.Clone(data)
	fixed[off] = want
	var v any
	if err := yaml.Unmarshal(fixed, &v); err != nil && Syntax(err).Msg == msg {
		return Place{}, false
	}
	return placeOf(data, off), true
}

// tooDeep finds the opening bracket of a flow list or mapping nested
// deeper than libyaml's limit: the place of its "exceeded max depth".
func tooDeep(data []byte) (Place, bool) {
	off, ok := scanFlow(data, maxFlowDepth)
	if !ok || (data[off] != '[' && data[off] != '{') {
		return Place{}, false
	}
	return placeOf(data, off), true
}

// maxFlowDepth is libyaml's limit on the nesting of flow collections.
const maxFlowDepth = 10000

// placeOf is the line and column of the byte at off in data.
func placeOf(data []byte, off int) Place {
	before := data[:off]
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return Place{Line: bytes.Count(before, []byte("\n")) + 1, Col: utf8.RuneCount(before[lineStart:]) + 1}
}

// scanFlow returns the offset of the first closing bracket in data that
// does not match the innermost open one, or of the first opening bracket
// nested deeper than maxDepth.
func scanFlow(data []byte, maxDepth int) (int, bool) {
	var open []byte // the closers the open brackets want, innermost last
	blockIndent := -1
	for lineStart := 0; lineStart < len(data); {
		end := bytes.IndexByte(data[lineStart:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += lineStart
		}
		line := data[lineStart:end]
		indent := len(line) - len(bytes.TrimLeft(line, " "))
		blank := len(bytes.TrimSpace(line)) == 0
		switch {
		case blockIndent >= 0 && (blank || indent > blockIndent):
			// A line of a literal or folded block scalar: text.
		default:
			blockIndent = -1
			if at, ok := scanLine(line, indent, maxDepth, &open, &blockIndent); ok {
				return lineStart + at, true
			}
		}
		lineStart = end + 1
	}
	return 0, false
}

// scanLine scans one line for scanFlow, from its indentation on. A block
// scalar header (| or >) at the end of a value outside brackets sets
// *blockIndent to the line's indentation.
func scanLine(line []byte, indent, maxDepth int, open *[]byte, blockIndent *int) (int, bool) {
	valueStart := true // outside brackets: the next character starts a value
	for i := indent; i < len(line); i++ {
		c := line[i]
		if c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return 0, false
		}
		if len(*open) > 0 || valueStart && (c == '[' || c == '{') {
			var found bool
			if i, found = flowChar(line, i, maxDepth, open); found {
				return i, true
			}
			valueStart = false
			continue
		}
		var header bool
		if i, valueStart, header = blockChar(line, i, valueStart); header {
			*blockIndent = indent
			return 0, false
		}
	}
	return 0, false
}

// blockChar takes the character at line[i] outside brackets: it returns
// where the scan goes on, whether the next character starts a value, and
// whether line[i] is a block scalar's header (| or >), whose text follows
// on the next lines.
func blockChar(line []byte, i int, valueStart bool) (int, bool, bool) {
	c := line[i]
	switch {
	case c == ' ' || c == '\t' || c == ']' || c == '}':
		// Blanks keep valueStart; a closer outside brackets is text.
		return i, valueStart, false
	case (c == '-' || c == '?' || c == ':') && (i+1 == len(line) || line[i+1] == ' '):
		return i, true, false
	case !valueStart:
		return i, false, false
	case c == '"' || c == '\'':
		return skipQuoted(line, i), false, false
	case c == '|' || c == '>':
		return i, true, true
	case c == '&' || c == '!':
		// An anchor or a tag: the value comes after it.
		for i+1 < len(line) && line[i+1] != ' ' {
			i++
		}
		return i, true, false
	}
	return i, false, false
}

// flowChar takes the character at line[i] inside brackets, or the bracket
// that opens them: a quoted scalar is skipped, a bracket opens or closes.
// It returns where the scan goes on, or the offset of a closer that does
// not match or an opener nested deeper than maxDepth, with true.
func flowChar(line []byte, i, maxDepth int, open *[]byte) (int, bool) {
	switch c := line[i]; c {
	case '"', '\'':
		if !flowValueStart(line, i) {
			return i, false // a quote inside a plain scalar: it's
		}
		return skipQuoted(line, i), false
	case '[', '{':
		if len(*open) == maxDepth {
			return i, true
		}
		*open = append(*open, map[byte]byte{'[': ']', '{': '}'}[c])
	case ']', '}':
		if (*open)[len(*open)-1] != c {
			return i, true
		}
		*open = (*open)[:len(*open)-1]
	}
	return i, false
}

// flowValueStart tells whether line[i], inside brackets, starts a value:
// it is the first character of the line, or comes after a bracket, a comma
// or a colon, blanks aside.
func flowValueStart(line []byte, i int) bool {
	before := bytes.TrimRight(line[:i], " \t")
	return len(before) == 0 || bytes.IndexByte([]byte("[{,:"), before[len(before)-1]) >= 0
}

// skipQuoted returns the offset of the quote that closes the quoted scalar
// starting at line[at], or the line's last offset when it goes on.
func skipQuoted(line []byte, at int) int {
	q := line[at]
	for i := at + 1; i < len(line); i++ {
		switch {
		case q == '"' && line[i] == '\\':
			i++
		case line[i] == q && q == '\'' && i+1 < len(line) && line[i+1] == '\'':
			i++
		case line[i] == q:
			return i
		}
	}
	return len(line) - 1
}
