package workflow

import (
	"strings"
	"testing"
)

// A step's sandbox mode overrides the workflow's, which overrides auto;
// writable paths add up.
func TestSandboxFor(t *testing.T) {
	w, err := ParseWorkflow("w.yaml", []byte(`version: 1
sandbox: {mode: required, writable: [~/.cache/go-build]}
steps:
  - id: a
    run: echo a
  - id: b
    run: echo b
    sandbox: off
  - id: c
    run: echo c
    sandbox: {writable: [.cache]}
`), testEngines)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ step, mode, writable, pos string }{
		{"a", "required", "~/.cache/go-build", "w.yaml:2:10"},
		{"b", "off", "~/.cache/go-build", "w.yaml:8:14"},
		{"c", "required", "~/.cache/go-build .cache", "w.yaml:2:10"},
	} {
		var s *Step
		for _, st := range w.Steps {
			if st.ID == tt.step {
				s = st
			}
		}
		got := w.SandboxFor(s)
		if got.Mode != tt.mode || strings.Join(got.Writable, " ") != tt.writable || got.Pos.String() != tt.pos {
			t.Errorf("%s: %+v, want mode %s writable %q at %s", tt.step, got, tt.mode, tt.writable, tt.pos)
		}
	}
	plain, err := ParseWorkflow("w.yaml", []byte("version: 1\nsteps:\n  - id: a\n    run: echo\n"), testEngines)
	if err != nil {
		t.Fatal(err)
	}
	if got := plain.SandboxFor(plain.Steps[0]); got.Mode != SandboxAuto || got.Pos.Line != 0 {
		t.Errorf("default = %+v, want auto from nowhere", got)
	}
}

// TestCheckWritable: what a run's check of the resolved path would refuse
// (exit 2, with no position) is refused by validate at the path's place
// when the text already tells: your home, the repository, a directory
// holding it, its .git, .codemachine. Paths beside them stay allowed.
func TestCheckWritable(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/", "would make everything writable"},
		{"~", "would make everything writable"},
		{"~/", "is your home"},
		{"~/cache/..", "is your home"},
		{".", "is the repository:"},
		{"./", "is the repository:"},
		{"src/..", "is the repository:"},
		{"..", "holds the repository"},
		{"../..", "holds the repository"},
		{".git", "is the repository's git directory"},
		{".codemachine", "lies inside .codemachine"},
		{"./.codemachine/cache", "lies inside .codemachine"},
		{"~bob/x", "names another user's home"},
		{"~/.cache/go-build", ""},
		{"$GOCACHE", ""},
		{".cache", ""},
		{"...", ""},
		{"../cache", ""},
		{"target", ""},
		{"/var/cache/ccache", ""},
	}
	for _, tt := range tests {
		got := checkWritable(tt.path)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("checkWritable(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}
