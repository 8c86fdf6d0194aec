// Package codemachine holds what the binary embeds from the repository root:
// the example workflow that `codemachine init` copies into a repository.
package codemachine

import "embed"

// ExampleDir is the directory of the example workflow inside Example.
const ExampleDir = ".codemachine-example"

// Example is the example workflow (.codemachine-example/), copied to
// .codemachine/ by `codemachine init`.
//
//go:embed all:.codemachine-example
var Example embed.FS
