package main

import (
	"errors"
	"io/fs"
	"os"
	"path"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/workflow"
)

// schemaDir is where init writes the schemas, relative to .codemachine/;
// the example workflow's modeline points there.
const schemaDir = "schema"

func schemaCommand() *cli.Command {
	return &cli.Command{
		Name:      "schema",
		Usage:     "print the JSON Schema of workflow.yaml or of agent front matter, for editors",
		ArgsUsage: "[workflow | agent]",
		Description: `Prints the JSON Schema (draft 2020-12) of .codemachine/workflow.yaml (the default) or of
the front matter of .codemachine/agents/*.md. codemachine init writes both into
.codemachine/schema/ and starts workflow.yaml with the line

  # yaml-language-server: $schema=schema/workflow.json

which yaml-language-server (VS Code's YAML extension, Neovim, Helix, ...) reads to complete
and check the file. After upgrading codemachine, refresh them with
  codemachine schema -o .codemachine/schema/workflow.json
  codemachine schema agent -o .codemachine/schema/agent.json`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the schema to `FILE` instead of printing it"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageErrorf("schema takes one name: workflow or agent")
			}
			name := workflow.SchemaWorkflow
			if c.NArg() == 1 {
				// An empty name is a mistake (an unset variable, say),
				// not a request for the default.
				name = c.Args().First()
			}
			data, err := workflow.Schema(name, agents.WorkflowEngines())
			if err != nil {
				return usageErrorf("%v", err)
			}
			if f := c.String("output"); f != "" {
				if err := os.WriteFile(f, data, 0o644); err != nil {
					// The file named is the command line's: a usage
					// error, as a -C that names no directory is.
					var pe *fs.PathError
					if errors.As(err, &pe) {
						err = pe.Err
					}
					return usageErrorf("-o %s: %v", f, err)
				}
				return nil
			}
			_, err = c.App.Writer.Write(data)
			return err
		},
	}
}

// schemaFiles are the schemas init writes, by path under .codemachine/.
func schemaFiles() (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, name := range workflow.SchemaNames {
		data, err := workflow.Schema(name, agents.WorkflowEngines())
		if err != nil {
			return nil, err
		}
		files[path.Join(schemaDir, name+".json")] = data
	}
	return files, nil
}
