package orchestrator

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/agents"
)

// noLandlock is a system without Landlock: what auto warns about and
// required refuses.
func noLandlock() agents.SandboxStatus {
	return agents.SandboxStatus{OS: "linux", ABIErr: "the kernel has no Landlock", NamespaceErr: "none", Subreaper: true, Privileges: true}
}

// fullSandbox is a system with every protection.
func fullSandbox() agents.SandboxStatus {
	return agents.SandboxStatus{OS: "linux", ABI: 9, Subreaper: true, Privileges: true}
}

const twoSteps = `version: 1
sandbox: {writable: [.cache, ~/go-cache, $CM_CACHE, $CM_UNSET/x]}
steps:
  - id: a
    run: work
    outputs: [out.txt]
    hooks: {before: pre, after: post}
  - id: b
    run: work
    needs: [a]
    sandbox: off
`

func sandboxRun(t *testing.T, workflow string, probe func() agents.SandboxStatus) (*hookRecorder, []Event, error) {
	t.Helper()
	dir := newRepo(t, map[string]string{".codemachine/workflow.yaml": workflow})
	rec := &hookRecorder{}
	var events []Event
	env := append(os.Environ(), "HOME="+t.TempDir(), "CM_CACHE="+filepath.Join(t.TempDir(), "cache"))
	o, err := New(Config{Dir: dir, Environ: env, NewEngine: rec.newEngine,
		ProbeSandbox: probe, OnEvent: func(e Event) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.Run(t.Context(), RunOptions{})
	return rec, events, err
}

// Every process of a sandboxed step gets the policy: the worktree, its
// TMPDIR, the engine's config dir and the workflow's paths writable (the
// after hook without the worktree: it runs in the repository); a step
// with sandbox: off runs contained but unrestricted.
func TestSandboxPolicyPerProcess(t *testing.T) {
	rec, events, err := sandboxRun(t, twoSteps, fullSandbox)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Kind == Note && strings.Contains(e.Message, "sandbox") {
			t.Errorf("a full sandbox warned: %s", e.Message)
		}
	}
	var works []hookCall
	for _, c := range rec.calls {
		if c.req.Command == "work" {
			works = append(works, c)
		}
	}
	pre, post := rec.call(t, "pre"), rec.call(t, "post")
	a := works[0].req
	if a.Sandbox == nil || !a.Sandbox.Landlock {
		t.Fatalf("step a ran without Landlock: %+v", a.Sandbox)
	}
	root := filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(a.Dir)))) // <root>/.git/codemachine/worktrees/slot-0
	want := []string{filepath.Join(root, ".cache"), envOf(a, "HOME") + "/go-cache", envOf(a, "TMPDIR"), a.Home, a.Dir}
	for _, w := range want {
		if w == "" || !slices.Contains(a.Sandbox.Writable, w) {
			t.Errorf("%q is not writable in %q", w, a.Sandbox.Writable)
		}
	}
	if n := len(a.Sandbox.Writable); n != 6 || !strings.HasSuffix(a.Sandbox.Writable[2], "/cache") {
		t.Errorf("writable %q: want $CM_CACHE expanded and $CM_UNSET/x left out", a.Sandbox.Writable)
	}
	for _, w := range a.Sandbox.Writable {
		if gitDir := filepath.Join(root, ".git"); strings.HasPrefix(w, gitDir+"/") && !strings.HasPrefix(w, gitDir+"/codemachine/") {
			t.Errorf("%s of the user's git directory is writable", w)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, ".cache")); err != nil || !fi.IsDir() {
		t.Errorf("the missing writable path was not created: %v", err)
	}
	if a.Home == "" {
		t.Error("a sandboxed agent step got no private config dir")
	}
	if !slices.Equal(pre.req.Sandbox.Writable, a.Sandbox.Writable) {
		t.Errorf("before hook: %q, want the step's %q", pre.req.Sandbox.Writable, a.Sandbox.Writable)
	}
	if post.req.Sandbox == nil || !post.req.Sandbox.Landlock || slices.Contains(post.req.Sandbox.Writable, a.Dir) ||
		slices.Contains(post.req.Sandbox.Writable, root) {
		t.Errorf("after hook: %+v, want the sandbox without the worktree or the repository", post.req.Sandbox)
	}
	for _, c := range []hookCall{pre, works[0], post} {
		if !c.req.Sandbox.DropCapabilities {
			t.Errorf("%s runs with codemachine's capabilities: %+v", c.req.Command, c.req.Sandbox)
		}
	}
	if b := works[1].req; b.Sandbox == nil || b.Sandbox.Landlock || b.Sandbox.DropCapabilities {
		t.Errorf("step b (sandbox: off) ran with %+v, want containment only", b.Sandbox)
	}
	if !slices.Contains(a.Sandbox.Visible, root) {
		t.Errorf("the repository is not kept visible: %q", a.Sandbox.Visible)
	}
}

// auto runs without what the system lacks, saying so once per run, and
// with what it has: no capability.
func TestSandboxAutoWarnsOnce(t *testing.T) {
	rec, events, err := sandboxRun(t, strings.Replace(twoSteps, "    sandbox: off\n", "", 1), noLandlock)
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	for _, e := range events {
		if e.Kind == Note && strings.Contains(e.Message, "sandbox") {
			warnings = append(warnings, e.Message)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "writes are not restricted (the kernel has no Landlock)") {
		t.Errorf("warnings %q, want one naming what is missing", warnings)
	}
	for _, c := range rec.calls {
		if c.req.Sandbox == nil || c.req.Sandbox.Landlock || !c.req.Sandbox.DropCapabilities {
			t.Errorf("%s ran with %+v, want containment and no capability", c.req.Command, c.req.Sandbox)
		}
	}
}

// required refuses to run a step unsandboxed: a configuration error (exit
// 2) naming the setting and the reason, and nothing ran.
func TestSandboxRequiredRefuses(t *testing.T) {
	wf := strings.Replace(twoSteps, "sandbox: {writable", "sandbox: {mode: required, writable", 1)
	rec, _, err := sandboxRun(t, wf, noLandlock)
	var ce *ConfigError
	if !errors.As(err, &ce) || ExitCode(err) != ExitUsage {
		t.Fatalf("err = %v, want a configuration error", err)
	}
	want := ".codemachine/workflow.yaml:2:10: step a: sandbox: required, but writes are not restricted (the kernel has no Landlock)"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q, want it to start with %q", err, want)
	}
	if len(rec.calls) != 0 {
		t.Errorf("ran %v", rec.commands())
	}
	// With every protection there, required runs.
	if _, _, err := sandboxRun(t, wf, fullSandbox); err != nil {
		t.Errorf("required with a full sandbox: %v", err)
	}
}
