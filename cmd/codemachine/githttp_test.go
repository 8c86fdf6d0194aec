package main

import (
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/codemachine/codemachine/internal/testenv"
)

// cmdGitHTTP: githttp start ROOT serves the repositories under ROOT over
// git's smart HTTP protocol (git http-backend behind Go's CGI handler) on
// 127.0.0.1, and exports its URL as GITHTTP_URL. Pushes need
// http.receivepack=true in the served repository (no authentication).
func cmdGitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 || args[0] != "start" {
		ts.Fatalf("usage: githttp start ROOT")
	}
	s, err := testenv.ServeGit(ts.MkAbs(args[1]))
	ts.Check(err)
	ts.Defer(func() { _ = s.Close() })
	ts.Setenv("GITHTTP_URL", s.URL)
}
