package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestCommandTableNames: soleCommand finds a command by the name its
// table entry gives, so that name must be the command's own.
func TestCommandTableNames(t *testing.T) {
	for _, c := range commandTable {
		if got := c.build().Name; got != c.name {
			t.Errorf("commandTable entry %q builds command %q", c.name, got)
		}
	}
}

func TestSoleCommand(t *testing.T) {
	for _, tc := range []struct {
		args string
		want string
	}{
		{"codemachine", ""},
		{"codemachine version", "version"},
		{"codemachine -C dir status --json", "status"},
		{"codemachine --no-color -q log", "log"},
		{"codemachine hooks install", "hooks"},
		{"codemachine help status", ""},
		{"codemachine --help", ""},
		{"codemachine completion bash", ""},
		{"codemachine __complete codemachine st", ""},
		{"codemachine stauts", ""},
		{"codemachine -- status", ""},
	} {
		if got := soleCommand(strings.Fields(tc.args)); got != tc.want {
			t.Errorf("soleCommand(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestSoleCommandAppAnswersAsTheFullApp: the app built with only the
// command named prints that command's help, and its usage errors, as the
// app with every command does.
func TestSoleCommandAppAnswersAsTheFullApp(t *testing.T) {
	for _, c := range commandTable {
		for _, extra := range [][]string{{"--help"}, {"--no-such-flag"}} {
			args := append([]string{"codemachine", c.name}, extra...)
			if c.name == "hooks" || c.name == "review" {
				args = append([]string{"codemachine", c.name, c.build().Subcommands[0].Name}, extra...)
			}
			run := func(only string) string {
				var out, errOut bytes.Buffer
				app := newAppFor(&out, &errOut, only)
				a, err := normalizeArgs(app, args)
				if err == nil {
					err = app.Run(a)
				}
				msg := ""
				if err != nil {
					msg = err.Error()
				}
				return out.String() + "\n--\n" + errOut.String() + "\n--\n" + msg
			}
			if c.name == "__complete" && extra[0] == "--no-such-flag" {
				continue // takes every word as it is, and completes
			}
			if full, sole := run(""), run(soleCommand(args)); full != sole {
				t.Errorf("%q: the app with every command answers\n%s\nthe app with one answers\n%s", args, full, sole)
			}
		}
	}
}
