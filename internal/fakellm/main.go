package fakellm

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
)

const usage = `usage:
  fakellm serve [-addr HOST:PORT] [-addr-file FILE] [-requests FILE] SCRIPT
      serve SCRIPT (YAML or JSON) until interrupted; -addr-file receives the
      base URL (http://127.0.0.1:PORT) once the server listens; -requests
      gets one JSON line per request received
  fakellm check SCRIPT
      validate a script file
`

// Main is the fakellm command, for testscript's command map
// (testscript.Main(m, map[string]func(){"fakellm": fakellm.Main})) and for
// internal/fakellm/cmd/fakellm. It exits when done; "serve" runs until
// SIGINT or SIGTERM.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Run runs the fakellm command with args (without the program name) and
// returns its exit code: 0 success, 1 a runtime failure, 2 a usage error
// or an invalid script. "serve" stops when ctx ends.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "check":
		if len(args) != 2 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		if _, err := LoadScript(args[1]); err != nil {
			fmt.Fprintln(stderr, "fakellm:", err)
			return 2
		}
		fmt.Fprintln(stdout, "ok")
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "fakellm: unknown command %q\n%s", args[0], usage)
	return 2
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("fakellm serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	addrFile := fs.String("addr-file", "", "file to write the base URL to")
	reqFile := fs.String("requests", "", "file to append one JSON line per request to")
	// Flags may come before or after the script ("serve script.json
	// -addr-file f"): parse, take a positional, parse the rest.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			fmt.Fprintf(stderr, "fakellm serve: %v\n%s", err, usage)
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "fakellm serve: want one script file, got %d\n%s", len(positional), usage)
		return 2
	}
	script, err := LoadScript(positional[0])
	if err != nil {
		fmt.Fprintln(stderr, "fakellm:", err)
		return 2
	}
	opts := Options{Addr: *addr}
	if *reqFile != "" {
		f, err := os.OpenFile(*reqFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(stderr, "fakellm:", err)
			return 1
		}
		defer f.Close()
		var mu sync.Mutex
		opts.OnRequest = func(r Request) {
			mu.Lock()
			defer mu.Unlock()
			// Bodies stay out (json:"-"): tens of kilobytes each.
			line, err := json.Marshal(r)
			if err != nil {
				fmt.Fprintln(stderr, "fakellm: log request:", err)
				return
			}
			f.Write(append(line, '\n'))
		}
	}
	srv, err := Listen(script, opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer srv.Close()
	if *addrFile != "" {
		if err := writeAtomic(*addrFile, srv.URL()); err != nil {
			fmt.Fprintln(stderr, "fakellm:", err)
			return 1
		}
	}
	<-ctx.Done()
	return 0
}

// writeAtomic writes through a temporary file and a rename, so that a
// script polling for the file never reads half a URL.
func writeAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fakellm-addr-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
