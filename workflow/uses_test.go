package workflow

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseUses(t *testing.T) {
	tests := []struct {
		in, path, url, ref, err string
	}{
		{in: "./shared/lint", path: "shared/lint"},
		{in: "./a/../b/", path: "b"},
		{in: ".", path: "."},
		{in: "https://example.com/acme/flows.git@v1", url: "https://example.com/acme/flows.git", ref: "v1"},
		{in: "https://user@example.com/acme/flows.git@release/2", url: "https://user@example.com/acme/flows.git", ref: "release/2"},
		{in: "ssh://git@example.com/flows.git@main", url: "ssh://git@example.com/flows.git", ref: "main"},
		{in: "git@example.com:acme/flows.git@v1.2.3", url: "git@example.com:acme/flows.git", ref: "v1.2.3"},
		{in: "file:///srv/flows.git@0123456789abcdef0123456789abcdef01234567", url: "file:///srv/flows.git", ref: "0123456789abcdef0123456789abcdef01234567"},
		{in: "", err: "empty"},
		{in: "../x", err: "leaves the repository"},
		{in: "./..", err: "leaves the repository"},
		{in: "/srv/x", err: "absolute path"},
		{in: "/srv/x", err: "or file:///srv/x@REF for"},
		// A line break in the value (a block scalar's) stays in the quotes.
		{in: "/srv/x\n", err: "control character"},
		{in: "00000:\n0", err: "control character"},
		{in: "./a\tb", err: "control character"},
		{in: "https://example.com/flows.git", err: "missing @REF"},
		{in: "https://user@example.com/flows.git", err: "missing @REF"},
		{in: "git@example.com:flows.git", err: "missing @REF"},
		{in: "https://example.com/flows.git@", err: "invalid ref"},
		{in: "https://example.com/flows.git@-x", err: "invalid ref"},
		{in: "https://example.com/flows.git@a..b", err: "invalid ref"},
		{in: "ftp://example.com/flows.git@v1", err: "unknown URL scheme"},
		{in: "https://example.com@v1", err: "no repository path"},
		{in: "acme/flows@v1", err: "unknown form"},
	}
	for _, tt := range tests {
		u, err := ParseUses(tt.in)
		if tt.err != "" {
			var ue *UsesError
			if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("ParseUses(%q) error = %v, want *UsesError on one line with %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || u.Path != tt.path || u.URL != tt.url || u.Ref != tt.ref {
			t.Errorf("ParseUses(%q) = %+v, %v; want path %q url %q ref %q", tt.in, u, err, tt.path, tt.url, tt.ref)
		}
	}
}

// fakeImporter serves git sources from memory, counting imports.
type fakeImporter struct {
	repos map[string]fstest.MapFS // URL@REF -> files
	n     int
}

func (f *fakeImporter) Import(u Uses) (fs.FS, string, error) {
	f.n++
	r, ok := f.repos[u.PinKey()]
	if !ok {
		return nil, "", errors.New("git fetch failed: not found")
	}
	return r, strings.Repeat("c", 40), nil
}

func TestLoadProjectUses(t *testing.T) {
	local := fstest.MapFS{
		WorkflowFile: {Data: []byte(`version: 1
vars: {level: strict}
steps:
  - id: build
    run: make
  - uses: ./shared/lint
    needs: [build]
  - uses: https://example.com/flows.git@v1
  - id: ship
    run: ship
    needs: [report, remote]
    when: vars.level == "strict" && vars.remote_only
`)},
		"shared/lint/workflow.yaml": {Data: []byte(`version: 1
vars: {level: lax}
steps:
  - id: lint
    run: golint
  - id: report
    agent: reporter
    needs: [lint]
    when: steps.lint.done
`)},
		"shared/lint/agents/reporter.md": {Data: []byte("Report.\n")},
	}
	remote := fstest.MapFS{
		".codemachine/workflow.yaml": {Data: []byte(`version: 1
vars: {remote_only: true}
steps:
  - id: remote
    agent: reporter
  - uses: ./extra
`)},
		".codemachine/agents/reporter.md": {Data: []byte("Remote report.\n")},
		"extra/workflow.yaml":             {Data: []byte("version: 1\nsteps:\n  - id: extra\n    agent: helper\n")},
		"extra/agents/helper.md":          {Data: []byte("Help.\n")},
	}
	imp := &fakeImporter{repos: map[string]fstest.MapFS{"https://example.com/flows.git@v1": remote}}
	p, err := LoadProjectWith(local, LoadOptions{Engines: testEngines, Importer: imp})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range p.Workflow.Steps {
		ids = append(ids, s.ID)
	}
	if want := []string{"build", "lint", "report", "remote", "extra", "ship"}; !slices.Equal(ids, want) {
		t.Fatalf("steps = %v, want %v", ids, want)
	}
	step := func(id string) *Step { return stepByID(p.Workflow, id) }
	if got := step("lint").Needs; !slices.Equal(got, []string{"build"}) {
		t.Errorf("lint needs %v, want the uses entry's [build]", got)
	}
	if got := step("report").Needs; !slices.Equal(got, []string{"lint", "build"}) {
		t.Errorf("report needs %v", got)
	}
	if step("build").Imported() || !step("lint").Imported() || step("remote").Source.Commit != strings.Repeat("c", 40) {
		t.Errorf("sources: build %v, lint %v, remote %+v", step("build").Source, step("lint").Source, step("remote").Source)
	}
	if a := p.AgentFor(step("report"), "reporter"); a == nil || string(a.Raw) != "Report.\n" || a.File != "shared/lint/agents/reporter.md" {
		t.Errorf("report's agent = %+v", a)
	}
	if a := p.AgentFor(step("remote"), "reporter"); a == nil || string(a.Raw) != "Remote report.\n" ||
		a.File != "https://example.com/flows.git@v1:.codemachine/agents/reporter.md" {
		t.Errorf("remote's agent = %+v", a)
	}
	if p.Workflow.Vars["level"] != "strict" || p.Workflow.Vars["remote_only"] != true {
		t.Errorf("vars = %v: the importing workflow's win, the imported ones are added", p.Workflow.Vars)
	}
	if pos := step("remote").Pos.String(); pos != "https://example.com/flows.git@v1:.codemachine/workflow.yaml:4:5" {
		t.Errorf("remote at %s", pos)
	}
	// ./PATH inside a git source is a directory of that repository.
	if pos := step("extra").Pos.String(); pos != "https://example.com/flows.git@v1:extra/workflow.yaml:3:5" {
		t.Errorf("extra at %s", pos)
	}
	if a := p.AgentFor(step("extra"), "helper"); a == nil || string(a.Raw) != "Help.\n" {
		t.Errorf("extra's agent = %+v", a)
	}

	// A local agent of the same name overrides both.
	local[AgentsDir+"/reporter.md"] = &fstest.MapFile{Data: []byte("Ours.\n")}
	p2, err := LoadProjectWith(local, LoadOptions{Engines: testEngines, Importer: imp})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"report", "remote"} {
		if a := p2.AgentFor(stepByID(p2.Workflow, id), "reporter"); a == nil || string(a.Raw) != "Ours.\n" {
			t.Errorf("%s's agent = %+v, want the local override", id, a)
		}
	}
	// The imported agent's content is in its step's fingerprint.
	fp := func(p *Project, id string) string {
		s := stepByID(p.Workflow, id)
		return Fingerprint(s, p.AgentFor(s, s.Agent), "claude", "", nil)
	}
	if fp(p, "report") == fp(p2, "report") {
		t.Error("overriding the agent left the fingerprint as it was")
	}

	// Without an importer a git source is an error at its position.
	_, err = LoadProject(local, testEngines)
	if err == nil || !strings.Contains(err.Error(), ".codemachine/workflow.yaml:8:11: uses: https://example.com/flows.git@v1: git sources are not read here") {
		t.Errorf("no importer: %v", err)
	}
}

// stepByID is the step of w with id, or nil.
func stepByID(w *Workflow, id string) *Step {
	for _, s := range w.Steps {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// An imported step's condition reads the importing workflow's vars, which
// win: it is checked with their types too.
func TestUsesVarTypes(t *testing.T) {
	shared := `version: 1
vars: {level: 1}
steps:
  - id: report
    run: report
    when: vars.level > 0
`
	for _, tt := range []struct{ level, want string }{
		{`2`, ``},
		{`high`, `shared/workflow.yaml:6:22: when: invalid operation: > (mismatched types string and int) (with the vars of the workflow that imports it)`},
	} {
		fsys := fstest.MapFS{
			WorkflowFile:           {Data: []byte("version: 1\nvars: {level: " + tt.level + "}\nsteps:\n  - uses: ./shared\n")},
			"shared/workflow.yaml": {Data: []byte(shared)},
		}
		_, err := LoadProject(fsys, testEngines)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("level %s: %v", tt.level, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("level %s: error %v, want %s", tt.level, err, tt.want)
		}
	}
}

// treeLikeFS does not follow symbolic links, as a commit's tree does not.
type treeLikeFS struct{ fstest.MapFS }

func (f treeLikeFS) Stat(name string) (fs.FileInfo, error) { return f.MapFS.Lstat(name) }

// TestLoadProjectUsesLink: a uses: ./PATH whose directory is a symbolic
// link was "no directory PATH" when read from a commit (run, status),
// though validate, reading the working tree, named the link.
func TestLoadProjectUsesLink(t *testing.T) {
	files := fstest.MapFS{
		WorkflowFile:         {Data: []byte("version: 1\nsteps:\n  - uses: ./shared\n")},
		"shared":             {Data: []byte("real"), Mode: fs.ModeSymlink},
		"real/workflow.yaml": {Data: []byte("version: 1\nsteps:\n  - id: x\n    run: echo\n")},
	}
	want := WorkflowFile + ":3:11: uses: ./shared: shared is a symbolic link (to real)"
	for name, fsys := range map[string]fs.FS{"working tree": files, "commit": treeLikeFS{files}} {
		_, err := LoadProjectWith(fsys, LoadOptions{Engines: testEngines})
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v, want %q...", name, err, want)
		}
	}
}
