package orchestrator

import (
	"maps"
	"slices"
	"testing"
)

// TestAwaited: the units a worker of this clone would start now are the
// runnable ones: not a task whose after: task is not done, not one that
// failed here with its inputs, not a step whose needs are due.
func TestAwaited(t *testing.T) {
	wf := `version: 1
name: awaited
steps:
  - id: build
    run: fake
    foreach: ` + planFile + `
  - id: docs
    run: fake
    needs: [build]
`
	dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": wf,
		planFile: genPlan(4, func(i int) []int {
			if i == 2 {
				return []int{1}
			}
			return nil
		})})
	o := newTestOrchestrator(t, dir, fakeEngine{}, nil)
	head, err := o.Repo().Head()
	if err != nil {
		t.Fatal(err)
	}
	fps, err := o.DueFingerprints(head.Commit, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.updateFailures(func(m map[string]Failure) {
		m["build/T003"] = Failure{Fingerprint: fps["build/T003"], Error: "failed here"}
		m["build/T004"] = Failure{Fingerprint: "other inputs", Error: "failed here before"}
	}); err != nil {
		t.Fatal(err)
	}
	got, err := o.Awaited(head.Commit, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(maps.Keys(got))
	want := []string{"build/T001", "build/T004"}
	if !slices.Equal(keys, want) {
		t.Fatalf("awaited %v, want %v", keys, want)
	}
}
