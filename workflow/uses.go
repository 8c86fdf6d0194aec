package workflow

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/codemachine/codemachine/internal/lazyre"
	"github.com/codemachine/codemachine/internal/yamlnode"
)

// Uses is the source of a uses: entry of a workflow's steps: a directory
// of the same repository (Path) or a git repository at a ref (URL, Ref).
type Uses struct {
	Raw string // as written
	// Path is a local directory holding workflow.yaml and agents/,
	// cleaned and relative to the root of the repository whose workflow
	// names it; "" for a git source.
	Path string
	// URL and Ref name a git repository and the branch, tag or commit
	// whose .codemachine/ is imported.
	URL, Ref string
}

// IsGit reports whether u names a git repository.
func (u Uses) IsGit() bool { return u.URL != "" }

// PinKey is the key of u's pin in state.yaml: URL@REF.
func (u Uses) PinKey() string { return u.URL + "@" + u.Ref }

// ImportedDir is the directory of an imported repository that holds its
// workflow.yaml and agents/.
const ImportedDir = Dir

// UsesError is a uses: value that is not of a known form.
type UsesError struct{ Msg string }

// Error says what is wrong with the uses: value and the forms it takes.
func (e *UsesError) Error() string { return e.Msg }

var (
	usesRefRE = lazyre.New(`^[A-Za-z0-9_.][A-Za-z0-9_./+-]*$`)
	scpLikeRE = lazyre.New(`^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:[^/]`)
)

// usesSchemes are the URL schemes git fetches from that uses: accepts.
var usesSchemes = []string{"https", "http", "ssh", "git", "file"}

// ParseUses reads a uses: value: ./PATH (a directory of the same
// repository, relative to its root) or GIT_URL@REF, where GIT_URL is
// https://, http://, ssh://, git:// or file:// or scp-like
// (user@host:path), and REF a branch, tag or commit.
func ParseUses(s string) (Uses, error) {
	u := Uses{Raw: s}
	switch {
	case s == "":
		return u, &UsesError{"uses: empty: want ./PATH or GIT_URL@REF"}
	case strings.ContainsFunc(s, unicode.IsControl):
		// No path or URL worth importing has one, and the messages
		// that name the source would be split by a line break.
		return u, &UsesError{fmt.Sprintf("uses: %q: a line break or other control character: want ./PATH or GIT_URL@REF", s)}
	case s == "." || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../"):
		p := path.Clean(s)
		if p == ".." || strings.HasPrefix(p, "../") {
			return u, &UsesError{fmt.Sprintf("uses: %q leaves the repository: a path is relative to the repository root; import another repository with GIT_URL@REF", s)}
		}
		u.Path = p
		return u, nil
	case strings.HasPrefix(s, "/"):
		return u, &UsesError{fmt.Sprintf("uses: %q is an absolute path: write ./PATH relative to the repository root, or file://%s@REF for a repository on this machine", s, s)}
	}
	return parseGitUses(u)
}

func parseGitUses(u Uses) (Uses, error) {
	s := u.Raw
	var rest string // what may hold the @REF: after the scheme's host, or after scp-like's ':'
	if scheme, after, ok := strings.Cut(s, "://"); ok {
		if !slices.Contains(usesSchemes, scheme) {
			return u, &UsesError{fmt.Sprintf("uses: %q: unknown URL scheme %q (want %s)", s, scheme, strings.Join(usesSchemes, ", "))}
		}
		slash := strings.Index(after, "/")
		if slash < 0 {
			return u, &UsesError{fmt.Sprintf("uses: %q: no repository path in the URL", s)}
		}
		rest = after[slash:]
	} else if scpLikeRE().MatchString(s) {
		_, rest, _ = strings.Cut(s, ":")
	} else {
		return u, &UsesError{fmt.Sprintf("uses: unknown form %q: want ./PATH (a directory of this repository) or GIT_URL@REF (https://, http://, ssh://, git://, file:// or user@host:path)", s)}
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return u, &UsesError{fmt.Sprintf("uses: %q: missing @REF (a branch, tag or commit, e.g. %s@v1)", s, s)}
	}
	u.URL, u.Ref = s[:len(s)-len(rest)+at], rest[at+1:]
	if u.Ref == "" || !usesRefRE().MatchString(u.Ref) || strings.Contains(u.Ref, "..") || strings.HasSuffix(u.Ref, "/") || strings.HasSuffix(u.Ref, ".lock") {
		return u, &UsesError{fmt.Sprintf("uses: %q: invalid ref %q", s, u.Ref)}
	}
	if strings.HasPrefix(u.URL, "-") || strings.ContainsAny(u.URL, " \t\n") {
		return u, &UsesError{fmt.Sprintf("uses: %q: invalid URL %q", s, u.URL)}
	}
	return u, nil
}

// Source is where an imported workflow was read from.
type Source struct {
	Uses Uses
	// FS holds the files of the repository the workflow is in: the
	// importing repository's for a local path.
	FS fs.FS
	// Dir is the directory of FS holding workflow.yaml and agents/.
	Dir string
	// Commit is the commit a git source is pinned to; "" for a local one.
	Commit string
	// Label names the source in messages: the directory for a local
	// source, URL@REF for a git one (URL@REF:DIR for a directory of it).
	Label string
	// repo is URL@REF of the git repository the source is in; "" for the
	// importing repository.
	repo string
	// key identifies the source for cycles: the repository and directory.
	key string
}

// file is how a path of the source's repository is named in positions.
func (s *Source) file(p string) string {
	if s.repo != "" {
		return s.repo + ":" + p
	}
	return p
}

// Importer fetches the git repositories that uses: entries name. The
// workflow package reads local sources itself, from the file system it is
// given.
type Importer interface {
	// Import returns the files of u.URL at the commit u.Ref is pinned to,
	// and that commit.
	Import(u Uses) (fsys fs.FS, commit string, err error)
}

// ErrNoImporter is the error for a git uses: read without an Importer.
var ErrNoImporter = errors.New("git sources are not read here")

// LoadOptions are the optional parts of LoadProjectWith.
type LoadOptions struct {
	// Engines are the engine names a step or an agent may give.
	Engines []string
	// Importer fetches git sources of uses:; nil reports each as an error.
	Importer Importer
	// Definition is the workflow and agents as Parsed gave them at an
	// earlier load, to be used instead of parsing them; the caller knows
	// that none of the files they were read from changed. It is parsed
	// anyway when it does not decode or a git source now imports at
	// another commit.
	Definition []byte
	// Parsed, when set, is called after a parse whose workflow and agents
	// have no problem (problems of plans, fan-outs and the graph aside),
	// with them encoded and the paths of the file system they were read
	// from (files looked at but absent too): while none of those paths
	// changes, and each git source imports at the same commit, the
	// encoding is a valid Definition for a later load with the same
	// Engines.
	Parsed func(definition []byte, read []string)
}

// importCtx is what reading uses: entries needs: the repository being read,
// the importer, and the chain of sources being read, for cycles.
type importCtx struct {
	fsys     fs.FS
	src      *Source // nil for the repository's own workflow
	importer Importer
	chain    []string // labels of the sources being read, outermost first
	keys     []string
	// vars collects the imported workflows' vars:, which the importing
	// workflow's own override.
	vars map[string]any
}

var usesEntryKeys = []string{"uses", "needs"}

// isUsesEntry reports whether a steps item is a uses: entry.
func isUsesEntry(n *yaml.Node) bool {
	if n.Kind != yaml.MappingNode {
		return false
	}
	for e := range yamlnode.Entries(n) {
		if k := yamlnode.Resolve(e.Key); k.Kind == yaml.ScalarNode && k.Value == "uses" {
			return true
		}
	}
	return false
}

// usesEntry reads a uses: entry and returns the steps it imports, with
// the entry's needs added to each, and its needs references.
func (d *yamlDoc) usesEntry(n *yaml.Node) ([]*Step, []stepRef) {
	kvs, _ := d.mapping(n, "uses")
	var (
		src       Uses
		usesNode  *yaml.Node
		needs     []string
		needsPos  []Pos
		refs      []stepRef
		entryStep = &Step{Pos: d.pos(n)}
	)
	for _, kv := range kvs {
		switch kv.name {
		case "uses":
			v, ok := d.str(kv.val, "uses")
			if !ok {
				continue
			}
			usesNode = yamlnode.Resolve(kv.val)
			u, err := ParseUses(v)
			if err != nil {
				d.errs.Add(d.pos(usesNode), "%v", err)
				usesNode = nil
				continue
			}
			src = u
		case "needs":
			vals, nodes := d.strList(kv.val, "needs", "a list of step ids")
			for i, v := range vals {
				needs = append(needs, v)
				needsPos = append(needsPos, d.pos(nodes[i]))
				refs = append(refs, stepRef{step: entryStep, id: v, node: nodes[i]})
			}
		default:
			d.unknownKey(kv, " in a uses: entry (it takes uses and needs; the imported steps are configured in their own workflow)", usesEntryKeys)
		}
	}
	if usesNode == nil {
		return nil, refs
	}
	steps := d.importSteps(src, d.pos(usesNode))
	for _, s := range steps {
		for i, id := range needs {
			if !slices.Contains(s.Needs, id) {
				s.Needs = append(s.Needs, id)
				s.at.needs = append(s.at.needs, needsPos[i])
			}
		}
		s.importedAt = d.pos(usesNode)
	}
	for i := range refs {
		for _, s := range steps {
			if refs[i].id == s.ID {
				d.errs.Add(d.pos(refs[i].node), "uses: %s: needs %q, a step it imports", src.Raw, s.ID)
			}
		}
	}
	return steps, refs
}

// importSteps reads the workflow that u names and returns its steps, each
// with its Source. Problems are reported at `at` (the uses: value) when
// they are about the source, in the imported file when they are in it.
func (d *yamlDoc) importSteps(u Uses, at Pos) []*Step {
	imp := d.imp
	if imp == nil {
		// ParseWorkflow: no files to read the import from. Its steps
		// are unknown, so are the ids needs and conditions may name.
		d.openUses = true
		return nil
	}
	src, err := imp.resolve(u)
	if err != nil {
		d.errs.Add(at, "uses: %s: %v", u.Raw, err)
		return nil
	}
	if i := slices.Index(imp.keys, src.key); i >= 0 {
		d.errs.Add(at, "uses: cycle: %s -> %s", strings.Join(imp.chain[i:], " -> "), src.Label)
		return nil
	}
	file := path.Join(src.Dir, "workflow.yaml")
	data, err := readDefFile(src.FS, file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.errs.Add(at, "uses: %s: no %s", u.Raw, src.file(file))
		return nil
	case err != nil:
		d.errs.Add(at, "uses: %s: %v", u.Raw, err)
		return nil
	}
	sub := &importCtx{fsys: src.FS, src: src, importer: imp.importer,
		chain: append(slices.Clone(imp.chain), src.Label), keys: append(slices.Clone(imp.keys), src.key), vars: imp.vars}
	w := parseImported(src.file(file), data, d.engines, d.errs, sub)
	for _, s := range w.Steps {
		if s.Source == nil {
			s.Source = src
		}
	}
	for k, v := range w.Vars {
		if _, ok := imp.vars[k]; !ok {
			imp.vars[k] = v
		}
	}
	return w.Steps
}

// resolve finds the repository and directory u names, relative to the
// source being read.
func (c *importCtx) resolve(u Uses) (*Source, error) {
	if u.IsGit() {
		if c.importer == nil {
			return nil, ErrNoImporter
		}
		fsys, commit, err := c.importer.Import(u)
		if err != nil {
			return nil, err
		}
		return &Source{Uses: u, FS: fsys, Dir: ImportedDir, Commit: commit, Label: u.Raw, repo: u.Raw,
			key: u.URL + "@" + commit + ":" + ImportedDir}, nil
	}
	src := &Source{Uses: u, FS: c.fsys, Dir: u.Path, Label: u.Path, key: "local:" + u.Path}
	if c.src != nil && c.src.repo != "" {
		src.repo, src.Commit = c.src.repo, c.src.Commit
		src.Label = c.src.repo + ":" + u.Path
		src.key = c.src.repo + "@" + c.src.Commit + ":" + u.Path
	}
	if err := CheckNoLink(src.FS, u.Path); err != nil {
		// A commit's tree does not follow the link: say what it is, as
		// validate, which reads the working tree, does.
		return nil, err
	}
	if st, err := fs.Stat(src.FS, u.Path); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("no directory %s", src.file(u.Path))
	}
	return src, nil
}

// parseImported is parseWorkflowIn, set in init: workflowFields, through
// steps and usesEntry, would otherwise refer to itself.
var parseImported func(file string, data []byte, engines []string, errs *Errors, imp *importCtx) *Workflow

func init() { parseImported = parseWorkflowIn }

// rootImportCtx is the import context of the repository's own workflow.
func rootImportCtx(fsys fs.FS, importer Importer) *importCtx {
	return &importCtx{fsys: fsys, importer: importer, chain: []string{Dir}, keys: []string{"local:" + Dir}, vars: map[string]any{}}
}

// mergeImportedVars adds the imported workflows' vars to w's, which win.
func mergeImportedVars(w *Workflow, imp *importCtx) {
	if imp == nil || len(imp.vars) == 0 {
		return
	}
	vars := maps.Clone(imp.vars)
	maps.Copy(vars, w.Vars)
	w.Vars = vars
}

// Imported reports whether the step comes from a uses: entry.
func (s *Step) Imported() bool { return s.Source != nil }
