package orchestrator

import "testing"

// TestStepFailedError: the failed steps read as a list, not as Go prints
// a slice.
func TestStepFailedError(t *testing.T) {
	for _, c := range []struct {
		failed []string
		want   string
	}{
		{[]string{"build"}, "step build failed"},
		{[]string{"build", "lint"}, "2 steps failed: build, lint"},
		{[]string{"each/src/a.txt"}, "1 task of step each failed: each/src/a.txt"},
		{[]string{"conv/a", "conv/b", "conv/c"}, "3 tasks of step conv failed: conv/a, conv/b, conv/c"},
		{[]string{"build", "each/src/a.txt"}, "1 step and 1 task of step each failed: build, each/src/a.txt"},
		{[]string{"a/1", "build", "b/1", "a/2"}, "1 step, 2 tasks of step a and 1 task of step b failed: a/1, build, b/1, a/2"},
	} {
		if got := (&StepFailedError{Failed: c.failed}).Error(); got != c.want {
			t.Errorf("%q: %q, want %q", c.failed, got, c.want)
		}
	}
}
