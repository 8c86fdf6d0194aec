package workflow

import (
	"io/fs"
	"sort"

	"github.com/expr-lang/expr"
	"go.yaml.in/yaml/v3"
)

// A project's definition is what LoadProjectWith parses: the workflow with
// the steps that uses: imports, and the agents the steps name. It depends
// on nothing but the files it reads (the repository's and those of the git
// sources, at their commits), so a caller that knows whether those files
// are unchanged (by their blob ids, in a commit's tree) can keep it
// encoded between processes and skip the YAML parse and decoding (see
// LoadOptions.Definition and LoadOptions.Parsed). The plans and fan-outs,
// which depend on more of the tree, and the graph are worked out at every
// load, cached or not, by the same code.
//
// What cannot be encoded is rebuilt when it is decoded: the compiled when:
// and until: conditions (from their source, with the step ids and vars
// they were compiled against), the output schemas (from their canonical
// JSON), the sources' file systems (the loaded file system, or the
// importer's at the same commit). An agent's template is parsed when it is
// first rendered.

// defGob is the encoded definition.
type defGob struct {
	Workflow Workflow // without Steps, which are in Steps
	Steps    []stepGob
	Sources  []sourceGob
	Agents   map[string]*Agent
	// Edges are the graph's (Graph.edges), by step id.
	Edges map[string][]depGob
	// Files are Project.DefinitionFiles.
	Files []string
}

// depGob is a dep.
type depGob struct {
	ID string
	At Pos
}

// stepGob is a Step with what the encoding of its exported fields
// (defcodec.go) leaves out: its unexported fields, its conditions' compile
// inputs, and its source as an index in defGob.Sources (steps imported
// together share one Source).
type stepGob struct {
	Step        Step // Source, When and Until are nil here
	Source      int  // 1-based index in defGob.Sources; 0 for none
	When, Until *condGob
	ImportedAt  Pos
	AgentKeys   map[string]string
	At          atGob
}

// condGob is a Condition and what it was compiled against.
type condGob struct {
	Source       string
	Steps, Files []string
	IDs          []string
	Vars         map[string]any
}

// atGob is stepPositions.
type atGob struct {
	ID, Agent, Foreach, Reviewer Pos
	Inputs, Needs                []Pos
	When, Until                  Pos
	WhenStyle, UntilStyle        yaml.Style
	WhenLines, UntilLines        []int
	WhenSpans, UntilSpans        []int
	MaxIterations                Pos
}

// sourceGob is a Source without its file system: Repo is "" for a source
// of the loaded file system, else the git source (URL@REF) whose files it
// is read from, imported again on decoding.
type sourceGob struct {
	Uses               Uses
	Dir, Commit, Label string
	Repo, Key          string
}

// encodeDefinition encodes p's workflow and agents (defcodec.go); ok is
// false when they cannot be encoded exactly (vars of a type the encoding
// does not keep), and then they are not kept. fsys is the file system p was loaded from.
func encodeDefinition(p *Project) ([]byte, bool) {
	d := defGob{Workflow: *p.Workflow, Agents: p.Agents, Edges: map[string][]depGob{}, Files: p.DefinitionFiles}
	d.Workflow.Steps = nil
	for id, deps := range p.Graph.edges() {
		for _, e := range deps {
			d.Edges[id] = append(d.Edges[id], depGob{ID: e.id, At: e.at})
		}
	}
	srcs := map[*Source]int{}
	for _, s := range p.Workflow.Steps {
		g := stepGob{Step: *s, ImportedAt: s.importedAt, AgentKeys: s.agentKeys, At: atGob{
			ID: s.at.id, Agent: s.at.agent, Foreach: s.at.foreach, Reviewer: s.at.reviewer,
			Inputs: s.at.inputs, Needs: s.at.needs, When: s.at.when.Pos, Until: s.at.until.Pos,
			WhenStyle: s.at.when.style, UntilStyle: s.at.until.style, MaxIterations: s.at.maxIterations,
			WhenLines: s.at.when.lines, UntilLines: s.at.until.lines,
			WhenSpans: s.at.when.spans, UntilSpans: s.at.until.spans,
		}}
		g.Step.Source, g.Step.When, g.Step.Until = nil, nil, nil
		if src := s.Source; src != nil {
			if srcs[src] == 0 {
				d.Sources = append(d.Sources, sourceGob{Uses: src.Uses, Dir: src.Dir, Commit: src.Commit,
					Label: src.Label, Repo: src.repo, Key: src.key})
				srcs[src] = len(d.Sources)
			}
			g.Source = srcs[src]
		}
		var ok bool
		if g.When, ok = encodeCond(s.When); !ok {
			return nil, false
		}
		if g.Until, ok = encodeCond(s.Until); !ok {
			return nil, false
		}
		d.Steps = append(d.Steps, g)
	}
	return encodeDefGob(&d)
}

func encodeCond(c *Condition) (*condGob, bool) {
	if c == nil {
		return nil, true
	}
	if c.program == nil {
		return nil, false
	}
	return &condGob{Source: c.Source, Steps: c.Steps, Files: c.Files, IDs: c.ids, Vars: c.vars}, true
}

// decodeDefinition rebuilds the project that data encodes, loaded from
// fsys with imp, and its graph's edges; nil when data does not decode, a condition or schema does
// not compile, or a git source does not import at the commit it was read
// at (its pin moved): the caller then parses.
func decodeDefinition(data []byte, fsys fs.FS, imp Importer) (*Project, map[string][]dep) {
	d, ok := decodeDefGob(data)
	if !ok {
		return nil, nil
	}
	srcs := make([]*Source, len(d.Sources))
	repos := map[string]fs.FS{}
	for i, g := range d.Sources {
		src := &Source{Uses: g.Uses, FS: fsys, Dir: g.Dir, Commit: g.Commit, Label: g.Label, repo: g.Repo, key: g.Key}
		if g.Repo != "" {
			if src.FS = repos[g.Repo]; src.FS == nil {
				u, err := ParseUses(g.Repo)
				if err != nil || imp == nil {
					return nil, nil
				}
				rfs, commit, err := imp.Import(u)
				if err != nil || commit != g.Commit {
					return nil, nil
				}
				src.FS, repos[g.Repo] = rfs, rfs
			}
		}
		srcs[i] = src
	}
	w := d.Workflow
	w.Steps = make([]*Step, len(d.Steps))
	for i := range d.Steps {
		// The step is taken where it was decoded: a copy of each, as
		// large as it is, was a tenth of decoding a definition.
		g := &d.Steps[i]
		s := &g.Step
		s.importedAt, s.agentKeys = g.ImportedAt, g.AgentKeys
		s.at = stepPositions{id: g.At.ID, agent: g.At.Agent, foreach: g.At.Foreach, reviewer: g.At.Reviewer,
			inputs: g.At.Inputs, needs: g.At.Needs, when: whenAt{Pos: g.At.When, style: g.At.WhenStyle, lines: g.At.WhenLines, spans: g.At.WhenSpans},
			until:         whenAt{Pos: g.At.Until, style: g.At.UntilStyle, lines: g.At.UntilLines, spans: g.At.UntilSpans},
			maxIterations: g.At.MaxIterations}
		if g.Source > len(srcs) || g.Source < 0 {
			return nil, nil
		}
		if g.Source > 0 {
			s.Source = srcs[g.Source-1]
		}
		var ok bool
		if s.When, ok = decodeCond(g.When); !ok {
			return nil, nil
		}
		if s.Until, ok = decodeCond(g.Until); !ok {
			return nil, nil
		}
		if s.When != nil {
			s.at.when.src = s.When.Source
		}
		if s.Until != nil {
			s.at.until.src = s.Until.Source
		}
		if s.OutputSchema != nil {
			root, err := compileSchemaJSON(s.OutputSchema.JSON)
			if err != nil {
				return nil, nil
			}
			s.OutputSchema.root = root
		}
		w.Steps[i] = s
	}
	if d.Agents == nil {
		d.Agents = map[string]*Agent{}
	}
	edges := make(map[string][]dep, len(d.Edges))
	for id, deps := range d.Edges {
		for _, e := range deps {
			edges[id] = append(edges[id], dep{id: e.ID, at: e.At})
		}
	}
	p := newProject(&w, d.Agents)
	p.DefinitionFiles = d.Files
	return p, edges
}

// decodeCond compiles a condition again against what it was compiled
// against when it was parsed.
func decodeCond(g *condGob) (*Condition, bool) {
	if g == nil {
		return nil, true
	}
	c := &Condition{Source: g.Source, Steps: g.Steps, Files: g.Files, ids: g.IDs, vars: g.Vars}
	if c.vars == nil {
		c.vars = map[string]any{}
	}
	prog, err := expr.Compile(c.Source, expr.Env(condSample(c.ids, c.vars)), expr.AsBool())
	if err != nil {
		return nil, false
	}
	c.program = prog
	return c, true
}

// condSample is the environment conditions are compiled against: every
// step id (ids) not yet run, and the workflow's vars.
func condSample(ids []string, vars map[string]any) map[string]any {
	steps := make(map[string]any, len(ids))
	for _, id := range ids {
		steps[id] = map[string]any{"done": false, "skipped": false, "output": nil}
	}
	sample := condEnv(CondInput{Vars: vars})
	sample["steps"] = steps
	return sample
}

// recordFS is the file system a definition is parsed from, recording every
// path read or looked at, which is what the definition depends on in it.
type recordFS struct {
	fsys  fs.FS
	names map[string]bool
}

func (r *recordFS) Open(name string) (fs.File, error) {
	r.names[name] = true
	return r.fsys.Open(name)
}

func (r *recordFS) ReadFile(name string) ([]byte, error) {
	r.names[name] = true
	return fs.ReadFile(r.fsys, name)
}

func (r *recordFS) Stat(name string) (fs.FileInfo, error) {
	r.names[name] = true
	return fs.Stat(r.fsys, name)
}

// Lstat and ReadLink record nothing: they look at the directories on
// the way to a file too, whose every change is no change of the definition.
func (r *recordFS) Lstat(name string) (fs.FileInfo, error) { return fs.Lstat(r.fsys, name) }

func (r *recordFS) ReadLink(name string) (string, error) { return fs.ReadLink(r.fsys, name) }

func (r *recordFS) ReadDir(name string) ([]fs.DirEntry, error) {
	r.names[name] = true
	return fs.ReadDir(r.fsys, name)
}

// read lists the paths read, sorted.
func (r *recordFS) read() []string {
	out := make([]string, 0, len(r.names))
	for name := range r.names {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// unwrap gives back the plain file system to the sources that were read
// through r.
func (r *recordFS) unwrap(w *Workflow) {
	for _, s := range w.Steps {
		if s.Source != nil && s.Source.FS == fs.FS(r) {
			s.Source.FS = r.fsys
		}
	}
}
