package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/codemachine/codemachine/internal/testenv"
)

// sockConnect is the program sockconnect PATH, for hostile steps: it
// dials the Unix socket at PATH and says whether it could (exit 0) or
// not (exit 1).
func sockConnect() int {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sockconnect PATH")
		return 2
	}
	c, err := net.Dial("unix", os.Args[1])
	if err != nil {
		fmt.Println("connect:", err)
		return 1
	}
	c.Close()
	fmt.Println("connected to", os.Args[1])
	return 0
}

// cmdUnixListen: unixlisten [PATH] — listens on a Unix socket at PATH, or
// in a directory of its own under /tmp (outside the script's work dir, so
// the sandbox hides it), exports its path as SOCK and counts the
// connections it accepts.
func cmdUnixListen(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 1 {
		ts.Fatalf("usage: unixlisten [PATH]")
	}
	var path string
	if len(args) == 1 {
		path = ts.MkAbs(args[0])
	} else {
		dir, err := os.MkdirTemp("/tmp", "cm-sock-")
		ts.Check(err)
		ts.Defer(func() { os.RemoveAll(dir) })
		path = dir + "/agent.sock"
	}
	ln, err := net.Listen("unix", path)
	ts.Check(err)
	ts.Defer(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	ts.Setenv("SOCK", path)
	accepted.Store(path, &n)
}

// accepted holds each listener's count of connections, by path (scripts
// run in parallel, each with its own).
var accepted sync.Map

// cmdUnixAccepted: unixaccepted N — the listener accepted N connections.
func cmdUnixAccepted(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: unixaccepted N")
	}
	want, err := strconv.ParseInt(args[0], 10, 64)
	ts.Check(err)
	v, ok := accepted.Load(ts.Getenv("SOCK"))
	if !ok {
		ts.Fatalf("unixaccepted: no unixlisten")
	}
	if got := v.(*atomic.Int64).Load(); got != want {
		ts.Fatalf("the socket accepted %d connection(s), want %d", got, want)
	}
}

// cmdNoLeft: noleft — no process started by the script (HOME=$WORK in
// its environment) is still running, after up to 2 s.
func cmdNoLeft(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: noleft")
	}
	marker := []byte("HOME=" + ts.Getenv("WORK") + "\x00")
	deadline := time.Now().Add(testenv.Patience())
	for {
		left := procsWith(marker)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("processes left behind: %s", strings.Join(left, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
