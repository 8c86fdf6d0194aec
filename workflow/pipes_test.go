package workflow

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNamedPipesNotRead: opening a named pipe waits for a writer, for
// ever. validate reads the working tree, where one may be (a tool's
// socket, a fifo left by a script): the workflow's files, a plan, the
// files a template reads or globs and the files a glob fan-out matches
// are never opened when they are one.
func TestNamedPipesNotRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(WorkflowFile, "version: 1\nsteps:\n  - id: t\n    agent: x\n    foreach: plan.md\n  - id: g\n    run: echo\n    foreach: {glob: \"src/*\"}\n")
	write(AgentsDir+"/x.md", "{{ glob \"src/*\" }}")
	write("src/a.txt", "a\n")
	for _, p := range []string{"plan.md", "src/pipe"} {
		if err := syscall.Mkfifo(filepath.Join(dir, filepath.FromSlash(p)), 0o644); err != nil {
			t.Skipf("no named pipes here: %v", err)
		}
	}
	fsys := os.DirFS(dir)
	// Each call is given a few seconds; one that blocks in open fails
	// the test (the pipes are then opened for writing to let it go).
	pipes := []string{"plan.md", "src/pipe"}
	within := func(what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
			return
		case <-time.After(5 * time.Second):
			t.Errorf("%s: still waiting on a named pipe after 5s", what)
		}
		for {
			for _, p := range pipes {
				if w, err := os.OpenFile(filepath.Join(dir, p), os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	var p *Project
	var err error
	within("LoadProject", func() { p, err = LoadProject(fsys, testEngines) })
	if err == nil || !strings.Contains(err.Error(), "foreach: read plan.md: "+ErrNotRegular.Error()) {
		t.Errorf("LoadProject: %v, want the plan refused as %q", err, ErrNotRegular)
	}
	if p != nil {
		if tasks := p.Fanouts["g"]; tasks == nil || len(tasks.Tasks) != 1 || tasks.Tasks[0].ID != "src/a.txt" {
			t.Errorf("glob fan-out tasks: %+v, want src/a.txt alone", tasks)
		}
	}
	agent, err := ParseAgent("x.md", []byte("{{ glob \"src/*\" }}|{{ fileOr \"src/pipe\" \"none\" }}"), testEngines)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	within("Render", func() { out, err = agent.Render(fsys, PromptData{}) })
	if err == nil || !strings.Contains(err.Error(), `file "src/pipe": is not a regular file`) {
		t.Errorf("Render: %q, %v; want fileOr to refuse the pipe", out, err)
	}
	agent, _ = ParseAgent("x.md", []byte("{{ glob \"src/*\" }}"), testEngines)
	within("Render glob", func() { out, err = agent.Render(fsys, PromptData{}) })
	if err != nil || out != "<!-- src/a.txt -->\na\n" {
		t.Errorf("Render glob: %q, %v; want src/a.txt alone", out, err)
	}
}
