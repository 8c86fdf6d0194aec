package orchestrator

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/internal/lazyre"
	"github.com/codemachine/codemachine/workflow"
)

// usesMemo remembers, for the life of the orchestrator, what the git
// sources of uses: entries resolved to and which pinned commits the cache
// holds, so that the many loads of a run fetch each source at most once.
type usesMemo struct {
	mu    sync.Mutex
	cache *gitstate.UsesCache
	refs  map[string]string // URL@REF -> the commit it named when fetched
	trees map[string]fs.FS  // URL@commit -> its files, in the cache
}

// usesImporter is the workflow.Importer of one load: a source pinned in
// state.yaml is read at its pin (from the cache, fetched only when the
// cache does not hold it); an unpinned one, or every one when update is
// set, at what its ref names now. Used records what each source was read
// at.
type usesImporter struct {
	o      *Orchestrator
	ctx    context.Context
	pins   map[string]string
	update bool
	used   map[string]string
}

func (o *Orchestrator) importer(ctx context.Context, pins map[string]string, update bool) *usesImporter {
	return &usesImporter{o: o, ctx: ctx, pins: pins, update: update, used: map[string]string{}}
}

// Import implements workflow.Importer.
func (i *usesImporter) Import(u workflow.Uses) (fs.FS, string, error) {
	m := &i.o.uses
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cache == nil {
		m.cache = i.o.repo.UsesCache()
		m.refs, m.trees = map[string]string{}, map[string]fs.FS{}
	}
	key := u.PinKey()
	commit, pinned := i.pins[key]
	if !pinned || i.update {
		c, ok := m.refs[key]
		if !ok {
			var err error
			if c, err = m.cache.Resolve(i.ctx, u.URL, u.Ref); err != nil {
				return nil, "", err
			}
			m.refs[key] = c
		}
		commit = c
	}
	tkey := u.URL + "@" + commit
	fsys, ok := m.trees[tkey]
	if !ok {
		if err := m.cache.Ensure(i.ctx, u.URL, u.Ref, commit); err != nil {
			return nil, "", err
		}
		var err error
		if fsys, err = m.cache.TreeFS(i.ctx, u.URL, commit); err != nil {
			return nil, "", err
		}
		m.trees[tkey] = fsys
	}
	i.used[key] = commit
	return fsys, commit, nil
}

// loadProject loads the workflow, agents and plans at fsys, checking the
// engine names they give against the agents registry (the model does not
// know the engines, and the orchestrator is where the two meet), reading
// the git sources of uses: at their pins. At a commit whose workflow
// files are those of the definition kept (workflowcache.go), the
// workflow and agents are decoded from it instead of parsed.
func (o *Orchestrator) loadProject(fsys fs.FS, pins map[string]string) (*workflow.Project, error) {
	return workflow.LoadProjectWith(fsys, workflow.LoadOptions{Engines: agents.WorkflowEngines(),
		Importer: o.importer(context.Background(), pins, false), Definition: o.cachedDefinition(fsys),
		Parsed: o.keepDefinition(fsys)})
}

// workingPins are the pins of the working tree's state.yaml (validate and
// graph read the working tree); none when it cannot be read.
func workingPins(root string) map[string]string {
	data, err := workflow.ReadRegular(os.DirFS(root), workflow.StateFile)
	if err != nil {
		return nil
	}
	st, err := gitstate.ParseState(workflow.StateFile, data)
	if err != nil {
		return nil
	}
	return st.Uses
}

// pinUses records in state.yaml the commit every git source of uses: is
// read at, in a commit of its own that changes only state.yaml
// ("codemachine: pin uses"), before a run starts: a source new to the
// workflow is pinned to what its ref names now, and with update every
// source is pinned again. Pins of sources the workflow no longer uses are
// dropped. Nothing is committed when the pins are as they were, or when the
// workflow does not load (the run reports why).
func (o *Orchestrator) pinUses(ctx context.Context, head gitstate.Head, update bool) error {
	fsys, err := o.repo.TreeFS(head.Commit)
	if err != nil {
		return err
	}
	state, err := o.loadState(head.Commit)
	if err != nil {
		return err
	}
	imp := o.importer(ctx, state.Uses, update)
	if _, err := workflow.LoadProjectWith(fsys, workflow.LoadOptions{Engines: agents.WorkflowEngines(), Importer: imp}); err != nil {
		return &ConfigError{Err: err}
	}
	if maps.Equal(imp.used, state.Uses) {
		return nil
	}
	write := func(base string, st *gitstate.State) (string, error) {
		next := *st
		next.Uses = imp.used
		if len(next.Uses) == 0 {
			next.Uses = nil
		}
		h, err := o.repo.HashObject(ctx, o.marshalState(&next))
		if err != nil {
			return "", err
		}
		return o.repo.OverlayTree(ctx, base, map[string]gitstate.Blob{workflow.StateFile: {Hash: h, Mode: "100644"}})
	}
	tree, err := write(head.Commit, state)
	if err != nil {
		return fmt.Errorf("pin uses: %w", err)
	}
	changes := pinChanges(state.Uses, imp.used)
	msg := gitstate.Message{Subject: "codemachine: pin uses", Body: strings.Join(changes, "\n")}
	commit, err := o.repo.CommitTree(ctx, gitstate.CommitSpec{Tree: tree, Parents: []string{head.Commit}, Message: msg.String()})
	if err != nil {
		return fmt.Errorf("pin uses: %w", err)
	}
	_, err = o.repo.Land(ctx, head.Branch, head.Commit, commit, gitstate.LandOptions{
		ConflictBranch: "codemachine/conflict/pin-uses",
		Overlay: func(tip, merged string) (string, error) {
			tipState, err := o.loadState(tip)
			if err != nil {
				return "", err
			}
			return write(merged, tipState)
		},
		OverlayPaths: []string{workflow.StateFile},
	})
	if err != nil {
		return fmt.Errorf("pin uses: %w", err)
	}
	for _, c := range changes {
		o.emit(Event{Kind: Note, Message: "uses: " + c})
	}
	return nil
}

// pinChanges describes how the pins changed, one line per source.
func pinChanges(old, now map[string]string) []string {
	var out []string
	for src, c := range now {
		switch was, ok := old[src]; {
		case !ok:
			out = append(out, fmt.Sprintf("%s pinned to %s", src, short(c)))
		case was != c:
			out = append(out, fmt.Sprintf("%s pinned to %s (was %s)", src, short(c), short(was)))
		}
	}
	for src, was := range old {
		if _, ok := now[src]; !ok {
			out = append(out, fmt.Sprintf("%s no longer used (was %s)", src, short(was)))
		}
	}
	sort.Strings(out)
	return out
}

// IsTemplateURL reports whether init --template's argument names a git
// source (GIT_URL@REF, or anything else that is not a bare name) rather
// than a built-in template.
func IsTemplateURL(s string) bool { return !templateNameRE().MatchString(s) }

var templateNameRE = lazyre.New(`^[a-z0-9][a-z0-9-]*$`)

// TemplateSource is a template fetched by Template.
type TemplateSource struct {
	// Files are the source's .codemachine/ without state.yaml, for Init.
	Files fs.FS
	// Commit is the commit the source was read at.
	Commit string
	// Outside are the files of the workflow's definition that lie
	// outside .codemachine/ in the source (what a local uses: imports,
	// such as shared/lint/workflow.yaml) and that this repository does not
	// have: Init copies .codemachine/ only, so the workflow cannot load
	// until they are copied too.
	Outside []string
}

// Template fetches the repository src names (GIT_URL@REF, whose
// .codemachine/ holds a workflow) into the uses cache and returns it. A
// fetch failure is a *gitstate.FetchError; anything else wrong with src
// is a *ConfigError.
func (o *Orchestrator) Template(ctx context.Context, src string) (*TemplateSource, error) {
	files, commit, tree, err := o.fetchTemplate(ctx, src)
	if err != nil {
		return nil, err
	}
	return &TemplateSource{Files: files, Commit: commit, Outside: o.missingOutside(tree)}, nil
}

// missingOutside lists the files of tree's workflow definition outside
// .codemachine/ that the repository's working tree does not have. The
// source is loaded as it is; its problems are its own and not reported
// here.
func (o *Orchestrator) missingOutside(tree fs.FS) []string {
	p, _ := workflow.LoadProjectWith(tree, workflow.LoadOptions{Engines: agents.WorkflowEngines()})
	if p == nil {
		return nil
	}
	var out []string
	for _, f := range p.DefinitionFiles {
		if strings.HasPrefix(f, workflow.Dir+"/") {
			continue
		}
		if fi, err := fs.Stat(tree, f); err != nil || fi.IsDir() {
			continue
		}
		if _, err := os.Lstat(filepath.Join(o.repo.Root(), filepath.FromSlash(f))); err == nil {
			continue
		}
		out = append(out, f)
	}
	return out
}

// fetchTemplate fetches src and returns its .codemachine/ without
// state.yaml, the commit it was read at and the source's whole tree.
func (o *Orchestrator) fetchTemplate(ctx context.Context, src string) (fs.FS, string, fs.FS, error) {
	u, err := workflow.ParseUses(src)
	if err != nil {
		return nil, "", nil, configErrorf("init --template %s", strings.TrimPrefix(err.Error(), "uses: "))
	}
	if !u.IsGit() {
		return nil, "", nil, configErrorf("init --template %s: want GIT_URL@REF (a repository whose .codemachine/ holds a workflow)", src)
	}
	cache := o.repo.UsesCache()
	commit, err := cache.Resolve(ctx, u.URL, u.Ref)
	if err != nil {
		return nil, "", nil, &ConfigError{Err: fmt.Errorf("init --template %s: %w", src, err)}
	}
	tree, err := cache.TreeFS(ctx, u.URL, commit)
	if err != nil {
		return nil, "", nil, err
	}
	if _, err := fs.Stat(tree, workflow.WorkflowFile); err != nil {
		return nil, "", nil, configErrorf("init --template %s: no %s at %s", src, workflow.WorkflowFile, short(commit))
	}
	sub, err := fs.Sub(tree, workflow.Dir)
	if err != nil {
		return nil, "", nil, err
	}
	return withoutState{sub}, commit, tree, nil
}

// withoutState is a template's .codemachine/ without its state.yaml: what
// the template's own runs did is not the new repository's. Its
// workflow.yaml starts with schemaComment, as the built-in templates' do,
// when it has no yaml-language-server line of its own: init writes the
// schema that line names.
type withoutState struct{ fs.FS }

// schemaComment is the first line of a workflow.yaml init writes: it
// points editors (yaml-language-server) at the schema init writes beside.
const schemaComment = "# yaml-language-server: $schema=schema/workflow.json\n"

// ReadFile reads name, workflow.yaml with schemaComment first.
func (w withoutState) ReadFile(name string) ([]byte, error) {
	data, err := fs.ReadFile(w.FS, name)
	if err != nil || name != path.Base(workflow.WorkflowFile) || bytes.Contains(data, []byte("yaml-language-server:")) ||
		bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		// A file with a byte-order mark keeps it first.
		return data, err
	}
	return append([]byte(schemaComment), data...), nil
}

func (w withoutState) ReadDir(name string) ([]fs.DirEntry, error) {
	ents, err := fs.ReadDir(w.FS, name)
	if name != "." {
		return ents, err
	}
	out := ents[:0:0]
	for _, e := range ents {
		if e.Name() != "state.yaml" {
			out = append(out, e)
		}
	}
	return out, err
}

// ProjectAt loads the workflow as committed at commit, its git sources of
// uses: read at the pins of that commit's state.yaml (watch reads its
// trigger and inputs from it).
func (o *Orchestrator) ProjectAt(commit string) (*workflow.Project, error) {
	fsys, err := o.repo.TreeFS(commit)
	if err != nil {
		return nil, err
	}
	state, err := o.loadState(commit)
	if err != nil {
		return nil, err
	}
	return o.loadProject(fsys, state.Uses)
}
