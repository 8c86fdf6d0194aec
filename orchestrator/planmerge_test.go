package orchestrator

import (
	"errors"
	"testing"
)

// TestMergePlans merges a task agent's plan edit into a tip where other
// tasks landed and the user steered: boxes never conflict, each keeps the
// tip's state unless the agent changed it, the task's own box is ticked,
// and overlapping text edits are a conflict.
func TestMergePlans(t *testing.T) {
	o := newTestOrchestrator(t, newRepo(t, map[string]string{"notes.txt": "notes\n"}), fakeEngine{}, nil)
	const base = "# Plan\n- [ ] T1: One\n- [ ] T2: Two\n- [ ] T3: Three\n- [x] T4: Four\n"
	tests := []struct {
		name      string
		tip, cand string // cand: the agent's edit of base, T2's box ticked
		want      string // "" = conflict
	}{{
		name: "a note under its task, the task above ticked meanwhile",
		tip:  "# Plan\n- [x] T1: One\n- [ ] T2: Two\n- [ ] T3: Three\n- [x] T4: Four\n",
		cand: "# Plan\n- [ ] T1: One\n- [x] T2: Two\n  A note.\n- [ ] T3: Three\n- [x] T4: Four\n",
		want: "# Plan\n- [x] T1: One\n- [x] T2: Two\n  A note.\n- [ ] T3: Three\n- [x] T4: Four\n",
	}, {
		name: "neighbours on both sides ticked, the one below unchecked by the user",
		tip:  "# Plan\n- [x] T1: One\n- [ ] T2: Two\n- [x] T3: Three\n- [ ] T4: Four\n",
		cand: "# Plan\n- [ ] T1: One\n- [x] T2: Two\n  A note.\n- [ ] T3: Three\n- [x] T4: Four\n",
		want: "# Plan\n- [x] T1: One\n- [x] T2: Two\n  A note.\n- [x] T3: Three\n- [ ] T4: Four\n",
	}, {
		name: "the agent ticks another box: its change stands",
		tip:  "# Plan\n- [x] T1: One\n- [ ] T2: Two\n- [ ] T3: Three\n- [x] T4: Four\n",
		cand: "# Plan\n- [ ] T1: One\n- [x] T2: Two\n- [x] T3: Three\n- [x] T4: Four\n",
		want: "# Plan\n- [x] T1: One\n- [x] T2: Two\n- [x] T3: Three\n- [x] T4: Four\n",
	}, {
		name: "the user rewords and adds tasks, the agent adds one",
		tip:  "# Plan\n- [ ] T1: One, reworded\n- [ ] T2: Two\n- [ ] T3: Three\n- [x] T4: Four\n- [ ] T5: Five\n",
		cand: "# Plan\n- [ ] T1: One\n- [x] T2: Two\n- [ ] T2b: Found while doing T2\n- [ ] T3: Three\n- [x] T4: Four\n",
		want: "# Plan\n- [ ] T1: One, reworded\n- [x] T2: Two\n- [ ] T2b: Found while doing T2\n- [ ] T3: Three\n- [x] T4: Four\n- [ ] T5: Five\n",
	}, {
		name: "the agent and the user reword the same task",
		tip:  "# Plan\n- [ ] T1: One\n- [ ] T2: Two, as the user says\n- [ ] T3: Three\n- [x] T4: Four\n",
		cand: "# Plan\n- [ ] T1: One\n- [x] T2: Two, as the agent says\n- [ ] T3: Three\n- [x] T4: Four\n",
	}, {
		name: "the tip's plan does not parse",
		tip:  "# Plan\n- [ ] T1: One\n- [ ] T1: One again\n",
		cand: "# Plan\n- [ ] T1: One\n- [x] T2: Two\n  A note.\n- [ ] T3: Three\n- [x] T4: Four\n",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := o.mergePlans(t.Context(), planFile, "T2", []byte(base), []byte(tc.tip), []byte(tc.cand))
			if tc.want == "" {
				if !errors.Is(err, errPlanConflict) {
					t.Fatalf("merge = %q, %v; want a conflict", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("merged plan:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}
