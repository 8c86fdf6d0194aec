package main

import (
	"io/fs"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine"
	"github.com/codemachine/codemachine/orchestrator"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "scaffold .codemachine/ from the built-in example",
		Description: `Copies the example spec-to-code workflow (architect, planner, coder and reviewer agents,
a sample spec and replay recordings) into .codemachine/ of the current repository, with the
JSON Schemas of workflow.yaml and of agent front matter in .codemachine/schema/: the
workflow's first line names its schema for yaml-language-server (VS Code's YAML extension,
Neovim, Helix...), so editors complete and check it. Never overwrites existing files unless
--force (codemachine schema -o refreshes a schema after an upgrade).

With --ci github it writes only ` + GitHubWorkflowPath + `: a GitHub Actions workflow
whose matrix job runs --workers codemachine workers (codemachine worker --once) on a push of
.codemachine/ changes and on demand, engine credentials from repository secrets, the agent
CLIs installed at pinned versions. See docs/workers.md.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "overwrite existing files with the example's"},
			&cli.StringFlag{Name: "ci", Usage: "write the workers' workflow for CI `SYSTEM` (github) instead of the example"},
			&cli.IntFlag{Name: "workers", Value: 3, Usage: "with --ci, run `N` workers"},
			&cli.IntFlag{Name: "slots", Value: 1, Usage: "with --ci, each worker runs up to `N` tasks at once"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			out := newOutput(c)
			o, err := newOrchestrator(c, nil)
			if err != nil {
				return err
			}
			if system := c.String("ci"); system != "" {
				path, err := writeCIWorkflow(o.Repo().Root(), system, c.Int("workers"), c.Int("slots"), c.Bool("force"))
				if err != nil {
					return err
				}
				out.printf("created %s: commit and push it; set the engines' API keys as repository secrets\n", path)
				return nil
			}
			example, err := fs.Sub(codemachine.Example, codemachine.ExampleDir)
			if err != nil {
				return err
			}
			schemas, err := schemaFiles()
			if err != nil {
				return err
			}
			res, err := o.Init(example, schemas, c.Bool("force"))
			if err != nil {
				return err
			}
			if out.quiet {
				return nil
			}
			out.printf("created %d files in .codemachine/\n", len(res.Written))
			if len(res.Own) > 0 {
				printOwnRepoNote(out, res)
				return nil
			}
			out.printf(`
next:
  $EDITOR .codemachine/spec.md            # describe what to build
  git add .codemachine && git commit -m "spec: ..."
  codemachine run                         # or: codemachine run --engine replay (the recorded example, offline)
`)
			return nil
		},
	}
}

// printOwnRepoNote says what the example does in a repository that has
// files of its own (it builds a new Go program at the root), and why its
// recordings were left out when replaying them would overwrite some.
func printOwnRepoNote(out *output, res *orchestrator.InitResult) {
	out.printf(`
This repository already has files of its own (%s). The example is a spec-to-code
workflow for a new Go program at the repository root: its coder writes go.mod, main.go and
packages there, and its check runs go vet and go test over the whole repository. Adapt it
to this project before the first run: describe the change in .codemachine/spec.md, and edit
the agents in .codemachine/agents/ and the check in .codemachine/workflow.yaml.
`, strings.Join(res.Own, ", "))
	if res.SkippedRecordings {
		out.printf(`Its replay recordings were not written: replaying them (run --engine replay) would overwrite
%s here. Try the recorded example in an empty repository instead.
`, strings.Join(res.Overwritten, ", "))
	}
	out.printf(`
next:
  $EDITOR .codemachine/spec.md .codemachine/agents/*.md .codemachine/workflow.yaml
  git add .codemachine && git commit -m "spec: ..."
  codemachine run
`)
}
