package watcher

import (
	"sort"
	"time"
)

// Batch is what changed during one quiet period.
type Batch struct {
	// Paths are the changed paths (files and directories), absolute,
	// sorted and unique.
	Paths []string
	// Overflow reports that changes were lost: the consumer must look at
	// everything it cares about, not only Paths.
	Overflow bool
}

// batcher collects changes until they have been quiet for the quiet window,
// or until the max wait since the first change is over, whichever comes
// first. It is a pure state machine over the times it is given, so the
// timing rules are tested without a clock.
type batcher struct {
	quiet, maxWait time.Duration
	paths          map[string]struct{}
	overflow       bool
	first, last    time.Time
}

func newBatcher(quiet, maxWait time.Duration) *batcher {
	return &batcher{quiet: quiet, maxWait: maxWait, paths: map[string]struct{}{}}
}

// empty reports whether nothing is pending.
func (b *batcher) empty() bool { return len(b.paths) == 0 && !b.overflow }

// touch records that something changed at now.
func (b *batcher) touch(now time.Time) {
	if b.empty() {
		b.first = now
	}
	b.last = now
}

// add records a changed path at now.
func (b *batcher) add(now time.Time, path string) {
	b.touch(now)
	b.paths[path] = struct{}{}
}

// addOverflow records lost changes at now.
func (b *batcher) addOverflow(now time.Time) {
	b.touch(now)
	b.overflow = true
}

// deadline is when the pending changes are due: the quiet window after the
// last change, but no later than the max wait after the first. Since the
// last change only moves forward, the deadline never moves backwards, so a
// timer armed for an earlier deadline is merely early.
func (b *batcher) deadline() time.Time {
	d := b.last.Add(b.quiet)
	if m := b.first.Add(b.maxWait); m.Before(d) {
		d = m
	}
	return d
}

// due reports whether the pending changes are due at now.
func (b *batcher) due(now time.Time) bool {
	return !b.empty() && !now.Before(b.deadline())
}

// take returns the pending changes as a batch and starts over.
func (b *batcher) take() Batch {
	out := Batch{Paths: make([]string, 0, len(b.paths)), Overflow: b.overflow}
	for p := range b.paths {
		out.Paths = append(out.Paths, p)
	}
	sort.Strings(out.Paths)
	b.paths = map[string]struct{}{}
	b.overflow = false
	return out
}

// merge adds a batch that is waiting for its consumer to a newer one: a
// consumer busy with a long pass gets everything that happened meanwhile
// as one batch.
func merge(old, b Batch) Batch {
	if len(old.Paths) == 0 {
		b.Overflow = b.Overflow || old.Overflow
		return b
	}
	seen := make(map[string]struct{}, len(old.Paths)+len(b.Paths))
	out := Batch{Overflow: old.Overflow || b.Overflow}
	for _, list := range [][]string{old.Paths, b.Paths} {
		for _, p := range list {
			if _, ok := seen[p]; !ok {
				seen[p] = struct{}{}
				out.Paths = append(out.Paths, p)
			}
		}
	}
	sort.Strings(out.Paths)
	return out
}
