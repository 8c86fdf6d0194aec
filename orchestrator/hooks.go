package orchestrator

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/codemachine/codemachine/agents"
)

// A step's lifecycle hooks (workflow.Hooks) are shell commands run around
// its unit: before runs in the worktree ahead of the engine and fails the
// unit when it fails; after runs in the repository once the step commit
// landed; on_failure runs in the failed unit's worktree before the worktree
// goes back to the pool. Each runs in the unit's sandbox (sandbox.go); the
// after hook's with the repository read-only too: a step writes only its
// worktree, its hooks included. A failing after or on_failure hook is a note, not
// a failure. Hooks run through Config.NewEngine like agents, commands and
// checks, so a test replaces them like any engine.

// hookTimeout bounds one lifecycle hook; hooks are meant to be quick
// commands.
const hookTimeout = 10 * time.Minute

// runHook runs a lifecycle hook's command (when it is not empty) with the
// shell engine in dir. name is "before", "after" or "on_failure" and
// appears in the error, which carries the command's last output line.
func (o *Orchestrator) runHook(ctx context.Context, name, command, dir string, env []string, sb *agents.Sandbox) error {
	if command == "" {
		return nil
	}
	sh, err := o.cfg.NewEngine("shell")
	if err != nil {
		return fmt.Errorf("%s hook: %w", name, err)
	}
	if _, err := sh.Run(ctx, agents.Request{Command: command, Dir: dir, Env: env, Timeout: hookTimeout, Sandbox: sb}); err != nil {
		return fmt.Errorf("%s hook failed: %w", name, err)
	}
	return nil
}

// beforeHook runs the step's before hook in the unit's worktree, with the
// environment its engine gets.
func (j *job) beforeHook(ctx context.Context) error {
	dir := j.wt.Path()
	return j.o.runHook(ctx, "before", j.u.step.Hooks.Before, dir,
		append(slices.Clip(j.env), "CODEMACHINE_WORKTREE="+dir), j.unitPolicy(true))
}

// afterHook runs the step's after hook in the repository once the unit
// landed as commit.
func (j *job) afterHook(ctx context.Context, commit string) error {
	root := j.o.repo.Root()
	return j.o.runHook(ctx, "after", j.u.step.Hooks.After, root,
		append(j.environ(root), "CODEMACHINE_WORKTREE="+j.wt.Path(), "CODEMACHINE_COMMIT="+commit), j.unitPolicy(false))
}

// onFailureHook runs the step's on_failure hook in the failed unit's
// worktree; commit holds its partial work ("" when that could not be
// saved).
func (j *job) onFailureHook(ctx context.Context, commit string) error {
	dir := j.wt.Path()
	return j.o.runHook(ctx, "on_failure", j.u.step.Hooks.OnFailure, dir,
		append(j.environ(dir), "CODEMACHINE_WORKTREE="+dir, "CODEMACHINE_COMMIT="+commit), j.unitPolicy(true))
}
