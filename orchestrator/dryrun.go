package orchestrator

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// dryRun prints what a run would do at the branch tip, with every rendered
// prompt, and changes nothing. With --cascade it reads what is due once the
// cascade's commit unchecked the tasks it re-runs: that commit is made but
// not landed (no ref moves).
func (o *Orchestrator) dryRun(ctx context.Context, head gitstate.Head, opts RunOptions) error {
	w := opts.Out
	if w == nil {
		w = io.Discard
	}
	at, undone, err := o.dryRunAt(ctx, head, opts)
	if err != nil {
		return err
	}
	snap, err := o.load(at, opts.Overrides)
	if err != nil {
		return err
	}
	// The scheduler's pickers say what is wanted and what waits.
	s := o.newScheduler(&runState{opts: opts, failed: map[string]bool{}, summary: &Summary{}})
	s.snap = snap
	if err := s.resolveTargets(); err != nil {
		return err
	}
	holds, err := o.holdsAt(head, opts.Overrides)
	if err != nil {
		return err
	}
	failures, err := o.failures()
	if err != nil {
		return err
	}
	g := snap.project.Graph
	n := 0
	printDryHeader(w, head, undone)
	for _, step := range g.Order() {
		id := step.ID
		if s.targets != nil && !s.targets[id] {
			continue
		}
		reason, due := snap.due[id]
		if !due && !(opts.Force && s.named[id]) {
			continue
		}
		if !due {
			reason = "forced"
		}
		st := snap.settings[id]
		u := &unit{step: step, agent: snap.project.AgentFor(step, step.Agent), settings: st, reason: string(reason)}
		if s.upstreamBlocked(step) {
			n++
			fmt.Fprintf(w, "\n%d. %s: after %s (%s)\n", n, id, strings.Join(dueUpstream(snap, step), ", "), reason)
			if step.When != nil {
				fmt.Fprintf(w, "   if when: %s (decided once %s landed)\n", step.When.Source, strings.Join(dueUpstream(snap, step), ", "))
			}
			continue
		}
		if msg, bad := snap.condErrs[id]; bad {
			n++
			fmt.Fprintf(w, "\n%d. %s: cannot run: %s\n", n, id, msg)
			continue
		}
		if snap.project.Skips[id] {
			n++
			fmt.Fprintf(w, "\n%d. %s  (%s)  skipped: when: %s is false\n", n, id, reason, step.When.Source)
			continue
		}
		if step.FansOut() {
			if errs := snap.project.TaskErrs(step); len(errs) > 0 {
				n++
				fmt.Fprintf(w, "\n%d. %s: cannot run: %s has errors:\n%s\n", n, id, step.TaskSource(), errs.Error())
				continue
			}
			plan := snap.project.TaskPlan(step)
			if plan == nil {
				continue
			}
			runnable := plan.Runnable()
			for _, t := range runnable {
				tu := *u
				tu.task = t
				n++
				o.printDryUnit(w, snap, &tu, n, holds, failures, opts.SkipFailed)
			}
			if waiting := len(unchecked(plan)) - len(runnable); waiting > 0 {
				fmt.Fprintf(w, "\n   (%d more task(s) of %s wait for their dependencies)\n", waiting, id)
			}
			continue
		}
		n++
		o.printDryUnit(w, snap, u, n, holds, failures, opts.SkipFailed)
	}
	if n == 0 {
		fmt.Fprintln(w, "\nnothing is due")
	}
	return nil
}

// printDryHeader says where the dry run looks, and what --cascade would
// uncheck first.
func printDryHeader(w io.Writer, head gitstate.Head, undone []string) {
	fmt.Fprintf(w, "dry run at %s (%s): what a run would do, without running anything\n", short(head.Commit), head.Branch)
	if len(undone) > 0 {
		fmt.Fprintf(w, "cascade: would uncheck %s in one commit first %s\n", strings.Join(undone, ", "), cascadeWhy(undone))
	}
}

// dryRunAt is the commit a dry run reads: the branch tip, or with
// --cascade the cascade's commit on top of it, with the STEP/TASK keys
// that commit unchecks.
func (o *Orchestrator) dryRunAt(ctx context.Context, head gitstate.Head, opts RunOptions) (string, []string, error) {
	if !opts.Cascade {
		return head.Commit, nil, nil
	}
	commit, undone, err := o.cascadeCommit(ctx, head, opts.Overrides)
	if err != nil || commit == "" {
		return head.Commit, nil, err
	}
	return commit, undone, nil
}

func (o *Orchestrator) printDryUnit(w io.Writer, snap *snapshot, u *unit, n int, holds map[string]Hold, failures map[string]Failure, skipFailed bool) {
	engine := u.settings.engine
	switch {
	case u.step.Run != "":
		engine = "shell"
	case u.settings.replay:
		engine = "replay"
	}
	fmt.Fprintf(w, "\n%d. %s  (%s)  %s\n", n, u.key(), u.reason, engineLabel(engine, u.settings.model))
	if u.step.When != nil {
		fmt.Fprintf(w, "   when: %s is true\n", u.step.When.Source)
	}
	if h, ok := holds[u.key()]; ok && h.Fingerprint == u.fingerprint() {
		fmt.Fprintf(w, "   held after a rollback or reset: would be skipped\n")
		return
	}
	if f, ok := failures[u.key()]; ok && skipFailed && f.Fingerprint == u.fingerprint() && !f.Interrupted {
		fmt.Fprintf(w, "   failed before with the same inputs: would be skipped\n")
		return
	}
	if u.step.Run != "" {
		fmt.Fprintf(w, "   $ %s\n", u.step.Run)
		return
	}
	prompt, err := o.renderPrompt(snap, u, o.repo.Root(), 1, "", "")
	if err != nil {
		fmt.Fprintf(w, "   prompt cannot be rendered yet: %v\n", err)
		return
	}
	fmt.Fprintf(w, "--- prompt ---\n%s\n--- end of prompt ---\n", strings.TrimRight(prompt, "\n"))
}

// dueUpstream lists the direct upstream steps that are still due.
func dueUpstream(snap *snapshot, step *workflow.Step) []string {
	var ids []string
	for _, up := range snap.project.Graph.Upstream(step.ID) {
		if _, due := snap.due[up]; due {
			ids = append(ids, up)
		}
	}
	return ids
}

// unchecked lists a plan's open tasks.
func unchecked(p *workflow.Plan) []*workflow.Task {
	var open []*workflow.Task
	for _, t := range p.Tasks {
		if !t.Done {
			open = append(open, t)
		}
	}
	return open
}
