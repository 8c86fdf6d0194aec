// Package fakellm is a scripted fake model server for tests that drive the
// real coding CLIs (Claude Code, Codex, Gemini CLI, opencode) offline. It
// listens on 127.0.0.1 and speaks the Anthropic Messages, OpenAI Responses,
// OpenAI Chat Completions and Gemini APIs, streaming and not. A Script says
// what the model answers, turn by turn, with tool calls in a neutral form
// that the server translates into each CLI's own tools. README.md describes
// scripts, endpoints and the traps of each CLI.
package fakellm

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// maxBody bounds a request body; the CLIs send well under 1 MiB.
const maxBody = 64 << 20

// Options configure Listen.
type Options struct {
	// Addr is the listen address; "" = 127.0.0.1:0 (a free port).
	Addr string
	// OnRequest, when set, is called with each request's final log entry
	// (after the answer, or when a hanging request ends).
	OnRequest func(Request)
}

// Server is a running fake model server.
type Server struct {
	script    Script
	onRequest func(Request)
	srv       *http.Server
	url       string
	closed    chan struct{}
	closeOnce sync.Once
	done      chan struct{} // closed when Serve returns

	mu     sync.Mutex
	next   int // index of the next turn to serve
	failed int // failures already served at turn next
	seq    int
	reqs   []*Request
}

// Listen starts a server for script on opts.Addr. The script must pass
// Validate.
func Listen(script Script, opts Options) (*Server, error) {
	if err := script.Validate(); err != nil {
		return nil, fmt.Errorf("fakellm: invalid script: %w", err)
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fakellm: listen on %s: %w", addr, err)
	}
	s := &Server{
		script:    script,
		onRequest: opts.OnRequest,
		url:       "http://" + ln.Addr().String(),
		closed:    make(chan struct{}),
		done:      make(chan struct{}),
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		// Serve returns http.ErrServerClosed after Close; nothing to report.
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// New starts a server for script on a free port of 127.0.0.1. Like
// httptest.NewServer it panics when it cannot listen (no loopback), and
// like regexp.MustCompile when the script is invalid, a mistake in the
// test's own code; use Listen to get an error instead.
func New(script Script) *Server {
	s, err := Listen(script, Options{})
	if err != nil {
		panic(err)
	}
	return s
}

// Start starts a server for script on a free port of 127.0.0.1 and closes
// it when the test ends.
func Start(t testing.TB, script Script) *Server {
	t.Helper()
	s, err := Listen(script, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// URL is the server's base URL, "http://127.0.0.1:PORT", without a path:
// CLIs that want a /v1 suffix get it in their configuration.
func (s *Server) URL() string { return s.url }

// Requests returns a copy of the log of every request received so far, in
// order of arrival.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	for i, r := range s.reqs {
		out[i] = r.clone()
	}
	return out
}

// TurnsServed is the number of script turns answered so far.
func (s *Server) TurnsServed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return min(s.next, len(s.script.Turns))
}

// Close stops the server and ends hanging requests. It is safe to call more
// than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		// Connections first: a handler woken by closed must find its
		// connection gone rather than answer on it.
		s.srv.Close()
		close(s.closed)
		<-s.done
	})
}

func (r *Request) clone() Request {
	c := *r
	c.Tools = append([]string(nil), r.Tools...)
	c.Calls = append([]string(nil), r.Calls...)
	c.Body = append([]byte(nil), r.Body...)
	return c
}

// ServeHTTP routes a request by its path. Paths are matched by suffix, so
// base URLs with or without /v1 both work.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	e := s.record(r, body)
	defer s.finish(e)
	if err != nil {
		s.update(e, func(e *Request) { e.Error = "read body: " + err.Error() })
		s.status(e, http.StatusBadRequest)
		http.Error(w, "fakellm: read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	p := r.URL.Path
	post := r.Method == http.MethodPost
	switch {
	case p == "/" && (r.Method == http.MethodHead || r.Method == http.MethodGet):
		s.update(e, func(e *Request) { e.API = APIHealth })
		s.status(e, http.StatusOK)
		w.WriteHeader(http.StatusOK)
	case strings.HasPrefix(p, "/npm-registry-sink/"):
		// opencode looks up its plugin package on every run; a 404 makes
		// it carry on without one.
		s.update(e, func(e *Request) { e.API = APINPM })
		s.status(e, http.StatusNotFound)
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "Not found"})
	case post && strings.HasSuffix(p, "/messages/count_tokens"):
		s.update(e, func(e *Request) { e.API = APICountTokens; e.Aux = true })
		s.status(e, http.StatusOK)
		anthropicCountTokens(w, body)
	case post && strings.HasSuffix(p, "/messages"):
		s.model(w, r, e, APIAnthropic, "", false)
	case post && strings.HasSuffix(p, "/responses"):
		s.model(w, r, e, APIResponses, "", false)
	case post && strings.HasSuffix(p, "/chat/completions"):
		s.model(w, r, e, APIChat, "", false)
	default:
		model, method, ok := geminiRoute(p)
		switch {
		case post && ok && method == "streamGenerateContent":
			s.model(w, r, e, APIGemini, model, true)
		case post && ok && method == "generateContent":
			s.model(w, r, e, APIGemini, model, false)
		case post && ok && method == "countTokens":
			s.update(e, func(e *Request) { e.API = APICountTokens; e.Aux = true; e.Model = model })
			s.status(e, http.StatusOK)
			geminiCountTokens(w, body)
		case ok:
			s.update(e, func(e *Request) { e.API = APIGemini; e.Error = geminiMethodError(method) })
			s.status(e, http.StatusNotFound)
			writeGeminiError(w, &Failure{Status: http.StatusNotFound, Message: geminiMethodError(method)})
		default:
			s.update(e, func(e *Request) { e.API = APIUnknown })
			s.status(e, http.StatusNotFound)
			writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{
				"message": fmt.Sprintf("fakellm: no route for %s %s", r.Method, p), "type": "not_found_error"}})
		}
	}
}

// record adds a request to the log when it arrives, so that a request that
// hangs is visible while it hangs.
func (s *Server) record(r *http.Request, body []byte) *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	e := &Request{Seq: s.seq, Time: time.Now(), Method: r.Method, Path: r.URL.RequestURI(), Turn: -1, Body: body}
	s.reqs = append(s.reqs, e)
	return e
}

func (s *Server) update(e *Request, f func(*Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(e)
}

func (s *Server) status(e *Request, code int) {
	s.update(e, func(e *Request) { e.Status = code })
}

func (s *Server) finish(e *Request) {
	if s.onRequest == nil {
		return
	}
	s.mu.Lock()
	c := e.clone()
	s.mu.Unlock()
	s.onRequest(c)
}

// pick chooses what a tool-bearing request gets: the next turn, a failure
// of it, or nothing when the script is used up.
func (s *Server) pick() (turn Turn, index int, fail *Failure, exhausted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next >= len(s.script.Turns) {
		return Turn{}, -1, nil, true
	}
	index = s.next
	turn = s.script.Turns[index]
	if f := turn.Fail; f != nil && (f.Times <= 0 || s.failed < f.Times) {
		s.failed++
		return turn, index, f, false
	}
	s.next++
	s.failed = 0
	return turn, index, nil, false
}

// unpick undoes a pick whose answer was never delivered, unless another
// request has moved on since.
func (s *Server) unpick(index int, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case failed && s.next == index && s.failed > 0:
		s.failed--
	case !failed && s.next == index+1 && s.failed == 0:
		s.next = index
	}
}

// model answers a model request of any API.
func (s *Server) model(w http.ResponseWriter, r *http.Request, e *Request, api API, urlModel string, stream bool) {
	in, err := parseIncoming(api, urlModel, stream, e.Body)
	if err != nil {
		s.update(e, func(e *Request) { e.API = api; e.Error = err.Error() })
		s.writeError(w, e, api, &Failure{Status: http.StatusBadRequest, Message: "fakellm: " + err.Error()})
		return
	}
	if api == APIGemini && stream && r.URL.Query().Get("alt") != "sse" {
		// Without alt=sse Gemini streams a JSON array; every CLI here asks
		// for SSE, and the array form is answered with one element.
		in.stream = false
		in.jsonArray = true
	}
	s.update(e, func(e *Request) {
		e.API = api
		e.Model = in.model
		e.Stream = in.stream
		e.Tools = in.toolNames()
		e.Messages = in.messages
		e.UserText = in.userText
		e.Cwd = in.cwd
	})
	a := &answer{seq: e.Seq, model: in.model}
	if len(in.tools) == 0 || in.schema != nil {
		// Titles, routers: not part of the conversation the script plays.
		// A request that asks for a JSON answer is one of them even when
		// it offers tools (Codex's UI names its thread offering apply_patch):
		// the agent loop never asks for structured output.
		a.text = auxAnswer(in.schema)
		a.usage = Usage{}.withDefaults()
		s.update(e, func(e *Request) { e.Aux = true })
		s.writeAnswer(w, e, in, a)
		return
	}
	turn, index, fail, exhausted := s.pick()
	s.update(e, func(e *Request) { e.Turn = index; e.Exhausted = exhausted })
	if exhausted {
		a.text = ExhaustedText
		a.usage = Usage{}.withDefaults()
		s.writeAnswer(w, e, in, a)
		return
	}
	if turn.Delay > 0 && !s.wait(r.Context(), turn.Delay) {
		// The client gave up (its own timeout) before the answer: the
		// turn, or the failure, was never delivered, so its retry gets it.
		s.unpick(index, fail != nil)
		abort(w)
		return
	}
	a.text = turn.Text
	a.usage = turn.Usage.withDefaults()
	if fail != nil {
		s.update(e, func(e *Request) { e.Fault = fail.kind() })
		switch fail.kind() {
		case FailHang:
			s.wait(r.Context(), -1)
			abort(w)
		case FailMalformed:
			s.status(e, http.StatusOK)
			switch api {
			case APIAnthropic:
				writeAnthropicMalformed(w, a)
			case APIResponses:
				writeResponsesMalformed(w, a)
			case APIChat:
				writeChatMalformed(w, a)
			case APIGemini:
				writeGeminiMalformed(w, a)
			}
		default:
			s.writeError(w, e, api, fail)
		}
		return
	}
	dir := s.script.Dir
	if dir == "" {
		dir = in.cwd
	}
	tr := translator{in: in, dir: dir}
	for i, c := range turn.Calls {
		out, err := tr.translate(c)
		if err != nil {
			msg := fmt.Sprintf("fakellm: turn %d call %d: %v", index, i, err)
			s.update(e, func(e *Request) { e.Error = msg; e.Calls = nil })
			s.writeError(w, e, api, &Failure{Status: http.StatusBadRequest, Message: msg})
			return
		}
		if api == APIAnthropic {
			out.id = fmt.Sprintf("toolu_fake_%d_%d", e.Seq, i)
		} else {
			out.id = fmt.Sprintf("call_fake_%d_%d", e.Seq, i)
		}
		a.calls = append(a.calls, out)
		s.update(e, func(e *Request) { e.Calls = append(e.Calls, out.name) })
	}
	s.writeAnswer(w, e, in, a)
}

func (s *Server) writeAnswer(w http.ResponseWriter, e *Request, in *incoming, a *answer) {
	s.status(e, http.StatusOK)
	switch in.api {
	case APIAnthropic:
		writeAnthropic(w, a, in.stream)
	case APIResponses:
		writeResponses(w, a, in.stream)
	case APIChat:
		writeChat(w, a, in.stream, in.includeUsage)
	case APIGemini:
		writeGemini(w, a, in.stream, in.jsonArray)
	}
}

func (s *Server) writeError(w http.ResponseWriter, e *Request, api API, f *Failure) {
	s.status(e, f.status())
	retryAfterHeaders(w, f.RetryAfter)
	switch api {
	case APIAnthropic:
		writeAnthropicError(w, f)
	case APIGemini:
		writeGeminiError(w, f)
	default:
		writeOpenAIError(w, f)
	}
}

// abort drops the connection without an answer: a hang or delay cut short
// by Close must not turn into an empty 200 response.
func abort(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		// The connection is already gone (the client left).
		return
	}
	conn.Close()
}

// wait sleeps for d (forever when d < 0) unless the client goes away or the
// server closes first; it reports whether the whole time passed.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
		return true
	case <-ctx.Done():
	case <-s.closed:
	}
	return false
}

// String describes a log entry on one line, for test failure messages.
func (r Request) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s %s [%s", r.Seq, r.Method, r.Path, r.API)
	if r.Model != "" {
		b.WriteString(" model=" + r.Model)
	}
	if r.Aux {
		b.WriteString(" aux")
	}
	if r.Turn >= 0 {
		b.WriteString(" turn=" + strconv.Itoa(r.Turn))
	}
	if r.Exhausted {
		b.WriteString(" exhausted")
	}
	if len(r.Tools) > 0 {
		b.WriteString(" tools=" + strconv.Itoa(len(r.Tools)))
	}
	if len(r.Calls) > 0 {
		b.WriteString(" calls=" + strings.Join(r.Calls, ","))
	}
	if r.Fault != "" {
		b.WriteString(" fault=" + string(r.Fault))
	}
	fmt.Fprintf(&b, " status=%d", r.Status)
	if r.Error != "" {
		b.WriteString(" error=" + strconv.Quote(r.Error))
	}
	b.WriteString("]")
	return b.String()
}
