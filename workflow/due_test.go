package workflow

import (
	"maps"
	"testing"
	"testing/fstest"
)

func TestDueSteps(t *testing.T) {
	// exampleFS: architecture -> plan -> implement (foreach plan.md) ->
	// review, fmt. Its plan has T1 done, T2 and T3 to do.
	allDone := "- [x] T1: a\n- [x] T2: b\n"
	fp := map[string]string{"architecture": "fa", "plan": "fp", "implement": "fi", "review": "fr", "fmt": "ff"}
	ran := func(seqs ...int64) map[string]Record {
		ids := []string{"architecture", "plan", "implement", "review", "fmt"}
		recs := map[string]Record{}
		for i, seq := range seqs {
			if seq > 0 {
				recs[ids[i]] = Record{Fingerprint: fp[ids[i]], Seq: seq}
			}
		}
		return recs
	}
	tests := []struct {
		name string
		plan *string // nil: no plan file
		fps  map[string]string
		recs map[string]Record
		want map[string]Reason
	}{
		{
			name: "fresh repository",
			recs: nil,
			want: map[string]Reason{
				"architecture": "never ran", "plan": "never ran", "implement": "waits for plan",
				"review": "never ran", "fmt": "never ran",
			},
		},
		{
			name: "plan written, tasks to do",
			plan: new("- [x] T1: a\n- [ ] T2: b (after: T1)\n- [ ] T3: c\n"),
			recs: ran(1, 2, 0, 0, 0),
			want: map[string]Reason{"implement": "2 tasks to do", "review": "never ran", "fmt": "never ran"},
		},
		{
			name: "one task to do",
			plan: new("- [x] T1: a\n- [ ] T2: b\n"),
			recs: ran(1, 2, 3, 4, 5),
			want: map[string]Reason{"implement": "1 task to do", "review": "waits for implement", "fmt": "waits for implement"},
		},
		{
			name: "everything done",
			plan: new(allDone),
			recs: ran(1, 2, 3, 4, 5),
			want: map[string]Reason{},
		},
		{
			name: "spec edited: architecture changed, the rest waits",
			plan: new(allDone),
			fps:  map[string]string{"architecture": "fa2", "plan": "fp2"},
			recs: ran(1, 2, 3, 4, 5),
			// implement cannot know yet whether plan will add
			// tasks, so it and its downstream steps wait too.
			want: map[string]Reason{
				"architecture": "inputs or definition changed", "plan": "waits for architecture",
				"implement": "waits for plan", "review": "waits for implement", "fmt": "waits for implement",
			},
		},
		{
			name: "upstream ran since",
			plan: new(allDone),
			recs: ran(6, 2, 3, 4, 5),
			want: map[string]Reason{
				"plan": "architecture ran since", "implement": "waits for plan",
				"review": "waits for implement", "fmt": "waits for implement",
			},
		},
		{
			name: "implement landed a task after review ran",
			plan: new(allDone),
			recs: ran(1, 2, 7, 4, 5),
			want: map[string]Reason{"review": "implement ran since", "fmt": "implement ran since"},
		},
		{
			name: "a missing fingerprint counts as changed",
			plan: new(allDone),
			fps:  map[string]string{"fmt": ""},
			recs: ran(1, 2, 3, 4, 5),
			want: map[string]Reason{"fmt": "inputs or definition changed"},
		},
		{
			name: "plan not written yet",
			recs: ran(1, 2, 0, 0, 0),
			want: map[string]Reason{"implement": ".codemachine/plan.md not written yet", "review": "never ran", "fmt": "never ran"},
		},
		{
			name: "broken plan",
			plan: new("- [ ] T1: a\n- [ ] T1: b\n"),
			recs: ran(1, 2, 3, 4, 5),
			want: map[string]Reason{"implement": "plan has errors", "review": "waits for implement", "fmt": "waits for implement"},
		},
		{
			name: "foreach waits for its upstream before counting tasks",
			plan: new("- [ ] T1: a\n"),
			fps:  map[string]string{"plan": "changed"},
			recs: ran(1, 2, 3, 4, 5),
			want: map[string]Reason{"plan": "inputs or definition changed", "implement": "waits for plan", "review": "waits for implement", "fmt": "waits for implement"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := exampleFS()
			delete(fsys, ".codemachine/plan.md")
			if tt.plan != nil {
				fsys[".codemachine/plan.md"] = &fstest.MapFile{Data: []byte(*tt.plan)}
			}
			p, err := LoadProject(fsys, testEngines)
			if err != nil {
				t.Fatal(err)
			}
			fps := maps.Clone(fp)
			for id, v := range tt.fps {
				if v == "" {
					delete(fps, id)
				} else {
					fps[id] = v
				}
			}
			got := DueSteps(p, fps, tt.recs)
			if !maps.Equal(got, tt.want) {
				t.Errorf("DueSteps:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

// TestDueStepsWithoutGraph covers a Project assembled by hand.
func TestDueStepsWithoutGraph(t *testing.T) {
	w, err := ParseWorkflow("w.yaml", []byte("version: 1\nsteps:\n  - {id: a, run: x, outputs: [a.txt]}\n  - {id: b, run: x, inputs: [a.txt]}\n"), testEngines)
	if err != nil {
		t.Fatal(err)
	}
	p := &Project{Workflow: w}
	got := DueSteps(p, map[string]string{"a": "1", "b": "2"}, map[string]Record{"b": {Fingerprint: "2", Seq: 1}})
	want := map[string]Reason{"a": "never ran", "b": "waits for a"}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestMissingOutput(t *testing.T) {
	fsys := fstest.MapFS{"a.txt": {Data: []byte("a")}, "out/x.go": {Data: []byte("x")}, "dir/f": {Data: []byte("f")}}
	for _, tc := range []struct {
		outputs []string
		foreach string
		want    string
	}{
		{[]string{"a.txt", "out/*.go"}, "", ""},
		{[]string{"a.txt", "b.txt"}, "", "b.txt"},
		{[]string{"out/*.md"}, "", "out/*.md"},
		{[]string{"out/**"}, "", ""},
		{[]string{"dir"}, "", "dir"}, // a directory is not the file the step made
		{[]string{"gone.txt"}, "plan.md", ""},
	} {
		s := &Step{ID: "s", Outputs: tc.outputs, Foreach: tc.foreach}
		if got := MissingOutput(fsys, s); got != tc.want {
			t.Errorf("MissingOutput(%v, foreach %q) = %q, want %q", tc.outputs, tc.foreach, got, tc.want)
		}
	}
	w, err := ParseWorkflow("w.yaml", []byte("version: 1\nsteps:\n  - {id: a, run: x, outputs: [a.txt]}\n  - {id: b, run: x, needs: [a]}\n"), testEngines)
	if err != nil {
		t.Fatal(err)
	}
	got := DueSteps(&Project{Workflow: w}, map[string]string{"a": "1", "b": "2"},
		map[string]Record{"a": {Fingerprint: "1", Seq: 1, Gone: "a.txt"}, "b": {Fingerprint: "2", Seq: 2}})
	if want := (map[string]Reason{"a": "output a.txt is gone", "b": "waits for a"}); !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
