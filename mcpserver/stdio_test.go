package mcpserver

import "testing"

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
