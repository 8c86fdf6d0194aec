package orchestrator

import (
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/internal/testenv"
	"github.com/codemachine/codemachine/workflow"
)

// TestStateCacheByBlobID: a state.yaml of stateCacheMin or more, once
// parsed, is kept on disk by its blob id, and a new process's orchestrator
// (status, the start of a run) reads it from there as the same state; a
// state of another content is parsed, not taken from the cache.
func TestStateCacheByBlobID(t *testing.T) {
	st := &gitstate.State{Version: gitstate.StateVersion, Seq: 40, Steps: map[string]*gitstate.StepRecord{}}
	for i := 0; i < 40; i++ {
		st.Steps[fmt.Sprintf("s%02d", i)] = &gitstate.StepRecord{RunRecord: gitstate.RunRecord{
			Fingerprint: fmt.Sprintf("%064d", i), Seq: int64(i + 1), FinishedAt: time.Date(2026, 12, 6, 0, 0, i, 0, time.UTC),
			Engine: "claude", Model: "m", Attempts: 1, TokensIn: int64(1000 * i), TokensOut: 10, CostUSD: 0.01 * float64(i), CostKnown: true}}
	}
	data := st.Marshal()
	if len(data) < stateCacheMin {
		t.Fatalf("the test's state is %d bytes, under stateCacheMin (%d)", len(data), stateCacheMin)
	}
	dir := newRepo(t, map[string]string{workflow.StateFile: string(data)})
	head := testenv.Git(t, dir, "rev-parse", "HEAD")
	want, err := gitstate.ParseState(workflow.StateFile, data)
	if err != nil {
		t.Fatal(err)
	}

	o := newTestOrchestrator(t, dir, nil, nil)
	o.repo.LocalDir() // a repository codemachine works in keeps its caches
	got, err := o.loadState(head)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parsed: %+v, %v", got, err)
	}
	if _, err := os.Stat(o.stateCacheFile()); err != nil {
		t.Fatalf("no state cache written: %v", err)
	}

	second := newTestOrchestrator(t, dir, nil, nil)
	first := head
	id := second.stateBlobID(head, nil)
	if id != testenv.Git(t, dir, "rev-parse", head+":"+workflow.StateFile) {
		t.Fatalf("blob id %q is not git's", id)
	}
	cached := second.cachedState(id)
	if cached == nil || !reflect.DeepEqual(cached, want) {
		t.Fatalf("from the cache: %+v, want %+v", cached, want)
	}

	// Another state at the tip: parsed, not the cached one.
	st.Steps["s00"].TokensIn = 7
	if err := os.WriteFile(dir+"/"+workflow.StateFile, st.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, dir, "commit", "-qam", "another state")
	first, head = head, testenv.Git(t, dir, "rev-parse", "HEAD")
	// The blob id is read from the commit's TreeFS when the caller has
	// one (a load does: its trees are not read again).
	tree, err := second.repo.TreeFS(head)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := second.stateBlobID(first, tree), testenv.Git(t, dir, "rev-parse", head+":"+workflow.StateFile); got != want {
		t.Fatalf("blob id from the given tree: %q, want %q", got, want)
	}
	third := newTestOrchestrator(t, dir, nil, nil)
	got, err = third.loadState(head)
	if err != nil || got.Steps["s00"].TokensIn != 7 {
		t.Fatalf("after a change: %+v, %v", got, err)
	}
}
