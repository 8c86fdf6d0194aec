package main

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"
)

// TestTable: columns line up in terminal columns whatever their cells
// hold (colors, CJK characters, emoji), two spaces apart, and no line
// ends in spaces.
func TestTable(t *testing.T) {
	var tab table
	tab.add("STEP", "\x1b[01mSTATE\x1b[0m", "NOTE")
	tab.add("  src/文件名字.txt", "\x1b[32mdone\x1b[0m", "src/文件名字.txt")
	tab.add("  src/🚀.txt", "\x1b[33mheld\x1b[0m", "")
	tab.add("plain", "due", "never ran")
	want := "STEP                STATE  NOTE\n" +
		"  src/文件名字.txt  done   src/文件名字.txt\n" +
		"  src/🚀.txt        held\n" +
		"plain               due    never ran\n"
	got := string(tab.bytes())
	for _, code := range []string{"\x1b[01m", "\x1b[32m", "\x1b[33m", "\x1b[0m"} {
		got = strings.ReplaceAll(got, code, "")
	}
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

// TestCellWidth: the printable-ASCII shortcut counts as ansi.StringWidth
// does, and whatever else a cell holds goes to it.
func TestCellWidth(t *testing.T) {
	for _, c := range []string{"", "s001", "done  ", "~!@#$%^&*()_+`{}|[]\\:\";'<>?,./ ", "a\x7fb", "\x1b[32mdone\x1b[0m",
		"—", "文件", "🚀x", "e\u0301", "tab\there", "\x00"} {
		if got, want := cellWidth(c), ansi.StringWidth(c); got != want {
			t.Errorf("cellWidth(%q) = %d, ansi.StringWidth %d", c, got, want)
		}
	}
}
