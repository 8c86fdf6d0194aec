package main

import (
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/agents"
)

// openTerminal opens the person's terminal for interactive steps when
// codemachine runs in one: standard input and output are terminals, and
// the output goes to standard output. nil otherwise (a pipe, a hook, CI):
// interactive steps then wait as needs-you.
func openTerminal(c *cli.Context) (*os.File, error) {
	if !inTerminal(c) {
		return nil, nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, nil // no controlling terminal: as without one
	}
	return tty, nil
}

// inTerminal reports whether codemachine runs in a terminal: standard
// input and output are terminals, and the output goes to standard output.
func inTerminal(c *cli.Context) bool {
	if f, ok := c.App.Writer.(*os.File); !ok || f != os.Stdout {
		return false
	}
	return agents.IsTerminal(os.Stdin) && agents.IsTerminal(os.Stdout)
}

// pauseTerminal is RunOptions.OnTerminal: while an agent's UI has the
// terminal, nothing is drawn or printed; what was printed meanwhile
// follows once it is given back.
func (o *output) pauseTerminal(taken bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if taken {
		if o.live != nil {
			o.clearLive()
		}
		o.paused = true
		return
	}
	o.paused = false
	if o.held.Len() > 0 {
		_, _ = o.w.Write([]byte(o.held.String()))
		o.held.Reset()
	}
	if o.live != nil && len(o.live.units) > 0 {
		o.drawLive()
	}
}

// stepNames are the step ids of run's targets (STEP or STEP/TASK).
func stepNames(targets []string) []string {
	names := make([]string, 0, len(targets))
	for _, t := range targets {
		step, _, _ := strings.Cut(t, "/")
		names = append(names, step)
	}
	return names
}
