package main

import (
	"io"
	"slices"
	"strings"
	"testing"
)

// TestComplete: what each position completes to, from the app's own
// definitions; step keys are asked for only where an argument names one.
func TestComplete(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	keys := func(agentSteps bool) []completion {
		if agentSteps { // docs is a run: step
			return []completion{{"build", "done"}, {"build/T1", "due"}}
		}
		return []completion{{"build", "done"}, {"build/T1", "due"}, {"docs", "due"}}
	}
	for _, c := range []struct {
		words []string
		want  []string
	}{
		{[]string{"ro"}, []string{"rollback"}},
		{[]string{"-C", "dir", "sta"}, []string{"status"}},
		{[]string{"hooks", ""}, []string{"install", "uninstall", "status"}},
		{[]string{"run", "--par"}, []string{"--parallel"}},
		{[]string{"watch", "--trigger", ""}, []string{"commit", "save"}},
		{[]string{"run", "--engine", "co"}, []string{"codex"}},
		{[]string{"retry", "b"}, []string{"build", "build/T1"}},
		{[]string{"retry", "build", ""}, nil},
		{[]string{"run", "build", "d"}, []string{"docs"}},
		{[]string{"run", "--model", "x", "build/"}, []string{"build/T1"}},
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}},
		{[]string{"schema", "a"}, []string{"agent"}},
		{[]string{"open", "b"}, []string{"build", "build/T1"}},
		{[]string{"open", "build", ""}, nil},
		{[]string{"open", ""}, []string{"build", "build/T1"}},
		{[]string{"diff", ""}, []string{"build", "build/T1", "docs"}},
		{[]string{"init", "--template", ""}, []string{"spec-to-code", "migrate", "feature"}},
		{[]string{"init", "-t", "m"}, []string{"migrate"}},
		{[]string{"init", "--ci", ""}, []string{"github"}},
		{[]string{"nosuch", ""}, nil},
		// --flag=VALUE: zsh and fish pass one word, bash splits it at "="
		{[]string{"run", "--engine=co"}, []string{"--engine=codex"}},
		{[]string{"run", "--engine", "=", "co"}, []string{"codex"}},
		{[]string{"run", "--engine", "="}, []string{"auto", "claude", "codex", "gemini", "opencode", "replay"}},
		{[]string{"run", "--engine", "=", "replay", "d"}, []string{"docs"}},
		{[]string{"retry", "--json=true", "b"}, []string{"build", "build/T1"}},
		{[]string{"run", "--dry-run="}, nil},
	} {
		var got []string
		for _, cand := range complete(app, c.words, keys) {
			got = append(got, cand.value)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("complete %q: %q, want %q", c.words, got, c.want)
		}
	}
	reviews := func(bool) []completion {
		return []completion{{"build", "review"}, {"build/T1", "done: a"}, {"build/T2", "review: b"}, {"docs", "review"}, {"lint", "due"}}
	}
	for _, c := range []struct {
		cmd  string
		keys keysFunc
		want []string
	}{
		{"approve", reviews, []string{"build/T2", "docs"}},
		{"reject", reviews, []string{"build/T2", "docs"}},
		{"diff", reviews, []string{"build", "build/T1", "build/T2", "docs", "lint"}},
		// none waits here: a worker's review may be on the remote only
		{"approve", keys, []string{"build", "build/T1", "docs"}},
	} {
		var got []string
		for _, cand := range complete(app, []string{c.cmd, ""}, c.keys) {
			got = append(got, cand.value)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("complete %s: %q, want %q", c.cmd, got, c.want)
		}
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"approve", ""}, ""},
		{[]string{"-C", "repo", "approve", ""}, "repo"},
		{[]string{"-C", "=", "repo", "approve", ""}, "repo"},
		{[]string{"-C=repo", "approve", ""}, "repo"},
		{[]string{"-C", "rep"}, ""},
	} {
		if got := completionDir(c.words); got != c.want {
			t.Errorf("completionDir %q: %q, want %q", c.words, got, c.want)
		}
	}
	for _, cand := range complete(app, []string{""}, keys) {
		if strings.HasPrefix(cand.value, "__") {
			t.Errorf("the hidden %s is offered", cand.value)
		}
	}
}
