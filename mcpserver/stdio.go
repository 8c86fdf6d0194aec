package mcpserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The SDK's stdio transport cancels every call in flight as soon as its
// reader returns io.EOF (with the reader gone it can no longer hear a
// cancellation), and writes no answer to them. A client that writes its
// requests and closes its end at once (printf ... | codemachine mcp)
// would get no answer at all. So standard input is read through
// heldReader, which counts the calls it passes on and holds the EOF back
// until heldWriter has written an answer to each of them.
//
// The SDK also ends the whole connection at the first message that is not
// JSON-RPC (a typo, "{}", a line of text), unanswered calls and all. So
// heldReader passes on whole messages only, and answers one that is not
// JSON (-32700, parse error) or not a JSON-RPC message (-32600, invalid
// request) itself, as JSON-RPC 2.0 says (with the message's id when it has
// a usable one, else null), and reads on.
//
// The SDK also ends the connection at a message longer than its limit
// (mcp.DefaultMaxLineLength). heldReader answers such a message itself
// (-32600, with its id when that comes before the bulk of the message),
// drops it and reads on.

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
// by, and calls count with each complete message. With bad set, a line
// (or lines) that cannot become JSON by reading on goes to bad instead.
// With max set, a message longer than max bytes goes to tooBig (its start)
// instead, and the rest of its line is dropped.
type lines struct {
	buf        []byte
	count      func(msg []byte)
	bad        func(text []byte)
	max        int
	tooBig     func(start []byte)
	discarding bool // the rest of a message too big is skipped, to its newline
}

// over reports a message grown past max to tooBig and drops what was
// kept of it.
func (l *lines) over() bool {
	if l.max <= 0 || len(l.buf) <= l.max {
		return false
	}
	l.tooBig(l.buf)
	l.buf = l.buf[:0]
	return true
}

func (l *lines) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if l.discarding {
			if i < 0 {
				return
			}
			l.discarding, p = false, p[i+1:]
			continue
		}
		if i < 0 {
			l.buf = append(l.buf, p...)
			l.discarding = l.over()
			return
		}
		l.buf = append(l.buf, p[:i]...)
		p = p[i+1:]
		if l.over() {
			continue
		}
		// A message may span lines (the SDK's decoder allows it): it is
		// counted once the text read so far is whole JSON.
		switch {
		case json.Valid(l.buf):
			l.flush()
		case l.bad != nil && notJSON(l.buf):
			l.bad(l.buf)
			l.buf = l.buf[:0]
		default:
			l.buf = append(l.buf, '\n')
		}
	}
}

// flush counts what is left: at EOF, the last message may lack its
// newline (and with bad set, what is left may be no JSON at all).
func (l *lines) flush() {
	switch {
	case len(bytes.TrimSpace(l.buf)) == 0:
	case l.bad != nil && !json.Valid(l.buf):
		l.bad(l.buf)
	default:
		l.count(l.buf)
	}
	l.buf = l.buf[:0]
}

// notJSON reports whether text is no JSON value and no beginning of one:
// more lines cannot make it valid.
func notJSON(text []byte) bool {
	if json.Valid(text) {
		return false
	}
	var v json.RawMessage
	err := json.NewDecoder(bytes.NewReader(text)).Decode(&v)
	return err != io.ErrUnexpectedEOF && err != io.EOF
}

// message is what tells a call, a notification and an answer apart.
type message struct {
	ID     json.RawMessage `json:"id"`
	Method *string         `json:"method"`
}

// messages decodes a message or a batch of them; nil when it is not
// JSON-RPC.
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
// It passes on whole messages (out), each followed by a newline.
type heldReader struct {
	r     io.ReadCloser
	calls *openCalls
	lines lines
	chunk []byte
	out   []byte
	err   error // the read error to return once out is passed on
}

// newHeldReader reads r; answer writes the error answers to the messages
// that are not JSON-RPC (heldWriter.answerError).
func newHeldReader(r io.ReadCloser, calls *openCalls, answer func(id json.RawMessage, code int64, msg string)) *heldReader {
	h := &heldReader{r: r, calls: calls, chunk: make([]byte, 32*1024)}
	h.lines.count = func(msg []byte) {
		if err := checkMessages(msg); err != nil {
			answer(usableID(msg), -32600, "invalid request: "+err.Error())
			return
		}
		n := 0
		for _, m := range messages(msg) {
			if m.isCall() {
				n++
			}
		}
		// Counted before the SDK sees them, so that no answer comes first.
		calls.add(n)
		h.out = append(append(h.out, msg...), '\n')
	}
	h.lines.bad = func(text []byte) {
		answer(nil, -32700, "parse error: not JSON: "+strings.TrimSpace(string(text)))
	}
	h.lines.max = maxMessage
	h.lines.tooBig = func(start []byte) {
		answer(leadingID(start), -32600, fmt.Sprintf("invalid request: a message longer than %d bytes; "+
			"codemachine takes messages up to that size", maxMessage))
	}
	return h
}

// maxMessage is the longest message the server reads: the SDK's limit,
// past which it would end the connection.
var maxMessage = mcp.DefaultMaxLineLength

// leadingID is the id of a message of which only the start was read, when
// the id comes first among its members (before the params that made it
// too big) and is a string or a number; else nil.
func leadingID(start []byte) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(start[:min(len(start), 64<<10)]))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil
		}
		if key == "id" {
			return usableID([]byte(`{"id":` + string(value) + `}`))
		}
	}
	return nil
}

// usableID is the id of a single message when it is a string or a number
// (what a client can match an answer with), else nil.
func usableID(data []byte) json.RawMessage {
	ms := messages(data)
	if len(ms) != 1 || bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
		return nil
	}
	var id any
	if json.Unmarshal(ms[0].ID, &id) != nil {
		return nil
	}
	switch id.(type) {
	case string, float64:
		return ms[0].ID
	}
	return nil
}

// checkMessages says why data is not a JSON-RPC 2.0 message or batch of
// them, or returns nil.
func checkMessages(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '[' {
		_, err := jsonrpc.DecodeMessage(data)
		return err
	}
	var batch []json.RawMessage
	if err := json.Unmarshal(data, &batch); err != nil {
		return err
	}
	if len(batch) == 0 {
		return errors.New("empty batch")
	}
	for _, m := range batch {
		if _, err := jsonrpc.DecodeMessage(m); err != nil {
			return err
		}
	}
	return nil
}

func (h *heldReader) Read(p []byte) (int, error) {
	for len(h.out) == 0 {
		if h.err == io.EOF {
			h.calls.wait()
		}
		if h.err != nil {
			return 0, h.err
		}
		n, err := h.r.Read(h.chunk)
		h.lines.write(h.chunk[:n])
		if err == io.EOF {
			// The last messages go to the SDK first; the EOF follows,
			// once they are answered.
			h.lines.flush()
		}
		h.err = err
	}
	n := copy(p, h.out)
	h.out = h.out[n:]
	return n, nil
}

// Close is called when the connection closes (the client went away, the
// server stops): the EOF need not wait any longer.
func (h *heldReader) Close() error {
	h.calls.close()
	return h.r.Close()
}

// heldWriter is standard output; each answer written closes a call.
type heldWriter struct {
	mu    sync.Mutex // one message at a time: the SDK's and answerError's
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
// through once they are out. An error answer without a code (withCodes)
// gets one.
func (h *heldWriter) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if out, ok := withCodes(p); ok {
		if _, err := h.w.Write(out); err != nil {
			return 0, err
		}
		h.lines.write(p)
		return len(p), nil
	}
	n, err := h.w.Write(p)
	h.lines.write(p[:n])
	return n, err
}

// noCode is how the SDK writes an error answer whose error has no JSON-RPC
// code: a plain Go error of its own, such as the refusal of a call before
// initialize ("method \"tools/list\" is invalid during session
// initialization"). JSON-RPC has no error code 0, and a client may take it
// for no error.
var noCode = []byte(`"error":{"code":0,`)

// withCodes gives each error answer in p (whole lines, as the SDK writes
// them) that has code 0 a JSON-RPC code: -32600 (invalid request) for a
// call the session's state does not allow, -32603 (internal error) for
// anything else. ok is false when there is none.
func withCodes(p []byte) (out []byte, ok bool) {
	if !bytes.Contains(p, noCode) {
		return nil, false
	}
	for line := range bytes.SplitAfterSeq(p, []byte("\n")) {
		if i := bytes.Index(line, noCode); i >= 0 {
			code := "-32603"
			if bytes.Contains(line[i:], []byte("invalid during session initialization")) {
				code = "-32600"
			}
			line = slices.Concat(line[:i], []byte(`"error":{"code":`+code+`,`), line[i+len(noCode):])
		}
		out = append(out, line...)
	}
	return out, true
}

// answerError answers a message that is not JSON-RPC: an error with its
// id, null when it has none (nil). It closes no call: the message was
// never counted as one.
func (h *heldWriter) answerError(id json.RawMessage, code int64, msg string) {
	if id == nil {
		id = json.RawMessage("null")
	}
	type wireError struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
	}
	data, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   wireError       `json:"error"`
	}{"2.0", id, wireError{code, msg}})
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, _ = h.w.Write(append(data, '\n'))
}

// Close leaves standard output open, as the SDK's stdio transport does.
func (h *heldWriter) Close() error { return nil }
