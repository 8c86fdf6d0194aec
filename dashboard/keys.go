package dashboard

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/codemachine/codemachine/orchestrator"
	"github.com/codemachine/codemachine/watch"
)

// key handles a key press in the current mode.
func (m *model) key(k tea.KeyPressMsg) tea.Cmd {
	if k.String() == "ctrl+c" {
		return tea.Quit
	}
	switch m.mode {
	case modeDiff:
		return m.diffKey(k)
	case modeReject:
		return m.rejectKey(k)
	}
	switch k.String() {
	case "q", "esc":
		return tea.Quit
	case "up", "k":
		m.selected = max(0, m.selected-1)
	case "down", "j":
		m.selected = min(len(m.rows)-1, m.selected+1)
	case "d":
		return m.showDiff()
	case "a":
		return m.approve()
	case "r":
		if key, ok := m.selectedIn(orchestrator.StateReview, "reject"); ok {
			m.mode, m.input = modeReject, nil
			m.message = "reject " + key + ": why? (enter sends, esc cancels)"
		}
	case "t":
		return m.retry()
	case "o":
		return m.openUnit()
	}
	return nil
}

// openUnit suspends the dashboard and runs codemachine open on the
// selected unit in the terminal: the person takes the wheel in the
// agent's own UI; the dashboard comes back when open ends.
func (m *model) openUnit() tea.Cmd {
	key := m.selectedKey()
	if key == "" || len(m.opts.OpenCommand) == 0 {
		return nil
	}
	args := append(append([]string{}, m.opts.OpenCommand[1:]...), key)
	cmd := exec.Command(m.opts.OpenCommand[0], args...)
	cmd.Env = m.opts.Environ
	m.message = "opening " + key + "…"
	return tea.ExecProcess(cmd, func(err error) tea.Msg {
		if err != nil {
			return actionMsg{err: fmt.Errorf("open %s: %w", key, err)}
		}
		return actionMsg{text: "open " + key + ": done"}
	})
}

// selectedKey is the key of the selected row, "" when there is none.
func (m *model) selectedKey() string {
	if m.selected < 0 || m.selected >= len(m.rows) {
		return ""
	}
	return m.rows[m.selected].key
}

// selectedIn returns the selected key when its row is in state, and says
// otherwise why verb does not apply.
func (m *model) selectedIn(state, verb string) (string, bool) {
	key := m.selectedKey()
	if key == "" {
		return "", false
	}
	if st := m.rows[m.selected].state; st != state {
		m.message = fmt.Sprintf("%s is %s: only a step waiting for review can be %sed", key, st, strings.TrimSuffix(verb, "e"))
		return "", false
	}
	return key, true
}

func (m *model) showDiff() tea.Cmd {
	key := m.selectedKey()
	if key == "" {
		return nil
	}
	o, ctx := m.o, m.ctx
	return func() tea.Msg {
		var b strings.Builder
		err := o.Diff(ctx, key, &b, orchestrator.DiffOptions{})
		return diffMsg{key: key, text: b.String(), err: err}
	}
}

func (m *model) diffKey(k tea.KeyPressMsg) tea.Cmd {
	page := max(1, m.height-3)
	switch k.String() {
	case "q", "esc", "d":
		m.mode, m.diff = modeTree, nil
	case "up", "k":
		m.scroll--
	case "down", "j":
		m.scroll++
	case "pgup", "b":
		m.scroll -= page
	case "pgdown", "space", "f":
		m.scroll += page
	case "home", "g":
		m.scroll = 0
	case "end", "G":
		m.scroll = len(m.diff)
	}
	m.scroll = max(0, min(m.scroll, len(m.diff)-page))
	return nil
}

func (m *model) rejectKey(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "esc":
		m.mode, m.message = modeTree, "reject canceled"
	case "enter":
		reason := strings.TrimSpace(string(m.input))
		if reason == "" {
			m.message = "a rejection needs a reason (esc cancels)"
			return nil
		}
		m.mode = modeTree
		key := m.selectedKey()
		o, ctx := m.o, m.ctx
		m.message = "rejecting " + key + "…"
		return func() tea.Msg {
			res, err := o.Reject(ctx, key, reason)
			if msg, ok := handOver(o, err, "reject", key, reason); ok {
				return msg
			}
			if err != nil {
				return actionMsg{err: refused("reject", err)}
			}
			return actionMsg{text: fmt.Sprintf("rejected %s: feedback committed in %s; the work is kept on %s", res.Key, short(res.Commit), res.Kept)}
		}
	case "backspace":
		if len(m.input) > 0 {
			m.input = m.input[:len(m.input)-1]
		}
	case "space":
		m.input = append(m.input, ' ')
	default:
		// Typed text (a key with a modifier, such as alt+x, has none).
		if k.Mod == 0 || k.Mod == tea.ModShift {
			m.input = append(m.input, []rune(k.Text)...)
		}
	}
	return nil
}

func (m *model) approve() tea.Cmd {
	key, ok := m.selectedIn(orchestrator.StateReview, "approve")
	if !ok {
		return nil
	}
	o, ctx := m.o, m.ctx
	m.message = "approving " + key + "…"
	return func() tea.Msg {
		res, err := o.Approve(ctx, key)
		if msg, ok := handOver(o, err, "approve", key, ""); ok {
			return msg
		}
		if err != nil {
			return actionMsg{err: refused("approve", err)}
		}
		return actionMsg{text: fmt.Sprintf("approved %s: %s landed", res.Key, short(res.Commit))}
	}
}

// retry lifts the selected unit's hold or failure and runs it: handed to
// the watcher when one runs, else run here, its progress shown like a
// followed run's.
func (m *model) retry() tea.Cmd {
	key := m.selectedKey()
	if key == "" {
		return nil
	}
	if m.ownRun {
		m.message = "a retry is running already"
		return nil
	}
	m.ownRun = true
	m.message = "retrying " + key + "…"
	send, ctx, opts := m.send, m.ctx, m.opts
	return func() tea.Msg {
		o, err := orchestrator.New(orchestrator.Config{Dir: opts.Dir, Environ: opts.Environ, Activity: true,
			MCPCommand: opts.MCPCommand, OnEvent: func(e orchestrator.Event) { send(eventMsg{e: e}) }})
		if err != nil {
			return ownRunMsg{err: err}
		}
		sum, err := o.Retry(ctx, key, orchestrator.RunOptions{Command: "codemachine ui"})
		if _, watching := watch.RefusedBy(err); watching {
			pid, qerr := watch.QueueRetry(o, key)
			if qerr == nil {
				return ownRunMsg{text: fmt.Sprintf("handed %s to codemachine watch (pid %d)", key, pid)}
			}
			err = qerr
		}
		if err != nil && sum == nil {
			return ownRunMsg{err: refused("retry", err)}
		}
		return ownRunMsg{text: summary(key, sum, err)}
	}
}

// ownRunMsg ends the dashboard's own retry.
type ownRunMsg actionMsg

// summary says how the dashboard's own retry ended.
func summary(key string, s *orchestrator.Summary, err error) string {
	var failed *orchestrator.StepFailedError
	var review *orchestrator.ReviewPendingError
	switch {
	case errors.As(err, &review):
		return "retried " + key + ": it waits for review"
	case errors.As(err, &failed):
		return "retried " + key + ": it failed again (d shows its work)"
	case err != nil:
		return "retry " + key + ": " + err.Error()
	}
	return fmt.Sprintf("retried %s: %d landed · %s tokens · %s", key, len(s.Landed),
		orchestrator.FormatTokens(s.TokensIn+s.TokensOut), orchestrator.FormatCost(s.CostUSD, s.CostUSD > 0))
}

// refused rewords a refusal because another codemachine holds the lock.
func refused(verb string, err error) error {
	var cfg *orchestrator.ConfigError
	if pid, ok := watch.RefusedBy(err); ok {
		return fmt.Errorf("%s refused: codemachine watch (pid %d) holds the repository; stop it first", verb, pid)
	}
	if errors.As(err, &cfg) {
		return fmt.Errorf("%s: %s", verb, firstLine(err.Error()))
	}
	return err
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

func short(h string) string {
	if len(h) > 7 {
		return h[:7]
	}
	return h
}

// handOver hands approve or reject to the running watcher when err says
// one holds the lock, as the commands do; ok reports that it was handed
// over (or that handing over failed, said in msg).
func handOver(o *orchestrator.Orchestrator, err error, action, key, reason string) (actionMsg, bool) {
	if _, watching := watch.RefusedBy(err); !watching {
		return actionMsg{}, false
	}
	pid, qerr := watch.QueueReview(o, action, key, reason)
	if qerr != nil {
		return actionMsg{err: refused(action, err)}, true
	}
	return actionMsg{text: fmt.Sprintf("handed %s %s to codemachine watch (pid %d): it runs what is due after its current pass", action, key, pid)}, true
}
