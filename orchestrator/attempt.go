package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// attemptOutcome is the outcome of running the engine (and check) until the
// step succeeds or gives up.
type attemptOutcome struct {
	result   agents.Result
	attempts int
	failure  string // "" on success
	canceled bool
	// interrupted: the run was stopped while the unit ran (failCanceled).
	interrupted bool
	session     string // the engine session the next attempt may resume ("" = start over)
	missing     error  // the engine's CLI is not installed: a setup problem, not the step's failure
	// unchanged is set when the agent's last attempt left every output
	// of the step as it was (every file, for a step without outputs):
	// what it says, for the run's output and the commit message.
	unchanged string
	// engineFailed: the engine run itself failed (not the check).
	engineFailed bool
	// noAgent: the agent never ran, its first request could not be made
	// (its prompt failed to render, say).
	noAgent bool
	// output is the step's structured output (output_schema:) as JSON,
	// once its final answer matched.
	output []byte
}

// checkTailLines is how much of a failed check's output its failure
// message keeps.
const checkTailLines = 20

// attempt runs the engine, retrying transient failures with back-off, and
// the check, re-running the agent with the check's output while attempts
// remain.
func (j *job) attempt(ctx context.Context) attemptOutcome {
	u := j.u
	eng, err := j.o.cfg.NewEngine(j.engineName)
	if err != nil {
		return attemptOutcome{failure: err.Error()}
	}
	attempts := max(u.step.Attempts, 1)
	if j.rs.interactive(u) {
		out, unchanged := j.attemptInteractive(ctx, eng)
		j.unchanged = unchanged
		return out
	}
	var out attemptOutcome
	if ctx.Err() != nil {
		// Interrupted before the engine started: nothing ran.
		return attemptOutcome{canceled: true, failure: "interrupted"}
	}
	checkOutput, notice := "", ""
	for attempt := 1; attempt <= attempts; attempt++ {
		out.attempts = attempt
		// A failed check of an earlier attempt must not fail this one.
		out.failure, out.unchanged = "", ""
		req, err := j.request(attempt, checkOutput, notice)
		if err != nil {
			out.failure, out.noAgent = err.Error(), attempt == 1
			return out
		}
		res, err := j.runEngine(ctx, eng, req)
		out.result = addUsage(out.result, res)
		j.rs.addUsage(res.TokensIn, res.TokensOut, res.CostUSD)
		if err != nil {
			return engineFailed(ctx, out, err)
		}
		checkOutput, notice = "", ""
		if u.step.Check != "" {
			checkRes, err := j.runCheck(ctx)
			if err != nil {
				if ctx.Err() != nil {
					out.canceled = true
					out.failure = "interrupted"
					return out
				}
				checkOutput = tail(checkRes.Output, 60)
				out.failure = checkFailure(attempt, err, checkRes.Output)
				if attempt < attempts {
					j.o.emit(Event{Kind: StepRetrying, Step: u.step.ID, Task: taskID(u.task), Attempt: attempt + 1,
						Message: "check failed: " + cmp.Or(lastLine(checkRes.Output), err.Error())})
				}
				continue
			}
		}
		if u.step.OutputSchema != nil {
			if notice = j.checkOutputSchema(&out, res, attempt, attempts); notice != "" {
				continue
			}
		}
		if u.step.Run != "" || (u.step.OutputSchema != nil && len(u.step.Outputs) == 0) {
			// A command's result is its exit status; a step without
			// outputs that answers with structured data has its answer
			// as its product, whether or not it changed a file.
			return out
		}
		// A recording replays the same every time: another attempt
		// would change nothing but the tokens counted.
		if out.unchanged = j.unchangedOutputs(ctx); out.unchanged == "" || attempt == attempts || j.engineName == "replay" {
			return out
		}
		notice = unchangedNotice(attempt, out.unchanged)
		j.o.emit(Event{Kind: StepRetrying, Step: u.step.ID, Task: taskID(u.task), Attempt: attempt + 1,
			Message: "the agent " + out.unchanged})
	}
	return out
}

// unchangedOutputs says how the agent's work left the step's outputs as
// they were at its base ("changed none of its outputs (a, b)"), or "" when
// it changed one (or the comparison could not be made: the step's
// verification then has the last word). A step without outputs is
// unchanged when the agent changed no file at all. Changes codemachine
// makes itself (state.yaml, the plan's box, the feedback it removes) do
// not count; the worktree holds none of them yet.
func (j *job) unchangedOutputs(ctx context.Context) string {
	tree, err := j.wt.Stage(ctx)
	if err != nil {
		return ""
	}
	changes, err := j.o.repo.DiffTrees(ctx, j.snap.commit, tree)
	if err != nil {
		return ""
	}
	outputs := j.u.step.Outputs
	for _, c := range changes {
		if c.Path == workflow.StateFile {
			continue
		}
		if len(outputs) == 0 {
			return ""
		}
		for _, pattern := range outputs {
			if ok, _ := doublestar.Match(pattern, c.Path); ok {
				return ""
			}
		}
	}
	if len(outputs) == 0 {
		return "changed no file"
	}
	return "changed none of its outputs (" + strings.Join(outputs, ", ") + ")"
}

// unchangedNotice is what the next attempt is told when the last one left
// the outputs as they were.
func unchangedNotice(attempt int, unchanged string) string {
	what := "any of this step's outputs"
	if unchanged == "changed no file" {
		what = "any file"
	}
	return fmt.Sprintf("Note from codemachine: attempt %d ended without changing %s; everything is exactly as it "+
		"was before the step ran. Do the task now and make the change it asks for (if review feedback is above, "+
		"address it). If you are sure that nothing has to change, say why in your final message.", attempt, what)
}

// recordings is where a replayed run of the unit (its agent's or its
// reviewer agent's) reads its recording: the tree of the commit the unit
// started from, nil for another engine. Its worktree holds what the step
// wrote, the ignored files an earlier step in the slot left included: a
// review recording planted there would approve the step's own change.
func (j *job) recordings(engine string) fs.FS {
	if engine != "replay" {
		return nil
	}
	return j.snap.fsys
}

// timeout bounds one engine run, and one check, of the unit.
func (j *job) timeout() time.Duration {
	if t := j.u.step.Timeout; t != 0 {
		return t
	}
	return j.snap.project.Workflow.Defaults.Timeout
}

// request is what the engine is asked in the given attempt: the step's
// command, or the rendered prompt (with the failed check's output after
// the first attempt), resuming an interrupted session in the first.
func (j *job) request(attempt int, checkOutput, notice string) (agents.Request, error) {
	u, dir := j.u, j.wt.Path()
	req := agents.Request{
		Run: j.rs.id, Step: u.step.ID, Task: taskID(u.task),
		Model: u.settings.model, Effort: u.settings.effort, Fingerprint: u.fingerprint(),
		Dir: dir, Env: j.env, Timeout: j.timeout(), Log: j.log, Home: u.home,
		OnStart: j.agentStarted, Sandbox: j.unitPolicy(true), Recordings: j.recordings(j.engineName),
	}
	if j.o.cfg.Activity {
		req.OnEvent = j.activity
	}
	if u.step.Run != "" {
		req.Command = u.step.Run
		return req, nil
	}
	prompt, err := j.o.renderPrompt(j.snap, u, dir, attempt, checkOutput, notice)
	if err != nil {
		return req, err
	}
	if u.step.MCP {
		if req.MCP, err = j.mcpServer(); err != nil {
			return req, err
		}
	}
	req.Prompt = prompt
	if attempt == 1 {
		j.prompt = prompt
	}
	if attempt == 1 && j.resume != "" {
		req.Resume, req.Continue = j.resume, continuePrompt(u, dir)
	}
	return req, nil
}

// MCPServerName is the name an agent's CLI knows codemachine's MCP server
// by (Claude Code's tools are mcp__codemachine__<tool>).
const MCPServerName = "codemachine"

// mcpServer is codemachine's MCP server for the unit's agent (mcp: true):
// it edits the plan in the unit's worktree, where the step commit picks
// the edit up, and reads the repository's status.
func (j *job) mcpServer() (*agents.MCPServer, error) {
	cmd := j.o.cfg.MCPCommand
	if len(cmd) == 0 {
		return nil, errors.New("mcp: true needs codemachine's MCP server, and this codemachine was started without one")
	}
	args := append(append([]string{}, cmd[1:]...), "-C", j.o.repo.Root(), "--worktree", j.wt.Path())
	return &agents.MCPServer{Name: MCPServerName, Command: cmd[0], Args: args}, nil
}

// engineFailed is the outcome of an engine run that failed for good: it
// was stopped, its CLI is missing, or it failed (with the session a later
// attempt may resume).
func engineFailed(ctx context.Context, out attemptOutcome, err error) attemptOutcome {
	out.session = resumableSession(err, out.result)
	out.engineFailed = true
	var re *agents.RunError
	if errors.As(err, &re) && re.Canceled || ctx.Err() != nil {
		out.canceled = true
		out.failure = "interrupted"
		return out
	}
	out.failure = err.Error()
	if errors.Is(err, agents.ErrNoAgentCLI) {
		out.missing = err
	}
	return out
}

// checkFailure is the failure of a check: the first line is the verdict;
// the lines after it are the end of the check's output, which says why
// (shown by run, kept in the failed commit's message).
func checkFailure(attempt int, err error, output string) string {
	msg := fmt.Sprintf("check failed after %d attempt(s): %s", attempt, err.Error())
	if t := strings.TrimSpace(tail(output, checkTailLines)); t != "" {
		msg += "\n" + t
	}
	return msg
}

// runEngine runs the engine once, retrying transient failures up to the
// workflow's retries with exponential back-off and jitter, honouring a
// reported retry-after.
func (j *job) runEngine(ctx context.Context, eng agents.Engine, req agents.Request) (agents.Result, error) {
	u, retries := j.u, j.snap.project.Workflow.Defaults.Retries
	var total agents.Result
	for try := 0; ; try++ {
		started := j.o.cfg.Now()
		res, err := eng.Run(ctx, req)
		j.attemptEnded(req, started, res, err)
		total = addUsage(total, res)
		if err == nil {
			return total, nil
		}
		var re *agents.RunError
		if !errors.As(err, &re) || re.Class != agents.Transient || try >= retries || ctx.Err() != nil {
			return total, err
		}
		delay := j.o.cfg.RetryBase << try
		delay += time.Duration(rand.Int64N(int64(delay)/2 + 1))
		if re.RetryAfter > delay {
			delay = re.RetryAfter
		}
		j.o.emit(Event{Kind: StepRetrying, Step: u.step.ID, Task: taskID(u.task), Attempt: try + 2,
			Message: fmt.Sprintf("%s; retrying in %s", re.Msg, FormatDuration(delay))})
		select {
		case <-ctx.Done():
			return total, err
		case <-time.After(delay):
		}
		if re.Result.SessionID != "" {
			req.Resume, req.Continue = re.Result.SessionID, continuePrompt(u, req.Dir)
		}
	}
}

// attemptEnded reports one engine run of the unit (StepAttempt): traces
// make a span of each.
func (j *job) attemptEnded(req agents.Request, started time.Time, res agents.Result, err error) {
	j.attempts++
	e := Event{Kind: StepAttempt, Step: j.u.step.ID, Task: taskID(j.u.task), Engine: j.engineName,
		Model: res.Model, Attempt: j.attempts, Duration: j.o.cfg.Now().Sub(started),
		Tokens: res.TokensIn + res.TokensOut, TokensIn: res.TokensIn, TokensOut: res.TokensOut,
		CostUSD: res.CostUSD, CostOK: res.CostKnown, RequestModel: req.Model}
	if e.Model == "" {
		e.Model = req.Model
	}
	if err != nil {
		e.Message = err.Error()
	}
	j.o.emit(e)
}

// activityKinds are the engine events that say what an agent does now;
// the others (session ids, usage) are bookkeeping.
var activityKinds = map[string]bool{"tool": true, "text": true, "error": true, "stdout": true, "stderr": true}

// activityWidth bounds an activity's text: one line of a terminal.
const activityWidth = 200

// activity turns an engine event into a StepActivity event. It runs on
// the goroutine that reads the engine's stream, once per event, so it
// does no more than trim the text.
func (j *job) activity(ev agents.Event) {
	if !activityKinds[ev.Kind] {
		return
	}
	// Tools name files by their absolute path in the worktree: the
	// path in the repository says the same in less.
	text := strings.ReplaceAll(firstLine(ev.Text), j.wt.Path()+string(os.PathSeparator), "")
	if text == "" {
		return
	}
	j.o.emit(Event{Kind: StepActivity, At: ev.Time, Step: j.u.step.ID, Task: taskID(j.u.task),
		Activity: ev.Kind, Message: truncate(text, activityWidth)})
}

// addUsage accumulates usage (and tool errors, up to
// agents.MaxToolErrors) over attempts; the latest text, session and model
// win.
func addUsage(acc, r agents.Result) agents.Result {
	acc.TokensIn += r.TokensIn
	acc.TokensOut += r.TokensOut
	acc.CostUSD += r.CostUSD
	acc.CostKnown = acc.CostKnown || r.CostKnown
	acc.Duration += r.Duration
	if r.Text != "" {
		acc.Text = r.Text
	}
	if r.SessionID != "" {
		acc.SessionID = r.SessionID
	}
	if r.Model != "" {
		acc.Model = r.Model
	}
	if n := agents.MaxToolErrors - len(acc.ToolErrors); n > 0 {
		acc.ToolErrors = append(acc.ToolErrors, r.ToolErrors[:min(n, len(r.ToolErrors))]...)
	}
	acc.Warnings = append(acc.Warnings, r.Warnings...)
	acc.Output = r.Output
	acc.ExitCode = r.ExitCode
	return acc
}

// runCheck runs the step's check command in the worktree.
func (j *job) runCheck(ctx context.Context) (agents.Result, error) {
	sh, err := j.o.cfg.NewEngine("shell")
	if err != nil {
		return agents.Result{}, err
	}
	u := j.u
	return sh.Run(ctx, agents.Request{Step: u.step.ID, Task: taskID(u.task), Command: u.step.Check,
		Dir: j.wt.Path(), Env: j.env, Timeout: j.timeout(), Log: j.log, OnStart: j.agentStarted,
		Sandbox: j.unitPolicy(true)})
}

// renderPrompt renders the agent's template against the worktree, then the
// step's extra prompt and the fixed footer.
func (o *Orchestrator) renderPrompt(snap *snapshot, u *unit, repoDir string, attempt int, checkOutput, notice string) (string, error) {
	fsys, done, err := promptFS(repoDir)
	if err != nil {
		return "", err
	}
	defer done()
	feedback, _ := readFileFS(fsys, feedbackPath(u.key()))
	data := workflow.PromptData{
		Step:        workflow.StepInfo{ID: u.step.ID, Inputs: u.step.Inputs, Outputs: u.step.Outputs},
		Feedback:    feedback,
		CheckOutput: checkOutput,
		Attempt:     attempt,
		Repo:        repoDir,
		Steps:       stepData(snap.state),
	}
	if u.step.Until != nil {
		data.Iteration = iteration(snap, u)
	}
	if u.task != nil {
		data.Task = &workflow.TaskInfo{ID: u.task.ID, Title: u.task.Title, Body: u.task.Body}
		data.Item = u.task.Item.TemplateValue()
	}
	body, err := u.agent.Render(fsys, data)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(body, "\n"))
	b.WriteString("\n")
	if u.step.Prompt != "" {
		b.WriteString("\n")
		b.WriteString(strings.TrimRight(u.step.Prompt, "\n"))
		b.WriteString("\n")
	}
	if notice != "" {
		b.WriteString("\n")
		b.WriteString(notice)
		b.WriteString("\n")
	}
	b.WriteString("\n")
	b.WriteString(workflow.Footer(repoDir, u.step.Outputs))
	return b.String(), nil
}

// readFileFS reads a file as a string; a missing file reads as "".
// promptFS is the files of dir a prompt reads (file, fileOr and glob in
// agent templates, the review feedback): an os.Root's, which follows a
// symbolic link only while it stays inside dir. os.DirFS follows any: a
// link to /etc/passwd or ~/.ssh/id_ed25519, committed by a hostile
// repository or an earlier step, would have put that file in a prompt
// sent to the model. done closes the root.
func promptFS(dir string) (fsys fs.FS, done func(), err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read the worktree for the prompt: %w", err)
	}
	return root.FS(), func() { root.Close() }, nil
}

func readFileFS(fsys fs.FS, name string) (string, error) {
	data, err := fs.ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return string(data), err
}

// checkOutputSchema validates the final answer (an agent's last message, a
// run step's output) against the step's output_schema. A mismatch fails
// the attempt; the notice it returns tells the next attempt why ("" when
// the answer matched and out.output holds it).
func (j *job) checkOutputSchema(out *attemptOutcome, res agents.Result, attempt, attempts int) string {
	u := j.u
	answer := res.Text
	if u.step.Run != "" {
		answer = res.Output
	}
	data, err := u.step.OutputSchema.Check(answer)
	if err == nil {
		out.output = data
		return ""
	}
	out.failure = fmt.Sprintf("attempt %d: the final answer does not match output_schema:\n%s", attempt, err)
	if attempt < attempts {
		j.o.emit(Event{Kind: StepRetrying, Step: u.step.ID, Task: taskID(u.task), Attempt: attempt + 1,
			Message: "output does not match output_schema: " + firstLine(err.Error())})
	}
	return fmt.Sprintf("Note from codemachine: your final answer did not match the JSON Schema this step requires:\n%s\n\n"+
		"End your work with a final message that is exactly one JSON value matching this schema:\n%s", err, u.step.OutputSchema.JSON)
}

// stepData is what templates see of the steps recorded in state as
// .Steps.ID: their structured outputs.
func stepData(state *gitstate.State) map[string]workflow.StepData {
	out := make(map[string]workflow.StepData, len(state.Steps))
	for id, rec := range state.Steps {
		out[id] = workflow.StepData{Output: workflow.ParseOutput(rec.Output)}
	}
	return out
}
