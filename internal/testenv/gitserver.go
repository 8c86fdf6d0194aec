package testenv

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os/exec"
	"path/filepath"
)

// GitServer serves the git repositories under a directory over git's smart
// HTTP protocol: git http-backend behind Go's CGI handler, on 127.0.0.1,
// without authentication. Clients fetch ROOT/NAME as URL + "/NAME".
// Pushes need http.receivepack=true in the served repository.
type GitServer struct {
	// URL is http://127.0.0.1:PORT, without a trailing slash.
	URL string
	srv *http.Server
}

// ServeGit starts serving root (every repository under it is exported)
// and returns once the server accepts connections. Close stops it.
func ServeGit(root string) (*GitServer, error) {
	git, err := exec.LookPath("git")
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &cgi.Handler{Path: git, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + abs, "GIT_HTTP_EXPORT_ALL=1"},
		// Its complaints about a missing repository reach the client.
		Stderr: io.Discard}
	s := &GitServer{URL: "http://" + ln.Addr().String(), srv: &http.Server{Handler: h}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = ln.Close()
		}
	}()
	return s, nil
}

// Close stops the server.
func (s *GitServer) Close() error { return s.srv.Close() }
