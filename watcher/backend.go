// Package watcher turns file-system change notifications into batches of
// changed paths. It builds recursive watches out of single-directory ones
// (skipping .git and whatever the caller says to ignore), picks up new
// directories as they appear and reports the files already inside them,
// waits for a quiet window (bounded by a max wait) before it hands over a
// batch, coalesces batches while the consumer is busy, and asks for a full
// rescan when the kernel's event queue overflowed.
//
// It knows nothing about git or workflows: the orchestrator decides what a
// batch means. The change source (fsnotify, or stat polling for file
// systems fsnotify cannot watch) and the clock are small interfaces, so the
// batching is tested with fakes.
package watcher

import (
	"errors"
	"strings"
)

// Op is what happened to a path; a bit set, as one notification may carry
// several.
type Op uint32

// The operations a Backend reports.
const (
	// Create: a path appeared (also the new name of a rename).
	Create Op = 1 << iota
	// Write: a file's content changed.
	Write
	// Remove: a path was deleted.
	Remove
	// Rename: a path was renamed away (the old name).
	Rename
	// Chmod: a path's attributes changed.
	Chmod
)

// String lists the operations, "CREATE|WRITE".
func (o Op) String() string {
	var names []string
	for _, n := range []struct {
		op   Op
		name string
	}{{Create, "CREATE"}, {Write, "WRITE"}, {Remove, "REMOVE"}, {Rename, "RENAME"}, {Chmod, "CHMOD"}} {
		if o&n.op != 0 {
			names = append(names, n.name)
		}
	}
	if len(names) == 0 {
		return "NONE"
	}
	return strings.Join(names, "|")
}

// Event is one change notification from a Backend.
type Event struct {
	Path string // absolute
	Op   Op
}

// ErrOverflow is sent on a Backend's error channel when notifications were
// lost (the kernel's queue overflowed): whatever was watched may have
// changed without an event.
var ErrOverflow = errors.New("event queue overflow: changes were lost")

// Backend reports changes inside single directories (not recursively): the
// entries of each added directory. The Watcher builds recursion on top.
type Backend interface {
	// Add starts watching the entries of dir.
	Add(dir string) error
	// Remove stops watching dir; removing a directory that is gone is not
	// an error.
	Remove(dir string) error
	// Events delivers notifications.
	Events() <-chan Event
	// Errors delivers ErrOverflow and other failures of the source.
	Errors() <-chan error
	// Close stops the backend; the channels are not closed.
	Close() error
}
