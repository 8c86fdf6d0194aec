package orchestrator

import (
	"encoding/json"

	"github.com/codemachine/codemachine/gitstate"
)

// stepCommitsFile is the local index of step commits (stepCommits).
const stepCommitsFile = "step-commits.json"

// commitIndexVersion is the version of the index this code writes; an
// index of another version is read as none (its walk is made again).
// Version 1 added each entry's By, version 2 the commits merges brought in.
const commitIndexVersion = 2

// commitIndex is what a walk of the first-parent history from Tip found:
// each step and step/task key's newest commit, at how many commits from
// Tip, newest first. Next is the first commit the walk did not read
// (at depth Walked), "" when it read the whole history or logDepth
// commits. The history behind a commit never changes, so the index holds
// for as long as Tip is in the history walked: a later walk reads only
// the commits that came after Tip.
type commitIndex struct {
	Version int          `json:"version"`
	Tip     string       `json:"tip"`
	Entries []indexEntry `json:"entries"`
	Next    string       `json:"next,omitempty"`
	Walked  int          `json:"walked"`
}

// indexEntry is a key's newest commit; By is who did its work (Who, from
// the commit's trailers), so that status need not read the commit again.
type indexEntry struct {
	Key   string `json:"key"`
	Hash  string `json:"hash"`
	Depth int    `json:"depth"`
	By    string `json:"by,omitempty"`
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

// commit adds a commit's step and step/task keys.
func (f *commitFinder) commit(c gitstate.Commit, depth int) {
	msg := gitstate.Message{Trailers: c.Trailers}
	if step := msg.Get(gitstate.TrailerStep); step != "" {
		by := whoOf(c)
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
		f.commit(c, depth)
		// What a merge brought in (a review merged as a pull request) is
		// as new as the merge.
		for _, m := range merged {
			f.commit(m, depth)
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
// step-commits.json), so the next one reads only the commits since: a
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
	var idx commitIndex
	if json.Unmarshal(data, &idx) != nil || idx.Tip == "" || idx.Version != commitIndexVersion {
		return nil
	}
	return &idx
}

// writeCommitIndex replaces the local index; a failure to write only costs
// the next status a longer walk.
func (o *Orchestrator) writeCommitIndex(idx *commitIndex) {
	if idx.Tip == "" {
		return
	}
	if data, err := json.Marshal(idx); err == nil {
		_ = o.repo.WriteLocalRaw(stepCommitsFile, data)
	}
}
