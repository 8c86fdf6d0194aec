package gitstate

import (
	"strings"
	"time"
)

// StateVersion is the version of state.yaml this code writes.
const StateVersion = 1

// State is .codemachine/state.yaml: the committed record of what is done.
// It changes only in step commits, so resetting the branch rolls it back.
type State struct {
	Version int
	// Seq is incremented by every landing; records carry the value of the
	// landing that wrote them, so "ran more recently" is a comparison of
	// sequence numbers, immune to clock skew.
	Seq int64
	// Uses pins the git sources of the workflow's uses: entries: URL@REF
	// -> the commit it is read at, until codemachine run --update-uses.
	Uses  map[string]string
	Steps map[string]*StepRecord
}

// RunRecord is what is recorded about one successful step or task run.
type RunRecord struct {
	Fingerprint string
	Seq         int64
	FinishedAt  time.Time
	Engine      string
	Model       string
	Attempts    int
	TokensIn    int64
	TokensOut   int64
	CostUSD     float64
	CostKnown   bool
	Duration    time.Duration
	// Skipped: the step's when: condition was false, so nothing ran; the
	// fingerprint is the one it was skipped with.
	Skipped bool
	// Output is the step's structured output (output_schema:) as JSON;
	// "" when it has none.
	Output string
	// Iteration counts the landings of an until: loop with this
	// fingerprint (1 for the first); 0 for a step without until:.
	Iteration int
	// Files lists, one a line and sorted, the files the step's glob
	// outputs matched when it landed (at most MaxOutputFiles): deleting
	// one makes the step due. A string, so that a record stays comparable;
	// state.yaml holds it as a list (OutputFiles reads it).
	Files string
}

// MaxOutputFiles caps the files a record lists for its glob outputs.
const MaxOutputFiles = 1000

// OutputFiles is Files as a list.
func (r *RunRecord) OutputFiles() []string {
	if r.Files == "" {
		return nil
	}
	return strings.Split(r.Files, "\n")
}

// StepRecord is a step's entry in state.yaml. For foreach steps Tasks holds
// one record per landed task and the embedded record describes the latest.
type StepRecord struct {
	RunRecord
	Tasks map[string]*RunRecord
}
