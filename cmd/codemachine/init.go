package main

import (
	"io/fs"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine"
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
--force (codemachine schema -o refreshes a schema after an upgrade).`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "overwrite existing files with the example's"},
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
			example, err := fs.Sub(codemachine.Example, codemachine.ExampleDir)
			if err != nil {
				return err
			}
			schemas, err := schemaFiles()
			if err != nil {
				return err
			}
			written, err := o.Init(example, schemas, c.Bool("force"))
			if err != nil {
				return err
			}
			if out.quiet {
				return nil
			}
			out.printf("created %d files in .codemachine/\n", len(written))
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
