package orchestrator

import (
	"strings"

	"github.com/codemachine/codemachine/workflow"
)

// checkForced refuses `run --force` for a foreach step or task: a task
// runs when its plan box is unchecked or its file or item changed, never
// by force, and a run that ignored the flag would say "nothing is due" to
// a user who asked for a run. The error says what runs it again.
func (o *Orchestrator) checkForced(commit string, opts RunOptions) error {
	snap, err := o.load(commit, opts.Overrides)
	if err != nil {
		return err
	}
	for _, name := range opts.Steps {
		stepID, _, _ := strings.Cut(name, "/")
		step := snap.project.Graph.Step(stepID)
		if step != nil && step.FansOut() {
			return configErrorf("run --force runs plain steps, not %s: %s", name, rerunHint(step, name))
		}
	}
	return nil
}

// rerunHint says how a done foreach step's task (name is STEP/TASK) or
// tasks (name is STEP) run again.
func rerunHint(step *workflow.Step, name string) string {
	_, task, _ := strings.Cut(name, "/")
	switch {
	case step.Each == nil && task != "":
		return "uncheck " + task + " in " + step.Foreach + " and commit to run it again"
	case step.Each == nil:
		return "uncheck its tasks in " + step.Foreach + " and commit to run them again"
	case step.Each.Glob != "" && task != "":
		return "a task of a glob fan-out runs again when its file changes, or when the step's definition or inputs change"
	case step.Each.Glob != "":
		return "its tasks run again when their files change, or when the step's definition or inputs change"
	case task != "":
		return "a task of an items fan-out runs again when its item in " + step.Each.Items + " changes, or when the step's definition or inputs change"
	default:
		return "its tasks run again when their items in " + step.Each.Items + " change, or when the step's definition or inputs change"
	}
}

// nothingToRetry is the error of a retry of arg (STEP or STEP/TASK) that
// is neither failed nor held, with how to run it anyway.
func (o *Orchestrator) nothingToRetry(commit, arg string, ov Overrides) error {
	how := "codemachine run --force " + arg + " runs it anyway"
	stepID, _, _ := strings.Cut(arg, "/")
	if snap, err := o.load(commit, ov); err == nil {
		if step := snap.project.Graph.Step(stepID); step != nil && step.FansOut() {
			how = rerunHint(step, arg)
		}
	}
	return configErrorf("%s is neither failed nor held: nothing to retry (%s)", arg, how)
}
