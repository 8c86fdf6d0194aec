package orchestrator

import (
	"context"
	"fmt"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
)

// OpenTarget is what `codemachine open` takes up: the unit's latest work
// and the agent session that made it.
type OpenTarget struct {
	Key string
	// Work is the commit whose tree the worktree gets as uncommitted work
	// (the failed ref's); "" when the tip holds the work (landed) or there
	// is none.
	Work string
	// Session and Engine are the recorded session ("" = none: a new
	// session with the step's prompt).
	Session, Engine string
	// From says where the work was found: "failed", "landed" or "".
	From string
}

// Open runs the unit key (STEP or STEP/TASK) in its agent's own UI on
// opts.Terminal: its recorded session resumed (or, without one, a new
// session with the step's prompt) in a worktree holding its latest work:
// its failed ref's, or the tip with what it landed. When the person
// leaves, the change lands as a new commit of the unit, like a run's; a
// hold or failure of the unit is lifted first.
func (o *Orchestrator) Open(ctx context.Context, key string, opts RunOptions) (*Summary, error) {
	if opts.Terminal == nil {
		return nil, configErrorf("open needs a terminal (standard input and output): it runs the agent's own UI")
	}
	head, err := o.checkHead()
	if err != nil {
		return nil, err
	}
	if err := o.checkWorkflow(head.Commit); err != nil {
		return nil, err
	}
	if opts.Command == "" {
		opts.Command = "codemachine open"
	}
	lock, err := o.lock(opts.Command)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if !o.isStepKey(head.Commit, key) {
		return nil, configErrorf("%s is not a step or task of the workflow", key)
	}
	if o.isCommandStep(head.Commit, key) {
		return nil, configErrorf("%s runs a command: open takes the wheel of agent steps only", key)
	}
	if review, _ := o.repo.ResolveRev("refs/heads/" + reviewPrefix + key); review != "" {
		// Not yet: its work would have to come from the review branch
		// and its new commit go back there.
		return nil, configErrorf("%s waits for review on %s%s: approve or reject it first (open does not take up a review branch yet)", key, reviewPrefix, key)
	}
	target, err := o.openTarget(head.Commit, key)
	if err != nil {
		return nil, err
	}
	if err := o.updateHolds(func(h map[string]Hold) { delete(h, key) }); err != nil {
		return nil, err
	}
	if err := o.updateFailures(func(f map[string]Failure) { delete(f, key) }); err != nil {
		return nil, err
	}
	step, _, _ := strings.Cut(key, "/")
	opts.Steps, opts.Force = []string{key}, !strings.Contains(key, "/")
	opts.Interactive, opts.Open = append(opts.Interactive, step), target
	return o.runLocked(ctx, head, opts, lock)
}

// openTarget finds the unit's latest work and session: its failure's
// (the failed ref), else its latest commit on the branch.
func (o *Orchestrator) openTarget(tip, key string) (*OpenTarget, error) {
	t := &OpenTarget{Key: key}
	failures, err := o.failures()
	if err != nil {
		return nil, err
	}
	commit := ""
	if f, ok := failures[key]; ok && f.Commit != "" {
		t.Work, t.From, commit = f.Commit, "failed", f.Commit
		t.Session, t.Engine = f.Session, f.Engine
	} else {
		commits, err := o.stepCommits(tip, nil)
		if err != nil {
			return nil, err
		}
		if commit = commits[key]; commit != "" {
			t.From = "landed"
		}
	}
	if commit != "" && t.Session == "" {
		c, err := o.repo.CommitInfo(commit)
		if err != nil {
			return nil, err
		}
		msg := gitstate.Message{Trailers: c.Trailers}
		t.Session, t.Engine = msg.Get(gitstate.TrailerSession), msg.Get(gitstate.TrailerEngine)
	}
	return t, nil
}

// openPoint readies the worktree of the unit `open` takes up: its failed
// work restored (when it was made on the base the unit runs on now), and
// the session to resume when the engine is the one that recorded it.
func (j *job) openPoint(ctx context.Context) (string, error) {
	t, u := j.rs.opts.Open, j.u
	j.open = true
	if t.Work != "" {
		c, err := j.o.repo.CommitInfo(t.Work)
		switch {
		case err == nil && len(c.Parents) > 0 && c.Parents[0] == j.snap.commit:
			if err := j.wt.RestoreWork(ctx, t.Work); err != nil {
				return "", fmt.Errorf("restore the work of %s: %w", u.key(), err)
			}
		default:
			j.o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task),
				Message: fmt.Sprintf("the failed work %s was made on another commit; opening %s at the tip", short(t.Work), u.key())})
		}
	}
	if t.Session == "" || t.Engine != j.engineName {
		j.o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task),
			Message: "no " + j.engineName + " session recorded for " + u.key() + "; a new one starts with the step's prompt"})
		return "", nil
	}
	what := "its latest commit"
	if t.From == "failed" {
		what = "its failed work " + short(t.Work)
	}
	j.o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task),
		Message: fmt.Sprintf("resuming %s session %s with %s", j.engineName, t.Session, what)})
	return t.Session, nil
}

// isCommandStep reports whether key's step at rev is a run: step.
func (o *Orchestrator) isCommandStep(rev, key string) bool {
	snap, err := o.load(rev, Overrides{})
	if err != nil {
		return false
	}
	stepID, _, _ := strings.Cut(key, "/")
	step := snap.project.Graph.Step(stepID)
	return step != nil && step.Run != ""
}
