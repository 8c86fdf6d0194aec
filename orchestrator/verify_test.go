package orchestrator

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// TestDefinitionChange: a step's change to any file the workflow's
// definition was read from or looked for is refused, added, changed,
// deleted or shadowed by a file where its directory was; a literal output
// of the repository's own step allows it, a glob or an imported step's
// output does not.
func TestDefinitionChange(t *testing.T) {
	files := []string{".codemachine/agents/coder.md", ".codemachine/agents/missing.md", workflow.WorkflowFile,
		"shared/lint", "shared/lint/agents/r.md", "shared/lint/workflow.yaml"}
	own := &workflow.Step{ID: "s"}
	imported := &workflow.Step{ID: "s", Source: &workflow.Source{Commit: "abc"}, Outputs: []string{workflow.WorkflowFile}}
	tests := []struct {
		name   string
		step   *workflow.Step
		change gitstate.Change
		want   string
	}{
		{"workflow edited", own, gitstate.Change{Path: workflow.WorkflowFile, Status: 'M'},
			"the step changed .codemachine/workflow.yaml, part of the workflow's definition (a step may not change the workflow it runs in; list it in the step's outputs to allow it)"},
		{"agent deleted", own, gitstate.Change{Path: ".codemachine/agents/coder.md", Status: 'D'},
			"the step deleted .codemachine/agents/coder.md, part of the workflow's definition (a step may not change the workflow it runs in; list it in the step's outputs to allow it)"},
		{"agent looked for added", own, gitstate.Change{Path: ".codemachine/agents/missing.md", Status: 'A'},
			"the step added .codemachine/agents/missing.md, part of the workflow's definition (a step may not change the workflow it runs in; list it in the step's outputs to allow it)"},
		{"local uses", own, gitstate.Change{Path: "shared/lint/workflow.yaml", Status: 'M'},
			"the step changed shared/lint/workflow.yaml, part of the workflow's definition (a step may not change the workflow it runs in; list it in the step's outputs to allow it)"},
		{"file over a definition directory", own, gitstate.Change{Path: "shared", Status: 'A', NewMode: "120000"},
			"the step changed shared, where the workflow's definition reads shared/lint (a step may not change the workflow it runs in)"},
		{"imported step's output", imported, gitstate.Change{Path: workflow.WorkflowFile, Status: 'M'},
			"the step changed .codemachine/workflow.yaml, part of the workflow's definition (a step may not change the workflow it runs in)"},
		{"glob output", &workflow.Step{Outputs: []string{".codemachine/*", "**"}}, gitstate.Change{Path: workflow.WorkflowFile, Status: 'M'},
			"the step changed .codemachine/workflow.yaml, part of the workflow's definition (a step may not change the workflow it runs in; list it in the step's outputs to allow it)"},
		{"literal output", &workflow.Step{Outputs: []string{workflow.WorkflowFile}}, gitstate.Change{Path: workflow.WorkflowFile, Status: 'M'}, ""},
		{"local import's literal output", &workflow.Step{Source: &workflow.Source{}, Outputs: []string{"shared/lint/agents/r.md"}},
			gitstate.Change{Path: "shared/lint/agents/r.md", Status: 'M'}, ""},
		{"other agent", own, gitstate.Change{Path: ".codemachine/agents/other.md", Status: 'A'}, ""},
		{"plan", own, gitstate.Change{Path: ".codemachine/plan.md", Status: 'M'}, ""},
		{"name sharing a prefix", own, gitstate.Change{Path: "shared/lint-report.txt", Status: 'A'}, ""},
		{"file beside the import", own, gitstate.Change{Path: "shared/lint/notes.md", Status: 'A'}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := definitionChange(tt.step, files, []gitstate.Change{tt.change}); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestLinkProblem: a symlink whose target leads into a .git (by name, by
// "..", through another symlink, a nested repository's) or out of the
// repository (also through a symlinked directory that "d/.." cleans away)
// is refused; one that stays inside, dangling or not, is not.
func TestLinkProblem(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{".git/hooks", ".codemachine", "sub/.git", "sub/deep"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"hooks-link":       ".git/hooks",
		".codemachine/cfg": "../.git/config",
		"dotdot":           "sub/../.git",
		"git-itself":       ".git",
		"nested":           "sub/.git/config",
		"via-link":         "hooks-link/pre-commit",
		"sub/up":           "..",
		"sub/escape":       "up/..",
		"sub/through-up":   "up/../x",
		"out":              "../elsewhere",
		"abs":              "/etc/passwd",
		"ok":               "sub/deep",
		"sub/ok-up":        "up/.gitignore",
		"dangling":         "nothing/here",
		"loop1":            "loop2",
		"loop2":            "loop1",
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, filepath.FromSlash(l))); err != nil {
			t.Fatal(err)
		}
	}
	tests := map[string]string{
		"hooks-link":       "symlink hooks-link points into .git (.git/hooks): writing through it would change a git directory",
		".codemachine/cfg": "symlink .codemachine/cfg points into .git (../.git/config): writing through it would change a git directory",
		"dotdot":           "symlink dotdot points into .git (sub/../.git): writing through it would change a git directory",
		"git-itself":       "symlink git-itself points into .git (.git): writing through it would change a git directory",
		"nested":           "symlink nested points into sub/.git (sub/.git/config): writing through it would change a git directory",
		"via-link":         "symlink via-link points into .git (hooks-link/pre-commit): writing through it would change a git directory",
		"sub/up":           "",
		"sub/escape":       "symlink sub/escape points outside the repository (up/..)",
		"sub/through-up":   "symlink sub/through-up points outside the repository (up/../x)",
		"out":              "symlink out points outside the repository (../elsewhere)",
		"abs":              "symlink abs points outside the repository (/etc/passwd)",
		"ok":               "",
		"sub/ok-up":        "",
		"dangling":         "",
		"loop1":            "symlink loop1 does not resolve (loop2): more than 40 symlinks in a row",
	}
	for l, want := range tests {
		if got := linkProblem(root, l); got != want {
			t.Errorf("%s:\ngot  %q\nwant %q", l, got, want)
		}
	}
}

// TestGitAlias: the names git's fsck takes for .git on NTFS or HFS+, and
// some that only look like it.
func TestGitAlias(t *testing.T) {
	for name, want := range map[string]bool{
		".git": true, ".GIT": true, ".git.": true, ".git ": true, ".Git. .": true, ".git::$INDEX_ALLOCATION": true,
		"git~1": true, "GIT~4": true, "git~1.": true, ".g\u200cit": true, "\ufeff.git": true, ".gi\u200dT": true,
		"git~5": false, ".gitignore": false, ".git-x": false, ".github": false, "git": false, "x.git": false, ".gi": false,
	} {
		if got := gitstate.IsGitAlias(name); got != want {
			t.Errorf("IsGitAlias(%q) = %v, want %v", name, got, want)
		}
	}
	if got := gitAliasPath([]gitstate.Change{{Path: "out/.git./config", Status: 'A'}}); got == "" {
		t.Error("out/.git./config is not refused")
	}
	if got := gitAliasPath([]gitstate.Change{{Path: "out/.git./config", Status: 'D'}, {Path: "a/.github/x", Status: 'A'}}); got != "" {
		t.Errorf("a deletion and .github: %s", got)
	}
}
