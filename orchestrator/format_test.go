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

// TestPrintable: what a command or an agent printed shows as text, without
// the escape sequences and control characters that would drive the
// terminal it is shown on; newlines, tabs and other text stay.
func TestPrintable(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text, ünïcode 🚀 任务", "plain text, ünïcode 🚀 任务"},
		{"two\nlines\tand a tab", "two\nlines\tand a tab"},
		{"\x1b[31mred\x1b[0m text", "red text"},
		{"before\x1b[2J\x1b[Hafter", "beforeafter"},
		{"title \x1b]0;HIJACK\x07 done", "title  done"},
		{"link \x1b]8;;http://x\x1b\\text\x1b]8;;\x1b\\ end", "link text end"},
		{"dcs \x1bPq#0;2;0;0;0\x1b\\ end", "dcs  end"},
		{"keypad \x1b= mode", "keypad  mode"},
		{"bell\a back\b\b cr\r del\x7f nul\x00", "bell back cr del nul"},
		{"c1 csi \u009b31m and \u0085 next line", "c1 csi 31m and  next line"},
		{"cut at the end \x1b[", "cut at the end "},
		{"cut osc \x1b]0;never ends", "cut osc "},
		{"lone \x1b", "lone "},
	} {
		if got := printable(c.in); got != c.want {
			t.Errorf("printable(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := headline("shell: command exited with status 1: \x1b[31mboom\x1b[0m"); got != "shell: command exited with status 1: boom" {
		t.Errorf("headline of a colored failure = %q", got)
	}
}
