package main

import (
	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
)

// initFromURL is init --template GIT_URL@REF: the repository's
// .codemachine/ (fetched into the uses cache) instead of the example.
func initFromURL(c *cli.Context, o *orchestrator.Orchestrator, out *output, src string) error {
	fsys, commit, err := o.Template(c.Context, src)
	if err != nil {
		return err
	}
	schemas, err := schemaFiles()
	if err != nil {
		return err
	}
	res, err := o.Init(fsys, schemas, nil, c.Bool("force"))
	if err != nil {
		return err
	}
	if out.quiet {
		return nil
	}
	out.printf(`created %d files in .codemachine/ from template %s at commit %s

next:
  git add .codemachine && git commit -m "workflow from %s"
  codemachine run
`, len(res.Written), src, commit, src)
	return nil
}
