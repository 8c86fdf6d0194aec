package main

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
)

// initFromURL is init --template GIT_URL@REF: the repository's
// .codemachine/ (fetched into the uses cache) instead of the example.
func initFromURL(c *cli.Context, o *orchestrator.Orchestrator, out *output, src string) error {
	tmpl, err := o.Template(c.Context, src)
	if err != nil {
		return err
	}
	schemas, err := schemaFiles()
	if err != nil {
		return err
	}
	res, err := o.Init(tmpl.Files, schemas, nil, c.Bool("force"))
	if err != nil {
		return err
	}
	if out.quiet {
		return nil
	}
	out.printf("created %d files in .codemachine/ from template %s at commit %s\n", len(res.Written), src, tmpl.Commit)
	if len(tmpl.Outside) > 0 {
		// Without them the workflow does not load (validate and run
		// fail on its uses:); init copies .codemachine/ only.
		out.printf("\nnote: the workflow imports files from outside .codemachine/, which init does not copy: %s; copy them from %s\n",
			strings.Join(tmpl.Outside, ", "), src)
	}
	out.printf(`
next:
  git add .codemachine && git commit -m "workflow from %s"
  codemachine run
`, src)
	return nil
}
