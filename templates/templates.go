// Package templates holds the workflows that `codemachine init --template
// NAME` writes into .codemachine/: spec-to-code (the example at the
// repository root, the default), migrate and feature. Each comes with
// replay recordings, so that `codemachine run --engine replay` runs it
// offline, and the ones that work on an existing code base come with a
// small sample of one (the code base their recordings were made on).
package templates

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/codemachine/codemachine"
)

// Default is the template `codemachine init` uses without --template.
const Default = "spec-to-code"

//go:embed all:migrate all:feature samples
var embedded embed.FS

// Template is one built-in workflow.
type Template struct {
	Name    string
	Summary string // one line, for listings
	// Files are what goes into .codemachine/: workflow.yaml, agents/,
	// recordings/ and whatever else the workflow reads.
	Files fs.FS
	// Sample is the code base the template's recordings were made on
	// (path -> content, relative to the repository root), or nil. init
	// writes it into a repository that has no files of its own, so that
	// replaying the recordings there works.
	Sample map[string][]byte
	// Brief is the file that says what to do (spec.md, migration.md,
	// feature.md under .codemachine/); Start says what to do before the
	// first run (lines for init to print); Adapt says what to change in a
	// repository with files of its own, where the sample is not written.
	Brief, Start, Adapt string
}

// builtins lists the templates in the order Names gives them.
var builtins = []builtin{
	{"spec-to-code", "a new program from a spec: architecture, plan, tasks with review, final review", "",
		".codemachine/spec.md",
		"$EDITOR .codemachine/spec.md            # describe what to build",
		`The example is a spec-to-code
workflow for a new Go program at the repository root: its coder writes go.mod, main.go and
packages there, and its check runs go vet and go test over the whole repository. Adapt it
to this project before the first run: describe the change in .codemachine/spec.md, and edit
the agents in .codemachine/agents/ and the check in .codemachine/workflow.yaml.`},
	{"migrate", "a legacy code base translated file by file, each checked against the original, then integrated", "migrate",
		".codemachine/migration.md",
		"$EDITOR .codemachine/migration.md       # the legacy code, the target and its layout",
		`The migrate template
translates legacy/*.awk to Go, one task per file, and checks each translation with
.codemachine/check.sh against the legacy program on the samples in legacy/testdata/. Adapt it
to this code base before the first run: the glob of the translate step and the module of the
setup step in .codemachine/workflow.yaml, .codemachine/migration.md, the check and the
integrate step.`},
	{"feature", "a feature added to an existing code base as small reviewed commits on a feature branch", "feature",
		".codemachine/feature.md",
		"$EDITOR .codemachine/feature.md         # the feature to add\n  git switch -c feature/NAME              # its commits land on this branch, for a pull request",
		`The feature template
adds the feature described in .codemachine/feature.md to this code base: a plan that you
approve, then one small commit per task, each reviewed by an agent, then a pull request
description. Describe the feature, set the check of the implement step in
.codemachine/workflow.yaml to this project's build and tests (it is go vet and go test), and
run it on a branch of its own (git switch -c feature/NAME).`},
}

// builtin is a built-in template's entry.
type builtin struct {
	name, summary, dir  string
	brief, start, adapt string
}

// Names lists the built-in templates' names, the default first.
func Names() []string {
	names := make([]string, len(builtins))
	for i, b := range builtins {
		names[i] = b.name
	}
	return names
}

// UnknownError is the error of Lookup for a name that is not a built-in
// template.
type UnknownError struct{ Name string }

// Error names the unknown template and the built-in ones.
func (e *UnknownError) Error() string {
	return fmt.Sprintf("no template %q; the built-in templates are: %s", e.Name, strings.Join(Names(), ", "))
}

// Lookup returns the built-in template of that name, or an *UnknownError.
func Lookup(name string) (*Template, error) {
	i := slices.IndexFunc(builtins, func(b builtin) bool { return b.name == name })
	if i < 0 {
		return nil, &UnknownError{Name: name}
	}
	b := builtins[i]
	t := &Template{Name: b.name, Summary: b.summary, Brief: b.brief, Start: b.start, Adapt: b.adapt}
	var err error
	if b.dir == "" {
		t.Files, err = fs.Sub(codemachine.Example, codemachine.ExampleDir)
	} else {
		t.Files, err = fs.Sub(embedded, b.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	if t.Sample, err = sample(b.name); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return t, nil
}

// Summaries returns "name: summary" lines of every built-in template.
func Summaries() []string {
	lines := make([]string, len(builtins))
	for i, b := range builtins {
		lines[i] = fmt.Sprintf("%-13s %s", b.name, b.summary)
	}
	return lines
}

// sample reads samples/NAME.txtar (a txtar archive: the sample holds Go
// files and a go.mod, which must not be part of this module), or returns
// nil when the template has none.
func sample(name string) (map[string][]byte, error) {
	data, err := embedded.ReadFile("samples/" + name + ".txtar")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ar := txtar.Parse(data)
	files := make(map[string][]byte, len(ar.Files))
	for _, f := range ar.Files {
		if _, dup := files[f.Name]; dup || f.Name == "" {
			return nil, fmt.Errorf("samples/%s.txtar: bad or repeated file name %q", name, f.Name)
		}
		files[f.Name] = f.Data
	}
	return files, nil
}
