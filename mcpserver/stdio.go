package mcpserver

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
)

// The SDK's stdio transport cancels every call in flight as soon as its
// reader returns io.EOF (with the reader gone it can no longer hear a
// cancellation), and writes no answer to them. A client that writes its
// requests and closes its end at once (printf ... | codemachine mcp)
// would get no answer at all. So standard input is read through
// heldReader, which counts the calls it passes on and holds the EOF back
// until heldWriter has written an answer to each of them.

// openCalls counts the calls (requests with an id) read from the client
// that have not been answered yet.
type openCalls struct {
	mu     sync.Mutex
	cond   *sync.Cond
	n      int
	closed bool // the connection is closed: nothing waits any more
}

func newOpenCalls() *openCalls {
	c := &openCalls{}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *openCalls) add(n int) {
	if n == 0 {
		return
	}
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
	c.cond.Broadcast()
}

// wait returns once every call read has been answered, or the connection
// was closed.
func (c *openCalls) wait() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.n > 0 && !c.closed {
		c.cond.Wait()
	}
}

func (c *openCalls) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cond.Broadcast()
}

// lines splits a stream of newline-delimited JSON-RPC messages as it goes
// by, and calls count with each complete message.
type lines struct {
	buf   []byte
	count func(msg []byte)
}

func (l *lines) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.buf = append(l.buf, p...)
			return
		}
		l.buf = append(l.buf, p[:i]...)
		p = p[i+1:]
		// A message may span lines (the SDK's decoder allows it): it is
		// counted once the text read so far is whole JSON.
		if json.Valid(l.buf) {
			l.flush()
		} else {
			l.buf = append(l.buf, '\n')
		}
	}
}

// flush counts what is left: at EOF, the last message may lack its
// newline.
func (l *lines) flush() {
	if len(bytes.TrimSpace(l.buf)) > 0 {
		l.count(l.buf)
	}
	l.buf = l.buf[:0]
}

// message is what tells a call, a notification and an answer apart.
type message struct {
	ID     json.RawMessage `json:"id"`
	Method *string         `json:"method"`
}

// messages decodes a message or a batch of them; nil when it is not
// JSON-RPC (the SDK then fails the connection, which releases the wait).
func messages(data []byte) []message {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '[' {
		var batch []message
		if json.Unmarshal(data, &batch) != nil {
			return nil
		}
		return batch
	}
	var m message
	if json.Unmarshal(data, &m) != nil {
		return nil
	}
	return []message{m}
}

func (m message) isCall() bool {
	return m.Method != nil && len(m.ID) > 0 && string(m.ID) != "null"
}

func (m message) isAnswer() bool { return m.Method == nil }

// heldReader is standard input, its EOF held back while calls are open.
type heldReader struct {
	r     io.ReadCloser
	calls *openCalls
	lines lines
	eof   bool
}

func newHeldReader(r io.ReadCloser, calls *openCalls) *heldReader {
	h := &heldReader{r: r, calls: calls}
	h.lines.count = func(msg []byte) {
		n := 0
		for _, m := range messages(msg) {
			if m.isCall() {
				n++
			}
		}
		calls.add(n)
	}
	return h
}

func (h *heldReader) Read(p []byte) (int, error) {
	if h.eof {
		h.calls.wait()
		return 0, io.EOF
	}
	n, err := h.r.Read(p)
	// Counted before the SDK sees them, so that no answer comes first.
	h.lines.write(p[:n])
	if err == io.EOF {
		h.lines.flush()
		h.eof = true
		if n > 0 {
			// The last messages go to the SDK first; the EOF follows on
			// the next read, once they are answered.
			return n, nil
		}
		h.calls.wait()
	}
	return n, err
}

// Close is called when the connection closes (the client went away, the
// server stops): the EOF need not wait any longer.
func (h *heldReader) Close() error {
	h.calls.close()
	return h.r.Close()
}

// heldWriter is standard output; each answer written closes a call.
type heldWriter struct {
	w     io.Writer
	lines lines
}

func newHeldWriter(w io.Writer, calls *openCalls) *heldWriter {
	h := &heldWriter{w: w}
	h.lines.count = func(msg []byte) {
		n := 0
		for _, m := range messages(msg) {
			if m.isAnswer() {
				n++
			}
		}
		calls.add(-n)
	}
	return h
}

// Write writes p, then counts the answers in it: the EOF is only let
// through once they are out.
func (h *heldWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.lines.write(p[:n])
	return n, err
}

// Close leaves standard output open, as the SDK's stdio transport does.
func (h *heldWriter) Close() error { return nil }
