package orchestrator

import (
	"slices"
	"testing"
	"testing/fstest"

	"github.com/codemachine/codemachine/gitstate"
)

func TestBareRepoAt(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	base := fstest.MapFS{
		"r/objects/info/.keep":  file(""),
		"r/refs/heads/.keep":    file(""),
		"noref/objects/x":       file(""),
		"noref/HEAD":            file("ref: refs/heads/main\n"),
		"text/objects/x":        file(""),
		"text/refs/x":           file(""),
		"text/HEAD":             file("the head of the project\n"),
		"detached/objects/x":    file(""),
		"detached/refs/x":       file(""),
		"detached/HEAD":         file("0123456789abcdef0123456789abcdef01234567\n"),
		"symref/objects/x":      file(""),
		"symref/refs/x":         file(""),
		"symref/HEAD":           file("ref: refs/heads/main\n"),
		"otherref/objects/x":    file(""),
		"otherref/refs/x":       file(""),
		"otherref/HEAD":         file("ref: heads/main\n"),
		"r/HEAD":                file("ref: refs/heads/main\n"),
		"r/config":              file("[core]\n"),
		"plain/objects/README":  file(""),
		"plain/refs/README.txt": file(""),
	}
	tests := []struct {
		dir  string
		want bool
	}{
		{"r", true},
		{"symref", true},
		{"detached", true},
		{"noref", false},    // no refs/
		{"text", false},     // a HEAD git does not take for one
		{"otherref", false}, // a symbolic ref outside refs/
		{"plain", false},    // no HEAD
		{"missing", false},
	}
	for _, tt := range tests {
		if got := bareRepoAt(base, tt.dir); got != tt.want {
			t.Errorf("bareRepoAt(%s) = %v, want %v", tt.dir, got, tt.want)
		}
	}
}

func TestBareRepoCandidates(t *testing.T) {
	changes := []gitstate.Change{
		{Status: 'A', Path: "a/HEAD"},
		{Status: 'A', Path: "a/objects/info/.keep"},
		{Status: 'M', Path: "b/c/config"},
		{Status: 'A', Path: "d/refs/heads/main"},
		{Status: 'D', Path: "e/HEAD"},
		{Status: 'A', Path: "HEAD"},               // the root is the repository's own
		{Status: 'A', Path: "f/objects"},          // a file named objects
		{Status: 'A', Path: "g/HEAD/x"},           // a directory named HEAD
		{Status: 'A', Path: "src/config/app.yml"}, // a directory named config
	}
	want := []string{"a", "b/c", "d"}
	if got := bareRepoCandidates(changes); !slices.Equal(got, want) {
		t.Errorf("bareRepoCandidates = %q, want %q", got, want)
	}
}
