package fakellm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"unicode/utf8"
)

// sse writes a server-sent event stream, flushing after every event so the
// client sees each one as it comes (as from a real model).
type sse struct {
	w http.ResponseWriter
}

func startSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return &sse{w: w}
}

// event writes an event with a name (Anthropic and Responses streams).
func (s *sse) event(name string, v any) {
	fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, mustJSON(v))
	s.flush()
}

// data writes an unnamed event (Chat Completions and Gemini streams).
func (s *sse) data(v any) {
	fmt.Fprintf(s.w, "data: %s\n\n", mustJSON(v))
	s.flush()
}

// raw writes text as it is, for the [DONE] sentinel and for garbage.
func (s *sse) raw(text string) {
	fmt.Fprint(s.w, text)
	s.flush()
}

func (s *sse) flush() {
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// garbage is what a malformed stream sends after its first valid event: the
// start of a JSON object that never ends, then a line that is not SSE.
const garbage = "data: {\"type\":\"fakellm-malformed\",\"truncated\":\n\ngarbage that is not an event\n\n"

// mustJSON marshals values the server built itself from JSON-able parts;
// a failure is a programming error.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("fakellm: marshal %T: %v", v, err))
	}
	return b
}

// chunks splits s into pieces of at most n bytes without splitting a UTF-8
// sequence, so that clients have to put deltas together as with a real
// model. An empty s gives no chunk.
func chunks(s string, n int) []string {
	var out []string
	for len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == 0 {
			cut = n
		}
		out = append(out, s[:cut])
		s = s[cut:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(mustJSON(v), '\n'))
}
