package gitstate

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func sampleState() *State {
	at := time.Date(2026, 11, 24, 10, 15, 0, 0, time.UTC)
	return &State{Version: 1, Seq: 7, Steps: map[string]*StepRecord{
		"plan": {RunRecord: RunRecord{Fingerprint: "9f2c", Seq: 2, FinishedAt: at, Engine: "claude", Model: "sonnet",
			Attempts: 1, TokensIn: 9000, TokensOut: 900, CostUSD: 0.05, CostKnown: true, Duration: 41 * time.Second}},
		"architecture": {RunRecord: RunRecord{Fingerprint: "a1b2", Seq: 1, FinishedAt: at.Add(-time.Hour), Engine: "claude", Model: "opus",
			Attempts: 2, TokensIn: 15000, TokensOut: 3200, CostUSD: 0.21, CostKnown: true, Duration: 72 * time.Second}},
		"implement": {
			RunRecord: RunRecord{Fingerprint: "c3d4", Seq: 7, FinishedAt: at.Add(time.Hour), Engine: "codex", Model: "gpt-5",
				Attempts: 1, TokensIn: 31000, Duration: 2*time.Minute + 3*time.Second},
			Tasks: map[string]*RunRecord{
				"T2": {Fingerprint: "e5", Seq: 7, FinishedAt: at.Add(time.Hour), Engine: "codex", Model: "gpt-5", Attempts: 1, TokensIn: 31000, Duration: 123 * time.Second},
				"T1": {Fingerprint: "f6", Seq: 6, FinishedAt: at.Add(30 * time.Minute), Engine: "shell", Attempts: 3, Duration: 1500 * time.Millisecond},
				// Ids that YAML would read as other types must stay strings.
				"yes":  {Fingerprint: "00", Seq: 5, Engine: "shell"},
				"1e3":  {Fingerprint: "01", Seq: 4, Engine: "shell"},
				"null": {Fingerprint: "02", Seq: 3, Engine: "shell"},
			},
		},
	}}
}

func TestStateMarshalGolden(t *testing.T) {
	got := sampleState().Marshal()
	golden := filepath.Join("testdata", "state.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Marshal differs from %s (run go test -update):\n%s", golden, got)
	}
	if !bytes.HasPrefix(got, []byte(StateHeader+"\n")) {
		t.Error("no header comment")
	}
	if !bytes.Equal(sampleState().Marshal(), got) {
		t.Error("Marshal is not deterministic")
	}
}

func TestStateRoundTrip(t *testing.T) {
	for _, s := range []*State{sampleState(), NewState(), {Version: 1, Seq: 1, Steps: map[string]*StepRecord{"x": {}}}} {
		got, err := ParseState("state.yaml", s.Marshal())
		if err != nil {
			t.Fatalf("parse of %s: %v", s.Marshal(), err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("round trip:\n%+v\nwant\n%+v", got, s)
		}
	}
}

func TestParseStateEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", "# just a comment\n", "~\n"} {
		s, err := ParseState("state.yaml", []byte(in))
		if err != nil || !reflect.DeepEqual(s, NewState()) {
			t.Errorf("ParseState(%q) = %+v, %v; want an empty state", in, s, err)
		}
	}
}

func TestParseStateErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"not a mapping", "- a\n", "s.yaml:1:1: state must be a mapping, found a list"},
		{"newer version", "version: 2\n", "s.yaml:1:10: written by a newer codemachine (state version 2, this one reads 1); upgrade codemachine"},
		{"zero version", "version: 0\n", "s.yaml:1:10: version must be 1, found 0"},
		{"missing version", "seq: 1\n", "s.yaml:1:1: missing version"},
		{"unknown top key", "version: 1\nsteps: {}\nstpes: {}\n", `s.yaml:3:1: unknown key "stpes" (expected version, seq, uses or steps)`},
		{"wrong type", "version: 1\nseq: many\n", `s.yaml:2:6: seq must be a whole number, found "many"`},
		{"quoted number", "version: 1\nseq: \"3\"\n", `s.yaml:2:6: seq must be a whole number, found "3"`},
		{"seq past an int64", "version: 1\nseq: 99999999999999999999999\n", `s.yaml:2:6: seq must be a whole number from 0 to 9223372036854775807, found 99999999999999999999999`},
		{"negative", "version: 1\nsteps:\n  a:\n    tokens_in: -5\n", `s.yaml:4:16: tokens_in must not be negative, found -5`},
		{"unknown step key", "version: 1\nsteps:\n  plan:\n    fingerprnt: x\n", `s.yaml:4:5: step "plan": unknown key "fingerprnt"`},
		{"bad time", "version: 1\nsteps:\n  plan:\n    finished_at: yesterday\n", `s.yaml:4:18: finished_at: "yesterday" is not an RFC 3339 time (like 2026-11-24T10:15:00Z)`},
		{"bad duration", "version: 1\nsteps:\n  plan:\n    duration: 5 minutes\n", `s.yaml:4:15: duration: "5 minutes" is not a duration (like 1m12s)`},
		{"bad cost", "version: 1\nsteps:\n  plan:\n    cost_usd: .nan\n", `s.yaml:4:15: cost_usd must be a number, found ".nan"`},
		{"step not a mapping", "version: 1\nsteps:\n  plan: done\n", `s.yaml:3:9: step "plan" must be a mapping, found "done"`},
		{"steps a list", "version: 1\nsteps:\n  - plan\n", `s.yaml:3:3: steps must be a mapping, found a list`},
		{"duplicate step", "version: 1\nsteps:\n  a: {}\n  a: {}\n", `s.yaml:4:3: steps: duplicate key "a"`},
		{"nested tasks", "version: 1\nsteps:\n  a:\n    tasks:\n      T1:\n        tasks: {}\n", `s.yaml:6:9: task "T1": unknown key "tasks" (tasks do not nest)`},
		{"string expected", "version: 1\nsteps:\n  a:\n    engine: [x]\n", `s.yaml:4:13: engine must be a string, found a list`},
		{"null value", "version: 1\nsteps:\n  a:\n    model:\n", `s.yaml:4:11: model must be a string, found nothing`},
		{"output not JSON", "version: 1\nsteps:\n  review:\n    output: '{\"approved\": tru'\n", `s.yaml:4:13: output must be JSON (the step's structured output), found "{\"approved\": tru"`},
		{"output cut in a long value", "version: 1\nsteps:\n  a:\n    output: " + strings.Repeat("x", 100) + "\n", `s.yaml:4:13: output must be JSON (the step's structured output), found "` + strings.Repeat("x", 60) + `..."`},
		{"task output not JSON", "version: 1\nsteps:\n  a:\n    tasks:\n      T1:\n        output: not json\n", `s.yaml:6:17: output must be JSON (the step's structured output), found "not json"`},
		{"merge conflict", "version: 1\nseq: 4\nsteps:\n<<<<<<< HEAD\n  a:\n    seq: 3\n=======\n  a:\n    seq: 4\n>>>>>>> feature\n",
			"s.yaml:4:1: unresolved merge conflict: keep what the <<<<<<< ... >>>>>>> block should say, remove the markers and commit"},
		{"UTF-16 without BOM", "v\x00e\x00r\x00s\x00i\x00o\x00n\x00:\x00 \x001\x00\n\x00", "s.yaml:1:1: the file is UTF-16 without a byte-order mark: save it as UTF-8"},
		{"syntax", "version: 1\nsteps:\n  a: {\n", "s.yaml:3:6: did not find expected node content"},
		{"tab", "version: 1\n\tseq: 2\n", "s.yaml:2:1: found a tab character that violates indentation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseState("s.yaml", []byte(tt.in))
			var se *StateError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *StateError", err)
			}
			if err.Error() != tt.want {
				t.Errorf("err =\n%s\nwant\n%s", err, tt.want)
			}
		})
	}
}

// TestStateProblems: validate gets every problem of state.yaml at once, each
// where ParseState would stop at it, in file order; ParseState still ends
// at the first.
func TestStateProblems(t *testing.T) {
	in := "version: 1\nbogus: 1\nsteps:\n  a:\n    seq: x\n    duration: soon\n    tasks:\n      T1: {cost_usd: y}\n  a: {}\n  b: done\n"
	want := []string{
		`s.yaml:2:1: unknown key "bogus" (expected version, seq, uses or steps)`,
		`s.yaml:5:10: seq must be a whole number, found "x"`,
		`s.yaml:6:15: duration: "soon" is not a duration (like 1m12s)`,
		`s.yaml:8:22: cost_usd must be a number, found "y"`,
		`s.yaml:9:3: steps: duplicate key "a"`,
		`s.yaml:10:6: step "b" must be a mapping, found "done"`,
	}
	var got []string
	for _, err := range StateProblems("s.yaml", []byte(in)) {
		var se *StateError
		if !errors.As(err, &se) {
			t.Errorf("problem %v is not a *StateError", err)
		}
		got = append(got, err.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := ParseState("s.yaml", []byte(in)); err == nil || err.Error() != want[0] {
		t.Errorf("ParseState = %v, want the first problem", err)
	}
	if got := StateProblems("s.yaml", []byte("version: 1\nsteps: {}\n")); len(got) != 0 {
		t.Errorf("a good state has problems: %v", got)
	}
	if got := StateProblems("s.yaml", []byte("steps: {}\n")); len(got) != 1 || got[0].Error() != "s.yaml:1:1: missing version" {
		t.Errorf("missing version: %v", got)
	}
	// A version that is there but wrong is that problem alone, not also
	// a missing one.
	for in, want := range map[string]string{
		"version: 9\nsteps: {}\n": "s.yaml:1:10: written by a newer codemachine (state version 9, this one reads 1); upgrade codemachine",
		"version: x\nsteps: {}\n": `s.yaml:1:10: version must be a whole number, found "x"`,
	} {
		if got := StateProblems("s.yaml", []byte(in)); len(got) != 1 || got[0].Error() != want {
			t.Errorf("StateProblems(%q) = %v, want just %q", in, got, want)
		}
	}
}

// FuzzParseState checks that no input makes the parser panic and that what
// it accepts survives a Marshal round trip.
func FuzzParseState(f *testing.F) {
	f.Add(sampleState().Marshal())
	f.Add([]byte("version: 1\nsteps:\n  a:\n    tasks:\n      T1: {seq: 1}\n"))
	f.Add([]byte("version: 1\nsteps: &x {a: *x}\n"))
	f.Add([]byte("{version: 1, seq: 99999999999999999999}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseState("f.yaml", data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
			return
		}
		again, err := ParseState("f.yaml", s.Marshal())
		if err != nil {
			t.Fatalf("Marshal output does not parse: %v\n%s", err, s.Marshal())
		}
		if !bytes.Equal(again.Marshal(), s.Marshal()) {
			t.Errorf("Marshal is not stable:\n%s\n%s", s.Marshal(), again.Marshal())
		}
	})
}
