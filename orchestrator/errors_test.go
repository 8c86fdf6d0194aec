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
		{[]string{"build", "each/src/a.txt"}, "2 steps failed: build, each/src/a.txt"},
	} {
		if got := (&StepFailedError{Failed: c.failed}).Error(); got != c.want {
			t.Errorf("%q: %q, want %q", c.failed, got, c.want)
		}
	}
}
