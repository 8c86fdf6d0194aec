package gitstate

import (
	"strings"
	"testing"
)

// TestStateUsesRoundTrip: the pins of uses: survive a write and a read,
// and both encoders write them the same.
func TestStateUsesRoundTrip(t *testing.T) {
	s := NewState()
	s.Seq = 3
	s.Uses = map[string]string{"https://example.com/flows.git@v1": strings.Repeat("ab", 20)}
	s.Steps["a"] = &StepRecord{RunRecord: RunRecord{Fingerprint: "fp", Seq: 3}}
	frag, ok := s.marshalFragments()
	if !ok {
		t.Fatal("fragments declined")
	}
	if tree := s.marshalTree(); string(frag) != string(tree) {
		t.Fatalf("fragments:\n%s\ntree:\n%s", frag, tree)
	}
	got, err := ParseState("state.yaml", frag)
	if err != nil {
		t.Fatal(err)
	}
	if got.Uses["https://example.com/flows.git@v1"] != s.Uses["https://example.com/flows.git@v1"] || len(got.Uses) != 1 {
		t.Fatalf("uses = %v", got.Uses)
	}
	for _, bad := range []string{"uses: {x@v1: main}\n", "uses: [a]\n"} {
		if _, err := ParseState("state.yaml", []byte("version: 1\nseq: 0\n"+bad+"steps: {}\n")); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
