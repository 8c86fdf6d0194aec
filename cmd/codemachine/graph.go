package main

import "github.com/urfave/cli/v2"

func graphCommand() *cli.Command {
	return &cli.Command{
		Name:  "graph",
		Usage: "print the step DAG (Mermaid or Graphviz dot)",
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
