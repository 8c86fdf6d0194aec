package main

import (
	"net"
	"net/http"
	"net/http/cgi"
	"os/exec"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdGitHTTP: githttp start ROOT serves the repositories under ROOT over
// git's smart HTTP protocol (git http-backend behind Go's CGI handler) on
// 127.0.0.1, and exports its URL as GITHTTP_URL. Pushes need
// http.receivepack=true in the served repository (no authentication).
func cmdGitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 || args[0] != "start" {
		ts.Fatalf("usage: githttp start ROOT")
	}
	git, err := exec.LookPath("git")
	ts.Check(err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	h := &cgi.Handler{Path: git, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + ts.MkAbs(args[1]), "GIT_HTTP_EXPORT_ALL=1"}}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	ts.Defer(func() { _ = srv.Close() })
	ts.Setenv("GITHTTP_URL", "http://"+ln.Addr().String())
}
