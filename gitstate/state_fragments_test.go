package gitstate

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// awkward are strings the YAML encoder quotes, escapes, writes as block
// scalars or as complex keys: a fragment must come out as it would in the
// whole document.
var awkward = []string{
	"", "T1", "yes", "No", "on", "null", "~", "1e3", "0x1F", "0o17", ".inf", "-.nan", "12", "1.5",
	"a: b", "- a", "#x", "x #y", "'q'", "\"dq\"", "@at", "`tick", "%pct", "!tag", "&anchor", "*alias",
	"{a}", "[a]", "a,b", " lead", "trail ", "tab\there", "line\nbreak", "multi\nline\ntext\n",
	"ünïcödé", "emoji 🚀", "claude-sonnet-4.5", "fake/fake-model", "gpt-5.5", "bad\xffutf8",
	strings.Repeat("k", 127), strings.Repeat("k", 129), strings.Repeat("long words ", 20),
}

func randomRecord(rnd *rand.Rand) *RunRecord {
	pick := func() string { return awkward[rnd.IntN(len(awkward))] }
	r := &RunRecord{
		Fingerprint: pick(), Seq: rnd.Int64N(1000), Engine: pick(), Model: pick(),
		Attempts: rnd.IntN(5), TokensIn: rnd.Int64N(1 << 40), TokensOut: rnd.Int64N(1 << 20),
		Duration: time.Duration(rnd.Int64N(int64(time.Hour))),
	}
	if rnd.IntN(3) > 0 {
		r.FinishedAt = time.Unix(rnd.Int64N(4e9), rnd.Int64N(1e9)).In(time.FixedZone("x", 3600*rnd.IntN(12)))
	}
	switch rnd.IntN(4) {
	case 1:
		r.CostKnown, r.CostUSD = true, rnd.Float64()*100
	case 2:
		r.CostKnown, r.CostUSD = true, math.Inf(1)
	case 3:
		r.CostKnown = true
	}
	return r
}

// TestMarshalFragmentsMatchTheEncoder: for random states full of awkward
// ids and values, the assembled document is the encoder's, byte for byte;
// where fragments cannot stand for it, Marshal uses the encoder.
func TestMarshalFragmentsMatchTheEncoder(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rnd := rand.New(rand.NewPCG(seed, seed))
	fallbacks := 0
	for i := range 300 {
		s := &State{Version: rnd.IntN(2), Seq: rnd.Int64N(1000), Steps: map[string]*StepRecord{}}
		for range rnd.IntN(4) {
			sr := &StepRecord{RunRecord: *randomRecord(rnd)}
			if rnd.IntN(2) == 0 {
				sr.Tasks = map[string]*RunRecord{}
				for range rnd.IntN(6) {
					tr := randomRecord(rnd)
					if rnd.IntN(10) == 0 {
						tr = nil
					}
					sr.Tasks[awkward[rnd.IntN(len(awkward))]] = tr
				}
			}
			s.Steps[awkward[rnd.IntN(len(awkward))]] = sr
		}
		want := s.marshalTree()
		got, ok := s.marshalFragments()
		if !ok {
			fallbacks++
			got = s.Marshal()
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %d, state %d: fragments differ from the encoder\n--- fragments\n%s\n--- encoder\n%s", seed, i, got, want)
		}
		if bytes.Equal(s.Marshal(), want) != true {
			t.Fatalf("seed %d, state %d: Marshal differs from the encoder", seed, i)
		}
	}
	if fallbacks == 300 {
		t.Error("fragments never used")
	}
	t.Logf("seed %d: %d of 300 states fell back to the encoder", seed, fallbacks)
}

// TestMarshalFragmentsOfAPlan: a state of the size a 500-task plan makes
// is assembled from fragments (the encoder is the slow path) and parses
// back to itself.
func TestMarshalFragmentsOfAPlan(t *testing.T) {
	s := NewState()
	sr := &StepRecord{RunRecord: RunRecord{Fingerprint: "ab", Engine: "shell"}, Tasks: map[string]*RunRecord{}}
	s.Steps["implement"] = sr
	for i := range 500 {
		sr.Tasks[fmt.Sprintf("T%03d", i)] = &RunRecord{Fingerprint: fmt.Sprintf("%064x", i), Seq: int64(i),
			FinishedAt: time.Date(2026, 1, 1, 0, 0, i%60, 0, time.UTC), Engine: "claude", Model: "sonnet", Attempts: 1}
	}
	got, ok := s.marshalFragments()
	if !ok || !bytes.Equal(got, s.marshalTree()) {
		t.Fatalf("fragments used %v, equal to the encoder %v", ok, bytes.Equal(got, s.marshalTree()))
	}
	back, err := ParseState("state.yaml", got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Marshal(), got) {
		t.Error("the state does not survive a round trip")
	}
}

func BenchmarkMarshal500Tasks(b *testing.B) {
	s := NewState()
	sr := &StepRecord{Tasks: map[string]*RunRecord{}}
	s.Steps["implement"] = sr
	for i := range 500 {
		sr.Tasks[fmt.Sprintf("T%03d", i)] = &RunRecord{Fingerprint: fmt.Sprintf("%064x", i), Seq: int64(i), Engine: "claude", Attempts: 1}
	}
	b.Run("fragments", func(b *testing.B) {
		for b.Loop() {
			s.Marshal()
		}
	})
	b.Run("encoder", func(b *testing.B) {
		for b.Loop() {
			s.marshalTree()
		}
	})
}
