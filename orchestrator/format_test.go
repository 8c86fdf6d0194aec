package orchestrator

import "testing"

// TestHeadline: a failure's note in status says what went wrong, also
// when its first line only introduces a list.
func TestHeadline(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"shell: timed out after 1s", "shell: timed out after 1s"},
		{"\n## check failed\nexit 1\n", "check failed"},
		{"attempt 2: the final answer does not match output_schema:\nat /level: got string, want integer",
			"attempt 2: the final answer does not match output_schema: at /level: got string, want integer"},
		{"does not match:\n  at /a: x\n  at /b: y", "does not match: at /a: x …"},
	} {
		if got := headline(c.in); got != c.want {
			t.Errorf("headline(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
