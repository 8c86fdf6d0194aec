package follow

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/codemachine/codemachine/orchestrator"
)

// followerQueue is how many events a follower may lag behind before it is
// disconnected.
const followerQueue = 1024

// Server serves one process's events to its followers.
type Server struct {
	ln   net.Listener
	path string
	// followers counts the connected followers: Publish looks at it
	// before it does anything for them.
	followers atomic.Int32

	mu    sync.Mutex
	hello Hello
	units map[string]*Unit // running units by key
	order []string         // their keys, in start order
	subs  map[*follower]bool
	done  bool
}

// follower is one connection's queue.
type follower struct {
	conn net.Conn
	ch   chan []byte
}

// Listen serves the events of this process (whose lock file says command)
// for the repository whose codemachine directory is localDir. It removes
// the sockets that processes which no longer run left behind.
func Listen(localDir, command string) (*Server, error) {
	path := SocketPath(localDir, os.Getpid())
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("follow: %w", err)
	}
	removeStale(filepath.Dir(path))
	_ = os.Remove(path) // a socket of an earlier process with our pid
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("follow: %w", err)
	}
	s := &Server{ln: ln, path: path, units: map[string]*Unit{}, subs: map[*follower]bool{},
		hello: Hello{PID: os.Getpid(), Command: command, Since: time.Now()}}
	go s.accept()
	return s, nil
}

// removeStale removes follow sockets whose process is gone.
func removeStale(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sock") {
			continue
		}
		base := strings.TrimSuffix(name, ".sock")
		pid, err := strconv.Atoi(base[strings.LastIndexAny(base, "-")+1:])
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		_ = os.Remove(filepath.Join(dir, name))
	}
}

// alive reports whether a process with the pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

func (s *Server) accept() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.add(conn)
	}
}

// add greets a new follower with the picture so far and queues it for
// the events after it, both under mu, so that it misses none.
func (s *Server) add(conn net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		conn.Close()
		return
	}
	h := s.hello
	h.Units = make([]Unit, 0, len(s.order))
	for _, k := range s.order {
		h.Units = append(h.Units, *s.units[k])
	}
	line, err := json.Marshal(message{Hello: &h})
	if err != nil {
		conn.Close()
		return
	}
	f := &follower{conn: conn, ch: make(chan []byte, followerQueue)}
	f.ch <- line
	s.subs[f] = true
	s.followers.Add(1)
	go s.write(f)
}

// write sends a follower its queue; a write that fails (the follower went
// away) ends it.
func (s *Server) write(f *follower) {
	defer f.conn.Close()
	for line := range f.ch {
		if _, err := f.conn.Write(append(line, '\n')); err != nil {
			s.drop(f)
			for range f.ch {
			}
			return
		}
	}
}

// drop forgets a follower and closes its queue; mu must not be held.
func (s *Server) drop(f *follower) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropLocked(f)
}

func (s *Server) dropLocked(f *follower) {
	if s.subs[f] {
		delete(s.subs, f)
		s.followers.Add(-1)
		close(f.ch)
	}
}

// Publish records e in the picture a Hello gives and sends it to every
// follower. It never blocks: a follower whose queue is full is
// disconnected. It is safe for concurrent use (orchestrator.Config.OnEvent).
func (s *Server) Publish(e orchestrator.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.note(e)
	if s.followers.Load() == 0 {
		return
	}
	line, err := json.Marshal(message{Event: &e})
	if err != nil {
		return
	}
	for f := range s.subs {
		select {
		case f.ch <- line:
		default:
			s.dropLocked(f)
		}
	}
}

// note keeps the running units and the run id up to date; mu is held.
func (s *Server) note(e orchestrator.Event) {
	key := e.Key()
	switch e.Kind {
	case orchestrator.RunStarted:
		s.hello.Run = e.Run
	case orchestrator.RunFinished:
		s.hello.Run = ""
		clear(s.units)
		s.order = s.order[:0]
	case orchestrator.StepStarted:
		if _, ok := s.units[key]; !ok {
			s.order = append(s.order, key)
		}
		s.units[key] = &Unit{Step: e.Step, Task: e.Task, Title: e.Title, Engine: e.Engine, Model: e.Model, Started: e.At}
	case orchestrator.StepActivity:
		if u := s.units[key]; u != nil {
			u.Activity, u.ActivityKind, u.ActivityAt = e.Message, e.Activity, e.At
		}
	case orchestrator.StepLanded, orchestrator.StepFailed, orchestrator.StepConflict, orchestrator.StepReview:
		if _, ok := s.units[key]; ok {
			delete(s.units, key)
			for i, k := range s.order {
				if k == key {
					s.order = append(s.order[:i], s.order[i+1:]...)
					break
				}
			}
		}
	}
}

// Close stops serving, disconnects the followers and removes the socket.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return nil
	}
	s.done = true
	for f := range s.subs {
		s.dropLocked(f)
	}
	s.mu.Unlock()
	err := s.ln.Close()
	_ = os.Remove(s.path)
	return err
}

// Publisher serves a process's events from its first run on: the server
// starts at the first RunStarted, that is once the process holds the
// repository lock (so only the lock holder serves, and a command that is
// refused, or a repository without a workflow, gets nothing under .git),
// and it stays up until Close (a watcher's passes share it).
type Publisher struct {
	localDir func() string
	command  string
	mu       sync.Mutex
	srv      *Server
	closed   bool
	// Err is why the server could not start, if it could not: following
	// is a convenience, so the run goes on without it.
	Err error
}

// NewPublisher publishes for a process whose lock file says command, in
// the repository whose codemachine directory localDir returns (asked at
// the first run only: gitstate.Repo.LocalDir creates the directory).
func NewPublisher(localDir func() string, command string) *Publisher {
	return &Publisher{localDir: localDir, command: command}
}

// Publish hands e to the server, starting it at the first RunStarted.
func (p *Publisher) Publish(e orchestrator.Event) {
	p.mu.Lock()
	srv := p.srv
	if srv == nil && e.Kind == orchestrator.RunStarted && !p.closed && p.Err == nil {
		srv, p.Err = Listen(p.localDir(), p.command)
		p.srv = srv
	}
	p.mu.Unlock()
	if srv != nil {
		srv.Publish(e)
	}
}

// Close stops the server, if it started.
func (p *Publisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.srv != nil {
		_ = p.srv.Close()
	}
}
