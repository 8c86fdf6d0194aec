package main

import "github.com/urfave/cli/v2"

func graphCommand() *cli.Command {
	return &cli.Command{
		Name:  "graph",
		Usage: "print the step DAG (Mermaid or Graphviz dot)",
		Description: `Prints the workflow's steps at HEAD and their dependencies (needs:, the steps and files a
when: or until: reads, and a step's inputs, foreach plan or items file that another step outputs)
as a Mermaid flowchart or a Graphviz dot graph, for looking at: paste it into a Markdown file, or
pipe it to dot -Tsvg.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Value: "mermaid", Usage: "`FORMAT`: mermaid or dot"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			o, err := newOrchestrator(c, nil)
			if err != nil {
				return err
			}
			return o.Graph(c.String("format"), c.App.Writer)
		},
	}
}
