package orchestrator

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/internal/testenv"
)

// TestSettingsCache: status keeps the steps' settings by the tip's tree,
// the overrides and the binary, and a new process's status takes them from
// there (a kept fingerprint that is not the step's own shows the step as
// due); at another tree or with other overrides, or from a file that is
// corrupt or lacks a step, they are worked out again and kept anew.
func TestSettingsCache(t *testing.T) {
	dir := newRepo(t, map[string]string{
		".codemachine/workflow.yaml": "version: 1\nsteps:\n" +
			"  - id: a\n    run: 'cp in.txt a.txt'\n    inputs: [in.txt]\n    outputs: [a.txt]\n" +
			"  - id: b\n    run: 'cp a.txt b.txt'\n    needs: [a]\n    inputs: [a.txt]\n    outputs: [b.txt]\n",
		"in.txt": "1\n",
	})
	eng := fakeEngine{run: func(_ context.Context, req agents.Request) (agents.Result, error) {
		return agents.Result{}, os.WriteFile(filepath.Join(req.Dir, req.Step+".txt"), []byte("done\n"), 0o644)
	}}
	o := newTestOrchestrator(t, dir, eng, nil)
	if sum, err := o.Run(t.Context(), RunOptions{}); err != nil || len(sum.Landed) != 2 {
		t.Fatalf("run: %+v, %v", sum, err)
	}
	file := o.settingsCacheFile()
	stateOfA := func(ov Overrides) string {
		t.Helper()
		r, err := newTestOrchestrator(t, dir, nil, nil).Status(ov)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range r.Steps {
			if s.ID == "a" {
				return s.State
			}
		}
		t.Fatalf("no step a in %+v", r.Steps)
		return ""
	}
	kept := func() settingsCacheEntry {
		t.Helper()
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("no settings kept: %v", err)
		}
		key, _, _ := strings.Cut(string(raw), "\n")
		e := parseSettingsCache(raw, key)
		if e == nil || len(e.Steps) != 2 {
			t.Fatalf("kept %q", raw)
		}
		return *e
	}
	write := func(e settingsCacheEntry) {
		t.Helper()
		if err := os.WriteFile(file, encodeEntry(t, e), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// tamper makes the kept fingerprint of a another than a's own.
	tamper := func(e settingsCacheEntry) settingsCacheEntry {
		e.Steps = append([]settingsCacheStep(nil), e.Steps...)
		for i := range e.Steps {
			if e.Steps[i].ID == "a" {
				e.Steps[i].Fingerprint = strings.Repeat("0", 64)
			}
		}
		return e
	}

	if got := stateOfA(Overrides{}); got != StateDone {
		t.Fatalf("a is %s after the run", got)
	}
	good := kept()
	write(tamper(good))
	if got := stateOfA(Overrides{}); got != StateDue {
		t.Fatalf("with a kept fingerprint that is not a's, a is %s: the kept settings were not used", got)
	}

	// Other overrides are another key: worked out again (and kept).
	if got := stateOfA(Overrides{Model: "other"}); got != StateDone {
		t.Fatalf("with another model, a is %s", got)
	}
	if kept().Key == good.Key {
		t.Fatal("the settings with another model were kept under the same key")
	}
	t.Setenv("CODEMACHINE_ENGINE", "shell")
	write(tamper(good))
	if got := stateOfA(Overrides{}); got != StateDone {
		t.Fatalf("with CODEMACHINE_ENGINE set, a is %s", got)
	}
	t.Setenv("CODEMACHINE_ENGINE", "")

	// Corrupt, or lacking a step: ignored and kept anew.
	whole := string(encodeEntry(t, good))
	for name, data := range map[string]string{
		"cut short": whole[:len(whole)-1],
		"empty":     "",
		"no step a": func() string { e := good; e.Steps = e.Steps[1:]; return string(encodeEntry(t, e)) }(),
		"no id":     strings.Replace(whole, "\na\t", "\n\t", 1),
	} {
		if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := stateOfA(Overrides{}); got != StateDone {
			t.Fatalf("%s: a is %s", name, got)
		}
		if kept().Key != good.Key {
			t.Fatalf("%s: not kept anew", name)
		}
	}

	// Another tree, even where no input changed: worked out again.
	write(tamper(good))
	if err := os.WriteFile(filepath.Join(dir, "other.txt"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, dir, "add", "other.txt")
	testenv.Git(t, dir, "commit", "-qm", "other")
	if got := stateOfA(Overrides{}); got != StateDone {
		t.Fatalf("at another tree, a is %s", got)
	}
	// And an input changed: due, as without the cache.
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, dir, "commit", "-qam", "input")
	if got := stateOfA(Overrides{}); got != StateDue {
		t.Fatalf("after its input changed, a is %s", got)
	}
	if got := stateOfA(Overrides{}); got != StateDue {
		t.Fatalf("after its input changed, from the kept settings, a is %s", got)
	}
}

func encodeEntry(t *testing.T, e settingsCacheEntry) []byte {
	t.Helper()
	data, ok := e.encode()
	if !ok {
		t.Fatalf("%+v does not encode", e)
	}
	return data
}

// TestSettingsCacheFormat: an entry comes back as it was written, a file
// that is cut short, has a line of another shape, or holds another key
// gives none, and a field with a tab or a line break is not written.
func TestSettingsCacheFormat(t *testing.T) {
	key := strings.Repeat("k", 64)
	e := settingsCacheEntry{Key: key, Steps: []settingsCacheStep{
		{ID: "a", Engine: "claude", Model: "opus", Effort: "high", Replay: true, Fingerprint: "f1"},
		{ID: "b", Engine: "shell", Fingerprint: "f2"},
	}}
	data := encodeEntry(t, e)
	if got := parseSettingsCache(data, key); got == nil || !reflect.DeepEqual(*got, e) {
		t.Fatalf("round trip: %+v, want %+v", got, e)
	}
	if got := parseSettingsCache([]byte(key+"\n"), key); got == nil || len(got.Steps) != 0 {
		t.Fatalf("no steps: %+v", got)
	}
	bad := map[string]string{
		"another key":     strings.Replace(string(data), key, strings.Repeat("x", 64), 1),
		"cut short":       string(data[:len(data)-3]),
		"no newline":      key,
		"five fields":     key + "\na\tshell\t\t\t0\n",
		"seven fields":    key + "\na\tshell\t\t\t0\tf\tx\n",
		"replay not 0/1":  key + "\na\tshell\t\t\ttrue\tf\n",
		"no fingerprint":  key + "\na\tshell\t\t\t0\t\n",
		"empty line":      key + "\n\n",
		"binary garbage":  "\x00\xff\n",
		"key line only k": "k\n",
	}
	for name, text := range bad {
		if got := parseSettingsCache([]byte(text), key); got != nil {
			t.Errorf("%s: parsed as %+v", name, got)
		}
	}
	if got := parseSettingsCache(data, ""); got != nil {
		t.Errorf("the empty key: parsed as %+v", got)
	}
	for _, f := range []string{"a\tb", "a\nb"} {
		odd := settingsCacheEntry{Key: key, Steps: []settingsCacheStep{{ID: "a", Model: f, Fingerprint: "f"}}}
		if _, ok := odd.encode(); ok {
			t.Errorf("model %q encoded", f)
		}
	}
}
