package workflow

import (
	"fmt"
	"io/fs"
	"sort"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"
)

// Reason says in a few words why a step is due ("never ran", "waits for
// plan", "3 tasks to do").
type Reason string

// DueSteps decides which steps are due and why. fps holds each
// step's current fingerprint (a missing entry counts as changed), recs the
// record of each step's last success (a missing entry: it never succeeded).
// Only due steps are returned.
//
// A step is due when it never succeeded, when an upstream step is due or
// has succeeded since it did, or when its fingerprint changed. A step
// downstream of a due step is due ("waits for X") even if it may turn out
// to have nothing to do once X has run: that cannot be known before. A foreach
// step is instead due while its plan has unchecked tasks, when the plan is
// not written yet, or when the plan has errors (so that the error is shown
// where the step is); it waits like any step for its upstream.
func DueSteps(p *Project, fps map[string]string, recs map[string]Record) map[string]Reason {
	g := p.Graph
	if g == nil {
		// Cycles only make Order fall back to file order; the reasons
		// stay meaningful.
		g, _ = p.Workflow.Graph()
	}
	due := map[string]Reason{}
	for _, s := range g.Order() {
		if r := p.stepDue(g, s, fps, recs, due); r != "" {
			due[s.ID] = r
		}
	}
	return due
}

func (p *Project) stepDue(g *Graph, s *Step, fps map[string]string, recs map[string]Record, due map[string]Reason) Reason {
	rec, ran := recs[s.ID]
	if p.Skips[s.ID] {
		return skipDue(g, s, rec, ran, fps, due)
	}
	if !ran && !s.FansOut() {
		return "never ran"
	}
	up := g.Upstream(s.ID)
	// Name the due upstream step that runs last: "waits for plan" says
	// more than "waits for architecture" when plan waits for that too.
	var waitFor string
	for _, u := range up {
		if _, ok := due[u]; ok && (waitFor == "" || g.pos[u] > g.pos[waitFor]) {
			waitFor = u
		}
	}
	if waitFor != "" {
		return Reason("waits for " + waitFor)
	}
	if s.FansOut() {
		return p.foreachDue(s)
	}
	for _, u := range up {
		if r, ok := recs[u]; ok && r.Seq > rec.Seq {
			return Reason(u + " ran since")
		}
	}
	if fp, ok := fps[s.ID]; !ok || fp != rec.Fingerprint {
		if rec.Skipped {
			return "when: is true now"
		}
		return "inputs or definition changed"
	}
	if rec.Gone != "" {
		return Reason("output " + rec.Gone + " is gone")
	}
	if s.Until != nil && !p.UntilMet[s.ID] && rec.Iteration < s.MaxIters() {
		return Reason(fmt.Sprintf("until: not met after iteration %d of %d", rec.Iteration, s.MaxIters()))
	}
	return ""
}

// MaxIters is the step's max_iterations, or DefaultMaxIterations.
func (s *Step) MaxIters() int {
	if s.MaxIterations > 0 {
		return s.MaxIterations
	}
	return DefaultMaxIterations
}

// MissingOutput returns the first of a step's output patterns that matches
// no file in fsys, "" when each matches one. A foreach step's outputs are
// its tasks' and are not looked at.
func MissingOutput(fsys fs.FS, s *Step) string {
	if s.FansOut() {
		return ""
	}
	for _, pattern := range s.Outputs {
		if !hasMeta(pattern) {
			if st, err := fs.Stat(fsys, pattern); err == nil && !st.IsDir() {
				continue
			}
			return pattern
		}
		found := false
		_ = doublestar.GlobWalk(fsys, pattern, func(string, fs.DirEntry) error {
			found = true
			return doublestar.SkipDir
		}, doublestar.WithFilesOnly(), doublestar.WithNoFollow())
		if !found {
			return pattern
		}
	}
	return ""
}

// MatchedOutputs lists, sorted, the files in fsys that the step's glob
// outputs match, at most limit of them, leaving out those skip says to
// (files git ignores) and names that are not UTF-8: what a record keeps
// (in state.yaml, text) so that deleting some of them makes the step due
// (GoneOutput). Literal outputs are not listed (MissingOutput looks at
// them), nor a foreach step's.
func MatchedOutputs(fsys fs.FS, s *Step, limit int, skip func(string) bool) []string {
	if s.FansOut() {
		return nil
	}
	seen := map[string]bool{}
	for _, pattern := range s.Outputs {
		if !hasMeta(pattern) {
			continue
		}
		_ = doublestar.GlobWalk(fsys, pattern, func(p string, _ fs.DirEntry) error {
			// A name that is not UTF-8 cannot be kept in state.yaml,
			// which holds text: recorded under another name, it would
			// be "gone" at once and the step due again at every run.
			if !seen[p] && utf8.ValidString(p) && (skip == nil || !skip(p)) {
				seen[p] = true
			}
			return nil
		}, doublestar.WithFilesOnly(), doublestar.WithNoFollow())
	}
	files := make([]string, 0, len(seen))
	for p := range seen {
		files = append(files, p)
	}
	sort.Strings(files)
	if len(files) > limit {
		files = files[:limit]
	}
	return files
}

// GoneOutput is the first of a step's output patterns that matches no file
// in fsys (MissingOutput), else the first of the files its glob outputs
// matched when it landed (recorded) that is no longer there; "" when
// nothing is gone.
func GoneOutput(fsys fs.FS, s *Step, recorded []string) string {
	if gone := MissingOutput(fsys, s); gone != "" || s.FansOut() {
		return gone
	}
	for _, f := range recorded {
		if st, err := fs.Stat(fsys, f); err != nil || st.IsDir() {
			return f
		}
	}
	return ""
}

func (p *Project) foreachDue(s *Step) Reason {
	if len(p.TaskErrs(s)) > 0 {
		if s.Each != nil {
			return "items have errors"
		}
		return "plan has errors"
	}
	plan := p.TaskPlan(s)
	if plan == nil {
		return Reason(s.TaskSource() + " not written yet")
	}
	todo := 0
	for _, t := range plan.Tasks {
		if !t.Done {
			todo++
		}
	}
	switch todo {
	case 0:
		return ""
	case 1:
		return "1 task to do"
	}
	return Reason(fmt.Sprintf("%d tasks to do", todo))
}

// skipDue is whether a step whose when: is false is due to be skipped:
// once its upstream settled, unless it is recorded as skipped with the
// fingerprint it has now.
func skipDue(g *Graph, s *Step, rec Record, ran bool, fps map[string]string, due map[string]Reason) Reason {
	for _, u := range g.Upstream(s.ID) {
		if _, ok := due[u]; ok {
			return Reason("waits for " + u)
		}
	}
	if ran && rec.Skipped && rec.Fingerprint == fps[s.ID] {
		return ""
	}
	return "when: is false: to skip"
}
