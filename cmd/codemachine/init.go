package main

import (
	"errors"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/templates"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "scaffold .codemachine/ from a built-in template",
		Description: `Copies a built-in workflow into .codemachine/ of the current repository: its workflow.yaml,
agents, the files they read and replay recordings, with the JSON Schemas of workflow.yaml and of
agent front matter in .codemachine/schema/: the workflow's first line names its schema for
yaml-language-server (VS Code's YAML extension, Neovim, Helix...), so editors complete and check
it. Never overwrites existing files unless --force (codemachine schema -o refreshes a schema
after an upgrade); files that already hold what init writes are not in the way, so an init that
was interrupted (workflow.yaml is written last) is completed by running it again.

--template NAME picks the workflow (default spec-to-code):

` + "   " + strings.Join(templates.Summaries(), "\n   ") + `

In a repository with no files of its own, the migrate and feature templates also write the
small code base their recordings were made on (legacy/ to migrate; a Go program to add a feature
to), so that 'codemachine run --engine replay' runs the template offline there. In a repository
with files of its own they write only .codemachine/, and leave out the recordings that would
overwrite its files when replayed; adapt the workflow to the project before the first run.

--template GIT_URL@REF copies another repository's .codemachine/ (without its state.yaml),
fetched with git at REF (https://, http://, ssh://, git://, file:// or user@host:path); a
fetch that fails is one line and exit code 2.

With --ci github it writes only ` + GitHubWorkflowPath + `: a GitHub Actions workflow
whose matrix job runs --workers codemachine workers (codemachine worker --once) on a push of
.codemachine/ changes and on demand, engine credentials from repository secrets, the agent
CLIs installed at pinned versions. See docs/workers.md.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "overwrite existing files with the template's"},
			&cli.StringFlag{Name: "template", Aliases: []string{"t"}, Value: templates.Default,
				Usage: "start from the workflow `NAME`: " + strings.Join(templates.Names(), ", ") + ", or GIT_URL@REF"},
			&cli.StringFlag{Name: "ci", Usage: "write the workers' workflow for CI `SYSTEM` (github) instead of a template"},
			&cli.IntFlag{Name: "workers", Value: 3, Usage: "with --ci, run `N` workers (1 to 256)", Action: inRange("workers", 1, maxCIWorkers)},
			&cli.IntFlag{Name: "slots", Value: 1, Usage: "with --ci, each worker runs up to `N` tasks at once", Action: inRange("slots", 1, maxParallel)},
		},
		Action: runInit,
	}
}

func runInit(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if system := c.String("ci"); system != "" {
		if c.IsSet("template") {
			return usageErrorf("init: --ci writes only the CI workflow, not a template: run init --template %s and init --ci %s apart", c.String("template"), system)
		}
		return initCI(c, system)
	}
	for _, name := range []string{"workers", "slots"} {
		if c.IsSet(name) {
			return usageErrorf("init: --%s is for the CI workflow: codemachine init --ci github --%s %d", name, name, c.Int(name))
		}
	}
	if t := c.String("template"); orchestrator.IsTemplateURL(t) {
		o, err := newOrchestrator(c, nil)
		if err != nil {
			return err
		}
		return initFromURL(c, o, newOutput(c), t)
	}
	tmpl, err := templates.Lookup(c.String("template"))
	var unknown *templates.UnknownError
	if errors.As(err, &unknown) {
		return usageErrorf("init --template: %v", err)
	}
	if err != nil {
		return err
	}
	out := newOutput(c)
	o, err := newOrchestrator(c, nil)
	if err != nil {
		return err
	}
	schemas, err := schemaFiles()
	if err != nil {
		return err
	}
	res, err := o.Init(tmpl.Files, schemas, tmpl.Sample, c.Bool("force"))
	if err != nil {
		return err
	}
	sample := res.Sample
	if out.quiet {
		return nil
	}
	out.printf("created %d files in .codemachine/\n", len(res.Written))
	if len(sample) > 0 {
		out.printf("and the code base the template's recordings were made on: %d files (%s)\n",
			len(sample), strings.Join(topLevel(sample), ", "))
	}
	if len(res.Own) > 0 {
		printOwnRepoNote(out, tmpl, res)
		return nil
	}
	add := "git add .codemachine"
	if len(sample) > 0 {
		add = "git add -A"
	}
	out.printf(`
next:
  %s
  %s && git commit -m "%s"
  codemachine run                         # or: codemachine run --engine replay (the recorded example, offline)
`, tmpl.Start, add, commitHint(tmpl.Name))
	return nil
}

// commitHint is the commit message init suggests for the scaffold.
func commitHint(name string) string {
	switch name {
	case "migrate":
		return "migrate: ..."
	case "feature":
		return "feature: ..."
	}
	return "spec: ..."
}

// topLevel lists the distinct top-level entries of paths (a directory
// with its slash), in order of first appearance.
func topLevel(paths []string) []string {
	var tops []string
	seen := map[string]bool{}
	for _, p := range paths {
		if i := strings.IndexByte(p, '/'); i >= 0 {
			p = p[:i+1]
		}
		if !seen[p] {
			seen[p] = true
			tops = append(tops, p)
		}
	}
	return tops
}

// printOwnRepoNote says what the template does in a repository that has
// files of its own, and why its recordings were left out when replaying
// them would overwrite some.
func printOwnRepoNote(out *output, tmpl *templates.Template, res *orchestrator.InitResult) {
	out.printf("\nThis repository already has files of its own (%s). %s\n", strings.Join(res.Own, ", "), tmpl.Adapt)
	if res.SkippedRecordings {
		out.printf(`Its replay recordings were not written: replaying them (run --engine replay) would overwrite
%s here. Try the recorded %s in an empty repository instead.
`, strings.Join(res.Overwritten, ", "), tmpl.Name)
	}
	out.printf(`
next:
  $EDITOR %s .codemachine/agents/*.md .codemachine/workflow.yaml
  git add .codemachine && git commit -m "%s"
  codemachine run
`, tmpl.Brief, commitHint(tmpl.Name))
}

// initCI is init --ci SYSTEM: the workers' workflow for that CI system.
func initCI(c *cli.Context, system string) error {
	o, err := newOrchestrator(c, nil)
	if err != nil {
		return err
	}
	path, err := writeCIWorkflow(o.Repo().Root(), system, c.Int("workers"), c.Int("slots"), c.Bool("force"))
	if err != nil {
		return err
	}
	newOutput(c).printf("created %s: commit and push it; set the engines' API keys as repository secrets\n", path)
	return nil
}
