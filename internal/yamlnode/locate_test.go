package yamlnode

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestLocate(t *testing.T) {
	tests := []struct {
		name, text string
		want       Place
	}{
		// yaml.v3 says line 3, where the list item begins.
		{"key indented too far", "version: 1\nsteps:\n  - id: a\n    run: echo\n   bad: indent\n", Place{5, 4}},
		{"tab indentation", "version: 1\nsteps:\n  - id: a\n    run: echo\n  - id: b\n\trun: echo\n", Place{6, 1}},
		{"flow list left open", "version: 1\nsteps:\n  - id: a\n    run: echo\n    inputs: [a, b\n  - id: b\n    run: echo\n", Place{6, 3}},
		// yaml.v3 says nothing of where.
		{"unknown alias", "version: 1\nsteps:\n  - id: a\n    run: echo\n    <<: *nope\n", Place{5, 9}},
		{"unknown alias after a longer one", "a: &nopen 1\nb: *nopen\nc: [*nope]\n", Place{3, 5}},
		{"quote left open", "version: 1\nname: \"open\nsteps: []\n", Place{2, 7}},
		{"flow mapping left open at the end", "version: 1\nsteps:\n  a: {\n", Place{3, 6}},
		{"second colon", "a: b: c\n", Place{1, 4}},
		// goccy took a minute over this; the place is the bracket past the limit.
		{"flow nested deeper than the limit", "a: 1\nb: " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n", Place{2, 10004}},
		{"flow mappings nested deeper than the limit", "b: " + strings.Repeat("{a: ", 100000) + "1" + strings.Repeat("}", 100000), Place{1, 40004}},
		{"wrong closing bracket on the first line", "[1, 2}\n", Place{1, 6}},
		{"wrong closing bracket after an apostrophe in a word", "[it's, 'a ]', 2}\n", Place{1, 16}},
		{"wrong closing bracket in a list item", "- a\n- [1, 2}\n- c\n", Place{2, 8}},
		{"wrong closing bracket after quoted and block brackets", "a: \"[}\"\nb: |\n  {]\nc: '{'\nd: [1}\n", Place{5, 6}},
		// goccy names the scalar before; yaml.v3's line is the better one.
		{"key under a scalar", "step: a\n  bad: [\n", Place{2, 3}},
		{"in a later document", "a: 1\n---\nb: [1\n", Place{3, 4}},
		// libyaml's reader checks every character first; yaml.v3 gives
		// no line for what it refuses.
		{"NUL byte", "version: 1\nsteps:\n  - id: a\n    run: echo \x00\n", Place{4, 15}},
		{"control character after non-ASCII", "name: é\x01\n", Place{1, 8}},
		{"byte that is no UTF-8", "a: 1\nb: x\xff\n", Place{2, 5}},
		{"UTF-8 cut short at the end", "a: 1\nb: \xe2\x82", Place{2, 4}},
		{"after CRLF lines and a BOM", "\ufeffa: 1\r\nb: \x7f\r\n", Place{2, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Documents([]byte(tt.text))
			if err == nil {
				t.Fatalf("no syntax error in %q", tt.text)
			}
			if got := Locate([]byte(tt.text), err); got != tt.want {
				t.Errorf("Locate = %+v, want %+v (yaml.v3: %v)", got, tt.want, err)
			}
		})
	}
}

func TestLocateWithoutLine(t *testing.T) {
	if got := Locate([]byte("a: 1\n"), errUnknown{}); got != (Place{}) {
		t.Errorf("Locate of an error with no place = %+v, want none", got)
	}
}

type errUnknown struct{}

func (errUnknown) Error() string { return "yaml: something odd" }

// TestLocateLarge: placing the syntax error of megabytes of YAML read
// them again with goccy, seconds a megabyte, so that validate on a 10 MB
// flow list took longer than a user waits; past MaxReparse yaml.v3's line
// is kept at once.
func TestLocateLarge(t *testing.T) {
	data := []byte("version: 1\nname: [" + strings.Repeat("x, ", 1_500_000) + "\nsteps: []\n")
	_, _, err := Documents(data)
	if err == nil {
		t.Fatal("no syntax error")
	}
	start := time.Now()
	got := Locate(data, err)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Locate took %v", d)
	}
	if got != (Place{2, 1}) {
		t.Errorf("Locate = %+v, want yaml.v3's line 2", got)
	}
}

// TestLocateLargeWindow: a list of megabytes (an items file) keeps the
// exact place of its syntax error, as a small one has it, read again from
// the top-level item yaml.v3 names on, not only yaml.v3's line (the item's
// first, for a mistake on a later line of it); a window cut short does
// not take the cut for the mistake.
func TestLocateLargeWindow(t *testing.T) {
	var big strings.Builder
	for i := range 30000 {
		fmt.Fprintf(&big, "- id: item%d\n  title: \"padding for item %d of the list\"\n", i, i)
	}
	head := big.String()
	if len(head) <= MaxReparse {
		t.Fatalf("the list is %d bytes, want more than %d", len(head), MaxReparse)
	}
	n := strings.Count(head, "\n")
	tests := []struct {
		name, tail string
		want       Place
	}{
		{"tab", "- id: x\n\ttitle: tab\n- id: y\n", Place{n + 2, 1}},
		{"mapping in a value", "- id: x\n  title: a: b\n- id: y\n", Place{n + 2, 10}},
		{"quote left open", "- id: x\n  title: \"open\n- id: y\n", Place{n + 2, 10}},
		{"stray closer", "- id: x\n  title: {a: 1]\n- id: y\n", Place{n + 2, 15}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(head + tt.tail)
			_, _, err := Documents(data)
			if err == nil {
				t.Fatal("no syntax error")
			}
			start := time.Now()
			got := Locate(data, err)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Locate took %v", d)
			}
			if got != tt.want {
				t.Errorf("Locate = %+v, want %+v", got, tt.want)
			}
			// The same mistake in a small file is placed the same.
			_, _, serr := Documents([]byte(tt.tail))
			if serr == nil {
				t.Fatal("the tail alone has no syntax error")
			}
			if p := Locate([]byte(tt.tail), serr); p.Col != tt.want.Col || p.Line+n != tt.want.Line {
				t.Errorf("the tail alone: %+v, a different place", p)
			}
		})
	}
	// The mistake near the start of more than MaxReparse bytes of list:
	// the window is cut short after it, and the mistake found before the
	// cut.
	data := []byte("- id: x\n\ttitle: tab\n" + head + head)
	_, _, err := Documents(data)
	if err == nil {
		t.Fatal("no syntax error")
	}
	if got := Locate(data, err); got != (Place{2, 1}) {
		t.Errorf("Locate = %+v, want {2 1}", got)
	}
}
