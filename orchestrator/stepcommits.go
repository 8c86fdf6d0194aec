package orchestrator

import (
	"strconv"
	"strings"

	"github.com/codemachine/codemachine/gitstate"
)

// stepCommitsFile is the local index of step commits (stepCommits).
const stepCommitsFile = "step-commits.txt"

// commitIndexVersion is the version of the index this code writes; an
// index of another version is read as none (its walk is made again).
// Version 1 added each entry's By, version 2 the commits merges brought in,
// version 3 is lines instead of JSON (encode), version 4 the By of a
// review merged as a pull request (the merge's approval), version 5 leaves
// out commits with step trailers that record nothing in state.yaml
// (isStepCommit).
const commitIndexVersion = 5

// commitIndexHeader starts the file, before the version.
const commitIndexHeader = "codemachine step commits "

// commitIndex is what a walk of the first-parent history from Tip found:
// each step and step/task key's newest commit, at how many commits from
// Tip, newest first. Next is the first commit the walk did not read
// (at depth Walked), "" when it read the whole history or logDepth
// commits. The history behind a commit never changes, so the index holds
// for as long as Tip is in the history walked: a later walk reads only
// the commits that came after Tip.
type commitIndex struct {
	Version int
	Tip     string
	Entries []indexEntry
	Next    string
	Walked  int
}

// indexEntry is a key's newest commit; By is who did its work (Who, from
// the commit's trailers), so that status need not read the commit again.
type indexEntry struct {
	Key   string
	Hash  string
	Depth int
	By    string
}

// encode is the index as the file holds it: a line with the header and
// version, Tip, Walked and Next, then a line per entry with its Depth,
// Hash, Key and By, the fields separated by tabs, Key and By quoted (Go
// syntax, which leaves no tab or line break in them). A fresh process
// reads that in a few microseconds, where encoding/json took a tenth of a
// millisecond of every status.
func (idx *commitIndex) encode() []byte {
	var b strings.Builder
	b.WriteString(commitIndexHeader + strconv.Itoa(idx.Version) + "\t" + idx.Tip + "\t" + strconv.Itoa(idx.Walked) +
		"\t" + idx.Next + "\n")
	for _, e := range idx.Entries {
		b.WriteString(strconv.Itoa(e.Depth) + "\t" + e.Hash + "\t" + strconv.Quote(e.Key) + "\t" + strconv.Quote(e.By) + "\n")
	}
	return []byte(b.String())
}

// parseCommitIndex decodes what encode wrote; nil for anything else (of
// another version, cut short, a line of another shape).
func parseCommitIndex(data []byte) *commitIndex {
	line, rest, ok := strings.Cut(string(data), "\n")
	head, found := strings.CutPrefix(line, commitIndexHeader)
	f := strings.Split(head, "\t")
	if !ok || !found || len(f) != 4 {
		return nil
	}
	idx := &commitIndex{Tip: f[1], Next: f[3]}
	var err1, err2 error
	idx.Version, err1 = strconv.Atoi(f[0])
	idx.Walked, err2 = strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || idx.Tip == "" || idx.Walked < 0 {
		return nil
	}
	for rest != "" {
		if line, rest, ok = strings.Cut(rest, "\n"); !ok {
			return nil // cut short
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[1] == "" {
			return nil
		}
		depth, err := strconv.Atoi(f[0])
		key, kerr := strconv.Unquote(f[2])
		by, berr := strconv.Unquote(f[3])
		if err != nil || kerr != nil || berr != nil || depth < 0 {
			return nil
		}
		idx.Entries = append(idx.Entries, indexEntry{Key: key, Hash: f[1], Depth: depth, By: by})
	}
	return idx
}

// commitFinder is the answer of stepCommits as the walk finds it: the
// first commit of each key, until every wanted key has one (checked
// between commits, as a walk that stopped there would).
type commitFinder struct {
	want    map[string]bool
	missing int // wanted keys not found yet; -1: no state, walk to logDepth
	m       map[string]string
	depth   int
	frozen  bool
	index   commitIndex
	inIndex map[string]bool
	by      map[string]string // commit hash -> Who of the commits found
}

func newCommitFinder(state *gitstate.State) *commitFinder {
	f := &commitFinder{want: map[string]bool{}, missing: -1, m: map[string]string{}, inIndex: map[string]bool{},
		by: map[string]string{}, index: commitIndex{Version: commitIndexVersion}}
	if state != nil {
		for id, sr := range state.Steps {
			f.want[id] = true
			for tid := range sr.Tasks {
				f.want[id+"/"+tid] = true
			}
		}
		f.missing = len(f.want)
	}
	return f
}

// done says whether the walk may stop before a commit at depth.
func (f *commitFinder) done(depth int) bool { return f.missing == 0 || depth >= logDepth }

// add records that key's commit at depth is hash, in the index and, while
// the walk would still be going, in the answer.
func (f *commitFinder) add(key, hash, by string, depth int) {
	f.by[hash] = by
	if !f.inIndex[key] {
		f.inIndex[key] = true
		f.index.Entries = append(f.index.Entries, indexEntry{Key: key, Hash: hash, Depth: depth, By: by})
	}
	if depth != f.depth {
		f.frozen = f.frozen || f.done(depth)
		f.depth = depth
	}
	if f.frozen {
		return
	}
	if _, seen := f.m[key]; !seen {
		f.m[key] = hash
		if f.want[key] {
			f.missing--
		}
	}
}

// isStepCommit reports whether c, as a log walk read it, is a step
// commit: it names a step in its Codemachine-Step trailer and records a
// landing in state.yaml, which it changes against its first parent (every
// landing does, DESIGN 8: even a step that changed nothing commits its
// state). Trailers alone are text anyone can write, or copy with a message
// (git commit -c, a squash): a commit that carries them and leaves
// state.yaml as it was landed nothing for the workflow, and is the user's
// own commit to status, log, diff and rollback (which asks before undoing
// it). A trailer edited by hand into a step commit (an amend) keeps its
// state change and still counts.
func isStepCommit(c gitstate.Commit) bool {
	return c.ChangesState && (gitstate.Message{Trailers: c.Trailers}).Get(gitstate.TrailerStep) != ""
}

// commit adds a commit's step and step/task keys; merge is the merge that
// brought it in, or nil.
func (f *commitFinder) commit(c gitstate.Commit, merge *gitstate.Commit, depth int) {
	msg := gitstate.Message{Trailers: c.Trailers}
	if step := msg.Get(gitstate.TrailerStep); step != "" && isStepCommit(c) {
		by := whoMerged(c, merge)
		f.add(unitKey(step, msg.Get(gitstate.TrailerTask)), c.Hash, by, depth)
		f.add(step, c.Hash, by, depth)
	}
}

// walk reads the history from rev, which is at depth, until the answer is
// complete, logDepth is reached, or (old not nil) old's tip comes: the
// depth it came at, else -1.
func (f *commitFinder) walk(o *Orchestrator, rev string, depth int, old *commitIndex) (int, error) {
	reached := -1
	err := o.repo.WalkLogMerges(rev, func(c gitstate.Commit, merged []gitstate.Commit) bool {
		if f.index.Tip == "" {
			f.index.Tip = c.Hash
		}
		if old != nil && c.Hash == old.Tip {
			reached = depth
			return false
		}
		f.commit(c, nil, depth)
		// What a merge brought in (a review merged as a pull request) is
		// as new as the merge.
		for _, m := range merged {
			f.commit(m, &c, depth)
		}
		depth++
		f.index.Walked, f.index.Next = depth, ""
		if depth >= logDepth {
			return false
		}
		if f.done(depth) {
			if len(c.Parents) > 0 {
				f.index.Next = c.Parents[0]
			}
			return false
		}
		return true
	})
	return reached, err
}

// stepCommits maps step and step/task keys to their latest commit on the
// first-parent history of rev, or brought in by a merge on it. The walk stops once every step and task that
// state.yaml records as landed has been found (when state is given), so its
// cost follows how far back the oldest step landed, not the history's
// length; without state it reads up to logDepth commits. What a walk found
// is kept in a local index by the tip's hash (.git/codemachine/
// step-commits.txt), so the next one reads only the commits since: a
// status after a landing reads one commit, not a hundred.
func (o *Orchestrator) stepCommits(rev string, state *gitstate.State) (map[string]string, error) {
	commits, _, err := o.stepCommitsBy(rev, state)
	return commits, err
}

// stepCommitsBy is stepCommits, and who did the work of each commit found
// (Who, by commit hash), from the same walk and index: status shows it
// without reading a commit per step.
func (o *Orchestrator) stepCommitsBy(rev string, state *gitstate.State) (map[string]string, map[string]string, error) {
	f := newCommitFinder(state)
	// In a shallow clone the history behind its edge is not fixed: a
	// fetch --unshallow adds it. No index is kept there (its history is
	// short to walk anyway).
	shallow := o.repo.IsShallow()
	var old *commitIndex
	if !shallow {
		old = o.readCommitIndex()
	}
	reached, err := f.walk(o, rev, 0, old)
	if err != nil {
		return nil, nil, err
	}
	if reached >= 0 {
		for _, e := range old.Entries {
			if reached+e.Depth >= logDepth {
				break
			}
			f.add(e.Key, e.Hash, e.By, reached+e.Depth)
		}
		f.index.Walked, f.index.Next = min(reached+old.Walked, logDepth), ""
		if reached+old.Walked < logDepth {
			f.index.Next = old.Next
		}
		if f.index.Next != "" && !f.done(f.index.Walked) {
			// The index stopped short of what this walk needs: go on from
			// where it stopped.
			if _, err := f.walk(o, f.index.Next, f.index.Walked, nil); err != nil {
				return nil, nil, err
			}
		}
	}
	if !shallow && (old == nil || f.index.Tip != old.Tip || f.index.Walked != old.Walked) {
		o.writeCommitIndex(&f.index)
	}
	return f.m, f.by, nil
}

// readCommitIndex is the local index, nil when there is none or it cannot
// be read (it is only a cache: the walk then reads the history).
func (o *Orchestrator) readCommitIndex() *commitIndex {
	data, err := o.repo.ReadLocalRaw(stepCommitsFile)
	if err != nil {
		return nil
	}
	idx := parseCommitIndex(data)
	if idx == nil || idx.Tip == "" || idx.Version != commitIndexVersion {
		return nil
	}
	return idx
}

// writeCommitIndex replaces the local index; a failure to write only costs
// the next status a longer walk. Like the other caches it is kept only for a
// repository codemachine already works in.
func (o *Orchestrator) writeCommitIndex(idx *commitIndex) {
	if idx.Tip == "" || !localDirExists(o.repo) {
		return
	}
	_ = o.repo.WriteLocalRaw(stepCommitsFile, idx.encode())
}
