package orchestrator

import (
	"io/fs"

	"github.com/codemachine/codemachine/agents"
	"github.com/codemachine/codemachine/workflow"
)

// loadProject loads the workflow, agents and plans at fsys, checking the
// engine names they give against the agents registry: the model does not
// know the engines, and the orchestrator is where the two meet.
func loadProject(fsys fs.FS) (*workflow.Project, error) {
	return workflow.LoadProject(fsys, agents.WorkflowEngines())
}
