package yamlnode

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	goccy "github.com/goccy/go-yaml"
	goccyparser "github.com/goccy/go-yaml/parser"
)

// Place is where a syntax error is in its text: a 1-based line and column,
// each 0 when unknown.
type Place struct {
	Line, Col int
}

// Locate finds where in data the syntax error err (of a Documents call on
// data) is. yaml.v3 prints no column, and for many of libyaml's problems
// the line where the enclosing construct began rather than where the
// mistake is: a key indented too far on line 5 of a list item that begins
// on line 3 is reported at line 3. So the text is parsed again with
// goccy/go-yaml, whose errors point at the token in question. Its place
// is taken when it is at or after yaml.v3's line (the two parsers found
// the same mistake, or goccy the exact spot inside yaml.v3's construct),
// or when yaml.v3 ran into the end of the text, where goccy names the
// bracket or quote left open. An unknown alias is found by its name, and
// a closing bracket that does not match its list or mapping ("[1, 2}") by
// a scan of the brackets (strayCloser). Anything else keeps yaml.v3's line, at its first character that is not
// a space.
func Locate(data []byte, err error) Place {
	syn := Syntax(err)
	if slices.Contains(readerProblems, syn.Msg) {
		if p, ok := badChar(data); ok {
			return p
		}
	}
	if p, ok := strayCloser(data, syn.Msg); ok {
		return p
	}
	line := syn.Line
	if line > 0 && syn.ParserProblem() {
		line++
	}
	if strings.HasPrefix(syn.Msg, "exceeded max depth") {
		// goccy takes minutes over text nested this deep.
		if p, ok := tooDeep(data); ok {
			return p
		}
		return Place{Line: line, Col: firstNonSpace(data, line)}
	}
	if name, ok := unknownAnchor(syn.Msg); ok {
		if p, found := findAlias(data, name); found {
			return p
		}
	}
	if len(data) <= MaxReparse { // goccy takes seconds a megabyte
		if p, ok := reparse(data); ok && (p.Line >= line || line > lineCount(data)) {
			return p
		}
	} else if p, ok := reparseWindow(data, line, syn.Msg); ok {
		return p
	}
	if line == 0 {
		return Place{}
	}
	return Place{Line: line, Col: firstNonSpace(data, line)}
}

// readerProblems are the messages of libyaml's reader, which checks every
// character before the scanner sees any: yaml.v3 gives them no line.
var readerProblems = []string{
	"invalid leading UTF-8 octet",
	"incomplete UTF-8 octet sequence",
	"invalid trailing UTF-8 octet",
	"invalid length of a UTF-8 sequence",
	"invalid Unicode character",
	"control characters are not allowed",
}

// badChar finds the first character of data that libyaml's reader refuses:
// a byte that is not UTF-8, or a character YAML does not allow (a control
// character other than tab and line breaks, a surrogate, U+FFFE, U+FFFF).
func badChar(data []byte) (Place, bool) {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if (r == utf8.RuneError && size <= 1) || !yamlChar(r) {
			return Place{Line: line, Col: col}, true
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += size
	}
	return Place{}, false
}

// yamlChar is libyaml's test of a character it reads (readerc.go).
func yamlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0x7E || r == 0x85 ||
		r >= 0xA0 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// lineCount is how many lines data has; a final line ending ends the last
// line rather than starting another.
func lineCount(data []byte) int {
	n := bytes.Count(data, []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	return n
}

// firstNonSpace is the 1-based column of the first character of line n of
// data that is not a space (a tab counts: indenting with one is a mistake
// of its own), 1 for a blank or missing line.
func firstNonSpace(data []byte, n int) int {
	for i := 1; i < n; i++ {
		end := bytes.IndexByte(data, '\n')
		if end < 0 {
			return 1
		}
		data = data[end+1:]
	}
	if end := bytes.IndexByte(data, '\n'); end >= 0 {
		data = data[:end]
	}
	text := strings.TrimRight(string(data), "\r")
	indent := len(text) - len(strings.TrimLeft(text, " "))
	if indent == len(text) {
		return 1
	}
	return len([]rune(text[:indent])) + 1
}

// reparse is where goccy/go-yaml finds the first syntax error of data.
// It only ever reads text that yaml.v3 has already refused; a panic of
// the second parser costs the exact place, not the report.
func reparse(data []byte) (p Place, ok bool) {
	defer func() {
		if recover() != nil {
			p, ok = Place{}, false
		}
	}()
	_, err := goccyparser.ParseBytes(data, 0)
	var syn *goccy.SyntaxError
	if !errors.As(err, &syn) || syn.Token == nil || syn.Token.Position == nil {
		return Place{}, false
	}
	pos := syn.Token.Position
	if pos.Line < 1 || pos.Column < 1 {
		return Place{}, false
	}
	return Place{Line: pos.Line, Col: pos.Column}, true
}

// maxWindowBack bounds how many lines before yaml.v3's line reparseWindow
// looks for a top-level item or key to start at.
const maxWindowBack = 1000

// reparseWindow is strayCloser and reparse for text larger than
// MaxReparse: they read only the part of it from the last top-level item
// or key (a line that starts at column 0 with "- " or "key:") at or before
// yaml.v3's line, at most MaxReparse bytes of it, cut at a line's end.
// goccy's place is taken on the same terms as reparse's, and not on the
// window's last line when the window was cut short, where the cut may be
// all goccy found: a list of megabytes (an items file) keeps its exact
// place, in the time a megabyte takes.
func reparseWindow(data []byte, line int, msg string) (Place, bool) {
	total := lineCount(data)
	if line <= 0 {
		return Place{}, false
	}
	anchor := min(line, total)
	starts := lineStarts(data, anchor)
	first := -1
	for n := anchor; n >= 1 && n > anchor-maxWindowBack; n-- {
		if topLevelLine(data[starts[n-1]:]) {
			first = n
			break
		}
	}
	if first < 0 {
		return Place{}, false
	}
	w := data[starts[first-1]:]
	whole := len(w) <= MaxReparse
	if !whole {
		end := bytes.LastIndexByte(w[:MaxReparse], '\n')
		if end < 0 {
			return Place{}, false
		}
		w = w[:end+1]
	}
	if p, ok := strayCloser(w, msg); ok {
		p.Line += first - 1
		return p, true
	}
	p, ok := reparse(w)
	if !ok {
		return Place{}, false
	}
	p.Line += first - 1
	if p.Line < line && line <= total || !whole && p.Line >= first+lineCount(w)-1 {
		return Place{}, false
	}
	return p, true
}

// lineStarts are the offsets in data of its lines 1 to n (fewer when data
// has fewer).
func lineStarts(data []byte, n int) []int {
	starts := make([]int, 0, n)
	for off := 0; len(starts) < n; {
		starts = append(starts, off)
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
	}
	for len(starts) < n {
		starts = append(starts, len(data))
	}
	return starts
}

// topLevelLine reports whether the text (from a line's start) opens an
// item of a top-level block list ("- ") or a key of a top-level block
// mapping ("name:"), where a parse may start afresh.
func topLevelLine(text []byte) bool {
	if i := bytes.IndexByte(text, '\n'); i >= 0 {
		text = text[:i]
	}
	text = bytes.TrimSuffix(text, []byte("\r"))
	if bytes.Equal(text, []byte("-")) || bytes.HasPrefix(text, []byte("- ")) {
		return true
	}
	if len(text) == 0 || !(text[0] == '_' || text[0] >= 'a' && text[0] <= 'z' || text[0] >= 'A' && text[0] <= 'Z' || text[0] >= '0' && text[0] <= '9') {
		return false
	}
	key, _, ok := bytes.Cut(text, []byte(":"))
	return ok && !bytes.ContainsAny(key, "[]{}\"'#,") && (len(text) == len(key)+1 || text[len(key)+1] == ' ')
}

// unknownAnchor reads the alias name out of yaml.v3's "unknown anchor
// 'NAME' referenced".
func unknownAnchor(msg string) (string, bool) {
	rest, ok := strings.CutPrefix(msg, "unknown anchor '")
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, "' referenced")
	return name, ok && name != ""
}

// findAlias is the place of the first "*name" in data that ends where an
// alias name ends (at a blank, a flow indicator or the end of the text).
func findAlias(data []byte, name string) (Place, bool) {
	needle := []byte("*" + name)
	for off := 0; ; {
		i := bytes.Index(data[off:], needle)
		if i < 0 {
			return Place{}, false
		}
		at := off + i
		end := at + len(needle)
		if end == len(data) || strings.IndexByte(" \t\r\n,[]{}", data[end]) >= 0 {
			lineStart := bytes.LastIndexByte(data[:at], '\n') + 1
			return Place{Line: bytes.Count(data[:at], []byte("\n")) + 1, Col: len([]rune(string(data[lineStart:at]))) + 1}, true
		}
		off = end
	}
}

// ConflictMarker finds the first line of data that opens a block of an
// unresolved merge conflict ("<<<<<<< ours"): in a file that does not
// parse, the reason, which libyaml would word as a missing ':' some lines
// further.
func ConflictMarker(data []byte) (Place, bool) {
	for line := 1; len(data) > 0; line++ {
		text := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			text, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		text = bytes.TrimRight(text, "\r")
		if bytes.Equal(text, []byte("<<<<<<<")) || bytes.HasPrefix(text, []byte("<<<<<<< ")) {
			return Place{Line: line, Col: 1}, true
		}
	}
	return Place{}, false
}

// ConflictMessage is the problem a file with an unresolved merge
// conflict is reported with.
const ConflictMessage = "unresolved merge conflict: keep what the <<<<<<< ... >>>>>>> block should say, remove the markers and commit"

// UTF16WithoutBOM reports whether data looks like UTF-16 text without a
// byte-order mark (libyaml reads UTF-16 only after one): among its first
// characters, most with a NUL byte, always on the same side. libyaml would
// call its first NUL a control character, which says nothing of the cause.
func UTF16WithoutBOM(data []byte) bool {
	n := min(len(data), 64) &^ 1
	if n < 2 {
		return false
	}
	nulEven, nulOdd := 0, 0
	for i := 0; i < n; i += 2 {
		if data[i] == 0 && data[i+1] != 0 {
			nulEven++
		}
		if data[i+1] == 0 && data[i] != 0 {
			nulOdd++
		}
	}
	return min(nulEven, nulOdd) == 0 && max(nulEven, nulOdd)*4 >= n/2*3
}

// UTF16Message is the problem a UTF-16 file without a byte-order mark is
// reported with.
const UTF16Message = "the file is UTF-16 without a byte-order mark: save it as UTF-8"
