package testenv

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// HTTPGit serves the bare repositories of a directory over git's smart
// HTTP protocol the way a hosting service does: `git http-backend` behind
// Go's CGI handler, on 127.0.0.1, every repository exported and pushes
// allowed (http.receivepack), no authentication. Stop and Start take the
// server down and bring it back on the same address, so that clients see
// an outage (connection refused) and then the same URLs again.
type HTTPGit struct {
	root    string
	handler http.Handler
	addr    string

	mu  sync.Mutex
	srv *http.Server // nil while stopped

	requests atomic.Int64
}

// ServeHTTPGit starts serving the bare repositories under root (each a
// directory such as root/remote.git) and stops the server when the test
// ends.
func ServeHTTPGit(t testing.TB, root string) *HTTPGit {
	t.Helper()
	h, err := StartHTTPGit(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return h
}

// StartHTTPGit starts serving the bare repositories under root, with home
// (an empty directory) as git's HOME; the caller stops it.
func StartHTTPGit(root, home string) (*HTTPGit, error) {
	git, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("httpgit: %w", err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("httpgit: %w", err)
	}
	h := &HTTPGit{root: abs}
	cgiHandler := &cgi.Handler{
		Path: git,
		Args: []string{"http-backend"},
		Env: []string{
			"GIT_PROJECT_ROOT=" + abs,
			"GIT_HTTP_EXPORT_ALL=1",
			"HOME=" + home,
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=" + filepath.Join(home, ".gitconfig"),
			"GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=http.receivepack",
			"GIT_CONFIG_VALUE_0=true",
		},
	}
	h.handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h.requests.Add(1)
		cgiHandler.ServeHTTP(w, req)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("httpgit: %w", err)
	}
	h.addr = ln.Addr().String()
	h.serve(ln)
	return h, nil
}

// URL is the address of the repository at path name under the root
// (e.g. "remote.git").
func (h *HTTPGit) URL(name string) string {
	return "http://" + h.addr + "/" + name
}

// Root is the directory whose repositories are served.
func (h *HTTPGit) Root() string { return h.root }

// Requests is how many HTTP requests the server has answered so far (a
// fetch or a push is two or three).
func (h *HTTPGit) Requests() int64 { return h.requests.Load() }

// Stop takes the server down: new connections are refused until Start.
// Requests in flight are cut off. Stopping a stopped server does nothing.
func (h *HTTPGit) Stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv != nil {
		_ = h.srv.Close()
		h.srv = nil
	}
}

// Start brings a stopped server back on the same address. Starting a
// running server does nothing.
func (h *HTTPGit) Start() error {
	h.mu.Lock()
	running := h.srv != nil
	h.mu.Unlock()
	if running {
		return nil
	}
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		return fmt.Errorf("httpgit: listen again on %s: %w", h.addr, err)
	}
	h.serve(ln)
	return nil
}

func (h *HTTPGit) serve(ln net.Listener) {
	srv := &http.Server{Handler: h.handler}
	h.mu.Lock()
	h.srv = srv
	h.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = ln.Close()
		}
	}()
}
