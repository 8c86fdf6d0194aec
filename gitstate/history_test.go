package gitstate

import (
	"strings"
	"testing"
)

func TestCommitsBetween(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	base := git(t, dir, "rev-parse", "HEAD")
	write(t, dir, "b.txt", "b\n")
	first := commitAll(t, dir, "first\n\nCodemachine-Step: b")
	// A side branch merged in counts too: the reset takes it away as well.
	git(t, dir, "checkout", "-q", "-b", "side")
	write(t, dir, "c.txt", "c\n")
	side := commitAll(t, dir, "side")
	git(t, dir, "checkout", "-q", "main")
	write(t, dir, "d.txt", "d\n")
	second := commitAll(t, dir, "second")
	git(t, dir, "merge", "-q", "--no-edit", "side")
	tip := git(t, dir, "rev-parse", "HEAD")

	hashes := func(cs []Commit) string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Hash)
		}
		return strings.Join(out, " ")
	}
	all, err := r.CommitsBetween(t.Context(), base, tip, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 || all[0].Hash != tip || !strings.Contains(hashes(all), side) ||
		!strings.Contains(hashes(all), second) || all[3].Hash != first {
		t.Errorf("CommitsBetween(base, tip) = %s", hashes(all))
	}
	if got := (Message{Trailers: all[3].Trailers}).Get(TrailerStep); got != "b" {
		t.Errorf("the commits come with their trailers: step %q", got)
	}
	if two, err := r.CommitsBetween(t.Context(), base, tip, 2); err != nil || len(two) != 2 || two[0].Hash != tip {
		t.Errorf("limited to 2: %s, %v", hashes(two), err)
	}
	if none, err := r.CommitsBetween(t.Context(), tip, base, 0); err != nil || len(none) != 0 {
		t.Errorf("nothing between a tip and its ancestor the other way: %s, %v", hashes(none), err)
	}
	if _, err := r.CommitsBetween(t.Context(), base, "nosuch", 0); err == nil {
		t.Error("an unknown tip is no error")
	}
}

func TestShowCommit(t *testing.T) {
	dir, r := newRepo(t, map[string]string{"a.txt": "a\n"})
	write(t, dir, "a.txt", "b\n")
	c := commitAll(t, dir, "change a\n\nWhy it changed.")
	full, err := r.ShowCommit(t.Context(), c, ShowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"commit " + c + "\n", "Author: Test Author <author@example.com>\n",
		"\n    change a\n", "    Why it changed.\n", " a.txt | 2 +-\n", "-a\n+b\n"} {
		if !strings.Contains(full, want) {
			t.Errorf("ShowCommit lacks %q:\n%s", want, full)
		}
	}
	if strings.Contains(full, "\x1b[") {
		t.Error("colours without Color")
	}
	stat, err := r.ShowCommit(t.Context(), c, ShowOptions{StatOnly: true, Color: true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stat, "+b") || !strings.Contains(stat, "a.txt | 2") || !strings.Contains(stat, "\x1b[") {
		t.Errorf("StatOnly with Color:\n%s", stat)
	}
}
