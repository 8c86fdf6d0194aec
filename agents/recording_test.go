package agents

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// representative is a recording with one of every kind of content the
// format must keep exactly.
func representative() *Recording {
	return &Recording{
		Step: "implement", Task: "T1", Engine: "claude", Model: "sonnet",
		Session:  "5b0e3c1a-9d2f-4e61-8a7b-2c4d6e8f0a1b",
		TokensIn: 1200, TokensOut: 340, CostUSD: 0.02, CostKnown: true,
		Duration: 41*time.Second + 250*time.Millisecond,
		Text:     "Created the module layout.\n\nRun `go test ./...` to check it.",
		Files: []FileChange{
			{Path: "main.go", Content: []byte("package main\n\nfunc main() {\n\tprintln(\"hi\")\n}\n")},
			{Path: "scripts/run.sh", Mode: "0755", Content: []byte("#!/bin/sh\nexec go run .\n")},
			{Path: "no-final-newline.txt", Content: []byte("first\nlast")},
			{Path: "windows.txt", Content: []byte("line one\r\nline two\r\n")},
			{Path: "trailing-blanks.md", Content: []byte("hard break  \nnext\n")},
			{Path: "indented.txt", Content: []byte("    code block\nplain\n")},
			{Path: "empty.txt", Content: []byte{}},
			{Path: "yes", Content: []byte("true")},
			{Path: "logo.bin", Content: []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 0x0d, 0xff, 0xfe}},
			{Path: "docs/ünïcödé name.txt", Content: []byte("héllo wörld ✓\n")},
			{Path: "old.txt", Deleted: true},
		},
	}
}

func TestMarshalRecordingGolden(t *testing.T) {
	data, err := MarshalRecording(representative())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "recording.golden", data)
	got, err := ParseRecording("recording.golden", data)
	if err != nil {
		t.Fatal(err)
	}
	assertSameRecording(t, got, representative())
}

// TestParseRecordingDocExample parses the example of docs/internals.md.
func TestParseRecordingDocExample(t *testing.T) {
	const doc = `# codemachine recording: replayed by ` + "`codemachine run --engine replay`" + `
step: implement
task: T1
engine: claude
model: sonnet
session: 5b0e...
tokens_in: 1200
tokens_out: 340
cost_usd: 0.02        # omitted when unknown
duration: 41s
text: |
  Final message of the agent.
files:                 # the change the run made, applied in order
  - path: main.go
    content: |
      package main
  - path: run.sh
    mode: "0755"
    content: "#!/bin/sh\n"
  - path: old.txt
    deleted: true
`
	got, err := ParseRecording("doc.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := &Recording{
		Step: "implement", Task: "T1", Engine: "claude", Model: "sonnet", Session: "5b0e...",
		TokensIn: 1200, TokensOut: 340, CostUSD: 0.02, CostKnown: true, Duration: 41 * time.Second,
		Text: "Final message of the agent.\n",
		Files: []FileChange{
			{Path: "main.go", Content: []byte("package main\n")},
			{Path: "run.sh", Mode: "0755", Content: []byte("#!/bin/sh\n")},
			{Path: "old.txt", Deleted: true},
		},
	}
	assertSameRecording(t, got, want)
}

func TestParseRecordingLenient(t *testing.T) {
	// What a person editing a recording by hand may write.
	// A number where a name goes, an empty task, flow style, an unquoted mode.
	got, err := ParseRecording("r.yaml", []byte("step: 12\ntask:\nfiles:\n  - {path: a, mode: 755, content: x}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Recording{Step: "12", Files: []FileChange{{Path: "a", Mode: "0755", Content: []byte("x")}}}
	assertSameRecording(t, got, want)
}

func TestParseRecordingErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "r.yaml: empty recording"},
		{"syntax", "step: a\n  bad: [\n", "r.yaml:2:3: mapping values are not allowed in this context"},
		{"syntax flow", "step: [a\n", "r.yaml:1:7: did not find expected ',' or ']'"},
		{"not a mapping", "- a\n", "r.yaml:1:1: want a mapping of recording fields (step, text, files, ...)"},
		{"two documents", "step: a\n---\nstep: b\n", "r.yaml:2:1: more than one YAML document"},
		{"unknown key", "step: a\ntoken_in: 3\n", `r.yaml:2:1: unknown field "token_in" (did you mean "tokens_in"?)`},
		{"unknown key far", "step: a\nwhatever: 3\n", `r.yaml:2:1: unknown field "whatever"`},
		{"repeated key", "step: a\nstep: b\n", "r.yaml:2:1: step repeated (first at line 1)"},
		{"missing step", "engine: claude\n", "r.yaml:1:1: missing step"},
		{"step list", "step: [a]\n", "r.yaml:1:7: step: want a string, got a list"},
		{"tokens text", "step: a\ntokens_in: many\n", `r.yaml:2:12: tokens_in: want a whole number, got "many"`},
		{"tokens float", "step: a\ntokens_out: 1.5\n", `r.yaml:2:13: tokens_out: want a whole number, got "1.5"`},
		{"tokens negative", "step: a\ntokens_in: -1\n", "r.yaml:2:12: tokens_in: must not be negative"},
		{"cost text", "step: a\ncost_usd: free\n", `r.yaml:2:11: cost_usd: want a number of US dollars, got "free"`},
		{"cost inf", "step: a\ncost_usd: .inf\n", `r.yaml:2:11: cost_usd: want a number of US dollars, got ".inf"`},
		{"cost negative", "step: a\ncost_usd: -0.5\n", "r.yaml:2:11: cost_usd: must not be negative"},
		{"duration", "step: a\nduration: soon\n", `r.yaml:2:11: duration: want a duration such as 41s or 2m3.5s, got "soon"`},
		{"duration negative", "step: a\nduration: -3s\n", "r.yaml:2:11: duration: must not be negative"},
		{"merge conflict", "<<<<<<< HEAD\nstep: a\n=======\nstep: b\n>>>>>>> other\ntext: hi\n",
			"r.yaml:1:1: unresolved merge conflict: keep what the <<<<<<< ... >>>>>>> block should say, remove the markers and commit"},
		{"alias", "step: &s a\ntask: *s\n", "r.yaml:2:7: task: YAML aliases are not supported in recordings"},
		{"custom tag", "step: !foo a\n", "r.yaml:1:7: step: want a string, got !foo"},
		{"files mapping", "step: a\nfiles: {path: x}\n", "r.yaml:2:8: files: want a list of files"},
		{"file scalar", "step: a\nfiles: [x]\n", "r.yaml:2:9: files[0]: want a mapping (path, content, mode, deleted)"},
		{"file unknown key", "step: a\nfiles:\n  - path: x\n    contents: y\n", `r.yaml:4:5: unknown field "contents" (did you mean "content"?)`},
		{"file no path", "step: a\nfiles:\n  - content: y\n", "r.yaml:3:5: files[0]: missing path"},
		{"file no content", "step: a\nfiles:\n  - path: x\n", `r.yaml:3:5: files[0] x: missing content (content: "" for an empty file, deleted: true for a deletion)`},
		{"deleted with content", "step: a\nfiles:\n  - path: x\n    deleted: true\n    content: y\n", "r.yaml:3:5: files[0] x: a deleted file has no content or mode"},
		{"deleted not bool", "step: a\nfiles:\n  - path: x\n    deleted: yes\n", `r.yaml:4:14: deleted: want true or false, got "yes"`},
		{"bad mode", "step: a\nfiles:\n  - path: x\n    mode: rwx\n    content: y\n", `r.yaml:4:11: bad mode "rwx": want octal permissions such as "0644" or "0755"`},
		{"setuid mode", "step: a\nfiles:\n  - path: x\n    mode: \"4755\"\n    content: y\n", `r.yaml:4:11: bad mode "4755": want octal permissions such as "0644" or "0755"`},
		{"bad binary", "step: a\nfiles:\n  - path: x\n    content: !!binary '%%%'\n", "r.yaml:4:14: content: bad !!binary (base64): illegal base64 data at input byte 0"},
		{"dotdot", "step: a\nfiles:\n  - path: ../outside\n    content: y\n", `r.yaml:3:11: path "../outside" escapes the repository`},
		{"dotdot inside", "step: a\nfiles:\n  - path: a/../../b\n    content: y\n", `r.yaml:3:11: path "a/../../b" escapes the repository`},
		{"absolute", "step: a\nfiles:\n  - path: /etc/passwd\n    content: y\n", `r.yaml:3:11: path "/etc/passwd" is absolute; want a path relative to the repository root`},
		{"dot git", "step: a\nfiles:\n  - path: .git/hooks/pre-commit\n    content: y\n", `r.yaml:3:11: path ".git/hooks/pre-commit" points into .git`},
		{"nested dot git", "step: a\nfiles:\n  - path: sub/.GIT/config\n    content: y\n", `r.yaml:3:11: path "sub/.GIT/config" points into .git`},
		{"unclean", "step: a\nfiles:\n  - path: a//b\n    content: y\n", `r.yaml:3:11: path "a//b" is not clean (want "a/b")`},
		{"trailing slash", "step: a\nfiles:\n  - path: dir/\n    deleted: true\n", `r.yaml:3:11: path "dir/" is not clean (want "dir")`},
		{"nul", "step: a\nfiles:\n  - path: \"a\\0b\"\n    content: y\n", `r.yaml:3:11: path "a\x00b" holds a NUL byte`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRecording("r.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("no error; parsed %+v", r)
			}
			var re *RecordingError
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a *RecordingError: %v", err, err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestMarshalRecordingErrors(t *testing.T) {
	tests := []struct {
		name string
		r    Recording
		want string
	}{
		{"no step", Recording{}, "marshal recording: no step"},
		{"bad utf8 name", Recording{Step: "a", Model: "\xff"}, `marshal recording: model "\xff" is not valid UTF-8`},
		{"negative tokens", Recording{Step: "a", TokensOut: -1}, "marshal recording: negative token count (0 in, -1 out)"},
		{"negative duration", Recording{Step: "a", Duration: -time.Second}, "marshal recording: negative duration -1s"},
		{"bad cost", Recording{Step: "a", CostUSD: -1, CostKnown: true}, "marshal recording: bad cost -1"},
		{"escaping path", Recording{Step: "a", Files: []FileChange{{Path: "../x"}}}, `marshal recording: files[0]: path "../x" escapes the repository`},
		{"bad mode", Recording{Step: "a", Files: []FileChange{{Path: "x", Mode: "777x"}}}, `marshal recording: files[0] x: bad mode "777x": want octal permissions such as "0644" or "0755"`},
		{"deleted content", Recording{Step: "a", Files: []FileChange{{Path: "x", Deleted: true, Content: []byte("y")}}}, "marshal recording: files[0] x: a deleted file has no content or mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := MarshalRecording(&tt.r)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error\n got %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestMarshalRecordingOmitsUnknowns(t *testing.T) {
	data, err := MarshalRecording(&Recording{Step: "fmt"})
	if err != nil {
		t.Fatal(err)
	}
	want := "# codemachine recording: replayed by `codemachine run --engine replay`\n\nstep: fmt\ntokens_in: 0\ntokens_out: 0\nduration: 0s\n"
	if string(data) != want {
		t.Errorf("got\n%s\nwant\n%s", data, want)
	}
}

// TestRecordingRoundTrip is a property test: any recording, with random
// names and random (often binary or awkward) content, comes back exactly,
// and marshaling what was parsed gives the same bytes.
func TestRecordingRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		r := randomRecording(rng)
		data, err := MarshalRecording(r)
		if err != nil {
			t.Fatalf("case %d: marshal: %v\n%#v", i, err, r)
		}
		got, err := ParseRecording("rt.yaml", data)
		if err != nil {
			t.Fatalf("case %d: parse: %v\n%s", i, err, data)
		}
		if diff := recordingDiff(got, r); diff != "" {
			t.Fatalf("case %d: %s\nYAML:\n%s", i, diff, data)
		}
		again, err := MarshalRecording(got)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("case %d: marshal after parse differs (%v)\n%s\n---\n%s", i, err, data, again)
		}
	}
}

func FuzzParseRecording(f *testing.F) {
	seed, _ := MarshalRecording(representative())
	f.Add(seed)
	f.Add([]byte("step: a\nfiles:\n  - path: x\n    content: !!binary AAEC\n"))
	f.Add([]byte("step: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecording("f.yaml", data)
		if err != nil {
			return
		}
		out, err := MarshalRecording(r)
		if err != nil {
			t.Fatalf("a parsed recording does not marshal: %v", err)
		}
		back, err := ParseRecording("f.yaml", out)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
		if diff := recordingDiff(back, r); diff != "" {
			t.Fatal(diff)
		}
	})
}

func assertSameRecording(t *testing.T, got, want *Recording) {
	t.Helper()
	if diff := recordingDiff(got, want); diff != "" {
		t.Error(diff)
	}
}

// recordingDiff compares recordings, with nil and empty content equal
// (an empty file is written as content: "").
func recordingDiff(got, want *Recording) string {
	g, w := *got, *want
	g.Files, w.Files = nil, nil
	if !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("recording\n got %+v\nwant %+v", g, w)
	}
	if len(got.Files) != len(want.Files) {
		return fmt.Sprintf("%d files, want %d", len(got.Files), len(want.Files))
	}
	for i := range got.Files {
		gf, wf := got.Files[i], want.Files[i]
		if gf.Path != wf.Path || gf.Mode != wf.Mode || gf.Deleted != wf.Deleted || !bytes.Equal(gf.Content, wf.Content) {
			return fmt.Sprintf("files[%d]\n got %q %q %v %q\nwant %q %q %v %q", i,
				gf.Path, gf.Mode, gf.Deleted, gf.Content, wf.Path, wf.Mode, wf.Deleted, wf.Content)
		}
	}
	return ""
}

func randomRecording(rng *rand.Rand) *Recording {
	r := &Recording{
		Step:      randomName(rng, 1),
		Task:      randomName(rng, 0),
		Engine:    randomName(rng, 0),
		Model:     randomText(rng),
		Session:   randomName(rng, 0),
		TokensIn:  rng.Int64N(1 << 40),
		TokensOut: rng.Int64N(1000),
		Duration:  time.Duration(rng.Int64N(int64(3 * time.Hour))),
		Text:      string(randomContent(rng)),
	}
	if !utf8.ValidString(r.Model) {
		r.Model = ""
	}
	if rng.IntN(2) == 0 {
		r.CostKnown = true
		r.CostUSD = rng.Float64() * float64(rng.IntN(100))
	}
	for range rng.IntN(6) {
		f := FileChange{Path: randomPath(rng)}
		switch rng.IntN(4) {
		case 0:
			f.Deleted = true
		case 1:
			f.Mode = []string{"0755", "0644", "0600"}[rng.IntN(3)]
			fallthrough
		default:
			f.Content = randomContent(rng)
		}
		r.Files = append(r.Files, f)
	}
	return r
}

// randomName returns a valid UTF-8 string of at least min runes, often
// made of characters YAML gives a meaning to.
func randomName(rng *rand.Rand, min int) string {
	alphabet := []rune("abcT1-_. :#&*!|>'\"%@`{}[],?\\\t\n\r\x00\x1bé✓\u2028\u0085\ufeff")
	var b strings.Builder
	for n := min + rng.IntN(8); b.Len() < n; {
		b.WriteRune(alphabet[rng.IntN(len(alphabet))])
	}
	switch rng.IntN(8) {
	case 0:
		return []string{"true", "null", "~", "123", "0x1f", "1e3", "-", "yes"}[rng.IntN(8)]
	case 1:
		return " " + b.String() + " "
	}
	return b.String()
}

func randomPath(rng *rand.Rand) string {
	var els []string
	for range 1 + rng.IntN(3) {
		el := strings.NewReplacer("/", "", "\x00", "").Replace(randomName(rng, 1))
		if el == "" || el == "." || el == ".." || strings.EqualFold(el, ".git") {
			el = "x" + el
		}
		els = append(els, el)
	}
	return strings.Join(els, "/")
}

func randomText(rng *rand.Rand) string {
	lines := []string{"", "plain", "  indented", "\ttabbed", "trailing  ", "# comment", "- item", "key: value", "---", "...", "é✓ unicode", "\r", "|", ">"}
	var b strings.Builder
	for range rng.IntN(6) {
		b.WriteString(lines[rng.IntN(len(lines))])
		if rng.IntN(5) > 0 {
			b.WriteString([]string{"\n", "\r\n", "\n\n"}[rng.IntN(3)])
		}
	}
	return b.String()
}

func randomContent(rng *rand.Rand) []byte {
	switch rng.IntN(4) {
	case 0: // arbitrary bytes
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	case 1:
		return []byte(randomName(rng, 0))
	default:
		return []byte(randomText(rng))
	}
}
