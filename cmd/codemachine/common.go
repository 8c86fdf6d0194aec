package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/urfave/cli/v2"

	"github.com/codemachine/codemachine/orchestrator"
)

// output is how commands print: colors only on a terminal and without
// NO_COLOR/--no-color; --quiet drops progress lines.
type output struct {
	w       io.Writer
	errW    io.Writer
	color   bool
	quiet   bool
	verbose bool
	json    bool
	mu      sync.Mutex
	// nameW and labelW are the widths of the run table's step and
	// engine/model columns: they grow to the longest seen so far, so that
	// the lines after a long model id line up again.
	nameW, labelW int
	// live holds the running units' lines redrawn in place at the bottom
	// of a terminal (progress.go); nil when lines are only appended.
	live *liveRegion
	// started and lastActivity are, per running unit, when it started and
	// the last activity line printed for it (plain progress).
	started      map[string]time.Time
	lastActivity map[string]string
	// paused is set while an agent's UI has the terminal: lines wait in
	// held until it is given back.
	paused bool
	held   strings.Builder
	// saidOnce, for a worker (each of its passes is a run of its own),
	// holds the skip, review and needs-you notes (and the failures of
	// steps that could not start) printed so far, by unit: a unit left
	// for the same reason pass after pass is said once. nil: every note
	// is printed.
	saidOnce map[string]string
}

// repeated says whether e is a skip, review or needs-you note (or the
// failure of a step that could not start) its unit had already,
// when notes are said once (saidOnce), and records it.
func (o *output) repeated(e orchestrator.Event) bool {
	switch {
	case e.Kind == orchestrator.StepSkipped, e.Kind == orchestrator.StepReview, e.Kind == orchestrator.StepNeedsYou:
	case e.Kind == orchestrator.StepFailed && e.Task == "" && e.Engine == "":
		// A step that could not start (its plan cannot be planned) fails
		// the same way pass after pass.
	default:
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.saidOnce == nil {
		return false
	}
	key := e.Key()
	if o.saidOnce[key] == e.Message {
		return true
	}
	o.saidOnce[key] = e.Message
	return false
}

func newOutput(c *cli.Context) *output {
	o := &output{
		w: c.App.Writer, errW: c.App.ErrWriter,
		quiet: globalBool(c, "quiet"), verbose: globalBool(c, "verbose"), json: c.Bool("json"),
	}
	noColorEnv := os.Getenv("NO_COLOR") != "" // no-color.org: set and not empty
	if f, ok := o.w.(*os.File); ok && !globalBool(c, "no-color") && !noColorEnv && os.Getenv("TERM") != "dumb" {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			o.color = true
		}
	}
	o.started, o.lastActivity = map[string]time.Time{}, map[string]string{}
	if f, ok := o.w.(*os.File); ok && o.color && !o.quiet && !o.json {
		o.live = newLiveRegion(f)
		setStopNotes(o.stopNote)
	}
	return o
}

const (
	green  = "32"
	red    = "31"
	yellow = "33"
	dim    = "2"
	bold   = "1"
)

// paint wraps s in an ANSI color when colors are on.
func (o *output) paint(code, s string) string {
	if !o.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// printf prints a line of output; on a terminal with running units, above
// their live lines.
func (o *output) printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.paused {
		fmt.Fprintf(&o.held, format, args...)
		return
	}
	if o.live != nil {
		o.clearLive()
	}
	fmt.Fprintf(o.w, format, args...)
	if o.live != nil && len(o.live.units) > 0 {
		o.drawLive()
	}
}

// printJSON writes v as indented JSON, with <, > and & as they are: the
// output holds shell commands, not HTML.
func (o *output) printJSON(v any) error {
	enc := json.NewEncoder(o.w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// globalBool reads a global flag given before or after the command name.
// Every command carries its own copy of the global flags, and that copy
// shadows the application's when read through the command's context, so
// each level of the lineage is asked.
func globalBool(c *cli.Context, name string) bool {
	for _, ctx := range c.Lineage() {
		if ctx.Command != nil && ctx.Bool(name) {
			return true
		}
	}
	return false
}

// globalString is globalBool for a flag with a value; the one given after
// the command name wins.
func globalString(c *cli.Context, name string) string {
	for _, ctx := range c.Lineage() {
		if ctx.Command != nil {
			if v := ctx.String(name); v != "" {
				return v
			}
		}
	}
	return ""
}

// newOrchestrator opens the repository for a command.
func newOrchestrator(c *cli.Context, onEvent func(orchestrator.Event)) (*orchestrator.Orchestrator, error) {
	return openOrchestrator(c, orchestrator.Config{OnEvent: onEvent})
}

// commandDir is the directory a command works in: -C DIR, which must be
// one (a usage error otherwise), else the working directory.
func commandDir(c *cli.Context) (string, error) {
	dir := globalString(c, "C")
	if dir == "" {
		return os.Getwd()
	}
	if st, err := os.Stat(dir); err != nil {
		return "", usageErrorf("-C %s: no such directory", dir)
	} else if !st.IsDir() {
		return "", usageErrorf("-C %s: not a directory", dir)
	}
	return dir, nil
}

// openOrchestrator opens the repository for a command with cfg, whose Dir,
// Environ and RetryBase it fills in.
func openOrchestrator(c *cli.Context, cfg orchestrator.Config) (*orchestrator.Orchestrator, error) {
	dir, err := commandDir(c)
	if err != nil {
		return nil, err
	}
	cfg.Dir, cfg.Environ = dir, os.Environ()
	if v := os.Getenv("CODEMACHINE_RETRY_BASE"); v != "" {
		d, err := retryBase(v)
		if err != nil {
			return nil, err
		}
		cfg.RetryBase = d
	}
	if err := checkAuthorEmail(os.Getenv("CODEMACHINE_AUTHOR_EMAIL")); err != nil {
		return nil, err
	}
	o, err := orchestrator.New(cfg)
	if err == nil {
		useGitDir(o.Repo().GitDir())
	}
	return o, err
}

// maxRetryBase bounds CODEMACHINE_RETRY_BASE: the first back-off delay
// is doubled for every retry, and a longer one is a mistake, not a setting.
const maxRetryBase = time.Hour

// retryBase reads CODEMACHINE_RETRY_BASE, the first back-off delay after
// a transient engine failure. A value that is not a duration, or is under
// a millisecond (zero or negative would retry at once, hammering a rate
// limit), is a usage error that says what is accepted, rather than Go's
// parser's words alone.
func retryBase(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Millisecond || d > maxRetryBase {
		return 0, usageErrorf("CODEMACHINE_RETRY_BASE: %q is not a valid delay; want a duration from 1ms to 1h, such as 500ms or 2s", v)
	}
	return d, nil
}

// checkAuthorEmail refuses a CODEMACHINE_AUTHOR_EMAIL (the address of
// the agent's author identity) that git would not record as written: git
// strips angle brackets and line breaks from an identity, so
// "x>\nCodemachine-Step: z" became another address without a word.
func checkAuthorEmail(v string) error {
	if !strings.ContainsAny(v, "<>") && !strings.ContainsFunc(v, unicode.IsControl) {
		return nil
	}
	return usageErrorf("CODEMACHINE_AUTHOR_EMAIL: %q cannot be an address in a commit; want an address without angle brackets or control characters, such as codemachine@example.com", v)
}

func shortHash(h string) string {
	if len(h) > 7 {
		return h[:7]
	}
	return h
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// noArgs rejects positional arguments for commands that take none.
func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("%s takes no arguments (got %q)", c.Command.Name, c.Args().First())
	}
	return nil
}

// parseDuration parses a Duration trailer.
func parseDuration(s string) (time.Duration, error) { return time.ParseDuration(s) }
