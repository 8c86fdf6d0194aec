package main

import (
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/codemachine/codemachine/internal/testenv"
)

// githttpServers are the scripts' smart HTTP servers.
var githttpServers sync.Map // *testscript.TestScript -> *testenv.HTTPGit

// cmdGitHTTP: githttp start ROOT serves the bare repositories under ROOT
// over git's smart HTTP protocol (git http-backend behind Go's CGI
// handler, testenv.HTTPGit) on 127.0.0.1, pushes allowed, and exports its
// URL as GITHTTP_URL; githttp stop takes it down (connections refused) and
// githttp restart brings it back on the same address.
func cmdGitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: githttp start ROOT | stop | restart")
	}
	switch {
	case args[0] == "start" && len(args) == 2:
		h, err := testenv.StartHTTPGit(ts.MkAbs(args[1]), ts.MkAbs(".githttp-home"))
		ts.Check(err)
		githttpServers.Store(ts, h)
		ts.Defer(func() { h.Stop(); githttpServers.Delete(ts) })
		ts.Setenv("GITHTTP_URL", strings.TrimSuffix(h.URL(""), "/"))
	case (args[0] == "stop" || args[0] == "restart") && len(args) == 1:
		v, ok := githttpServers.Load(ts)
		if !ok {
			ts.Fatalf("githttp %s: no server started", args[0])
		}
		h := v.(*testenv.HTTPGit)
		if args[0] == "stop" {
			h.Stop()
			return
		}
		ts.Check(h.Start())
	default:
		ts.Fatalf("usage: githttp start ROOT | stop | restart")
	}
}
