// Package orchestrator is codemachine's heart: it decides what is due, runs
// steps (before hook, prompt, engine, check, verification) in their
// worktrees and lands each as one commit; it also answers status, log,
// diff, rollback and retry. It reaches git only through gitstate, and
// engines (agents, commands, checks and lifecycle hooks alike) only through
// the agents.Engine that Config.NewEngine makes, so both can be replaced in
// tests.
//
// A run (run.go) is a scheduler loop (schedule.go) that picks what runs
// next (pick.go) and starts each unit as a job (unit.go), whose methods are
// its phases: the lifecycle hooks (hooks.go), the engine and check
// attempts (attempt.go), staging with codemachine's overlays (stage.go),
// verification (verify.go), the step commit's message (message.go), and
// at the unit's turn landing (land.go), or failing (fail.go). Reviews are
// in review.go, and their branches pushed for pull requests (and merges
// of them picked up) in reviewpush.go. What runs is told through events
// (events.go), which clients above the orchestrator (the run table, the
// follow socket, the dashboard, traces) turn into what they show.
package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/gitstate"
	"github.com/codemachine/codemachine/workflow"
)

// Config holds what an Orchestrator needs from its surroundings. Zero values
// mean the real thing (the process environment, the clock, PATH).
type Config struct {
	// Dir is any directory inside the repository.
	Dir string
	// Environ is the user's environment (os.Environ()); agents get an
	// allow-listed part of it.
	Environ []string
	// OnEvent receives progress events; nil drops them. Units run
	// concurrently, so it must be safe for concurrent use, and it is
	// called on the units' own goroutines (StepActivity on the one that
	// reads the engine's stream): it must not block.
	OnEvent func(Event)
	// MCPCommand is the command line that starts codemachine's MCP server
	// (the program and its "mcp" argument), for the agents of steps with
	// mcp: true; the orchestrator adds -C (the repository) and --worktree
	// (the unit's). Empty, such steps fail saying so.
	MCPCommand []string
	// Activity asks for StepActivity events: what each running agent
	// does, from its engine's parsed stream. Off, the engines parse their
	// streams as before and nothing more is done per line.
	Activity bool
	// LookPath finds engine binaries (engine: auto).
	LookPath func(string) (string, error)
	// NewEngine constructs engines by name, for agents, commands, checks
	// and lifecycle hooks alike; tests inject fakes here.
	NewEngine func(name string) (agents.Engine, error)
	// Now is the clock.
	Now func() time.Time
	// RetryBase is the first back-off delay after a transient engine
	// failure; it doubles on each retry (with jitter). Default 2s.
	RetryBase time.Duration
	// ProbeSandbox says what protection the system allows a step
	// (agents.ProbeSandbox); tests inject a system without some.
	ProbeSandbox func() agents.SandboxStatus
}

// Orchestrator runs one repository's workflow.
type Orchestrator struct {
	cfg  Config
	repo *gitstate.Repo
	// localMu serializes read-modify-write of the local files (holds,
	// failures) between units that run concurrently.
	localMu sync.Mutex
	// states and plans are parsed state.yaml and plan contents (see
	// contentCache).
	states contentCache[*gitstate.State]
	// stateCache is the large state.yaml last parsed, by blob id.
	stateCache stateCache
	// workflowCache is the workflow's definition last parsed, with what
	// it was read from (workflowcache.go).
	workflowCache workflowCache
	// settingsCache is the steps' settings status worked out last
	// (settingscache.go).
	settingsCache settingsCache
	plans         contentCache[*workflow.Plan]
	// uses remembers the git sources of uses: fetched (uses.go).
	uses usesMemo
	// reportProbe is what status shows of the sandbox: Config.ProbeSandbox
	// when set, else the probe whose trial launch is remembered in the
	// repository's cache (agents.ProbeSandboxRemembered).
	reportProbe func() agents.SandboxStatus
}

// New opens the repository containing cfg.Dir.
func New(cfg Config) (*Orchestrator, error) {
	if cfg.LookPath == nil {
		cfg.LookPath = exec.LookPath
	}
	if cfg.NewEngine == nil {
		cfg.NewEngine = agents.New
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(Event) {}
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase = 2 * time.Second
	}
	reportProbe := cfg.ProbeSandbox
	if cfg.ProbeSandbox == nil {
		cfg.ProbeSandbox = agents.ProbeSandbox
	}
	repo, err := gitstate.Open(cfg.Dir)
	if err != nil {
		if errors.Is(err, gitstate.ErrNotRepo) {
			return nil, &ConfigError{Err: err}
		}
		return nil, err
	}
	if reportProbe == nil {
		// CommonDir, not LocalDir, which would create the directory.
		file := filepath.Join(repo.CommonDir(), "codemachine", "cache", "sandbox-probe.json")
		probe := cfg.ProbeSandbox
		reportProbe = func() agents.SandboxStatus {
			if !localDirExists(repo) {
				// Not codemachine's repository (yet): nothing is
				// written into it, not even a cache.
				return probe()
			}
			return agents.ProbeSandboxRemembered(file)
		}
	}
	return &Orchestrator{cfg: cfg, repo: repo, reportProbe: reportProbe}, nil
}

// localDirExists reports whether codemachine's own directory in the git
// directory exists: caches are kept only for a repository codemachine
// already works in, never created by a command that only reads.
func localDirExists(repo *gitstate.Repo) bool {
	_, err := os.Stat(filepath.Join(repo.CommonDir(), "codemachine")) // LocalDir would create it
	return err == nil
}

// Repo is the repository this orchestrator works on.
func (o *Orchestrator) Repo() *gitstate.Repo { return o.repo }

// Emit reports e to the configured OnEvent, as the orchestrator reports
// its own: for a client that lands units through the orchestrator and
// reports them itself once they are where they land (LandResult).
func (o *Orchestrator) Emit(e Event) { o.emit(e) }

// emit hands e to Config.OnEvent, stamped with the time unless it has one,
// its texts made printable.
func (o *Orchestrator) emit(e Event) {
	if e.At.IsZero() {
		e.At = o.cfg.Now()
	}
	// Messages carry what commands and agents printed: shown as text,
	// never as the escape sequences that would drive the terminal.
	e.Message, e.Title = printable(e.Message), printable(e.Title)
	o.cfg.OnEvent(e)
}

// Overrides are the command-line and environment settings that take
// precedence over the workflow.
type Overrides struct {
	Engine string // --engine
	Model  string // --model
}

// snapshot is the workflow as committed at one commit, with what is due.
type snapshot struct {
	commit  string
	fsys    fs.FS
	project *workflow.Project
	state   *gitstate.State
	// settings per step id: configured engine/model and fingerprint.
	settings map[string]*stepSettings
	due      map[string]workflow.Reason
	// reviews maps step and step/task keys to their pending review commit:
	// on the local review branch, or (remoteReviews) on the remote's.
	reviews map[string]string
	// remoteReviews are the keys of reviews that wait on reviewRemote's
	// review branches, with no local one.
	remoteReviews map[string]bool
	reviewRemote  string
	// condErrs are the steps whose when: could not be evaluated (a type
	// error at run time): they fail instead of running.
	condErrs map[string]string
}

// stepSettings are a step's resolved engine and model and its fingerprint.
type stepSettings struct {
	// engine is what the precedence rules give ("auto", "claude", "shell"),
	// with a replay override left out: replay stands in for the configured
	// engine, so it must not change fingerprints.
	engine string
	model  string
	effort string
	// replay is set when the run replays recordings instead of calling the
	// configured engine.
	replay      bool
	fingerprint string
}

// load reads the workflow, agents, plans and state at commit and works out
// fingerprints and what is due. A broken workflow is a *ConfigError.
func (o *Orchestrator) load(commit string, ov Overrides) (*snapshot, error) {
	return o.loadSnapshot(commit, ov, false)
}

// loadSnapshot is load; with keep, the steps' settings are taken from and
// kept in the settings cache (settingscache.go), which status uses.
func (o *Orchestrator) loadSnapshot(commit string, ov Overrides, keep bool) (*snapshot, error) {
	fsys, err := o.repo.TreeFS(commit)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", short(commit), err)
	}
	state, err := o.loadStateIn(commit, fsys)
	if err != nil {
		return nil, err
	}
	project, err := o.loadProject(fsys, state.Uses)
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	o.rememberPlans(project)
	snap := &snapshot{commit: commit, fsys: fsys, project: project, state: state,
		settings: map[string]*stepSettings{}}
	fps := map[string]string{}
	results := stepResults(state)
	snap.condErrs = map[string]string{}
	project.Skips = map[string]bool{}
	settings, err := o.stepsSettings(snap, ov, keep)
	if err != nil {
		return nil, err
	}
	for _, step := range project.Workflow.Steps {
		st := settings[step.ID]
		if step.When != nil {
			ok, err := step.When.Eval(workflow.CondInput{FS: fsys, Steps: results, Vars: project.Workflow.Vars})
			if err != nil {
				snap.condErrs[step.ID] = step.CondFailure("when", err)
			}
			project.Skips[step.ID] = err == nil && !ok
			st.fingerprint = workflow.WithCondition(st.fingerprint, ok)
		}
		snap.settings[step.ID] = st
		fps[step.ID] = st.fingerprint
	}
	markFanoutsDone(project, state, fps)
	recs := map[string]workflow.Record{}
	for id, rec := range state.Steps {
		r := workflow.Record{Fingerprint: rec.Fingerprint, Seq: rec.Seq, Skipped: rec.Skipped, Iteration: rec.Iteration}
		if step := project.Graph.Step(id); step != nil {
			r.Gone = workflow.GoneOutput(fsys, step, rec.OutputFiles())
		}
		recs[id] = r
	}
	project.UntilMet = map[string]bool{}
	results = stepResults(state)
	for _, step := range project.Workflow.Steps {
		if step.Until == nil || state.Steps[step.ID] == nil {
			continue
		}
		// A step its when: skipped has not run: its until: (which reads
		// its output, say) has nothing to judge, and the skip is all
		// there is to do until the when: turns true.
		if state.Steps[step.ID].Skipped {
			project.UntilMet[step.ID] = true
			continue
		}
		ok, err := step.Until.Eval(workflow.CondInput{FS: fsys, Steps: results, Vars: project.Workflow.Vars})
		if err != nil {
			snap.condErrs[step.ID] = step.CondFailure("until", err)
		}
		project.UntilMet[step.ID] = ok || err != nil
	}
	snap.due = workflow.DueSteps(project, fps, recs)
	if snap.reviews, err = o.reviewPending(); err != nil {
		return nil, err
	}
	remote, name, err := o.remoteReviews(context.Background(), snap, snap.reviews)
	if err != nil {
		return nil, err
	}
	snap.reviewRemote, snap.remoteReviews = name, map[string]bool{}
	for key, commit := range remote {
		snap.reviews[key] = commit
		snap.remoteReviews[key] = true
	}
	return snap, nil
}

// stateLink refuses a state.yaml committed as a symbolic link (or under
// one): what the commit holds is its target's name, not records.
func (o *Orchestrator) stateLink(commit string) error {
	fsys, err := o.repo.TreeFS(commit)
	if err != nil {
		return err
	}
	if err := workflow.CheckNoLink(fsys, workflow.StateFile); err != nil {
		return &ConfigError{Err: err}
	}
	return nil
}

// loadState reads state.yaml at commit; a missing file is an empty state and
// a corrupted one a *ConfigError with its position. The state returned may
// be shared (see contentCache): callers must not modify it.
func (o *Orchestrator) loadState(commit string) (*gitstate.State, error) {
	return o.loadStateIn(commit, nil)
}

// loadStateIn is loadState; fsys, when not nil, is commit's TreeFS, whose
// trees are then not read again.
func (o *Orchestrator) loadStateIn(commit string, fsys fs.FS) (*gitstate.State, error) {
	// A large state (a fan-out's thousands of task records) is parsed
	// once per content: known by its blob id, it is not even read.
	id := o.stateBlobID(commit, fsys)
	if state := o.cachedState(id); state != nil {
		return state, nil
	}
	data, err := o.repo.ReadFile(commit, workflow.StateFile)
	if errors.Is(err, gitstate.ErrIsDir) {
		return nil, configErrorf("%s is a directory, not a file: codemachine writes its step records there", workflow.StateFile)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", workflow.StateFile, err)
	}
	if state, ok := o.states.get(workflow.StateFile, data); ok {
		o.cacheState(id, data, state)
		return state, nil
	}
	if err := o.stateLink(commit); err != nil {
		return nil, err
	}
	state, err := gitstate.ParseState(workflow.StateFile, data)
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	if state.Steps == nil {
		state.Steps = map[string]*gitstate.StepRecord{}
	}
	o.states.put(workflow.StateFile, data, state)
	o.cacheState(id, data, state)
	return state, nil
}

// stepsSettings works out the settings of every step of snap (settingsFor),
// by step id; with keep they are taken from the settings cache when it
// holds them, and kept there when it does not. Each is the caller's to
// change.
func (o *Orchestrator) stepsSettings(snap *snapshot, ov Overrides, keep bool) (map[string]*stepSettings, error) {
	key := ""
	if keep {
		key = o.settingsKey(snap, ov)
	}
	steps := snap.project.Workflow.Steps
	if cached := o.cachedSettings(key); cached != nil && len(cached) == len(steps) {
		complete := true
		for _, step := range steps {
			complete = complete && cached[step.ID] != nil
		}
		if complete {
			return cached, nil
		}
	}
	out := make(map[string]*stepSettings, len(steps))
	for _, step := range steps {
		st, err := o.settingsFor(snap, step, ov)
		if err != nil {
			return nil, err
		}
		out[step.ID] = st
	}
	o.keepSettings(key, steps, out)
	return out, nil
}

// settingsFor applies the precedence of docs/workflow.md (flag > environment > step
// > agent front matter > defaults) and computes the step's fingerprint.
func (o *Orchestrator) settingsFor(snap *snapshot, step *workflow.Step, ov Overrides) (*stepSettings, error) {
	st := &stepSettings{}
	wf := snap.project.Workflow
	if step.Run != "" {
		st.engine = "shell"
	} else {
		agent := snap.project.AgentFor(step, step.Agent)
		pick := func(vals ...string) string {
			for _, v := range vals {
				if v != "" {
					return v
				}
			}
			return ""
		}
		flagEngine, envEngine := ov.Engine, o.getenv("CODEMACHINE_ENGINE")
		if flagEngine == "replay" || (flagEngine == "" && envEngine == "replay") {
			st.replay = true
		}
		if flagEngine == "replay" {
			flagEngine = ""
		}
		if envEngine == "replay" {
			envEngine = ""
		}
		st.engine = pick(flagEngine, envEngine, step.Engine, agent.Engine, wf.Defaults.Engine, "auto")
		if st.engine == "replay" {
			// The workflow itself asks for replay (a workflow under test).
			st.replay = true
		}
		st.model = pick(ov.Model, o.getenv("CODEMACHINE_MODEL"), step.Model, agent.Model, wf.Defaults.Model)
		st.effort = pick(step.Effort, agent.Effort)
	}
	inputs, err := workflow.ResolveInputs(snap.fsys, step.Inputs)
	if err != nil {
		return nil, fmt.Errorf("step %s: inputs: %w", step.ID, err)
	}
	st.fingerprint = workflow.Fingerprint(step, snap.project.AgentFor(step, step.Agent), st.engine, st.model, inputs)
	return st, nil
}

// checkEngine refuses, as a *ConfigError (exit 2), an engine override
// (ov.Engine) or, without one, a CODEMACHINE_ENGINE that names no engine
// an agent runs on. The CLI checks both with its flags; this is for the
// callers that have none (the MCP server's run, with its engine argument,
// and retry), where it would otherwise fail every agent step it applies
// to, one failure recorded after another.
func (o *Orchestrator) checkEngine(ov Overrides) error {
	engine, from := ov.Engine, ""
	if engine == "" {
		engine, from = o.getenv("CODEMACHINE_ENGINE"), "CODEMACHINE_ENGINE: "
	}
	names := agents.AgentEngines()
	if engine == "" || slices.Contains(names, engine) {
		return nil
	}
	names = slices.DeleteFunc(names, func(name string) bool { return name == agents.AutoEngine })
	return configErrorf("%sunknown engine %q (%s or %s)", from, engine, strings.Join(names, ", "), agents.AutoEngine)
}

// getenv reads the user's environment as given in Config.Environ.
func (o *Orchestrator) getenv(key string) string {
	prefix := key + "="
	for i := len(o.cfg.Environ) - 1; i >= 0; i-- {
		if kv := o.cfg.Environ[i]; len(kv) >= len(prefix) && kv[:len(prefix)] == prefix {
			return kv[len(prefix):]
		}
	}
	return ""
}

// short abbreviates a commit hash for messages.
func short(hash string) string {
	if len(hash) > 7 {
		return hash[:7]
	}
	return hash
}

// markFanoutsDone marks the tasks of the steps that fan out over files or
// list items done when state.yaml records them with the fingerprint they
// have now: the item (a file's content, a list item's JSON) is part of it,
// so editing one file makes exactly its task due.
func markFanoutsDone(project *workflow.Project, state *gitstate.State, fps map[string]string) {
	for id, plan := range project.Fanouts {
		sr := state.Steps[id]
		if sr == nil || plan == nil {
			continue
		}
		for _, t := range plan.Tasks {
			if tr := sr.Tasks[t.ID]; tr != nil {
				t.Done = tr.Fingerprint == workflow.TaskFingerprint(fps[id], t)
			}
		}
	}
}

// stepResults is what when: expressions see of the steps recorded in
// state: landed (done) or skipped.
func stepResults(state *gitstate.State) map[string]workflow.StepResult {
	out := make(map[string]workflow.StepResult, len(state.Steps))
	for id, rec := range state.Steps {
		out[id] = workflow.StepResult{Done: !rec.Skipped, Skipped: rec.Skipped, Output: workflow.ParseOutput(rec.Output)}
	}
	return out
}

// iteration is the run of an until: loop u is at snap: one more than the
// landings recorded with its fingerprint, 1 when its fingerprint changed
// or a step it comes after landed since (a new loop over new work).
func iteration(snap *snapshot, u *unit) int {
	rec := snap.state.Steps[u.step.ID]
	if rec == nil || rec.Fingerprint != u.fingerprint() || rec.Skipped {
		return 1
	}
	for _, up := range snap.project.Graph.Upstream(u.step.ID) {
		if ur := snap.state.Steps[up]; ur != nil && ur.Seq > rec.Seq {
			return 1
		}
	}
	return rec.Iteration + 1
}

// loopExhausted reports whether u is an until: loop that ran its
// max_iterations with its fingerprint and whose condition is still false.
func loopExhausted(snap *snapshot, step *workflow.Step) bool {
	if step.Until == nil || snap.project.UntilMet[step.ID] {
		return false
	}
	rec := snap.state.Steps[step.ID]
	return rec != nil && rec.Fingerprint == snap.settings[step.ID].fingerprint && rec.Iteration >= step.MaxIters()
}
