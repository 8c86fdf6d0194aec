package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codemachine/codemachine/agents"
)

const activityWorkflow = `version: 1
steps:
  - id: build
    run: make
    outputs: [out.txt]
`

// TestActivityEvents runs a step whose engine reports what it does: with
// Config.Activity each of those events becomes a StepActivity of the step,
// the bookkeeping ones (session, usage) left out; each engine run ends in a
// StepAttempt with its usage; the run is framed by RunStarted and
// RunFinished. Without Activity the engine gets no callback at all.
func TestActivityEvents(t *testing.T) {
	dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": activityWorkflow})
	var sawCallback bool
	eng := fakeEngine{run: func(_ context.Context, req agents.Request) (agents.Result, error) {
		sawCallback = req.OnEvent != nil
		if req.OnEvent != nil {
			now := time.Now()
			req.OnEvent(agents.Event{Time: now, Kind: "session", Text: "abc"})
			req.OnEvent(agents.Event{Time: now, Kind: "tool", Text: "Write out.txt\nsecond line"})
			req.OnEvent(agents.Event{Time: now, Kind: "usage", Text: "12 tokens"})
			req.OnEvent(agents.Event{Time: now, Kind: "text", Text: "  "})
			req.OnEvent(agents.Event{Time: now, Kind: "stdout", Text: "compiled"})
		}
		if err := os.WriteFile(req.Dir+"/out.txt", []byte("x\n"), 0o644); err != nil {
			return agents.Result{}, err
		}
		return agents.Result{TokensIn: 30, TokensOut: 12, CostUSD: 0.5, CostKnown: true, Model: "m1"}, nil
	}}

	var events eventLog
	o, err := New(Config{Dir: dir, Environ: os.Environ(), OnEvent: events.add, Activity: true,
		NewEngine: func(string) (agents.Engine, error) { return eng, nil }})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := o.Run(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !sawCallback {
		t.Fatal("with Activity the engine got no OnEvent")
	}
	var kinds []EventKind
	var acts []string
	var attempt Event
	for _, e := range events.events {
		if e.At.IsZero() {
			t.Errorf("event %v has no time", e.Kind)
		}
		kinds = append(kinds, e.Kind)
		switch e.Kind {
		case StepActivity:
			if e.Step != "build" {
				t.Errorf("activity of %q, want build", e.Step)
			}
			acts = append(acts, e.Activity+": "+e.Message)
		case StepAttempt:
			attempt = e
		}
	}
	if want := []string{"tool: Write out.txt", "stdout: compiled"}; !slices.Equal(acts, want) {
		t.Errorf("activity %q, want %q", acts, want)
	}
	if kinds[0] != RunStarted || kinds[len(kinds)-1] != RunFinished {
		t.Errorf("events %v, want them between RunStarted and RunFinished", kinds)
	}
	if events.events[0].Run != sum.Run || events.events[len(kinds)-1].Run != sum.Run {
		t.Errorf("run events name %q and %q, want %q", events.events[0].Run, events.events[len(kinds)-1].Run, sum.Run)
	}
	if end := events.events[len(kinds)-1]; end.Tokens != 42 || end.CostUSD != 0.5 || end.Message != "" {
		t.Errorf("RunFinished %+v, want 42 tokens, $0.50, no message", end)
	}
	if attempt.Attempt != 1 || attempt.Tokens != 42 || attempt.Model != "m1" || attempt.Engine != "shell" || attempt.Message != "" {
		t.Errorf("attempt %+v, want the first run of shell with m1's 42 tokens", attempt)
	}

	// Without Activity: no callback, no activity events.
	events = eventLog{}
	o2 := newTestOrchestrator(t, dir, eng, events.add)
	if _, err := o2.Run(t.Context(), RunOptions{Steps: []string{"build"}, Force: true}); err != nil {
		t.Fatal(err)
	}
	if sawCallback {
		t.Error("without Activity the engine still got OnEvent")
	}
	if n := len(events.tasks(StepActivity)); n != 0 {
		t.Errorf("%d activity events without Activity", n)
	}
}

// TestEventJSONRoundTrip: what an event's JSON says reads back as the same
// event (the duration to the millisecond), so it can cross processes.
func TestEventJSONRoundTrip(t *testing.T) {
	in := Event{Kind: StepLanded, At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Step: "implement", Task: "T2",
		Engine: "claude", Model: "sonnet", Duration: 1234 * time.Millisecond, Tokens: 42, CostUSD: 0.19, CostOK: true,
		Commit: "abc", Activity: "tool", Message: "done"}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Event
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("round trip of %s:\n got %+v\nwant %+v", data, out, in)
	}
	if err := json.Unmarshal([]byte(`{"kind":"exploded"}`), &out); err == nil {
		t.Error("an unknown kind was read without an error")
	}
}

// TestEventJSONKeepsText: an encoder that leaves HTML alone (the CLI's
// --json) writes a title's <, > and & as they are, not as \u003c.
func TestEventJSONKeepsText(t *testing.T) {
	in := Event{Kind: StepLanded, Step: "s", Title: "parse a -> b & <c>"}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(in); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"title":"parse a -> b & <c>"`) {
		t.Errorf("encoded: %s", buf.String())
	}
	var out Event
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil || out.Title != in.Title {
		t.Errorf("read back %q, %v", out.Title, err)
	}
}
