package orchestrator

import (
	"testing"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// TestContentCache: contents put are found by name and bytes (the same
// bytes under another name are another file), and the cache stays bounded,
// the oldest going first.
func TestContentCache(t *testing.T) {
	var c contentCache[int]
	data := func(i int) []byte { return []byte{byte(i)} }
	for i := range contentCacheSize + 2 {
		c.put("a", data(i), i)
	}
	if len(c.m) != contentCacheSize || len(c.order) != contentCacheSize {
		t.Fatalf("cache holds %d (%d in order), want %d", len(c.m), len(c.order), contentCacheSize)
	}
	for i := range contentCacheSize + 2 {
		v, ok := c.get("a", data(i))
		switch {
		case i < 2 && ok:
			t.Errorf("%d was not evicted", i)
		case i >= 2 && (!ok || v != i):
			t.Errorf("%d: got %d, %v", i, v, ok)
		}
	}
	if _, ok := c.get("b", data(5)); ok {
		t.Error("the same bytes under another name were found")
	}
}

// TestLoadStateRemembersWhatItWrote reads back, from a commit, the state
// that marshalState wrote, and gets the very state it marshalled; another
// orchestrator parses the same bytes to an equal state.
func TestLoadStateRemembersWhatItWrote(t *testing.T) {
	s := &gitstate.State{Version: gitstate.StateVersion, Seq: 7, Steps: map[string]*gitstate.StepRecord{
		"build": {RunRecord: gitstate.RunRecord{Fingerprint: "abc", Seq: 7, Engine: "shell"}},
	}}
	dir := newRepo(t, map[string]string{workflow.StateFile: string(s.Marshal())})
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

// TestTickUsesLoadedPlans: a plan loaded with a snapshot is ticked without
// parsing it again, and the result is tickTask's.
func TestTickUsesLoadedPlans(t *testing.T) {
	plan := genPlan(3, nil)
	dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": taskWorkflow(1), planFile: plan})
	o := newTestOrchestrator(t, dir, fakeEngine{}, nil)
	snap, err := o.load("HEAD", Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	cached, ok := o.plans.get(planFile, []byte(plan))
	if !ok || cached != snap.project.Plans[planFile] {
		t.Fatal("the loaded plan is not remembered")
	}
	got, ok := o.tick(planFile, []byte(plan), genID(2))
	want, wantOK := tickTask(planFile, []byte(plan), genID(2))
	if !ok || !wantOK || string(got) != string(want) {
		t.Errorf("tick = %q, %v; tickTask = %q, %v", got, ok, want, wantOK)
	}
	if string(cached.Data) != plan {
		t.Error("ticking changed the remembered plan")
	}
	if _, ok := o.tick(planFile, want, genID(2)); ok {
		t.Error("a ticked box was ticked again")
	}
}
