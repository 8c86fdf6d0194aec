package workflow

import (
	"errors"
	"testing"
)

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Pos: Pos{File: "w.yaml", Line: 3, Col: 5}, Msg: "bad"}, "w.yaml:3:5: bad"},
		{&Error{Pos: Pos{File: "w.yaml", Line: 3}, Msg: "bad"}, "w.yaml:3: bad"},
		{&Error{Pos: Pos{File: "w.yaml"}, Msg: "bad"}, "w.yaml: bad"},
		{&Error{Msg: "bad"}, "bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestErrorsSortedAndUnwrapped(t *testing.T) {
	var errs Errors
	if errs.Err() != nil {
		t.Fatal("empty Errors must give a nil error")
	}
	errs.Add(Pos{File: "b.md", Line: 1, Col: 1}, "third")
	errs.Add(Pos{File: "a.yaml", Line: 10, Col: 2}, "second")
	errs.Add(Pos{File: "a.yaml", Line: 2, Col: 9}, "first %d", 1)
	errs.Add(Pos{File: "a.yaml", Line: 10, Col: 2}, "second, same place")
	want := "a.yaml:2:9: first 1\na.yaml:10:2: second\na.yaml:10:2: second, same place\nb.md:1:1: third"
	if got := errs.Error(); got != want {
		t.Errorf("Error():\n%s\nwant:\n%s", got, want)
	}
	if errs[0].Msg != "third" {
		t.Error("Error() must not reorder the receiver")
	}
	err := errs.Err()
	var one *Error
	if !errors.As(err, &one) || one.Msg != "first 1" {
		t.Errorf("errors.As found %v, want the first problem", one)
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"outputs", "inputs", "needs", "agent", "run", "id", "on_failure"}
	tests := []struct{ word, want string }{
		{"ouputs", ` (did you mean "outputs"?)`},
		{"outptus", ` (did you mean "outputs"?)`},
		{"input", ` (did you mean "inputs"?)`},
		{"Needs", ` (did you mean "needs"?)`},
		{"onfailure", ` (did you mean "on_failure"?)`},
		{"ID", ` (did you mean "id"?)`},
		{"xy", ""},
		{"runs_on", ""},
		{"timeout", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.word, keys); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"outputs", "ouputs", 1},
		{"ab", "ba", 1},
		{"kitten", "sitting", 3},
		{"naïve", "naive", 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// A problem found twice at the same place (a workflow imported twice) is
// reported once; the same message elsewhere, or another at the same
// place, is kept.
func TestErrorsUnique(t *testing.T) {
	var errs Errors
	errs.Add(Pos{File: "b.yaml", Line: 3, Col: 11}, "uses: cycle")
	errs.Add(Pos{File: "a.yaml", Line: 1, Col: 1}, "other")
	errs.Add(Pos{File: "b.yaml", Line: 3, Col: 11}, "uses: cycle")
	errs.Add(Pos{File: "b.yaml", Line: 3, Col: 11}, "another")
	errs.Add(Pos{File: "b.yaml", Line: 4, Col: 11}, "uses: cycle")
	want := "a.yaml:1:1: other\nb.yaml:3:11: uses: cycle\nb.yaml:3:11: another\nb.yaml:4:11: uses: cycle"
	if got := errs.Err().Error(); got != want {
		t.Errorf("Err():\n%s\nwant:\n%s", got, want)
	}
}
