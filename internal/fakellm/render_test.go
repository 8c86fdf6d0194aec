package fakellm

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// apiCase is a minimal request of one API, offering the tools of the CLI
// that speaks it, with the working directory stated the way that CLI does.
type apiCase struct {
	name       string
	api        API
	streamPath string
	jsonPath   string
	body       func(stream bool) string
}

var apiCases = []apiCase{
	{
		name: "anthropic", api: APIAnthropic,
		streamPath: "/v1/messages?beta=true", jsonPath: "/v1/messages",
		body: func(stream bool) string {
			return fmt.Sprintf(`{"model":"fake-model","stream":%t,"max_tokens":100,
				"system":[{"type":"text","text":"# Environment\n - Primary working directory: /repo\n - Is a git repository: true"}],
				"tools":[{"name":"Write","input_schema":{"type":"object","properties":{"file_path":{"type":"string"},"content":{"type":"string"}}}},
				         {"name":"Bash","input_schema":{"type":"object","properties":{"command":{"type":"string"},"description":{"type":"string"}}}}],
				"messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>ctx</system-reminder>"},{"type":"text","text":"Add src/app.txt."}]}]}`, stream)
		},
	},
	{
		name: "responses", api: APIResponses,
		streamPath: "/v1/responses", jsonPath: "/v1/responses",
		body: func(stream bool) string {
			return fmt.Sprintf(`{"model":"gpt-5.5","stream":%t,
				"tools":[{"type":"function","name":"exec_command","parameters":{"type":"object","properties":{"cmd":{"type":"string"},"workdir":{"type":"string"}}}},
				         {"type":"custom","name":"apply_patch","format":{"type":"grammar"}},
				         {"type":"web_search"}],
				"input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"<environment_context>\n  <cwd>/repo</cwd>\n</environment_context>"}]},
				         {"type":"message","role":"user","content":[{"type":"input_text","text":"Add src/app.txt."}]}]}`, stream)
		},
	},
	{
		name: "chat", api: APIChat,
		streamPath: "/v1/chat/completions", jsonPath: "/v1/chat/completions",
		body: func(stream bool) string {
			return fmt.Sprintf(`{"model":"fake-model","stream":%t,"stream_options":{"include_usage":true},
				"tools":[{"type":"function","function":{"name":"write","parameters":{"type":"object","properties":{"content":{},"filePath":{}}}}},
				         {"type":"function","function":{"name":"bash","parameters":{"type":"object","properties":{"command":{},"timeout":{},"workdir":{}}}}}],
				"messages":[{"role":"system","content":"<env>\n  Working directory: /repo\n</env>"},{"role":"user","content":"Add src/app.txt."}]}`, stream)
		},
	},
	{
		name: "gemini", api: APIGemini,
		streamPath: "/v1beta/models/fake-model:streamGenerateContent?alt=sse", jsonPath: "/v1beta/models/fake-model:generateContent",
		body: func(bool) string {
			return `{"systemInstruction":{"parts":[{"text":"You are Gemini CLI."}]},
				"tools":[{"functionDeclarations":[
				  {"name":"write_file","parametersJsonSchema":{"type":"object","properties":{"file_path":{},"content":{}}}},
				  {"name":"run_shell_command","parametersJsonSchema":{"type":"object","properties":{"command":{},"description":{},"dir_path":{}}}}]}],
				"contents":[{"role":"user","parts":[{"text":"<session_context>\n- **Workspace Directories:**\n  - /repo\n- **Directory Structure:**\n</session_context>"},{"text":"Add src/app.txt."}]}]}`
		},
	},
}

// renderScript has a turn with text, unicode split across deltas, and two
// tool calls, then a final answer.
var renderScript = Script{Turns: []Turn{
	{
		Text:  "Creating src/app.txt — with ünïcödé split across several deltas.",
		Calls: []Call{WriteFile{Path: "src/app.txt", Content: "line 1\nline 2 \"quoted\"\n"}, Shell{Command: "git add -A && git commit -qm 'add app'"}},
		Usage: Usage{Input: 1234, Output: 56},
	},
	{Text: "DONE"},
}}

type exchange struct {
	status int
	header http.Header
	body   string
}

func post(t *testing.T, base, path, body string) exchange {
	t.Helper()
	resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return exchange{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

func (e exchange) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d\n", e.status)
	for _, h := range []string{"Content-Type", "Retry-After", "Retry-After-Ms"} {
		if v := e.header.Get(h); v != "" {
			fmt.Fprintf(&b, "%s: %s\n", h, v)
		}
	}
	b.WriteString("\n" + e.body)
	return b.String()
}

// TestRenderGolden pins the exact bytes of every API's answers: both turns
// streamed and as JSON, a 429 with retry-after, a malformed stream.
func TestRenderGolden(t *testing.T) {
	for _, c := range apiCases {
		for _, stream := range []bool{true, false} {
			mode, path := "json", c.jsonPath
			if stream {
				mode, path = "stream", c.streamPath
			}
			t.Run(c.name+"-"+mode, func(t *testing.T) {
				s := Start(t, renderScript)
				var out strings.Builder
				for range renderScript.Turns {
					fmt.Fprintf(&out, "POST %s\n%s\n", path, post(t, s.URL(), path, c.body(stream)))
				}
				golden(t, "render/"+c.name+"-"+mode, out.String())
			})
		}
		t.Run(c.name+"-error-429", func(t *testing.T) {
			s := Start(t, Script{Turns: []Turn{{Text: "x", Fail: &Failure{Status: 429, RetryAfter: 1500 * time.Millisecond}}}})
			golden(t, "render/"+c.name+"-error-429", post(t, s.URL(), c.streamPath, c.body(true)).String())
		})
		t.Run(c.name+"-malformed", func(t *testing.T) {
			s := Start(t, Script{Turns: []Turn{{Text: "x", Fail: &Failure{Kind: FailMalformed}}}})
			golden(t, "render/"+c.name+"-malformed", post(t, s.URL(), c.streamPath, c.body(true)).String())
		})
	}
}

// decoded is what a client makes of an answer, whatever the API.
type decoded struct {
	text    string
	calls   []string // "name json-args" or "name text:<freeform>"
	input   int64
	output  int64
	toolUse bool // the stop/finish reason says tools were called
}

// TestStreamsReassemble decodes every API's stream and JSON answer the way
// a client does, putting deltas together, and checks that it gets back the
// turn: its text, its calls translated for that CLI, its usage.
func TestStreamsReassemble(t *testing.T) {
	want := map[API][]string{
		APIAnthropic: {
			`Write {"content":"line 1\nline 2 \"quoted\"\n","file_path":"/repo/src/app.txt"}`,
			`Bash {"command":"git add -A \u0026\u0026 git commit -qm 'add app'","description":"fakellm scripted shell command"}`,
		},
		APIResponses: {
			"apply_patch text:*** Begin Patch\n*** Add File: src/app.txt\n+line 1\n+line 2 \"quoted\"\n*** End Patch\n",
			`exec_command {"cmd":"git add -A \u0026\u0026 git commit -qm 'add app'"}`,
		},
		APIChat: {
			`write {"content":"line 1\nline 2 \"quoted\"\n","filePath":"/repo/src/app.txt"}`,
			`bash {"command":"git add -A \u0026\u0026 git commit -qm 'add app'"}`,
		},
		APIGemini: {
			`write_file {"content":"line 1\nline 2 \"quoted\"\n","file_path":"/repo/src/app.txt"}`,
			`run_shell_command {"command":"git add -A \u0026\u0026 git commit -qm 'add app'","description":"fakellm scripted shell command"}`,
		},
	}
	for _, c := range apiCases {
		for _, stream := range []bool{true, false} {
			path := c.jsonPath
			if stream {
				path = c.streamPath
			}
			t.Run(fmt.Sprintf("%s-stream=%t", c.name, stream), func(t *testing.T) {
				s := Start(t, renderScript)
				first := decode(t, c.api, stream, post(t, s.URL(), path, c.body(stream)))
				if first.text != renderScript.Turns[0].Text {
					t.Errorf("text = %q, want %q", first.text, renderScript.Turns[0].Text)
				}
				if strings.Join(first.calls, "\n") != strings.Join(want[c.api], "\n") {
					t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(first.calls, "\n"), strings.Join(want[c.api], "\n"))
				}
				if first.input != 1234 || first.output != 56 || !first.toolUse {
					t.Errorf("usage %d/%d toolUse=%t, want 1234/56 true", first.input, first.output, first.toolUse)
				}
				last := decode(t, c.api, stream, post(t, s.URL(), path, c.body(stream)))
				if last.text != "DONE" || len(last.calls) != 0 || last.toolUse {
					t.Errorf("final answer = %+v, want text DONE without calls", last)
				}
				if last.input != DefaultInputTokens || last.output != DefaultOutputTokens {
					t.Errorf("default usage = %d/%d", last.input, last.output)
				}
				reqs := s.Requests()
				if len(reqs) != 2 || reqs[0].Cwd != "/repo" || reqs[0].UserText != "Add src/app.txt." || reqs[1].Turn != 1 {
					t.Errorf("requests: %v", reqs)
				}
			})
		}
	}
}

// sseEvents splits an SSE body into (event name, data) pairs.
func sseEvents(t *testing.T, body string) [][2]string {
	t.Helper()
	var events [][2]string
	for _, block := range strings.Split(body, "\n\n") {
		if strings.TrimSpace(block) == "" {
			continue
		}
		var name, data string
		for _, line := range strings.Split(block, "\n") {
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data += strings.TrimPrefix(line, "data: ")
			default:
				t.Fatalf("not an SSE line: %q", line)
			}
		}
		events = append(events, [2]string{name, data})
	}
	return events
}

func unmarshal(t *testing.T, data string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatalf("bad JSON %q: %v", data, err)
	}
	return m
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// canonical re-encodes JSON text with sorted keys.
func canonical(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("arguments are not JSON: %q: %v", s, err)
	}
	return string(mustJSON(v))
}

func decode(t *testing.T, api API, stream bool, e exchange) decoded {
	t.Helper()
	if e.status != 200 {
		t.Fatalf("status %d: %s", e.status, e.body)
	}
	var d decoded
	switch {
	case api == APIAnthropic && stream:
		type block struct {
			name, text, args string
			tool             bool
		}
		blocks := map[int]*block{}
		var order []int
		for _, ev := range sseEvents(t, e.body) {
			m := unmarshal(t, ev[1])
			if m["type"] != ev[0] {
				t.Fatalf("event %q carries type %v", ev[0], m["type"])
			}
			idx := int(num(m["index"]))
			switch ev[0] {
			case "message_start":
				d.input = num(asMap(asMap(m["message"])["usage"])["input_tokens"])
			case "content_block_start":
				cb := asMap(m["content_block"])
				b := &block{tool: cb["type"] == "tool_use"}
				b.name, _ = cb["name"].(string)
				blocks[idx] = b
				order = append(order, idx)
			case "content_block_delta":
				delta := asMap(m["delta"])
				s1, _ := delta["text"].(string)
				s2, _ := delta["partial_json"].(string)
				blocks[idx].text += s1
				blocks[idx].args += s2
			case "message_delta":
				d.output = num(asMap(m["usage"])["output_tokens"])
				d.toolUse = asMap(m["delta"])["stop_reason"] == "tool_use"
			}
		}
		for _, i := range order {
			if b := blocks[i]; b.tool {
				d.calls = append(d.calls, b.name+" "+canonical(t, b.args))
			} else {
				d.text += b.text
			}
		}
	case api == APIAnthropic:
		m := unmarshal(t, e.body)
		for _, c := range list(m["content"]) {
			cm := asMap(c)
			if cm["type"] == "text" {
				d.text += cm["text"].(string)
			} else {
				d.calls = append(d.calls, fmt.Sprintf("%s %s", cm["name"], mustJSON(cm["input"])))
			}
		}
		d.input = num(asMap(m["usage"])["input_tokens"])
		d.output = num(asMap(m["usage"])["output_tokens"])
		d.toolUse = m["stop_reason"] == "tool_use"
	case api == APIResponses:
		var items []any
		var usage map[string]any
		if stream {
			deltas := map[string]string{}
			for _, ev := range sseEvents(t, e.body) {
				m := unmarshal(t, ev[1])
				if m["type"] != ev[0] {
					t.Fatalf("event %q carries type %v", ev[0], m["type"])
				}
				id, _ := m["item_id"].(string)
				delta, _ := m["delta"].(string)
				deltas[id] += delta
				switch ev[0] {
				case "response.output_item.done":
					item := asMap(m["item"])
					// The deltas must add up to what the done item says.
					var full string
					switch item["type"] {
					case "message":
						full = asMap(list(item["content"])[0])["text"].(string)
					case "function_call":
						full = item["arguments"].(string)
					case "custom_tool_call":
						full = item["input"].(string)
					}
					if got := deltas[item["id"].(string)]; got != full {
						t.Errorf("deltas of %v = %q, want %q", item["id"], got, full)
					}
					items = append(items, item)
				case "response.completed":
					usage = asMap(asMap(m["response"])["usage"])
				}
			}
		} else {
			m := unmarshal(t, e.body)
			items = list(m["output"])
			usage = asMap(m["usage"])
		}
		for _, it := range items {
			item := asMap(it)
			switch item["type"] {
			case "message":
				d.text += asMap(list(item["content"])[0])["text"].(string)
			case "function_call":
				d.toolUse = true
				d.calls = append(d.calls, fmt.Sprintf("%s %s", item["name"], canonical(t, item["arguments"].(string))))
			case "custom_tool_call":
				d.toolUse = true
				d.calls = append(d.calls, fmt.Sprintf("%s text:%s", item["name"], item["input"]))
			}
		}
		d.input = num(usage["input_tokens"])
		d.output = num(usage["output_tokens"])
	case api == APIChat && stream:
		type tc struct{ name, args string }
		calls := map[int]*tc{}
		events := sseEvents(t, e.body)
		if last := events[len(events)-1]; last[1] != "[DONE]" {
			t.Fatalf("stream does not end with [DONE]: %q", last[1])
		}
		for _, ev := range events[:len(events)-1] {
			m := unmarshal(t, ev[1])
			if u := asMap(m["usage"]); u != nil {
				d.input = num(u["prompt_tokens"])
				d.output = num(u["completion_tokens"])
			}
			for _, ch := range list(m["choices"]) {
				chm := asMap(ch)
				delta := asMap(chm["delta"])
				s, _ := delta["content"].(string)
				d.text += s
				for _, x := range list(delta["tool_calls"]) {
					xm := asMap(x)
					i := int(num(xm["index"]))
					if calls[i] == nil {
						calls[i] = &tc{}
					}
					fn := asMap(xm["function"])
					if n, ok := fn["name"].(string); ok {
						calls[i].name = n
					}
					a, _ := fn["arguments"].(string)
					calls[i].args += a
				}
				if chm["finish_reason"] == "tool_calls" {
					d.toolUse = true
				}
			}
		}
		for i := 0; i < len(calls); i++ {
			d.calls = append(d.calls, calls[i].name+" "+canonical(t, calls[i].args))
		}
	case api == APIChat:
		m := unmarshal(t, e.body)
		choice := asMap(list(m["choices"])[0])
		msg := asMap(choice["message"])
		d.text, _ = msg["content"].(string)
		for _, x := range list(msg["tool_calls"]) {
			fn := asMap(asMap(x)["function"])
			d.calls = append(d.calls, fmt.Sprintf("%s %s", fn["name"], canonical(t, fn["arguments"].(string))))
		}
		d.toolUse = choice["finish_reason"] == "tool_calls"
		d.input = num(asMap(m["usage"])["prompt_tokens"])
		d.output = num(asMap(m["usage"])["completion_tokens"])
	case api == APIGemini:
		var responses []map[string]any
		if stream {
			for _, ev := range sseEvents(t, e.body) {
				responses = append(responses, unmarshal(t, ev[1]))
			}
		} else {
			responses = append(responses, unmarshal(t, e.body))
		}
		for _, r := range responses {
			for _, p := range list(asMap(asMap(list(r["candidates"])[0])["content"])["parts"]) {
				pm := asMap(p)
				s, _ := pm["text"].(string)
				d.text += s
				if fc := asMap(pm["functionCall"]); fc != nil {
					d.toolUse = true
					d.calls = append(d.calls, fmt.Sprintf("%s %s", fc["name"], mustJSON(fc["args"])))
				}
			}
			if u := asMap(r["usageMetadata"]); u != nil {
				d.input = num(u["promptTokenCount"])
				d.output = num(u["candidatesTokenCount"])
			}
		}
	}
	return d
}

// TestErrorBodies checks each API's error format and status-dependent
// error types, and the retry hints of a 429.
func TestErrorBodies(t *testing.T) {
	tests := []struct {
		status                    int
		anthropic, openai, gemini string
	}{
		{400, "invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"},
		{401, "authentication_error", "authentication_error", "UNAUTHENTICATED"},
		{403, "permission_error", "permission_error", "PERMISSION_DENIED"},
		{404, "not_found_error", "not_found_error", "NOT_FOUND"},
		{429, "rate_limit_error", "rate_limit_error", "RESOURCE_EXHAUSTED"},
		{500, "api_error", "server_error", "INTERNAL"},
		{503, "api_error", "server_error", "UNAVAILABLE"},
		{529, "overloaded_error", "server_error", "INTERNAL"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			for _, c := range apiCases {
				s := Start(t, Script{Turns: []Turn{{Fail: &Failure{Status: tt.status, RetryAfter: 2 * time.Second}}}})
				e := post(t, s.URL(), c.streamPath, c.body(true))
				if e.status != tt.status {
					t.Errorf("%s: status %d, want %d", c.name, e.status, tt.status)
				}
				if e.header.Get("Retry-After") != "2" || e.header.Get("Retry-After-Ms") != "2000" {
					t.Errorf("%s: retry headers %q %q", c.name, e.header.Get("Retry-After"), e.header.Get("Retry-After-Ms"))
				}
				m := unmarshal(t, e.body)
				errObj := asMap(m["error"])
				var typ any
				want := tt.openai
				switch c.api {
				case APIAnthropic:
					typ, want = errObj["type"], tt.anthropic
					if m["type"] != "error" {
						t.Errorf("anthropic: top-level type %v", m["type"])
					}
				case APIGemini:
					typ, want = errObj["status"], tt.gemini
					if num(errObj["code"]) != int64(tt.status) {
						t.Errorf("gemini: code %v", errObj["code"])
					}
					retry := asMap(list(errObj["details"])[0])
					if retry["retryDelay"] != "2s" {
						t.Errorf("gemini: retry info %v", retry)
					}
				default:
					typ = errObj["type"]
					if tt.status == 429 && (errObj["code"] != "rate_limit_exceeded" || !strings.HasSuffix(errObj["message"].(string), "Please try again in 2s.")) {
						t.Errorf("%s: 429 error %v", c.name, errObj)
					}
				}
				if typ != want {
					t.Errorf("%s: error type %v, want %s", c.name, typ, want)
				}
				if msg, _ := errObj["message"].(string); !strings.HasPrefix(msg, fmt.Sprintf("fakellm: scripted error %d", tt.status)) {
					t.Errorf("%s: message %q", c.name, msg)
				}
			}
		})
	}
}

func TestErrorOverrides(t *testing.T) {
	s := Start(t, Script{Turns: []Turn{{Fail: &Failure{Status: 400, Message: "custom", Type: "server_error"}}}})
	e := post(t, s.URL(), "/v1/chat/completions", apiCases[2].body(true))
	errObj := asMap(unmarshal(t, e.body)["error"])
	if errObj["message"] != "custom" || errObj["type"] != "server_error" {
		t.Errorf("error = %v, want the scripted message and type", errObj)
	}
	if e.header.Get("Retry-After") != "" {
		t.Errorf("retry-after without RetryAfter: %q", e.header.Get("Retry-After"))
	}
}
