package orchestrator

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
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
	// From says where the work was found: "review" (its review
	// branch), "failed", "landed" or "".
	From string
	// Landing is set when the work is a step commit made to land (under
	// review, or kept on a conflict branch when it could not land): its
	// state.yaml and ticked plan are codemachine's, written again by the
	// new commit.
	Landing bool
}

// opensReview reports whether this run is codemachine open taking up
// key's review branch: the unit runs although its review is pending, and
// its new commit replaces the one on the review branch.
func (rs *runState) opensReview(key string) bool {
	t := rs.opts.Open
	return t != nil && t.Key == key && t.From == "review"
}

// Open runs the unit key (STEP or STEP/TASK) in its agent's own UI on
// opts.Terminal: its recorded session resumed (or, without one, a new
// session with the step's prompt) in a worktree holding its latest work:
// its review branch's, its failed ref's (brought onto the tip when it was
// made on an older commit and applies there), or the tip with what it
// landed. When the person leaves, the change lands as a new commit of the
// unit, like a run's (one under review replaces the commit on its review
// branch); a hold or failure of the unit is lifted first.
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
	if err := o.checkCommitter(ctx); err != nil {
		return nil, err
	}
	if ok, err := o.stepKey(head.Commit, key); err != nil || !ok {
		return nil, cmp.Or(err, configErrorf("%s is not a step or task of the workflow", workflow.ShownName(key)))
	}
	if o.isCommandStep(head.Commit, key) {
		return nil, configErrorf("%s runs a command: open takes the wheel of agent steps only", key)
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

// openTarget finds the unit's latest work and session: its review
// branch's, else its failure's (the failed ref), else its latest commit on
// the branch.
func (o *Orchestrator) openTarget(tip, key string) (*OpenTarget, error) {
	t := &OpenTarget{Key: key}
	failures, err := o.failures()
	if err != nil {
		return nil, err
	}
	commit := ""
	review, _ := o.repo.ResolveRev("refs/heads/" + reviewPrefix + key)
	if f, ok := failures[key]; review != "" {
		t.Work, t.From, t.Landing, commit = review, "review", true, review
	} else if ok && f.Commit != "" {
		t.Work, t.From, t.Landing, commit = f.Commit, "failed", f.Conflict, f.Commit
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

// takeUp is the work the unit takes up in its UI, as codemachine open
// would: open's target, or, for an interactive unit of a run, the work
// its last run kept on its conflict branch (it could not land, the user's
// changes were in its way) when the unit is as it was then. The person
// goes on from that work in the session that made it, and leaving the UI
// lands it; a run that started over instead would drop the person's work
// when its own landed (the landing settles the conflict branch).
func (j *job) takeUp() (*OpenTarget, error) {
	o, u := j.o, j.u
	if t := j.rs.opts.Open; t != nil && t.Key == u.key() {
		return t, nil
	}
	if !j.rs.interactive(u) || j.rs.opts.Terminal == nil {
		return nil, nil
	}
	failures, err := o.failures()
	if err != nil {
		return nil, err
	}
	f, ok := failures[u.key()]
	if !ok || !f.Conflict || f.Commit == "" || f.Fingerprint != u.fingerprint() {
		return nil, nil
	}
	t, err := o.openTarget(j.snap.commit, u.key())
	if err != nil || t.From != "failed" {
		return nil, err
	}
	o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task),
		Message: "taking up the work that could not land (" + strings.TrimPrefix(f.Ref, "refs/heads/") + ")"})
	return t, nil
}

// openPoint readies the worktree of the unit `open` takes up: its work
// under review or failed work restored (brought onto the base the unit
// runs on now when it was made on another), and the session to resume
// when the engine is the one that recorded it.
func (j *job) openPoint(ctx context.Context, t *OpenTarget) (string, error) {
	u := j.u
	j.open = true
	if t.Work != "" {
		if err := j.restoreOpenWork(ctx, t); err != nil {
			return "", err
		}
	}
	if t.Session == "" || t.Engine != j.engineName {
		j.o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task),
			Message: "no " + j.engineName + " session recorded for " + u.key() + "; a new one starts with the step's prompt"})
		return "", nil
	}
	what := "its latest commit"
	switch t.From {
	case "failed":
		what = "its failed work " + short(t.Work)
	case "review":
		what = "its work under review " + short(t.Work)
	}
	j.o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task),
		Message: fmt.Sprintf("resuming %s session %s with %s", j.engineName, t.Session, what)})
	return t.Session, nil
}

// restoreOpenWork puts the work `open` takes up into the unit's worktree
// as uncommitted changes. Work made on another commit is merged onto the
// base (as a resumed session's partial work is); when it does not apply
// there, the unit opens at the tip and says so. Of a step commit (work
// under review, or kept on a conflict branch), codemachine's own files
// (state.yaml, the ticked plan) are left as the base has them: the new
// commit writes them again.
func (j *job) restoreOpenWork(ctx context.Context, t *OpenTarget) error {
	o, u := j.o, j.u
	note := func(msg string) { o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: msg}) }
	c, err := o.repo.CommitInfo(t.Work)
	if err != nil || len(c.Parents) == 0 {
		note(fmt.Sprintf("the %s work %s is gone; opening %s at the tip", t.From, short(t.Work), u.key()))
		return nil
	}
	work := t.Work
	if base := c.Parents[0]; base != j.snap.commit {
		tree, conflicts, err := o.repo.MergeTree(ctx, base, j.snap.commit, t.Work)
		if err != nil {
			return fmt.Errorf("bring the work of %s onto %s: %w", u.key(), short(j.snap.commit), err)
		}
		if t.Landing {
			conflicts = slices.DeleteFunc(conflicts, func(p string) bool { return p == workflow.StateFile || p == u.step.Foreach })
		}
		if len(conflicts) > 0 {
			note(fmt.Sprintf("the %s work %s was made on %s and conflicts with what landed since (%s); opening %s at the tip",
				t.From, short(t.Work), short(base), strings.Join(conflicts, ", "), u.key()))
			return nil
		}
		note(fmt.Sprintf("the %s work %s was made on %s: brought onto %s", t.From, short(t.Work), short(base), short(j.snap.commit)))
		work = tree
	}
	if t.Landing {
		if work, err = o.withBaseFiles(ctx, work, j.snap.commit, workflow.StateFile, u.step.Foreach); err != nil {
			return err
		}
	}
	if err := j.wt.RestoreWork(ctx, work); err != nil {
		return fmt.Errorf("restore the work of %s: %w", u.key(), err)
	}
	return nil
}

// withBaseFiles is tree with the given paths ("" ones skipped) as base
// has them (removed where base has none).
func (o *Orchestrator) withBaseFiles(ctx context.Context, tree, base string, paths ...string) (string, error) {
	files := map[string]gitstate.Blob{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		data, err := o.repo.ReadFile(base, p)
		if err != nil {
			files[p] = gitstate.Blob{}
			continue
		}
		h, err := o.repo.HashObject(ctx, data)
		if err != nil {
			return "", err
		}
		files[p] = gitstate.Blob{Hash: h, Mode: "100644"}
	}
	return o.repo.OverlayTree(ctx, tree, files)
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
