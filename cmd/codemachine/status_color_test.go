package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/orchestrator"
)

// The coloured status table is aligned as the plain one is: every state
// cell carries escape codes of the same length.
func TestStatusColorAligned(t *testing.T) {
	report := &orchestrator.StatusReport{Branch: "main", Commit: "0123456789abcdef", Steps: []orchestrator.StepStatus{
		{ID: "a", State: orchestrator.StateDone, Engine: "shell", Commit: "0123456789abcdef"},
		{ID: "b", State: orchestrator.StateDue, Engine: "shell", Reason: "never ran"},
		{ID: "c", State: orchestrator.StateFailed, Engine: "shell", Reason: "boom"},
		{ID: "d", State: orchestrator.StateBlocked, Engine: "shell", Reason: "waits for c", Tasks: []orchestrator.TaskStatus{
			{ID: "T1", Title: "One", State: orchestrator.StateRunning},
			{ID: "T2", Title: "Two", State: orchestrator.StateHeld},
		}},
	}}
	var plain, colored bytes.Buffer
	printStatus(&output{w: &plain}, report)
	printStatus(&output{w: &colored, color: true}, report)
	ansi := regexp.MustCompile("\x1b\\[[0-9;]*m")
	if !strings.Contains(colored.String(), "\x1b[") {
		t.Fatal("no colours in the coloured table")
	}
	if got := ansi.ReplaceAllString(colored.String(), ""); got != plain.String() {
		t.Errorf("coloured table, colours removed:\n%s\nwant the plain one:\n%s", got, plain.String())
	}
}
