package workflow

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrNoWorkflow is returned by LoadProject when the repository has no
// workflow file; the CLI tells the user to run `codemachine init`.
var ErrNoWorkflow = errors.New("no " + WorkflowFile + " (run `codemachine init`)")

// ErrUnknownTask is returned (wrapped) by Plan.SetDone for an id the plan
// does not have.
var ErrUnknownTask = errors.New("unknown task")

// Error is one problem found in a file, at a position.
type Error struct {
	Pos Pos
	Msg string
}

// Error formats the problem as "file:line:col: msg", the form editors and
// terminals turn into links.
func (e *Error) Error() string {
	if e.Pos == (Pos{}) {
		return e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// Errors collects every problem a loader found, so that a user fixes them all
// in one go instead of one per run.
type Errors []*Error

// Error lists the problems one per line, sorted by file, line and column.
func (es Errors) Error() string {
	sorted := slices.Clone(es)
	sorted.Sort()
	lines := make([]string, len(sorted))
	for i, e := range sorted {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual problems to errors.As and errors.Is.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Add records a problem at pos.
func (es *Errors) Add(pos Pos, format string, args ...any) {
	*es = append(*es, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// Sort orders the problems by file, line and column; problems at the same
// position keep the order in which they were found.
func (es Errors) Sort() {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
		)
	})
}

// Err returns the sorted problems as an error, or nil when there are none,
// so that a loader can end with `return x, errs.Err()` without handing back
// a non-nil interface that holds an empty list.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	es.Sort()
	return es.unique()
}

// unique drops the problems reported twice at the same place with the
// same message (a workflow imported twice has its mistakes found twice).
func (es Errors) unique() Errors {
	seen := make(map[Error]bool, len(es))
	out := es[:0:0]
	for _, e := range es {
		if !seen[*e] {
			seen[*e] = true
			out = append(out, e)
		}
	}
	return out
}

// suggest returns a " (did you mean %q?)" hint for the candidate closest to
// word, or "" when none is close enough to be a plausible typo.
func suggest(word string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(word), strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist < 0 {
		return ""
	}
	// Allow roughly one typo per three characters: enough for "ouputs" and
	// "dependson", not so loose that "run" suggests "id". Names of one or
	// two characters (task ids like T9) only get a different-case match.
	limit := max(1, min(3, len(word)/3))
	if len([]rune(word)) <= 2 {
		limit = 0
	}
	if bestDist > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent characters each
// cost one, which covers the usual typing slips.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows are enough for the transposition look-back.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
