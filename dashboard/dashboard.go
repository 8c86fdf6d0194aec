// Package dashboard is `codemachine ui`: a full-screen terminal dashboard
// (bubbletea) that follows a run or a watcher from any terminal. It shows
// the steps and tasks as a tree with their states, each running agent's
// elapsed time and latest activity, and the latest step commits with
// their tokens and cost; keys show a diff, approve, reject with a
// message, and retry.
//
// It follows the process that holds the repository lock through the
// follow package (the lock holder's socket); between runs, and when
// nothing runs, it reads the status as `codemachine status` does. A retry
// it starts runs in its own process (unless a watcher takes it) and is
// shown the same way. It is a client of the orchestrator, like watch.
package dashboard

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/codemachine/codemachine/follow"
	"github.com/codemachine/codemachine/orchestrator"
)

// Options configure the dashboard.
type Options struct {
	// Dir is a directory inside the repository.
	Dir string
	// Environ is the user's environment (for the agents a retry runs).
	Environ []string
	// MCPCommand starts codemachine's MCP server (orchestrator.Config).
	MCPCommand []string
	// OpenCommand is `codemachine open` for this repository: the o key
	// suspends the dashboard and runs it with the selected unit's key
	// appended. nil: no o key.
	OpenCommand []string
	// In and Out are the terminal (nil: standard input and output).
	In  io.Reader
	Out io.Writer
}

// refreshEvery is how often the status is read again while nothing is
// followed (a commit by hand, a run that started): cheap, a status read.
const refreshEvery = 2 * time.Second

// logEntries is how many of the latest step commits are shown.
const logEntries = 6

// Run shows the dashboard until the user quits or ctx ends.
func Run(ctx context.Context, opts Options) error {
	o, err := orchestrator.New(orchestrator.Config{Dir: opts.Dir, Environ: opts.Environ})
	if err != nil {
		return err
	}
	m := newModel(ctx, o, opts)
	popts := []tea.ProgramOption{tea.WithContext(ctx)}
	if opts.In != nil {
		popts = append(popts, tea.WithInput(opts.In))
	}
	if opts.Out != nil {
		popts = append(popts, tea.WithOutput(opts.Out))
	}
	p := tea.NewProgram(m, popts...)
	m.send = p.Send
	_, err = p.Run()
	m.stopFollowing()
	if err != nil && ctx.Err() != nil {
		return orchestrator.ErrInterrupted
	}
	return err
}

// unitView is what the dashboard knows of a running unit.
type unitView struct {
	started  time.Time
	activity string
}

// model is the dashboard's state. bubbletea calls its methods on one
// goroutine; what other goroutines learn comes in as messages.
type model struct {
	ctx  context.Context
	o    *orchestrator.Orchestrator
	opts Options
	send func(tea.Msg)

	status    *orchestrator.StatusReport
	log       []orchestrator.LogEntry
	statusErr error

	// following is the lock holder whose events come in, nil when none.
	following *follow.Conn
	holder    string // "codemachine watch (pid 12)", "" when nobody holds the lock
	units     map[string]*unitView
	ownRun    bool // a retry of the dashboard's own is running

	rows     []row
	selected int

	mode    mode
	diff    []string // the diff shown, by line
	scroll  int
	input   []rune // the reject message being typed
	message string // the outcome of the last action
	width   int
	height  int
	now     time.Time
	// refreshed is when the status was last asked for.
	refreshed time.Time
}

type mode int

const (
	modeTree mode = iota
	modeDiff
	modeReject
)

// row is one line of the tree: a step, or a task under it.
type row struct {
	key, state, label, note string
	task                    bool
}

func newModel(ctx context.Context, o *orchestrator.Orchestrator, opts Options) *model {
	return &model{ctx: ctx, o: o, opts: opts, units: map[string]*unitView{}, width: 80, height: 24, now: time.Now(),
		send: func(tea.Msg) {}}
}

// Messages.
type (
	tickMsg   time.Time
	statusMsg struct {
		report *orchestrator.StatusReport
		log    []orchestrator.LogEntry
		err    error
	}
	followMsg struct {
		conn *follow.Conn
		err  error
	}
	eventMsg struct {
		conn *follow.Conn // nil: the dashboard's own run
		e    orchestrator.Event
	}
	followEndMsg struct{ conn *follow.Conn }
	diffMsg      struct {
		key, text string
		err       error
	}
	actionMsg struct {
		text string
		err  error
	}
)

func (m *model) Init() tea.Cmd {
	return tea.Batch(m.refresh(), m.tick(), m.lookForHolder())
}

func (m *model) tick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// refresh reads the status and the latest step commits.
func (m *model) refresh() tea.Cmd {
	o := m.o
	m.refreshed = time.Now()
	return func() tea.Msg {
		r, err := o.Status(orchestrator.Overrides{})
		if err != nil {
			return statusMsg{err: err}
		}
		log, err := o.Log(logEntries)
		return statusMsg{report: r, log: log, err: err}
	}
}

// lookForHolder connects to the lock holder's events, if a codemachine
// holds the lock.
func (m *model) lookForHolder() tea.Cmd {
	if m.following != nil {
		return nil
	}
	repo, ctx := m.o.Repo(), m.ctx
	return func() tea.Msg {
		pid, _, held := repo.LockHolder()
		if !held || pid == os.Getpid() {
			return followMsg{}
		}
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		conn, err := follow.Dial(dctx, repo.LocalDir(), pid)
		return followMsg{conn: conn, err: err}
	}
}

// next waits for the followed process's next event.
func next(conn *follow.Conn) tea.Cmd {
	return func() tea.Msg {
		e, err := conn.Next()
		if err != nil {
			return followEndMsg{conn: conn}
		}
		return eventMsg{conn: conn, e: e}
	}
}

func (m *model) stopFollowing() {
	if m.following != nil {
		m.following.Close()
		m.following = nil
	}
}

func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.KeyPressMsg:
		return m, m.key(msg)
	case tickMsg:
		return m, m.onTick(time.Time(msg))
	case statusMsg:
		m.status, m.log, m.statusErr = msg.report, msg.log, msg.err
		m.buildRows()
	case followMsg:
		return m, m.onFollow(msg)
	case eventMsg:
		return m, m.onEvent(msg)
	case followEndMsg:
		if m.following == msg.conn {
			m.stopFollowing()
			m.holder = ""
			clear(m.units)
			return m, tea.Batch(m.refresh(), m.lookForHolder())
		}
	case diffMsg:
		if msg.err != nil {
			m.message = "diff " + msg.key + ": " + msg.err.Error()
			break
		}
		m.mode, m.diff, m.scroll = modeDiff, strings.Split(strings.TrimRight(msg.text, "\n"), "\n"), 0
	case ownRunMsg:
		m.ownRun = false
		clear(m.units)
		m.message = msg.text
		if msg.err != nil {
			m.message = msg.err.Error()
		}
		return m, m.refresh()
	case actionMsg:
		m.message = msg.text
		if msg.err != nil {
			m.message = msg.err.Error()
		}
		return m, m.refresh()
	}
	return m, nil
}

// onTick redraws the elapsed times and, while nothing is followed, reads
// the status again and looks for a lock holder to follow.
func (m *model) onTick(t time.Time) tea.Cmd {
	m.now = t
	cmds := []tea.Cmd{m.tick()}
	if m.following == nil && !m.ownRun && t.Sub(m.refreshed) >= refreshEvery {
		cmds = append(cmds, m.refresh(), m.lookForHolder())
	}
	return tea.Batch(cmds...)
}

func (m *model) onFollow(msg followMsg) tea.Cmd {
	if msg.conn == nil || m.following != nil {
		if msg.conn != nil {
			msg.conn.Close()
		}
		return nil
	}
	m.following = msg.conn
	h := msg.conn.Hello()
	m.holder = fmt.Sprintf("%s (pid %d)", h.Command, h.PID)
	clear(m.units)
	for _, u := range h.Units {
		m.units[u.Key()] = &unitView{started: u.Started, activity: u.Activity}
	}
	return tea.Batch(next(msg.conn), m.refresh())
}

// onEvent keeps the running units' activity and reads the status again
// when a unit starts or ends.
func (m *model) onEvent(msg eventMsg) tea.Cmd {
	var cmds []tea.Cmd
	if msg.conn != nil {
		if msg.conn != m.following {
			return nil
		}
		cmds = append(cmds, next(msg.conn))
	}
	e := msg.e
	switch e.Kind {
	case orchestrator.StepStarted:
		m.units[e.Key()] = &unitView{started: e.At}
		cmds = append(cmds, m.refresh())
	case orchestrator.StepActivity:
		if u := m.units[e.Key()]; u != nil {
			u.activity = e.Message
		}
	case orchestrator.StepLanded, orchestrator.StepFailed, orchestrator.StepConflict, orchestrator.StepReview:
		delete(m.units, e.Key())
		cmds = append(cmds, m.refresh())
	case orchestrator.RunFinished:
		clear(m.units)
		cmds = append(cmds, m.refresh())
	}
	return tea.Batch(cmds...)
}
