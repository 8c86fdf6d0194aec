package mcpserver

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/codemachine/codemachine/internal/testenv"
)

// TestNotJSON: text that more lines cannot make JSON is told apart from the
// beginning of a message that spans lines.
func TestNotJSON(t *testing.T) {
	for _, c := range []struct {
		text string
		want bool
	}{
		{`not json`, true},
		{`{"a": 1}}`, true},
		{`{"a": 1} x`, true},
		{"\"abc\n", true},
		{`{"jsonrpc": "2.0",`, false},
		{`{`, false},
		{`[`, false},
		{``, false},
		{"  \n", false},
		{`{"a": 1}`, false},
	} {
		if got := notJSON([]byte(c.text)); got != c.want {
			t.Errorf("notJSON(%q) = %v, want %v", c.text, got, c.want)
		}
	}
}

// TestCheckMessages: what the SDK would end the connection for is found
// before it gets there.
func TestCheckMessages(t *testing.T) {
	for _, c := range []struct {
		msg string
		ok  bool
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, true},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, true},
		{`[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`, true},
		{`{}`, false},
		{`[]`, false},
		{`{"id":1,"method":"tools/list"}`, false},
		{`[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{}]`, false},
		{`"text"`, false},
	} {
		if err := checkMessages([]byte(c.msg)); (err == nil) != c.ok {
			t.Errorf("checkMessages(%s) = %v, want ok %v", c.msg, err, c.ok)
		}
	}
}

// TestTooBig: a message longer than the server takes (here 4 KiB; the
// SDK, past its limit, would end the connection, unanswered calls and
// all) gets an error answer, with its id when the id comes before the
// bulk of it, and the server reads on: the calls after it are answered.
func TestTooBig(t *testing.T) {
	old := maxMessage
	maxMessage = 4096
	t.Cleanup(func() { maxMessage = old })
	dir := newRepo(t)
	huge := strings.Repeat("x", 100_000) // read in several chunks
	in := strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{"name":"plan_add","arguments":{"title":"` + huge + `"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"plan_list","arguments":{}}}`,
		`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"plan_add","arguments":{"title":"` + huge + `"}},"id":3}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"log","arguments":{}}}`,
	}, "\n") + "\n"
	var out bytes.Buffer
	if err := serve(t.Context(), Options{Dir: dir, Environ: os.Environ()}, io.NopCloser(strings.NewReader(in)), &out); err != nil {
		t.Fatal(err)
	}
	answers := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m struct {
			ID json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("answer %q: %v", line, err)
		}
		answers[string(m.ID)] = line
	}
	tooBig := `"error":{"code":-32600,"message":"invalid request: a message longer than 4096 bytes; codemachine takes messages up to that size"}`
	for id, want := range map[string]string{
		`"big"`: tooBig,
		`null`:  tooBig,
		`2`:     `tasks`,
		`4`:     `step commits, newest first`,
	} {
		if !strings.Contains(answers[id], want) {
			t.Errorf("answer to %s: %q, want it to hold %q", id, answers[id], want)
		}
	}
	if st := testenv.Git(t, dir, "status", "--porcelain"); st != "" {
		t.Errorf("a message too big changed the checkout:\n%s", st)
	}
}

// TestLeadingID: the id of a message cut short is found when it comes
// before what was cut.
func TestLeadingID(t *testing.T) {
	for _, c := range []struct{ start, want string }{
		{`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","argu`, `7`},
		{`{"jsonrpc":"2.0","id":"a-1","params":{"arguments":{"title":"xxxx`, `"a-1"`},
		{`{"jsonrpc":"2.0","method":"tools/call","params":{"arguments":{"title":"xxxx`, ``},
		{`{"jsonrpc":"2.0","id":{"x":1},"params":{"argu`, ``},
		{`[{"jsonrpc":"2.0","id":1,"params":{"argu`, ``},
		{`not json at all`, ``},
	} {
		if got := string(leadingID([]byte(c.start))); got != c.want {
			t.Errorf("leadingID(%s) = %s, want %s", c.start, got, c.want)
		}
	}
}

// TestCallBeforeInitialize: the SDK refuses a call before initialize with
// an error of code 0, which JSON-RPC does not have (a client may read it as
// no error at all); the answer has -32600, and the session goes on.
func TestCallBeforeInitialize(t *testing.T) {
	dir := newRepo(t)
	in := strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"plan_list","arguments":{}}}`,
	}, "\n") + "\n"
	var out bytes.Buffer
	if err := serve(t.Context(), Options{Dir: dir, Environ: os.Environ()}, io.NopCloser(strings.NewReader(in)), &out); err != nil {
		t.Fatal(err)
	}
	answers := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m struct {
			ID json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("answer %q: %v", line, err)
		}
		answers[string(m.ID)] = line
	}
	if want := `"error":{"code":-32600,"message":"method \"tools/list\" is invalid during session initialization"}`; !strings.Contains(answers["1"], want) {
		t.Errorf("answer to the call before initialize: %q, want it to hold %q", answers["1"], want)
	}
	if !strings.Contains(answers["3"], "tasks") {
		t.Errorf("answer to the call after initialize: %q", answers["3"])
	}
}

// TestWithCodes: any other error answer of code 0 is an internal error;
// the lines around it, and text that only quotes such an answer, are
// left as they were.
func TestWithCodes(t *testing.T) {
	in := `{"jsonrpc":"2.0","id":1,"result":{"text":"\"error\":{\"code\":0,"}}` + "\n" +
		`{"jsonrpc":"2.0","id":2,"error":{"code":0,"message":"boom"}}` + "\n"
	got, ok := withCodes([]byte(in))
	want := `{"jsonrpc":"2.0","id":1,"result":{"text":"\"error\":{\"code\":0,"}}` + "\n" +
		`{"jsonrpc":"2.0","id":2,"error":{"code":-32603,"message":"boom"}}` + "\n"
	if !ok || string(got) != want {
		t.Errorf("withCodes:\n%s\nwant:\n%s", got, want)
	}
	if _, ok := withCodes([]byte(`{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"x"}}` + "\n")); ok {
		t.Error("an answer with a code was rewritten")
	}
}
