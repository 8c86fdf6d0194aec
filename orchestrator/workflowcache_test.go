package orchestrator

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/codemachine/codemachine/internal/testenv"
	"github.com/codemachine/codemachine/workflow"
)

// cacheFixture is a workflow importing a local directory (whose agent the
// repository does not override) and a git source over file://.
func cacheFixture(t *testing.T) (dir, url string, commits [2]string) {
	t.Helper()
	hermetic(t)
	src := filepath.Join(t.TempDir(), "flows")
	testenv.Git(t, filepath.Dir(src), "init", "-q", "-b", "main", src)
	write := func(root, name, content string) {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, run := range []string{"echo one", "echo two"} {
		write(src, ".codemachine/workflow.yaml", "version: 1\nsteps:\n  - id: remote\n    run: "+run+"\n")
		testenv.Git(t, src, "add", "-A")
		testenv.Git(t, src, "commit", "-q", "-m", run)
		commits[i] = testenv.Git(t, src, "rev-parse", "HEAD")
	}
	url = "file://" + src
	dir = newRepo(t, map[string]string{
		workflow.WorkflowFile:              "version: 1\nsteps:\n  - id: build\n    agent: builder\n  - uses: ./shared\n  - uses: " + url + "@main\n",
		workflow.AgentsDir + "/builder.md": "Build.\n",
		"shared/workflow.yaml":             "version: 1\nsteps:\n  - id: lint\n    agent: linter\n    when: exists(\"app.txt\")\n",
		"shared/agents/linter.md":          "Lint.\n",
		"app.txt":                          "app\n",
	})
	return dir, url, commits
}

// loadAt loads the project at HEAD with a fresh orchestrator (a new
// process) and the git source pinned to pin; hit says whether the kept
// definition was used (the workflow was not parsed).
func loadAt(t *testing.T, dir, url, pin string) (p *workflow.Project, err error, hit bool) {
	t.Helper()
	o := newTestOrchestrator(t, dir, nil, nil)
	fsys, ferr := o.repo.TreeFS("HEAD")
	if ferr != nil {
		t.Fatal(ferr)
	}
	before, berr := os.Stat(o.workflowCacheFile())
	p, err = o.loadProject(fsys, map[string]string{url + "@main": pin})
	after, aerr := os.Stat(o.workflowCacheFile())
	// A parse writes the file anew (renames another over it); a load
	// from the cache does not write.
	return p, err, berr == nil && aerr == nil && os.SameFile(before, after)
}

func stepRuns(p *workflow.Project) string {
	var b strings.Builder
	for _, s := range p.Workflow.Steps {
		b.WriteString(s.ID + "=" + s.Run + s.Agent + ";")
	}
	return b.String()
}

// TestWorkflowCache: the definition parsed at one commit is used by a new
// process at a commit whose workflow files are the same (another file
// changed), and not at one where any of them changed: workflow.yaml, an
// agent, a file of a local uses: source, an agent file that was absent
// and now overrides the imported one, or the commit a git source is pinned
// to. What is loaded is what the parse gives.
func TestWorkflowCache(t *testing.T) {
	dir, url, commits := cacheFixture(t)
	commit := func(name, content string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		testenv.Git(t, dir, "add", "-A")
		testenv.Git(t, dir, "commit", "-q", "-m", "change "+name)
	}
	p, err, hit := loadAt(t, dir, url, commits[0])
	if err != nil || hit {
		t.Fatalf("first load: hit %v, %v", hit, err)
	}
	want := "build=builder;lint=linter;remote=echo one;"
	if got := stepRuns(p); got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	check := func(what string, wantHit bool, want string, pin string) {
		t.Helper()
		p, err, hit := loadAt(t, dir, url, pin)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if hit != wantHit {
			t.Errorf("%s: hit %v, want %v", what, hit, wantHit)
		}
		if got := stepRuns(p); got != want {
			t.Errorf("%s: steps %s, want %s", what, got, want)
		}
		if hit {
			return
		}
		if _, _, again := loadAt(t, dir, url, pin); !again {
			t.Errorf("%s: the parse was not kept", what)
		}
	}
	check("same commit", true, want, commits[0])
	commit("app.txt", "app 2\n")
	check("another file changed", true, want, commits[0])

	commit(workflow.AgentsDir+"/builder.md", "Build it.\n")
	check("agent changed", false, want, commits[0])
	commit(workflow.AgentsDir+"/linter.md", "Lint here.\n")
	check("an agent now overriding the imported one", false, want, commits[0])
	if p, _, _ := loadAt(t, dir, url, commits[0]); string(p.AgentFor(stepOf(p, "lint"), "linter").Raw) != "Lint here.\n" {
		t.Error("the override is not the agent loaded")
	}
	commit("shared/workflow.yaml", "version: 1\nsteps:\n  - id: lint2\n    agent: linter\n")
	want = "build=builder;lint2=linter;remote=echo one;"
	check("local source changed", false, want, commits[0])
	commit(workflow.WorkflowFile, "version: 1\nsteps:\n  - id: build\n    run: make\n  - uses: ./shared\n  - uses: "+url+"@main\n")
	want = "build=make;lint2=linter;remote=echo one;"
	check("workflow.yaml changed", false, want, commits[0])
	want = "build=make;lint2=linter;remote=echo two;"
	check("git source pinned elsewhere", false, want, commits[1])
}

func stepOf(p *workflow.Project, id string) *workflow.Step { return p.Graph.Step(id) }

// TestWorkflowCacheIgnored: a cache file that is corrupt, truncated, of
// another binary or format, or not a cache at all is ignored, the workflow
// parsed and the file written anew; a workflow with problems is not kept
// and its problems are those the parse reports.
func TestWorkflowCacheIgnored(t *testing.T) {
	dir, url, commits := cacheFixture(t)
	if _, err, _ := loadAt(t, dir, url, commits[0]); err != nil {
		t.Fatal(err)
	}
	o := newTestOrchestrator(t, dir, nil, nil)
	file := o.workflowCacheFile()
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no cache written: %v", err)
	}
	e := decodeWorkflowCache(good)
	if e == nil {
		t.Fatal("the cache written does not decode")
	}
	e.Key = strings.Replace(e.Key, workflowCacheFormat, "codemachine workflow cache 0", 1)
	otherVersion := e.encode()
	flipped := bytes.Clone(good)
	for i := len(flipped) / 3; i < len(flipped); i += 5 {
		flipped[i] ^= 0xa5
	}
	for name, data := range map[string][]byte{
		"truncated":      good[:len(good)-len(good)/3],
		"corrupt":        flipped,
		"one byte off":   bytes.Replace(good, []byte("echo one"), []byte("echo won"), 1),
		"other version":  otherVersion,
		"not a cache":    []byte("version: 1\n"),
		"empty":          {},
		"header only":    good[:20],
		"another binary": bytes.Replace(good, []byte(cacheKey()[len(workflowCacheFormat):len(workflowCacheFormat)+10]), []byte("/elsewhere"), 1),
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			p, err, hit := loadAt(t, dir, url, commits[0])
			if err != nil || hit {
				t.Fatalf("hit %v, %v", hit, err)
			}
			if got, want := stepRuns(p), "build=builder;lint=linter;remote=echo one;"; got != want {
				t.Fatalf("steps %s, want %s", got, want)
			}
			if _, _, hit := loadAt(t, dir, url, commits[0]); !hit {
				t.Error("the cache was not written anew")
			}
		})
	}

	// A workflow with a problem: not kept (the file stays), the same error.
	before, _ := os.ReadFile(file)
	if err := os.WriteFile(filepath.Join(dir, workflow.AgentsDir, "builder.md"), []byte("{{.Nope}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, dir, "commit", "-qam", "broken agent")
	_, err1, _ := loadAt(t, dir, url, commits[0])
	_, err2, _ := loadAt(t, dir, url, commits[0])
	want := ".codemachine/agents/builder.md:1:3: unknown field \".Nope\""
	if err1 == nil || err2 == nil || err1.Error() != want || err2.Error() != want {
		t.Fatalf("broken agent: %v then %v, want %s twice", err1, err2, want)
	}
	if after, _ := os.ReadFile(file); !bytes.Equal(before, after) {
		t.Error("a workflow with problems was kept")
	}
}

// TestWorkflowCacheConcurrent: processes loading different workflows at
// once each write the cache whole (a temporary file renamed): the file
// left is one of them, and no temporary file is.
func TestWorkflowCacheConcurrent(t *testing.T) {
	dir, url, commits := cacheFixture(t)
	heads := []string{testenv.Git(t, dir, "rev-parse", "HEAD")}
	for i := 0; i < 3; i++ {
		if err := os.WriteFile(filepath.Join(dir, workflow.AgentsDir, "builder.md"), []byte(strings.Repeat("Build.\n", i+2)), 0o644); err != nil {
			t.Fatal(err)
		}
		testenv.Git(t, dir, "commit", "-qam", "agent")
		heads = append(heads, testenv.Git(t, dir, "rev-parse", "HEAD"))
	}
	// The git source fetched once first: the uses cache is not what this
	// is about.
	if _, err, _ := loadAt(t, dir, url, commits[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(newTestOrchestrator(t, dir, nil, nil).workflowCacheFile()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(heads))
	for round := 0; round < 4; round++ {
		for _, h := range heads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o, err := New(Config{Dir: dir, Environ: os.Environ()})
				if err != nil {
					errs <- err
					return
				}
				fsys, err := o.repo.TreeFS(h)
				if err != nil {
					errs <- err
					return
				}
				if _, err := o.loadProject(fsys, map[string]string{url + "@main": commits[0]}); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	o := newTestOrchestrator(t, dir, nil, nil)
	if readWorkflowCache(o.workflowCacheFile(), cacheKey()) == nil {
		t.Fatal("the cache left does not decode")
	}
	hits := 0
	for _, h := range heads {
		fsys, err := o.repo.TreeFS(h)
		if err != nil {
			t.Fatal(err)
		}
		if newTestOrchestrator(t, dir, nil, nil).cachedDefinition(fsys) != nil {
			hits++
		}
	}
	if hits != 1 {
		t.Errorf("the cache left matches %d of the commits, want 1", hits)
	}
	tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(o.workflowCacheFile()), "*.tmp"))
	if len(tmps) > 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
}
