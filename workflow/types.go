// Package workflow is codemachine's pure model: it parses and validates
// workflow.yaml, agent files and plan.md, builds the step graph, computes
// fingerprints and decides which steps are due. It performs no I/O beyond
// reading the fs.FS it is given and imports nothing else of codemachine
// but the leaf internal/yamlnode. The engine names it accepts are its
// callers' to give (the agents registry's).
package workflow

import (
	"fmt"
	"text/template"
	"time"
)

// Well-known paths, relative to the repository root.
const (
	Dir          = ".codemachine"
	WorkflowFile = ".codemachine/workflow.yaml"
	AgentsDir    = ".codemachine/agents"
	StateFile    = ".codemachine/state.yaml"
	FeedbackDir  = ".codemachine/feedback"
	RecordingDir = ".codemachine/recordings"
)

// Pos is a position in a file; Line and Col are 1-based, 0 when unknown.
type Pos struct {
	File string
	Line int
	Col  int
}

// String formats the position as file:line:col, leaving out unknown parts.
func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	default:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
}

// Workflow is a parsed and validated .codemachine/workflow.yaml.
type Workflow struct {
	Version  int
	Name     string
	Defaults Defaults
	// Trigger is the watch-mode trigger: "commit" (default) or "save".
	Trigger string
	Budget  Budget
	// AllowSecrets lists globs of paths that a step commit may add even though
	// they look like secrets (.env, private keys).
	AllowSecrets []string
	// Sandbox is the default sandbox setting of every step (see
	// SandboxFor).
	Sandbox Sandbox
	// MaxFileSize is the default max_file_size of every step (see
	// MaxFileSizeFor).
	MaxFileSize FileSize
	// Vars are the values when: expressions read as vars.NAME.
	Vars map[string]any
	// Steps are in file order.
	Steps []*Step
	// File is the path the workflow was read from, for messages.
	File string
}

// Defaults apply to every step that does not set its own value.
type Defaults struct {
	Engine  string        // "auto" when unset
	Model   string        // "" = the engine's default
	Timeout time.Duration // 30m when unset
	Retries int           // transient engine failures retried; 2 when unset
}

// Budget is the optional run-wide circuit breaker; zero values mean unlimited.
type Budget struct {
	USD    float64
	Tokens int64
}

// Step is one entry of the workflow's steps list.
type Step struct {
	ID     string
	Agent  string // exactly one of Agent and Run is set
	Run    string
	Prompt string // extra text appended to the agent's prompt

	Engine  string
	Model   string
	Effort  string
	Timeout time.Duration // 0 = the workflow default
	Env     map[string]string

	Inputs  []string // globs relative to the repository root
	Outputs []string
	Needs   []string

	Foreach string // a plan file: one run per unchecked task
	// Each is a foreach: over files (a glob) or list items (a JSON or
	// YAML file); nil for a plan or no foreach.
	Each     *Fanout
	Parallel int // foreach: tasks at once (0 = 1)
	// When is the step's condition: when it is false the step is
	// skipped (recorded as such); nil = always.
	When *Condition
	// OutputSchema is the JSON Schema the step's final answer must match
	// (its output); nil = no structured output.
	OutputSchema *OutputSchema
	// Until makes the step a loop: after each landing it runs again
	// (another commit) while the condition is false, at most
	// MaxIterations times in all.
	Until         *Condition
	MaxIterations int
	Check         string // verification command run after the agent
	Attempts      int    // agent runs while the check fails (0 = 1)
	// Review: the step commit waits on its review branch (review: true,
	// or review: AGENT).
	Review bool
	// Reviewer is the agent that reviews the step's change (review:
	// AGENT); "" when a person reviews it, or nobody.
	Reviewer string
	// Interactive: the agent's own UI runs in the user's terminal
	// (interactive: true); without one the step waits as needs-you.
	Interactive bool
	// InteractiveAuto: interactive when the run has a terminal,
	// autonomous when it has none (interactive: auto).
	InteractiveAuto bool
	// MCP gives the agent codemachine's MCP server (the plan's tasks, the
	// workflow's status) in its engine's MCP configuration.
	MCP     bool
	Hooks   Hooks
	Sandbox Sandbox // the step's own sandbox: setting (see Workflow.SandboxFor)
	// MaxFileSize is the step's own max_file_size: (see
	// Workflow.MaxFileSizeFor).
	MaxFileSize FileSize

	// Pos is the position of the step's mapping in workflow.yaml (in the
	// imported workflow's file for an imported step).
	Pos Pos
	// Source is where an imported step (a uses: entry) was read from;
	// nil for the workflow's own steps.
	Source *Source
	// importedAt is the uses: value that imported the step.
	importedAt Pos
	// agentKeys are the keys in Project.Agents of the agents the step
	// names (its agent, its reviewer), set by LoadProject.
	agentKeys map[string]string

	// at holds the positions of individual values, for messages that
	// point at the value they are about (a needs item, the agent name).
	at stepPositions
}

// stepPositions are the positions of a step's values in workflow.yaml; zero
// for a Step built in code, whose messages then point at Step.Pos.
type stepPositions struct {
	id, agent, foreach, reviewer Pos
	inputs, needs                []Pos
	when, until                  whenAt
	maxIterations                Pos
}

// Hooks are shell commands run around a step.
type Hooks struct {
	Before    string
	After     string
	OnFailure string
}

// Agent is a parsed .codemachine/agents/<name>.md: YAML front matter and a
// text/template body.
type Agent struct {
	Name        string
	Description string
	Engine      string
	Model       string
	Effort      string
	Tools       []string

	File     string // path relative to the repository root
	Raw      []byte // the whole file, for fingerprints
	Body     string // the template text after the front matter
	BodyLine int    // 1-based line in File of Body's first line

	// tmpl is Body parsed by ParseAgent with placeholder functions;
	// Render clones it and binds the functions to its file system.
	tmpl *template.Template
}

// Plan is a parsed plan.md. Data is the file's exact bytes; tasks keep byte
// offsets into it so that ticking a box changes exactly one byte.
type Plan struct {
	File  string
	Data  []byte
	Tasks []*Task
	// Warnings are lines that look like tasks but are not ("- [ ]T3",
	// "-[ ] T4", "- [?] T2"): a typo that would drop a task without a
	// word. They do not make the plan invalid.
	Warnings Errors

	byID map[string]*Task // first task of each id, built by ParsePlan
}

// Task is one top-level checklist item of a plan.
type Task struct {
	ID    string
	Title string   // without the "ID:" prefix and the "(after: ...)" suffix
	Body  string   // the indented lines under the item, dedented
	After []string // dependencies declared with (after: A, B)
	Done  bool
	Line  int // 1-based line of the item
	// Item is what a fan-out task (foreach: glob or items) runs over; nil
	// for a plan's task.
	Item *Item
	Box  int // byte offset in Plan.Data of the character between the brackets

	// start and end are the byte offsets in Plan.Data of the item's first
	// line and just after its last non-blank line (its body's, if any):
	// what an edit replaces (planedit.go).
	start, end int
}

// StepInfo is what a prompt template sees as .Step.
type StepInfo struct {
	ID      string
	Inputs  []string
	Outputs []string
}

// TaskInfo is what a prompt template sees as .Task.
type TaskInfo struct {
	ID    string
	Title string
	Body  string
}

// StepData is what a prompt template sees of another step as .Steps.ID.
type StepData struct {
	Output any
}

// PromptData is the data an agent's prompt template is executed with.
type PromptData struct {
	Step StepInfo
	Task *TaskInfo
	// Steps are the earlier steps' results: .Steps.ID.Output is a step's
	// structured output (output_schema:), nil when it has none.
	Steps map[string]StepData
	// Item is a fan-out task's item (see Item.TemplateValue); nil else.
	Item        any
	Feedback    string
	CheckOutput string
	Attempt     int
	// Iteration is the run of an until: loop this is (1 for the first).
	Iteration int
	Repo      string
}

// InputFile is one file matched by a step's input globs; Hash is its git
// blob id in hex.
type InputFile struct {
	Path string
	Hash string
}

// BlobHasher is implemented by file systems that know a file's git blob id
// without reading it (a commit's tree). Other file systems are hashed by
// reading the file.
type BlobHasher interface {
	BlobHash(name string) (string, error)
}

// Record is what the staleness rules need to know about a step's last
// success: its fingerprint and the sequence number of its landing.
type Record struct {
	Fingerprint string
	Seq         int64
	// Gone is an output pattern of the step that matches no file at the
	// commit looked at (see MissingOutput): another step or the user
	// deleted what it made, so it is due. "" when all are there.
	Gone string
	// Skipped: the record is of a skip (when: was false).
	Skipped bool
	// Iteration counts the landings of an until: loop with this
	// fingerprint (1 for the first).
	Iteration int
}
