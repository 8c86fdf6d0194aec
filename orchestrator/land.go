package orchestrator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// verify checks a finished unit's change before it may land (DESIGN 8): its
// outputs exist, it left state.yaml and .git alone, and it adds no secrets
// or symlinks out of the repository. ours are the branches the run itself
// had written when after was taken. It returns "" when all is well.
func (o *Orchestrator) verify(rs *runState, snap *snapshot, u *unit, dir string, c *candidate, before, after gitstate.GitSnapshot, ours map[string]string) string {
	changes := c.changes
	for _, c := range changes {
		if c.Path == workflow.StateFile {
			return "the agent modified " + workflow.StateFile + " (only codemachine writes it)"
		}
	}
	ignore := o.userCommits(rs.branch, before, after)
	for ref, hash := range after.Refs {
		// A branch this run wrote while the unit ran (another task's
		// conflict or review branch) is not the agent's doing, as long
		// as it is still where the run put it.
		if before.Refs[ref] != hash && ours[ref] == hash {
			ignore[ref] = true
		}
	}
	if touched := before.Changed(after, ignore); len(touched) > 0 {
		return "the agent wrote inside .git/: " + strings.Join(touched, ", ")
	}
	for _, pattern := range u.step.Outputs {
		if !outputExists(snap, pattern, changes) {
			return fmt.Sprintf("output %s does not exist after the step (it must be produced and committed)", pattern)
		}
	}
	for _, c := range changes {
		if c.NewMode == "120000" {
			if target, err := os.Readlink(filepath.Join(dir, filepath.FromSlash(c.Path))); err == nil && escapes(c.Path, target) {
				return fmt.Sprintf("symlink %s points outside the repository (%s)", c.Path, target)
			}
		}
	}
	scan := changes
	if u.task != nil && !c.agentEditedPlan {
		// The plan changed by codemachine's tick alone: nothing to scan,
		// and a long plan would be scanned at every landing.
		scan = slices.DeleteFunc(slices.Clone(changes), func(ch gitstate.Change) bool { return ch.Path == u.step.Foreach })
	}
	if msg := findSecrets(snap.project.Workflow.AllowSecrets, dir, scan); msg != "" {
		return msg
	}
	return ""
}

// userCommits returns the working branch's ref when it moved forward while
// the unit ran: the user committed meanwhile, which landing handles by
// rebasing the step (DESIGN 8), so it is not the agent writing inside .git.
// A branch moved anywhere else (reset, rewritten) still fails the step.
func (o *Orchestrator) userCommits(branch string, before, after gitstate.GitSnapshot) map[string]bool {
	ref := "refs/heads/" + branch
	old, now := before.Refs[ref], after.Refs[ref]
	if old == "" || now == "" || old == now {
		return map[string]bool{}
	}
	if ok, err := o.repo.IsAncestor(old, now); err != nil || !ok {
		return map[string]bool{}
	}
	return map[string]bool{ref: true}
}

// outputExists reports whether pattern matches a file of the step's result:
// a file of the base commit it did not delete, or one it added or changed.
func outputExists(snap *snapshot, pattern string, changes []gitstate.Change) bool {
	deleted := map[string]bool{}
	for _, c := range changes {
		if ok, _ := doublestar.Match(pattern, c.Path); ok {
			if c.Status == 'D' {
				deleted[c.Path] = true
			} else {
				return true
			}
		}
	}
	matches, err := doublestar.Glob(snap.fsys, pattern, doublestar.WithFilesOnly())
	if err != nil {
		return false
	}
	for _, m := range matches {
		if !deleted[m] {
			return true
		}
	}
	return false
}

// escapes reports whether a symlink at linkPath with target leaves the
// repository.
func escapes(linkPath, target string) bool {
	if path.IsAbs(target) || filepath.IsAbs(target) {
		return true
	}
	joined := path.Clean(path.Join(path.Dir(linkPath), filepath.ToSlash(target)))
	return joined == ".." || strings.HasPrefix(joined, "../")
}

// candidate is a unit's finished change on its way to becoming the step
// commit: the staged tree (agent's change plus state.yaml and the ticked
// box), the agent's own changes, and the record that state.yaml now holds.
type candidate struct {
	tree     string
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
}

// stageUnit turns the worktree's state after the agent into a candidate
// tree. On the hot path the overlays (state.yaml, the ticked box) are
// written before the one full `git add -A`, so a step costs one scan of
// the worktree; with --record the agent's change must be known first, so
// it is staged, recorded, then the overlays are staged on top.
func (o *Orchestrator) stageUnit(ctx context.Context, rs *runState, snap *snapshot, u *unit, wt *gitstate.Worktree, engineName string, out attemptOutcome, start time.Time) (*candidate, error) {
	c := &candidate{duration: o.cfg.Now().Sub(start), model: u.settings.model, replaced: map[string][]byte{}}
	if out.result.Model != "" {
		c.model = out.result.Model
	}
	c.rec = gitstate.RunRecord{
		Fingerprint: u.settings.fingerprint, FinishedAt: o.cfg.Now().UTC().Truncate(time.Second),
		Engine: engineName, Model: c.model, Attempts: out.attempts,
		TokensIn: out.result.TokensIn, TokensOut: out.result.TokensOut,
		CostUSD: out.result.CostUSD, CostKnown: out.result.CostKnown, Duration: c.duration.Round(time.Millisecond),
	}
	dir := wt.Path()
	record := rs.opts.Record && u.step.Run == ""
	if !record {
		baseState, err := o.repo.ReadFile(snap.commit, workflow.StateFile)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", workflow.StateFile, err)
		}
		agentState, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(workflow.StateFile)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", workflow.StateFile, err)
		}
		if !bytes.Equal(baseState, agentState) {
			c.problem = "the agent modified " + workflow.StateFile + " (only codemachine writes it)"
			return c, nil
		}
		if err := o.writeOverlays(snap, u, dir, c); err != nil {
			return nil, err
		}
		tree, err := wt.Stage(ctx)
		if err != nil {
			c.problem = "stage the step's changes: " + err.Error()
			return c, nil
		}
		c.tree = tree
		changes, err := o.repo.DiffTrees(ctx, snap.commit, tree)
		if err != nil {
			return nil, err
		}
		for _, ch := range changes {
			if ch.Path != workflow.StateFile {
				c.changes = append(c.changes, ch)
			}
		}
		return c, nil
	}
	tree, err := wt.Stage(ctx)
	if err != nil {
		c.problem = "stage the step's changes: " + err.Error()
		return c, nil
	}
	if c.changes, err = o.repo.DiffTrees(ctx, snap.commit, tree); err != nil {
		return nil, err
	}
	for _, ch := range c.changes {
		if ch.Path == workflow.StateFile {
			c.problem = "the agent modified " + workflow.StateFile + " (only codemachine writes it)"
			return c, nil
		}
	}
	p, err := o.writeRecording(u, dir, engineName, c.model, out, c.duration, c.changes)
	if err != nil {
		return nil, err
	}
	if err := o.writeOverlays(snap, u, dir, c); err != nil {
		return nil, err
	}
	paths := append([]string{p}, sortedKeys(c.replaced)...)
	if c.tree, err = wt.StagePaths(ctx, paths...); err != nil {
		return nil, fmt.Errorf("stage state for %s: %w", u.key(), err)
	}
	return c, nil
}

// writeOverlays writes the updated state.yaml and, for a task, its ticked
// box into the worktree, remembering what they replaced.
func (o *Orchestrator) writeOverlays(snap *snapshot, u *unit, dir string, c *candidate) error {
	write := func(rel string, data []byte) error {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		old, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("read %s: %w", rel, err)
		}
		c.replaced[rel] = old
		return writeRepoFile(dir, rel, data)
	}
	if err := write(workflow.StateFile, o.marshalState(applyRecord(snap.state, u, c.rec))); err != nil {
		return err
	}
	// The feedback of a rejected attempt is consumed by the step commit that
	// follows it (DESIGN 9).
	fb := filepath.Join(dir, filepath.FromSlash(feedbackPath(u.key())))
	if old, err := os.ReadFile(fb); err == nil {
		c.replaced[feedbackPath(u.key())] = old
		if err := os.Remove(fb); err != nil {
			return fmt.Errorf("remove %s: %w", feedbackPath(u.key()), err)
		}
	}
	if u.task != nil {
		planData, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(u.step.Foreach)))
		if err != nil {
			// The agent deleted the plan: that is its edit to land.
			c.agentEditedPlan = true
			return nil
		}
		base := snap.project.Plans[u.step.Foreach]
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

// land lands a unit's verified candidate commit on the branch; the
// scheduler calls it, one unit at a time. It returns an error only when
// codemachine itself failed; a conflict is reported and kept on a branch.
func (o *Orchestrator) land(ctx context.Context, rs *runState, snap *snapshot, u *unit, r execResult) error {
	wt, engineName, out, c := r.wt, r.engineName, r.out, r.cand
	model, duration, dir := c.model, c.duration, wt.Path()
	msg, commit := c.msg, c.commit
	key := u.key()
	if u.step.Review {
		rs.landing.Lock()
		branch, err := o.keepForReview(ctx, key, commit)
		if err == nil {
			rs.noteRef("refs/heads/"+branch, commit)
		}
		rs.landing.Unlock()
		if err != nil {
			wt.Discard()
			return err
		}
		if err := wt.Finish(ctx, commit); err != nil {
			wt.Discard()
		}
		e := Event{Kind: StepReview, Step: u.step.ID, Task: taskID(u.task), Title: msg.Subject, Engine: engineName,
			Model: model, Duration: duration, Tokens: out.result.TokensIn + out.result.TokensOut,
			CostUSD: out.result.CostUSD, CostOK: out.result.CostKnown, Commit: commit, Ref: branch}
		rs.recordReview(e)
		o.emit(e)
		return o.forget(key)
	}
	rs.landing.Lock()
	res, err := o.repo.Land(ctx, rs.branch, snap.commit, commit, gitstate.LandOptions{
		ConflictBranch: "codemachine/conflict/" + key,
		Overlay:        func(tip, merged string) (string, error) { return o.overlay(ctx, u, c, tip, merged) },
		OverlayPaths:   c.overlayPaths(u),
		Worktree:       wt,
	})
	var conflict *gitstate.ConflictError
	if errors.As(err, &conflict) {
		if kept, err := o.repo.ResolveRev("refs/heads/" + conflict.Branch); err == nil {
			rs.noteRef("refs/heads/"+conflict.Branch, kept)
		}
	}
	rs.landing.Unlock()
	if err := wt.Finish(ctx, commit); err != nil {
		wt.Discard()
	}
	if err != nil {
		if conflict == nil {
			return fmt.Errorf("land %s: %w", key, err)
		}
		e := Event{Kind: StepConflict, Step: u.step.ID, Task: taskID(u.task), Engine: engineName, Model: model,
			Duration: duration, Ref: conflict.Branch, Commit: commit, Message: err.Error()}
		rs.recordFailure(e)
		o.emit(e)
		_ = o.updateFailures(func(m map[string]Failure) {
			m[key] = Failure{Fingerprint: u.fingerprint(), Error: err.Error(), Ref: "refs/heads/" + conflict.Branch,
				Commit: commit, Conflict: true, Run: rs.id, At: o.cfg.Now().UTC()}
		})
		return nil
	}
	e := Event{Kind: StepLanded, Step: u.step.ID, Task: taskID(u.task), Title: msg.Subject, Engine: engineName,
		Model: model, Duration: duration, Tokens: out.result.TokensIn + out.result.TokensOut,
		CostUSD: out.result.CostUSD, CostOK: out.result.CostKnown, Commit: res.Commit, Rebased: res.Rebased,
		Attempt: out.attempts}
	rs.recordLanded(e)
	o.emit(e)
	if err := o.forget(key); err != nil {
		return err
	}
	hookEnv := append(o.unitEnv(rs, u, o.repo.Root()), "CODEMACHINE_WORKTREE="+dir, "CODEMACHINE_COMMIT="+res.Commit)
	if err := o.runHook(ctx, "after", u.step.Hooks.After, o.repo.Root(), hookEnv); err != nil {
		o.emit(Event{Kind: Note, Step: u.step.ID, Task: taskID(u.task), Message: err.Error()})
	}
	return nil
}

// overlay re-applies the unit's state record and ticked box on top of a
// tree rebased onto tip (the branch moved while the unit ran: another task
// landed, or the user committed). state.yaml is rebuilt from the tip's; the
// plan is the tip's with the box ticked, unless the agent edited the plan
// itself, in which case its edit is merged into the tip's plan with the
// boxes left out of the line merge (mergePlans); where that cannot be
// done, the merged plan (which merged cleanly) is ticked.
func (o *Orchestrator) overlay(ctx context.Context, u *unit, c *candidate, tip, merged string) (string, error) {
	tipState, err := o.loadState(tip)
	if err != nil {
		return "", err
	}
	files := map[string]gitstate.Blob{}
	hash, err := o.repo.HashObject(ctx, o.marshalState(applyRecord(tipState, u, c.rec)))
	if err != nil {
		return "", err
	}
	files[workflow.StateFile] = gitstate.Blob{Hash: hash, Mode: "100644"}
	if u.task != nil && c.agentEditedPlan && c.mergesPlan() {
		tipPlan, err := o.repo.ReadFile(tip, u.step.Foreach)
		if err != nil {
			// The tip has no plan: the agent's edit meets a deletion.
			return "", &gitstate.ConflictError{Reason: "the branch moved", Paths: []string{u.step.Foreach}}
		}
		data, err := o.mergePlans(ctx, u.step.Foreach, u.task.ID, c.planBase, tipPlan, c.planCand)
		if errors.Is(err, errPlanConflict) {
			return "", &gitstate.ConflictError{Reason: "the branch moved", Paths: []string{u.step.Foreach}}
		}
		if err != nil {
			return "", err
		}
		h, err := o.repo.HashObject(ctx, data)
		if err != nil {
			return "", err
		}
		files[u.step.Foreach] = gitstate.Blob{Hash: h, Mode: "100644"}
	} else if u.task != nil {
		from := merged
		if !c.agentEditedPlan {
			from = tip
		}
		if planData, err := o.repo.ReadFile(from, u.step.Foreach); err == nil {
			if ticked, ok := o.tick(u.step.Foreach, planData, u.task.ID); ok {
				h, err := o.repo.HashObject(ctx, ticked)
				if err != nil {
					return "", err
				}
				files[u.step.Foreach] = gitstate.Blob{Hash: h, Mode: "100644"}
			} else if !c.agentEditedPlan {
				h, err := o.repo.HashObject(ctx, planData)
				if err != nil {
					return "", err
				}
				files[u.step.Foreach] = gitstate.Blob{Hash: h, Mode: "100644"}
			}
		}
	}
	return o.repo.OverlayTree(ctx, merged, files)
}

// overlayPaths are the paths whose merge conflicts overlay resolves.
func (c *candidate) overlayPaths(u *unit) []string {
	paths := []string{workflow.StateFile}
	if u.task != nil && (!c.agentEditedPlan || c.mergesPlan()) {
		paths = append(paths, u.step.Foreach)
	}
	return paths
}

// mergesPlan reports whether a rebase can merge the agent's plan edit
// itself (mergePlans): the plan existed at the base and still does.
func (c *candidate) mergesPlan() bool {
	return c.planBase != nil && c.planCand != nil
}

// applyRecord returns a copy of state with the unit's record at the next
// sequence number.
func applyRecord(state *gitstate.State, u *unit, rec gitstate.RunRecord) *gitstate.State {
	next := &gitstate.State{Version: gitstate.StateVersion, Seq: state.Seq + 1, Steps: map[string]*gitstate.StepRecord{}}
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
		tr.Fingerprint = u.fingerprint()
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

// writeRepoFile writes a repository file inside dir.
func writeRepoFile(dir, rel string, data []byte) error {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return nil
}

// writeRecording stores what the agent did as a replay recording inside the
// worktree, so that it lands with the step's commit.
func (o *Orchestrator) writeRecording(u *unit, dir, engineName, model string, out attemptOutcome, d time.Duration, changes []gitstate.Change) (string, error) {
	rec := &agents.Recording{
		Step: u.step.ID, Task: taskID(u.task), Engine: engineName, Model: model, Session: out.result.SessionID,
		TokensIn: out.result.TokensIn, TokensOut: out.result.TokensOut, CostUSD: out.result.CostUSD,
		CostKnown: out.result.CostKnown, Duration: d.Round(time.Millisecond), Text: out.result.Text,
	}
	for _, c := range changes {
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

// message is the step commit's message (DESIGN 8).
func (o *Orchestrator) message(rs *runState, u *unit, engineName, model string, out attemptOutcome, start time.Time) gitstate.Message {
	text := strings.TrimSpace(out.result.Text)
	var subject, body string
	switch {
	case u.task != nil:
		subject = u.task.Title
		body = text
	case u.step.Run != "":
		subject = "run " + firstLine(u.step.Run)
	default:
		subject = firstLine(text)
		if subject != "" {
			_, rest, _ := strings.Cut(text, "\n")
			body = strings.TrimSpace(rest)
		} else if u.agent != nil && u.agent.Description != "" {
			subject = u.agent.Description
		} else {
			subject = "update " + strings.Join(u.step.Outputs, ", ")
		}
	}
	return gitstate.Message{
		Subject:  fmt.Sprintf("codemachine(%s): %s", u.key(), truncate(subject, 72)),
		Body:     body,
		Trailers: o.trailersWithModel(rs, u, engineName, model, out, start),
	}
}

// trailers are the provenance trailers of a step commit or failed ref.
func (o *Orchestrator) trailers(rs *runState, u *unit, engineName string, out attemptOutcome, start time.Time) []gitstate.Trailer {
	model := u.settings.model
	if out.result.Model != "" {
		model = out.result.Model
	}
	return o.trailersWithModel(rs, u, engineName, model, out, start)
}

func (o *Orchestrator) trailersWithModel(rs *runState, u *unit, engineName, model string, out attemptOutcome, start time.Time) []gitstate.Trailer {
	t := []gitstate.Trailer{{Key: gitstate.TrailerStep, Value: u.step.ID}}
	add := func(key, value string) {
		if value != "" {
			t = append(t, gitstate.Trailer{Key: key, Value: value})
		}
	}
	if u.task != nil {
		add(gitstate.TrailerTask, u.task.ID)
	}
	add(gitstate.TrailerEngine, engineName)
	add(gitstate.TrailerModel, model)
	add(gitstate.TrailerSession, out.result.SessionID)
	if u.step.Run == "" {
		add(gitstate.TrailerTokensIn, strconv.FormatInt(out.result.TokensIn, 10))
		add(gitstate.TrailerTokensOut, strconv.FormatInt(out.result.TokensOut, 10))
	}
	if out.result.CostKnown {
		add(gitstate.TrailerCostUSD, strconv.FormatFloat(out.result.CostUSD, 'f', 4, 64))
	}
	add(gitstate.TrailerDuration, o.cfg.Now().Sub(start).Round(time.Millisecond).String())
	add(gitstate.TrailerAttempts, strconv.Itoa(max(out.attempts, 1)))
	add(gitstate.TrailerFingerprint, u.fingerprint())
	add(gitstate.TrailerRun, rs.id)
	return t
}

// author is the agent's identity (DESIGN 8): "codemachine <engine>/<model>
// <codemachine@localhost>", the address configurable with
// CODEMACHINE_AUTHOR_EMAIL.
func (o *Orchestrator) author(engineName, model string) gitstate.Signature {
	email := o.getenv("CODEMACHINE_AUTHOR_EMAIL")
	if email == "" {
		email = "codemachine@localhost"
	}
	return gitstate.Signature{Name: "codemachine " + engineLabel(engineName, model), Email: email}
}
