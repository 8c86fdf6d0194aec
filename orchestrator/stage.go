package orchestrator

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// candidate is a unit's finished change on its way to becoming the step
// commit: the staged tree (agent's change plus state.yaml and the ticked
// box), the agent's own changes, and the record that state.yaml now holds.
type candidate struct {
	tree string
	// taskFP is a task's fingerprint with its own change applied, when
	// that differs from the one it ran with (recordOwnResult); "" else.
	taskFP   string
	changes  []gitstate.Change // the agent's changes (state.yaml left out)
	rec      gitstate.RunRecord
	model    string
	duration time.Duration
	problem  string // why the change may not land; "" = fine so far
	// replaced holds what the overlays overwrote in the worktree (nil = the
	// file did not exist), to put back when verification fails.
	replaced map[string][]byte
	// agentEditedPlan: the agent changed the plan file beyond ticking its
	// own box, so a rebase must merge its edit rather than take the tip's.
	agentEditedPlan bool
	// planBase and planCand are the plan at the unit's base and in the
	// candidate (the agent's edit, box ticked), when both exist: a rebase
	// merges the agent's edit into the tip's plan from them (mergePlans).
	planBase, planCand []byte
	// commit is the step commit on the unit's base, with its message.
	commit string
	msg    gitstate.Message
	// unticked: a rebase found the task reworded at the tip (its title,
	// body or after: changed while it ran), so overlay left its box
	// unchecked: the work lands, and the task runs again as it now reads.
	// Set by overlay for the landing of a run's own result (keepReworded).
	unticked     bool
	keepReworded bool
}

// stage turns the worktree's state after the agent into a candidate tree.
// On the hot path the overlays (state.yaml, the ticked box) are written
// before the one full `git add -A`, so a step costs one scan of the
// worktree; with --record the agent's change must be known first, so it
// is staged, recorded, then the overlays are staged on top. A change that
// may not land comes back with its problem; an error is codemachine's.
func (j *job) stage(ctx context.Context) (*candidate, error) {
	o, u, out := j.o, j.u, j.out
	c := &candidate{duration: o.cfg.Now().Sub(j.start), model: j.model(), replaced: map[string][]byte{}}
	j.took = c.duration
	c.rec = gitstate.RunRecord{
		Fingerprint: u.settings.fingerprint, FinishedAt: o.cfg.Now().UTC().Truncate(time.Second),
		Engine: j.engineName, Model: c.model, Attempts: out.attempts,
		TokensIn: out.result.TokensIn, TokensOut: out.result.TokensOut,
		CostUSD: out.result.CostUSD, CostKnown: out.result.CostKnown, Duration: c.duration.Round(time.Millisecond),
		Output: string(out.output),
	}
	if u.step.Until != nil {
		c.rec.Iteration = iteration(j.snap, u)
	}
	c.rec.Files = outputFiles(j.wt.Path(), u.step)
	if msg := j.overlayLinks(); msg != "" {
		c.problem = msg
		return c, nil
	}
	stage := j.stageWithOverlays
	if j.rs.opts.Record && u.step.Run == "" {
		stage = j.stageRecorded
	}
	if err := stage(ctx, c); err != nil {
		return nil, err
	}
	if c.problem == "" {
		c.problem = j.leftOut()
	}
	return c, nil
}

// overlayLinks refuses a worktree where the agent put a symbolic link on
// the path of a file codemachine writes there after it (state.yaml, the
// feedback it consumes, the plan whose box it ticks, the recording): those
// writes run unconfined, and through the link they would create or
// overwrite a file anywhere (a ~/.bash_profile, the user's checkout), and
// a state.yaml link would land besides. Nor may one of those files be over
// max_file_size: codemachine reads them whole, after the step and outside
// its timeout, and a sparse file of 20 GB costs the step nothing to make
// (over the limit, it could not land anyway). "" when there is none.
func (j *job) overlayLinks() string {
	u, dir := j.u, j.wt.Path()
	paths := []string{workflow.StateFile, feedbackPath(u.key())}
	if u.task != nil && u.step.Foreach != "" {
		paths = append(paths, u.step.Foreach)
	}
	if j.rs.opts.Record && u.step.Run == "" {
		paths = append(paths, agents.RecordingPath(u.step.ID, taskID(u.task)))
	}
	limit := j.snap.project.Workflow.MaxFileSizeFor(u.step)
	for _, rel := range paths {
		if l, what := linkOnPath(dir, rel); l != "" {
			return fmt.Sprintf("the agent made %s %s, where codemachine writes %s", l, what, rel)
		}
		if fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(rel))); err == nil && limit.Refuses(rel, fi.Size()) {
			return oversize(limit, rel, fi.Size())
		}
	}
	return ""
}

// linkOnPath returns the first of rel's leading paths in dir (rel itself
// included) that a read or write of rel would follow, fail or block on,
// and what it is: a symbolic link, above rel anything but a directory, rel
// anything but a regular file. "" when there is none (a missing path is
// made as a directory or file of its own).
func linkOnPath(dir, rel string) (p, what string) {
	parts := strings.Split(rel, "/")
	abs := dir
	for i, name := range parts {
		abs = filepath.Join(abs, name)
		fi, err := os.Lstat(abs)
		switch {
		case err != nil:
			return "", ""
		case fi.Mode()&fs.ModeSymlink != 0:
			return strings.Join(parts[:i+1], "/"), "a symbolic link"
		case i < len(parts)-1 && !fi.IsDir():
			return strings.Join(parts[:i+1], "/"), "a file"
		case i == len(parts)-1 && !fi.Mode().IsRegular():
			// Reading a named pipe would wait forever for a writer,
			// and no signal ends a read blocked in open(2).
			return rel, "a " + fileKind(fi.Mode())
		}
	}
	return "", ""
}

// fileKind names what a file that is not a regular file is.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// stageWithOverlays is stage on the hot path: it checks that the agent
// left state.yaml alone, writes the overlays and stages everything at once.
func (j *job) stageWithOverlays(ctx context.Context, c *candidate) error {
	o, dir := j.o, j.wt.Path()
	baseState, err := o.repo.ReadFile(j.snap.commit, workflow.StateFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", workflow.StateFile, err)
	}
	agentState, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(workflow.StateFile)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", workflow.StateFile, err)
	}
	if !bytes.Equal(baseState, agentState) {
		// Raw bytes differ also where git converts line endings on
		// checkout (core.autocrlf, eol=crlf): what counts is what git
		// would commit.
		if clean, _, err := j.wt.CleanFile(ctx, workflow.StateFile); err != nil || !bytes.Equal(clean, baseState) {
			c.problem = "the step modified " + workflow.StateFile + " (only codemachine writes it)"
			return nil
		}
	}
	if err := j.writeOverlays(ctx, c); err != nil {
		return err
	}
	// Unprotected: execute commits the tree next and protects that.
	tree, err := j.wt.StageUnprotected(ctx)
	if err != nil {
		c.problem = stageProblem(err)
		return nil
	}
	c.tree = tree
	changes, err := o.repo.DiffTrees(ctx, j.snap.commit, tree)
	if err != nil {
		return err
	}
	recorded := false
	for _, ch := range changes {
		if ch.Path != workflow.StateFile {
			c.changes = append(c.changes, ch)
		} else {
			recorded = true
		}
	}
	if !recorded {
		// Every step commit changes state.yaml: Stage left it out, as git
		// add -A does, because the user's .gitignore ignores it (*.yaml)
		// and no commit has it yet. Without it the step would be recorded
		// nowhere and run again and again.
		if c.tree, err = j.wt.StagePaths(ctx, workflow.StateFile); err != nil {
			return fmt.Errorf("stage %s for %s: %w", workflow.StateFile, j.u.key(), err)
		}
	}
	return j.recordOwnResult(ctx, c)
}

// recordOwnResult records the fingerprint the unit has with its own change
// applied, when that change touches what the fingerprint covers (one of
// its inputs, a glob task's own file): a step that rewrites what it reads
// (a formatter, a task editing its file in place) is done once it landed,
// not due again because of its own work. An input committed by someone
// else while it ran still makes it due (see staleAt). Plan tasks are done
// by their ticked box and keep the fingerprint they ran with.
func (j *job) recordOwnResult(ctx context.Context, c *candidate) error {
	u := j.u
	if u.step.Foreach != "" || !touchesOwnInputs(u, c.changes) {
		return nil
	}
	fsys, err := j.o.repo.TreeFS(c.tree)
	if err != nil {
		return fmt.Errorf("read the staged tree: %w", err)
	}
	inputs, err := workflow.ResolveInputs(fsys, u.step.Inputs)
	if err != nil {
		return nil // the fingerprint it ran with stands
	}
	fp := workflow.Fingerprint(u.step, j.snap.project.AgentFor(u.step, u.step.Agent), u.settings.engine, u.settings.model, inputs)
	if u.step.When != nil {
		fp = workflow.WithCondition(fp, true) // it ran: its condition held
	}
	c.rec.Fingerprint = fp
	if u.task != nil {
		t := *u.task
		if t.Item != nil && t.Item.Path != "" {
			item := *t.Item
			if files, err := workflow.ResolveInputs(fsys, []string{item.Path}); err == nil && len(files) == 1 {
				item.Hash = files[0].Hash
			}
			t.Item = &item
		}
		c.taskFP = workflow.TaskFingerprint(fp, &t)
	}
	state := j.o.marshalState(applyRecord(j.snap.state, u, c.rec, c.taskFP))
	if err := writeRepoFile(j.wt.Path(), workflow.StateFile, state); err != nil {
		return err
	}
	tree, err := j.wt.Stage(ctx)
	if err != nil {
		c.problem = stageProblem(err)
		return nil
	}
	c.tree = tree
	return nil
}

// touchesOwnInputs reports whether changes touch a file u's fingerprint
// covers: one of its step's inputs, or its own item's file.
func touchesOwnInputs(u *unit, changes []gitstate.Change) bool {
	for _, ch := range changes {
		if workflow.MatchesInputs(u.step.Inputs, ch.Path) {
			return true
		}
		if u.task != nil && u.task.Item != nil && u.task.Item.Path == ch.Path {
			return true
		}
	}
	return false
}

// stageProblem is why a change Stage refused may not land.
func stageProblem(err error) string {
	if ge := (*gitstate.GuardedFileError)(nil); errors.As(err, &ge) {
		return ge.Error()
	}
	return "stage the step's changes: " + err.Error()
}

// leftOut is why the change Stage just staged may not land: a nested
// repository, a file over max_file_size or a path git refuses as .git
// elsewhere that it left out (said as the verification says it); "" when
// it left out none.
func (j *job) leftOut() string {
	if n := j.wt.Nested(); len(n) > 0 {
		return nestedRepo(n[0])
	}
	if lo := j.wt.LeftOut(); len(lo) > 0 {
		return oversize(j.snap.project.Workflow.MaxFileSizeFor(j.u.step), lo[0].Path, lo[0].Size)
	}
	if a := j.wt.GitAlias(); a != nil {
		return a.Error()
	}
	return ""
}

// stageRecorded is stage with --record: the agent's change is staged and
// written as a recording, then the recording and the overlays are staged
// on top.
func (j *job) stageRecorded(ctx context.Context, c *candidate) error {
	tree, err := j.wt.Stage(ctx)
	if err != nil {
		c.problem = stageProblem(err)
		return nil
	}
	if c.changes, err = j.o.repo.DiffTrees(ctx, j.snap.commit, tree); err != nil {
		return err
	}
	for _, ch := range c.changes {
		if ch.Path == workflow.StateFile {
			c.problem = "the step modified " + workflow.StateFile + " (only codemachine writes it)"
			return nil
		}
	}
	p, err := j.writeRecording(c)
	if err != nil {
		return err
	}
	if err := j.writeOverlays(ctx, c); err != nil {
		return err
	}
	paths := append([]string{p}, sortedKeys(c.replaced)...)
	if c.tree, err = j.wt.StagePaths(ctx, paths...); err != nil {
		return fmt.Errorf("stage state for %s: %w", j.u.key(), err)
	}
	return nil
}

// writeOverlays writes the updated state.yaml and, for a task, its ticked
// box into the worktree, remembering what they replaced.
func (j *job) writeOverlays(ctx context.Context, c *candidate) error {
	o, snap, u, dir := j.o, j.snap, j.u, j.wt.Path()
	write := func(rel string, data []byte) error {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		old, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("read %s: %w", rel, err)
		}
		c.replaced[rel] = old
		return writeRepoFile(dir, rel, data)
	}
	if err := write(workflow.StateFile, o.marshalState(applyRecord(snap.state, u, c.rec, c.taskFP))); err != nil {
		return err
	}
	// The feedback of a rejected attempt is consumed by the step commit that
	// follows it.
	fb := filepath.Join(dir, filepath.FromSlash(feedbackPath(u.key())))
	if old, err := os.ReadFile(fb); err == nil {
		c.replaced[feedbackPath(u.key())] = old
		if err := os.Remove(fb); err != nil {
			return fmt.Errorf("remove %s: %w", feedbackPath(u.key()), err)
		}
	}
	if u.task != nil && u.step.Foreach != "" {
		planData, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(u.step.Foreach)))
		if err != nil {
			// The agent deleted the plan: that is its edit to land.
			c.agentEditedPlan = true
			return nil
		}
		base := snap.project.Plans[u.step.Foreach]
		if base != nil && !bytes.Equal(planData, base.Data) {
			// As git would commit it: a checkout may have converted its
			// line endings, which is no edit of the agent's.
			if clean, _, err := j.wt.CleanFile(ctx, u.step.Foreach); err == nil {
				planData = clean
			}
		}
		if base != nil && !bytes.Equal(planData, base.Data) {
			baseTicked, _ := o.tick(u.step.Foreach, base.Data, u.task.ID)
			c.agentEditedPlan = !bytes.Equal(planData, baseTicked)
		}
		if base != nil {
			c.planBase, c.planCand = base.Data, planData
		}
		if ticked, ok := o.tick(u.step.Foreach, planData, u.task.ID); ok {
			if base != nil {
				c.planCand = ticked
			}
			return write(u.step.Foreach, ticked)
		}
	}
	return nil
}

// undoOverlays puts back what writeOverlays replaced, so that a failed
// unit's partial work is the agent's alone.
func (c *candidate) undoOverlays(dir string) error {
	for rel, old := range c.replaced {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if old == nil {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			continue
		}
		if err := os.WriteFile(p, old, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeRecording stores what the agent did as a replay recording inside the
// worktree, so that it lands with the step's commit.
func (j *job) writeRecording(cand *candidate) (string, error) {
	u, dir, out := j.u, j.wt.Path(), j.out
	rec := &agents.Recording{
		Fingerprint: u.fingerprint(),
		Step:        u.step.ID, Task: taskID(u.task), Engine: j.engineName, Model: cand.model, Session: out.result.SessionID,
		TokensIn: out.result.TokensIn, TokensOut: out.result.TokensOut, CostUSD: out.result.CostUSD,
		CostKnown: out.result.CostKnown, Duration: cand.duration.Round(time.Millisecond), Text: out.result.Text,
	}
	for _, c := range cand.changes {
		if strings.HasPrefix(c.Path, workflow.RecordingDir+"/") {
			continue
		}
		fc := agents.FileChange{Path: c.Path}
		switch {
		case c.Status == 'D':
			fc.Deleted = true
		case c.NewMode == "120000" || c.NewMode == "160000":
			return "", fmt.Errorf("record %s: %s is a symlink or submodule, which recordings cannot hold", u.key(), c.Path)
		default:
			data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(c.Path)))
			if err != nil {
				return "", fmt.Errorf("record %s: %w", u.key(), err)
			}
			fc.Content = data
			if c.NewMode == "100755" {
				fc.Mode = "0755"
			}
		}
		rec.Files = append(rec.Files, fc)
	}
	data, err := agents.MarshalRecording(rec)
	if err != nil {
		return "", fmt.Errorf("record %s: %w", u.key(), err)
	}
	p := agents.RecordingPath(u.step.ID, taskID(u.task))
	return p, writeRepoFile(dir, p, data)
}

// applyRecord returns a copy of state with the unit's record at the next
// sequence number.
func applyRecord(state *gitstate.State, u *unit, rec gitstate.RunRecord, taskFP string) *gitstate.State {
	next := &gitstate.State{Version: gitstate.StateVersion, Seq: state.Seq + 1, Uses: maps.Clone(state.Uses), Steps: map[string]*gitstate.StepRecord{}}
	for id, sr := range state.Steps {
		cp := *sr
		if sr.Tasks != nil {
			cp.Tasks = map[string]*gitstate.RunRecord{}
			for tid, tr := range sr.Tasks {
				t := *tr
				cp.Tasks[tid] = &t
			}
		}
		next.Steps[id] = &cp
	}
	rec.Seq = next.Seq
	sr := next.Steps[u.step.ID]
	if sr == nil {
		sr = &gitstate.StepRecord{}
		next.Steps[u.step.ID] = sr
	}
	tasks := sr.Tasks
	sr.RunRecord = rec
	sr.Tasks = tasks
	if u.task != nil {
		if sr.Tasks == nil {
			sr.Tasks = map[string]*gitstate.RunRecord{}
		}
		tr := rec
		tr.Fingerprint = cmp.Or(taskFP, u.fingerprint())
		sr.Tasks[u.task.ID] = &tr
	}
	return next
}

// tickTask checks the task's box in a plan, changing that one byte. ok is
// false when the task is gone or already checked (the agent ticked it).
func tickTask(file string, data []byte, id string) ([]byte, bool) {
	plan, err := workflow.ParsePlan(file, data)
	if err != nil {
		return nil, false
	}
	return tickPlan(plan, id)
}

// tickPlan is tickTask on a parsed plan.
func tickPlan(plan *workflow.Plan, id string) ([]byte, bool) {
	t := plan.Task(id)
	if t == nil || t.Done {
		return nil, false
	}
	ticked, err := plan.SetDone(id, true)
	if err != nil {
		return nil, false
	}
	return ticked, true
}

// writeRepoFile writes a repository file inside dir, never through a
// symbolic link (see overlayLinks).
func writeRepoFile(dir, rel string, data []byte) error {
	if l, what := linkOnPath(dir, rel); l != "" {
		return fmt.Errorf("write %s: %s is %s", rel, l, what)
	}
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return nil
}
