package watcher

import (
	"errors"
	"fmt"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// notifyBackend is the kernel's change notification (inotify on Linux)
// through fsnotify. While nothing changes it costs nothing: its goroutines
// sleep in the kernel.
type notifyBackend struct {
	w      *fsnotify.Watcher
	events chan Event
	errors chan error
	done   chan struct{}
	once   sync.Once
}

// NewNotify returns the fsnotify backend.
func NewNotify() (Backend, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("start file watching: %w", err)
	}
	b := &notifyBackend{w: fw, events: make(chan Event, 256), errors: make(chan error, 4), done: make(chan struct{})}
	go b.forward()
	return b, nil
}

// ops maps fsnotify's operations onto ours (the rest, such as the
// unportable open and read events, are not asked for).
var ops = []struct {
	from fsnotify.Op
	to   Op
}{{fsnotify.Create, Create}, {fsnotify.Write, Write}, {fsnotify.Remove, Remove}, {fsnotify.Rename, Rename}, {fsnotify.Chmod, Chmod}}

func (b *notifyBackend) forward() {
	for {
		select {
		case e, ok := <-b.w.Events:
			if !ok {
				return
			}
			var op Op
			for _, m := range ops {
				if e.Op.Has(m.from) {
					op |= m.to
				}
			}
			select {
			case b.events <- Event{Path: e.Name, Op: op}:
			case <-b.done:
				return
			}
		case err, ok := <-b.w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				err = ErrOverflow
			}
			select {
			case b.errors <- err:
			case <-b.done:
				return
			}
		case <-b.done:
			return
		}
	}
}

func (b *notifyBackend) Add(dir string) error { return b.w.Add(dir) }

func (b *notifyBackend) Remove(dir string) error {
	if err := b.w.Remove(dir); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
		return err
	}
	return nil
}

func (b *notifyBackend) Events() <-chan Event { return b.events }
func (b *notifyBackend) Errors() <-chan error { return b.errors }

func (b *notifyBackend) Close() error {
	var err error
	b.once.Do(func() {
		close(b.done)
		err = b.w.Close()
	})
	return err
}
