package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/codemachine/codemachine/internal/testenv"
)

// TestTerminal runs the scenarios in testdata/term on a real terminal:
// tmux runs codemachine in a session of a fixed size, keys are typed with
// send-keys and the screen read with capture-pane. Besides the usual
// commands, scripts have
//
//	term start NAME WIDTHxHEIGHT COMMAND...
//	                     start COMMAND (run by sh in the script's current
//	                     directory, with its environment) in a new session
//	term wait NAME REGEXP [SECONDS]
//	                     wait until the screen matches (multi-line mode);
//	                     the screen that matched is the command's output
//	term keys NAME KEY...
//	                     press keys (tmux names: Down, Enter, Escape, C-c)
//	term type NAME TEXT  type TEXT literally
//	term screen NAME     the screen (after the lines scrolled off it), as
//	                     the output of the command (for stdout and cmp)
//
// Every session runs on a tmux server of the script's own, which is killed
// when the script ends.
func TestTerminal(t *testing.T) {
	t.Parallel()
	tmux := testenv.RequireTools(t, "tmux", "bash", "zsh", "fish")["tmux"]
	p := scriptParams("testdata/term")
	setup := p.Setup
	p.Setup = func(env *testscript.Env) error {
		if err := setup(env); err != nil {
			return err
		}
		// The socket path stays short: sun_path holds 108 bytes.
		sock, err := os.MkdirTemp("", "cmtmux")
		if err != nil {
			return err
		}
		env.Defer(func() { _ = os.RemoveAll(sock) })
		env.Values[termKey{}] = &termState{tmux: tmux, sock: filepath.Join(sock, "s")}
		env.Setenv("TERM", "xterm-256color")
		return nil
	}
	p.Cmds["term"] = cmdTerm
	testscript.Run(t, p)
}

type termKey struct{}

type termState struct {
	tmux, sock string
	started    bool
	// matched is when a term wait last saw what it waited for: the
	// program had read the keys before it drew them.
	matched time.Time
}

// keyGap is the least time between the screen showing typed text and the
// next keys: Gemini CLI (like other UIs that tell a paste from typing by
// its speed) takes a Return within 30 ms of the key before it for part of
// a paste, a line break instead of a submit. The program read the text
// before it drew it, so a gap counted from the matching screen is one
// from its read, whatever the machine's load.
const keyGap = 100 * time.Millisecond

// cmdTerm: term start|wait|keys|type|screen|display|close (see TestTerminal).
func cmdTerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: term start|wait|keys|type|screen|display|close NAME ...")
	}
	st := ts.Value(termKey{}).(*termState)
	run := func(a ...string) {
		ts.Check(ts.Exec(st.tmux, append([]string{"-S", st.sock}, a...)...))
	}
	name := args[1]
	switch args[0] {
	case "start":
		if len(args) < 4 {
			ts.Fatalf("usage: term start NAME WIDTHxHEIGHT COMMAND...")
		}
		w, h, ok := strings.Cut(args[2], "x")
		if !ok {
			ts.Fatalf("term start: size %q is not WIDTHxHEIGHT", args[2])
		}
		if !st.started {
			st.started = true
			ts.Defer(func() { _ = ts.Exec(st.tmux, "-S", st.sock, "kill-server") })
		}
		// The session is made with a placeholder and set up before the
		// command starts: it keeps its pane after the command ends, so
		// that the last screen can still be read, and a clear of the
		// whole screen (the live region's, at the top) does not push the
		// screen into the history the captures include.
		script := "cd " + shellQuote(ts.Getenv("PWD")) + " && " + strings.Join(args[3:], " ")
		run("new-session", "-d", "-s", name, "-x", w, "-y", h, "sleep", "3600")
		run("set-option", "-t", name, "remain-on-exit", "on")
		run("set-option", "-p", "-t", name, "scroll-on-clear", "off")
		run("respawn-pane", "-k", "-t", name, "sh", "-c", script)
	case "wait":
		if len(args) < 3 {
			ts.Fatalf("usage: term wait NAME REGEXP [SECONDS]")
		}
		re, err := regexp.Compile("(?m)" + args[2])
		ts.Check(err)
		limit := 2 * time.Minute // only a failing test waits it out
		if len(args) > 3 {
			n, err := strconv.Atoi(args[3])
			ts.Check(err)
			limit = time.Duration(n) * time.Second
		}
		deadline := time.Now().Add(testenv.Scale(limit))
		for {
			screen := capture(ts, st, name)
			if re.MatchString(screen) != neg {
				// The screen that matched is the command's output.
				ts.Check(ts.Exec(st.tmux, "-S", st.sock, "capture-pane", "-p", "-S", "-", "-t", name))
				if ts.ReadFile("stdout") == screen || neg {
					st.matched = time.Now()
					return
				}
				continue
			}
			if time.Now().After(deadline) {
				ts.Fatalf("term wait %s %s: not there after %s; the screen:\n%s", name, args[2], limit, screen)
			}
			time.Sleep(50 * time.Millisecond)
		}
	case "keys":
		if d := time.Until(st.matched.Add(keyGap)); d > 0 {
			time.Sleep(d)
		}
		run(append([]string{"send-keys", "-t", name}, args[2:]...)...)
	case "type":
		run("send-keys", "-t", name, "-l", strings.Join(args[2:], " "))
	case "screen":
		run("capture-pane", "-p", "-S", "-", "-t", name)
	case "display":
		// term display NAME FORMAT: tmux's view of the pane (its
		// modes: #{cursor_flag}, #{alternate_on}, ...).
		if len(args) != 3 {
			ts.Fatalf("usage: term display NAME FORMAT")
		}
		run("display-message", "-p", "-t", name, args[2])
	case "close":
		// The terminal goes away as a closed window's: its programs
		// get SIGHUP.
		run("kill-session", "-t", name)
	default:
		ts.Fatalf("term: unknown subcommand %q", args[0])
	}
}

// capture reads a session's screen, after the lines that scrolled off it
// (when its program ends, tmux's note scrolls the screen by a line). It
// runs tmux itself rather than through the script, whose log would get
// every screen a wait looked at.
func capture(ts *testscript.TestScript, st *termState, name string) string {
	out, err := exec.Command(st.tmux, "-S", st.sock, "capture-pane", "-p", "-S", "-", "-t", name).Output()
	if err != nil {
		ts.Fatalf("capture-pane: %v", err)
	}
	return string(out)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
