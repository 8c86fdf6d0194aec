package gitstate

import (
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var stepTrailers = []Trailer{
	{TrailerStep, "implement"}, {TrailerTask, "T1"}, {TrailerEngine, "claude"}, {TrailerModel, "opus"},
	{TrailerSession, "5b0e-11"}, {TrailerTokensIn, "1200"}, {TrailerTokensOut, "340"}, {TrailerCostUSD, "0.02"},
	{TrailerDuration, "41s"}, {TrailerAttempts, "1"}, {TrailerFingerprint, "ab12"}, {TrailerRun, "20261124T101500Z"},
}

func TestMessageString(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{"subject only", Message{Subject: "codemachine(plan): Plan"}, "codemachine(plan): Plan\n"},
		{"body and trailers",
			Message{Subject: "codemachine(implement/T1): Create the layout", Body: "\nDid it.\n\nAll good.\n", Trailers: []Trailer{{TrailerStep, "implement"}, {TrailerTask, "T1"}}},
			"codemachine(implement/T1): Create the layout\n\nDid it.\n\nAll good.\n\nCodemachine-Step: implement\nCodemachine-Task: T1\n"},
		{"multi-line values and subject are folded",
			Message{Subject: "two\nlines", Trailers: []Trailer{{"Codemachine-Model", "a\nb"}, {"Bad Key", "v"}}},
			"two lines\n\nCodemachine-Model: a b\nBad-Key: v\n"},
		{"patch dividers are defused",
			Message{Subject: "s", Body: "above\n---\nbelow\n--- a/x\n----", Trailers: []Trailer{{TrailerStep, "s"}}},
			"s\n\nabove\n ---\nbelow\n --- a/x\n----\n\nCodemachine-Step: s\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.msg.String(); got != tt.want {
				t.Errorf("String() =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestParseMessage(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Message
	}{
		{"ours", "codemachine(plan): Plan\n\nBody line.\n\nCodemachine-Step: plan\nCodemachine-Engine: claude\n",
			Message{Subject: "codemachine(plan): Plan", Body: "Body line.", Trailers: []Trailer{{TrailerStep, "plan"}, {TrailerEngine, "claude"}}}},
		{"body ends trailer-like, trailers after it",
			"s\n\nNote: this is prose\nSee: also this\n\nCodemachine-Step: x\n",
			Message{Subject: "s", Body: "Note: this is prose\nSee: also this", Trailers: []Trailer{{TrailerStep, "x"}}}},
		{"last paragraph not all trailers", "s\n\nCodemachine-Step: x\nnot a trailer\n",
			Message{Subject: "s", Body: "Codemachine-Step: x\nnot a trailer"}},
		{"subject alone is never trailers", "Key: value\n", Message{Subject: "Key: value"}},
		{"folded value", "s\n\nA: one\n  two\nB: three", Message{Subject: "s", Trailers: []Trailer{{"A", "one two"}, {"B", "three"}}}},
		{"crlf", "s\r\n\r\nbody\r\n\r\nA: b\r\n", Message{Subject: "s", Body: "body", Trailers: []Trailer{{"A", "b"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMessage(tt.in)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseMessage = %#v, %v\nwant %#v", got, err, tt.want)
			}
		})
	}
	if _, err := ParseMessage(" \n\n"); err == nil {
		t.Error("an empty message parsed")
	}
}

func TestMessageRoundTripAndGet(t *testing.T) {
	m := Message{Subject: "codemachine(implement/T1): Create the module layout", Body: "Created go.mod.\n\nKey: looks like a trailer", Trailers: stepTrailers}
	got, err := ParseMessage(m.String())
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip = %#v, %v", got, err)
	}
	if got.Get("codemachine-tokens-in") != "1200" || got.Get(TrailerRun) != "20261124T101500Z" || got.Get("Nope") != "" {
		t.Error("Get does not find trailers case-insensitively")
	}
}

// TestGitReadsOurTrailers checks the rendering against git's own trailer
// parser, including a body with a Markdown rule that git would otherwise
// take for a patch divider.
func TestGitReadsOurTrailers(t *testing.T) {
	for _, body := range []string{"", "Plain body.", "Summary\n\n---\n\n## Details\nKey: value in prose", "Ends with\nSome-Key: value"} {
		m := Message{Subject: "codemachine(implement/T1): Title", Body: body, Trailers: stepTrailers}
		cmd := exec.Command("git", "interpret-trailers", "--parse")
		cmd.Stdin = strings.NewReader(m.String())
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		for _, tr := range stepTrailers {
			want.WriteString(tr.Key + ": " + tr.Value + "\n")
		}
		if string(out) != want.String() {
			t.Errorf("body %q: git parsed\n%s\nwant\n%s", body, out, want.String())
		}
	}
}

// FuzzParseMessage checks that any message parses without panicking and
// that rendering what was parsed gives a message that parses the same.
func FuzzParseMessage(f *testing.F) {
	f.Add(Message{Subject: "s", Body: "b\n\n---\nK: v", Trailers: stepTrailers}.String())
	f.Add("s\n\nA: one\n  two\n")
	f.Add("\n\n\n")
	f.Fuzz(func(t *testing.T, msg string) {
		m, err := ParseMessage(msg)
		if err != nil {
			return
		}
		again, err := ParseMessage(m.String())
		if err != nil {
			t.Fatalf("rendered message does not parse: %q", m.String())
		}
		if again.String() != m.String() {
			t.Errorf("not stable:\n%q\n%q", m.String(), again.String())
		}
	})
}

// trailerPattern is the regular expression splitTrailer stands for.
var trailerPattern = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9-]*): ?(.*)$`)

// checkSplitTrailer fails t unless splitTrailer answers line as
// trailerPattern does.
func checkSplitTrailer(t *testing.T, line string) {
	t.Helper()
	key, value, ok := splitTrailer(line)
	sm := trailerPattern.FindStringSubmatch(line)
	if ok != (sm != nil) || ok && (key != sm[1] || value != sm[2]) {
		t.Errorf("splitTrailer(%q) = %q, %q, %v; the pattern: %q", line, key, value, ok, sm)
	}
}

// TestSplitTrailerAsPattern: splitTrailer matches the lines the trailer
// pattern matches, with the same key and value.
func TestSplitTrailerAsPattern(t *testing.T) {
	for _, line := range []string{
		"", ":", " ", "Key", "Key:", "Key: ", "Key:  two", "Key: v", "Key:v", "Key :v", "-Key: v", "K-e-y-: v",
		"Codemachine-Step: build", "9: nine", "k\u00e9y: v", "Key: v\u00e9\xff", "Key: a\rb", "Key: a\nb", "Key\n: v",
		"Key:\t tab", "Signed-off-by: A <a@b>", "Key_x: v", "Key.x: v", "http://example.com: v", "Key: : v",
	} {
		checkSplitTrailer(t, line)
	}
}

// FuzzSplitTrailer: splitTrailer and the trailer pattern agree on any line.
func FuzzSplitTrailer(f *testing.F) {
	for _, s := range []string{"Key: v", "-x: y", "a:b", "Co-authored-by:  X", "x\ny: z"} {
		f.Add(s)
	}
	f.Fuzz(checkSplitTrailer)
}
