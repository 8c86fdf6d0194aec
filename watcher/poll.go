package watcher

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// DefaultPollInterval is how often the polling backend looks when no
// interval is given.
const DefaultPollInterval = time.Second

// pollBackend finds changes by comparing what stat says about every entry
// of the watched directories at each interval. It is the fallback for file
// systems the kernel cannot watch (network and FUSE mounts, some
// containers); unlike the kernel's notifications it costs CPU while idle,
// so it is used only when asked for.
type pollBackend struct {
	interval time.Duration
	mu       sync.Mutex
	dirs     map[string]map[string]stamp
	events   chan Event
	errors   chan error
	done     chan struct{}
	once     sync.Once
}

// stamp is what a poll compares: an editor that replaces a file by a
// rename changes its inode even when size and time look the same.
type stamp struct {
	mod  int64
	size int64
	mode fs.FileMode
	ino  uint64
}

// NewPoll returns a backend that polls every interval (DefaultPollInterval
// when interval <= 0).
func NewPoll(interval time.Duration) Backend {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	p := &pollBackend{interval: interval, dirs: map[string]map[string]stamp{},
		events: make(chan Event, 256), errors: make(chan error, 4), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *pollBackend) Add(dir string) error {
	snap, err := scanDir(dir)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.dirs[dir]; !ok {
		p.dirs[dir] = snap
	}
	return nil
}

func (p *pollBackend) Remove(dir string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.dirs, dir)
	return nil
}

func (p *pollBackend) Events() <-chan Event { return p.events }
func (p *pollBackend) Errors() <-chan error { return p.errors }

func (p *pollBackend) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

func (p *pollBackend) loop() {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if !p.poll() {
				return
			}
		case <-p.done:
			return
		}
	}
}

// poll compares every watched directory with its last snapshot and sends
// what changed. It returns false when the backend was closed meanwhile.
func (p *pollBackend) poll() bool {
	p.mu.Lock()
	dirs := make([]string, 0, len(p.dirs))
	for d := range p.dirs {
		dirs = append(dirs, d)
	}
	p.mu.Unlock()
	sort.Strings(dirs)
	for _, dir := range dirs {
		snap, err := scanDir(dir)
		p.mu.Lock()
		old, watched := p.dirs[dir]
		switch {
		case !watched:
		case err != nil:
			// The directory is gone (or unreadable): like inotify, the
			// watch ends with the directory.
			delete(p.dirs, dir)
		default:
			p.dirs[dir] = snap
		}
		p.mu.Unlock()
		if !watched {
			continue
		}
		if err != nil {
			if !p.send(Event{Path: dir, Op: Remove}) {
				return false
			}
			continue
		}
		for _, e := range diffSnapshots(dir, old, snap) {
			if !p.send(e) {
				return false
			}
		}
	}
	return true
}

func (p *pollBackend) send(e Event) bool {
	select {
	case p.events <- e:
		return true
	case <-p.done:
		return false
	}
}

// diffSnapshots lists the changes between two snapshots of dir, in name
// order.
func diffSnapshots(dir string, old, cur map[string]stamp) []Event {
	names := make([]string, 0, len(old)+len(cur))
	for n := range cur {
		names = append(names, n)
	}
	for n := range old {
		if _, ok := cur[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []Event
	for _, n := range names {
		o, had := old[n]
		c, has := cur[n]
		var op Op
		switch {
		case !had:
			op = Create
		case !has:
			op = Remove
		case o.ino != c.ino || o.mode.Type() != c.mode.Type():
			// Replaced by another file (a rename-save): a new path as far
			// as anyone watching is concerned.
			op = Create
		case o.mod != c.mod || o.size != c.size:
			op = Write
		case o.mode != c.mode:
			op = Chmod
		default:
			continue
		}
		out = append(out, Event{Path: filepath.Join(dir, n), Op: op})
	}
	return out
}

// scanDir stats every entry of dir (without following symlinks).
func scanDir(dir string) (map[string]stamp, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	snap := make(map[string]stamp, len(entries))
	for _, e := range entries {
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed between the read and the stat
		}
		if err != nil {
			return nil, err
		}
		snap[e.Name()] = stamp{mod: fi.ModTime().UnixNano(), size: fi.Size(), mode: fi.Mode(), ino: inode(fi)}
	}
	return snap, nil
}
