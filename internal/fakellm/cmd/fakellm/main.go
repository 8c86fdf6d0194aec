// Command fakellm serves a fake model script on 127.0.0.1 for manual runs
// of the agent CLIs and for shell-driven tests:
//
//	go run ./internal/fakellm/cmd/fakellm serve script.yaml -addr-file url.txt
//
// See internal/fakellm/README.md.
package main

import "github.com/codemachine/codemachine/internal/fakellm"

func main() { fakellm.Main() }
