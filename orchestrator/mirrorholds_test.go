package orchestrator

import (
	"slices"
	"testing"
)

// TestMirrorInto: a clone's holds follow the workers' remote's: a remote
// hold the clone lacks is added, one mirrored before whose remote hold is
// gone (lifted there) or replaced is removed or replaced, and a hold made
// in the clone itself stays, also where the remote holds the same unit
// with the same fingerprint.
func TestMirrorInto(t *testing.T) {
	local := map[string]Hold{
		"build/T1": {Fingerprint: "a", Commit: "c1"},               // made here
		"build/T2": {Fingerprint: "b", Commit: "c2", Remote: "r2"}, // mirrored, lifted on the remote
		"build/T3": {Fingerprint: "c", Commit: "c3", Remote: "r3"}, // mirrored, still there
		"build/T4": {Fingerprint: "d", Commit: "c4", Remote: "r4"}, // mirrored, replaced there
		"build/T5": {Fingerprint: "e", Commit: "c5"},               // made here, held there too
	}
	remote := map[string]Hold{
		"build/T3": {Fingerprint: "c", Commit: "c3", Remote: "r3"},
		"build/T4": {Fingerprint: "d2", Commit: "c4", Remote: "r4b"},
		"build/T5": {Fingerprint: "e", Commit: "c5", Remote: "r5"},
		"build/T6": {Fingerprint: "f", Commit: "c6", Remote: "r6"},
	}
	added, changed := mirrorInto(local, remote)
	if !changed || !slices.Equal(added, []string{"build/T4", "build/T6"}) {
		t.Fatalf("added %v (changed %v), want [build/T4 build/T6]", added, changed)
	}
	want := map[string]string{"build/T1": "", "build/T3": "r3", "build/T4": "r4b", "build/T5": "", "build/T6": "r6"}
	if len(local) != len(want) {
		t.Fatalf("holds %v, want the keys of %v", local, want)
	}
	for key, r := range want {
		if h, ok := local[key]; !ok || h.Remote != r {
			t.Errorf("%s: %+v, want remote %q", key, h, r)
		}
	}
	if added, changed := mirrorInto(local, remote); changed || len(added) > 0 {
		t.Errorf("a second mirror changed %v", added)
	}
}
