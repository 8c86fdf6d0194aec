package orchestrator

import (
	"fmt"
	"testing"

	"github.com/codemachine/codemachine/gitstate"
)

// TestStateCache: a state marshalled by the orchestrator is not parsed
// again when read back, other contents are parsed once, and the cache
// stays bounded.
func TestStateCache(t *testing.T) {
	var c stateCache
	states := make([]*gitstate.State, stateCacheSize+2)
	data := make([][]byte, len(states))
	for i := range states {
		states[i] = &gitstate.State{Version: gitstate.StateVersion, Seq: int64(i), Steps: map[string]*gitstate.StepRecord{}}
		data[i] = states[i].Marshal()
		c.put(data[i], states[i])
	}
	if len(c.m) != stateCacheSize || len(c.order) != stateCacheSize {
		t.Fatalf("cache holds %d states (%d in order), want %d", len(c.m), len(c.order), stateCacheSize)
	}
	for i := range states {
		got := c.get(data[i])
		switch {
		case i < 2 && got != nil:
			t.Errorf("state %d was not evicted", i)
		case i >= 2 && got != states[i]:
			t.Errorf("state %d: got %v, want the remembered one", i, got)
		}
	}
	if c.get([]byte(fmt.Sprintf("%s\nseq: 99\n", gitstate.StateHeader))) != nil {
		t.Error("unknown content found in the cache")
	}
}

// TestLoadStateRemembersWhatItWrote reads back, from a commit, the state
// that marshalState wrote, and gets the very state it marshalled; another
// orchestrator parses the same bytes to an equal state.
func TestLoadStateRemembersWhatItWrote(t *testing.T) {
	s := &gitstate.State{Version: gitstate.StateVersion, Seq: 7, Steps: map[string]*gitstate.StepRecord{
		"build": {RunRecord: gitstate.RunRecord{Fingerprint: "abc", Seq: 7, Engine: "shell"}},
	}}
	dir := newRepo(t, map[string]string{".codemachine/state.yaml": string(s.Marshal())})
	o := newTestOrchestrator(t, dir, fakeEngine{}, nil)
	data := o.marshalState(s)
	got, err := o.loadState("HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if got != s {
		t.Error("loadState parsed a state it had written")
	}
	parsed, err := newTestOrchestrator(t, dir, fakeEngine{}, nil).loadState("HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if parsed == s || string(parsed.Marshal()) != string(data) {
		t.Error("parsing the written state does not give it back")
	}
}
