package fakellm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
)

// chatBody is a tool-bearing Chat Completions request (opencode's tools).
var chatBody = apiCases[2].body(false)

func TestTurnsAndFailures(t *testing.T) {
	s := Start(t, Script{Turns: []Turn{
		{Text: "first", Fail: &Failure{Status: 500, Times: 2}},
		{Text: "second", Fail: &Failure{Status: 400}},
	}})
	type step struct {
		status int
		turn   int
		text   string
	}
	want := []step{
		{500, 0, ""}, {500, 0, ""}, {200, 0, "first"}, // two failures, then the turn
		{400, 1, ""}, {400, 1, ""}, {400, 1, ""}, // Times 0: the turn never comes
	}
	for i, w := range want {
		e := post(t, s.URL(), "/v1/chat/completions", chatBody)
		if e.status != w.status {
			t.Fatalf("request %d: status %d, want %d: %s", i, e.status, w.status, e.body)
		}
		if w.text != "" {
			if d := decode(t, APIChat, false, e); d.text != w.text {
				t.Errorf("request %d: text %q, want %q", i, d.text, w.text)
			}
		}
		if got := s.Requests()[i]; got.Turn != w.turn || got.Status != w.status || (w.status != 200) != (got.Fault == FailStatus) {
			t.Errorf("request %d logged as %v", i, got)
		}
	}
	if n := s.TurnsServed(); n != 1 {
		t.Errorf("TurnsServed = %d, want 1", n)
	}
}

func TestExhausted(t *testing.T) {
	s := Start(t, Script{Turns: []Turn{{Text: "only"}}})
	for i, want := range []string{"only", ExhaustedText, ExhaustedText} {
		d := decode(t, APIChat, false, post(t, s.URL(), "/v1/chat/completions", chatBody))
		if d.text != want {
			t.Errorf("request %d: %q, want %q", i, d.text, want)
		}
	}
	reqs := s.Requests()
	if reqs[0].Exhausted || !reqs[1].Exhausted || reqs[1].Turn != -1 {
		t.Errorf("log: %v", reqs)
	}
	if s.TurnsServed() != 1 {
		t.Errorf("TurnsServed = %d", s.TurnsServed())
	}
}

// TestAuxRequests: tool-less requests (titles, routers) are answered
// outside the script, following a requested JSON schema.
func TestAuxRequests(t *testing.T) {
	s := Start(t, Script{Turns: []Turn{{Text: "the turn"}}})
	tests := []struct {
		name, path, body string
		api              API
		want             string
	}{
		{"opencode title", "/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`, APIChat, AuxText},
		{"claude title", "/v1/messages?beta=true",
			`{"model":"m","stream":false,"tools":[],"messages":[],"output_config":{"format":{"type":"json_schema","schema":{"type":"object","properties":{"title":{"type":"string"}},"required":["title"]}}}}`,
			APIAnthropic, `{"title":"fakellm"}`},
		{"gemini router", "/v1beta/models/gemini-3.5-flash-lite:generateContent",
			`{"contents":[],"generationConfig":{"responseMimeType":"application/json","responseJsonSchema":{"type":"OBJECT","properties":{"complexity_reasoning":{"type":"STRING"},"complexity_score":{"type":"INTEGER","minimum":1}}}}}`,
			APIGemini, `{"complexity_reasoning":"fakellm","complexity_score":1}`},
		{"responses schema", "/v1/responses",
			`{"model":"m","input":[],"text":{"format":{"type":"json_schema","schema":{"type":"object","properties":{"ok":{"type":"boolean"},"tags":{"type":"array"},"kind":{"enum":["a","b"]}}}}}}`,
			APIResponses, `{"kind":"a","ok":false,"tags":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := strings.Contains(tt.body, `"stream":true`)
			d := decode(t, tt.api, stream, post(t, s.URL(), tt.path, tt.body))
			if d.text != tt.want {
				t.Errorf("aux answer %q, want %q", d.text, tt.want)
			}
		})
	}
	for _, r := range s.Requests() {
		if !r.Aux || r.Turn != -1 {
			t.Errorf("not logged as aux: %v", r)
		}
	}
	if d := decode(t, APIChat, false, post(t, s.URL(), "/v1/chat/completions", chatBody)); d.text != "the turn" {
		t.Errorf("aux requests used the turn: got %q", d.text)
	}
}

func TestSampleOf(t *testing.T) {
	tests := []struct {
		schema map[string]any
		want   string
	}{
		{nil, `null`},
		{map[string]any{"type": "string"}, `"fakellm"`},
		{map[string]any{"const": "x"}, `"x"`},
		{map[string]any{"type": []any{"integer", "null"}}, `0`},
		{map[string]any{"anyOf": []any{map[string]any{"type": "boolean"}}}, `false`},
		{map[string]any{"type": "null"}, `null`},
		{map[string]any{"properties": map[string]any{"a": map[string]any{"type": "number", "minimum": 2.5}}}, `{"a":2.5}`},
		{map[string]any{"type": "OBJECT", "properties": map[string]any{"n": map[string]any{"type": "OBJECT", "properties": map[string]any{"s": map[string]any{"enum": []any{"p", "q"}}}}}}, `{"n":{"s":"p"}}`},
	}
	for _, tt := range tests {
		if got := string(mustJSON(sampleOf(tt.schema, 0))); got != tt.want {
			t.Errorf("sampleOf(%v) = %s, want %s", tt.schema, got, tt.want)
		}
	}
	// A recursive schema ends.
	rec := map[string]any{"type": "object"}
	rec["properties"] = map[string]any{"self": rec}
	if got := string(mustJSON(sampleOf(rec, 0))); !strings.Contains(got, "null") {
		t.Errorf("recursive schema: %s", got)
	}
}

func TestDelay(t *testing.T) {
	s := Start(t, Script{Turns: []Turn{{Text: "late", Delay: 300 * time.Millisecond}}})
	start := time.Now()
	d := decode(t, APIChat, false, post(t, s.URL(), "/v1/chat/completions", chatBody))
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("answered after %v, want >= 300ms", took)
	}
	if d.text != "late" {
		t.Errorf("text %q", d.text)
	}
}

// TestHang: a hanging request is logged while it hangs, ends when the
// client gives up, and Close does not wait for it.
func TestHang(t *testing.T) {
	s := New(Script{Turns: []Turn{{Text: "never", Fail: &Failure{Kind: FailHang, Times: 1}}}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/v1/chat/completions", strings.NewReader(chatBody))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a hanging request was answered: %d", resp.StatusCode)
	}
	r := s.Requests()[0]
	if r.Fault != FailHang || r.Status != 0 || r.Turn != 0 {
		t.Errorf("hang logged as %v", r)
	}
	// The next request gets the turn (Times 1).
	if d := decode(t, APIChat, false, post(t, s.URL(), "/v1/chat/completions", chatBody)); d.text != "never" {
		t.Errorf("after the hang: %q", d.text)
	}

	// A request hanging forever must not hold up Close.
	s2 := New(Script{Turns: []Turn{{Fail: &Failure{Kind: FailHang}}}})
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Post(s2.URL()+"/v1/chat/completions", "application/json", strings.NewReader(chatBody))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for len(s2.Requests()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { s2.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(testenv.Patience()):
		t.Fatal("Close waited for a hanging request")
	}
	if err := <-errc; err == nil {
		t.Error("the hanging request got an answer after Close")
	}
	s.Close()
	s.Close() // twice is fine
}

// TestDelayEndsWithClient: a client that gives up during a delay ends it,
// and the turn it did not get goes to its retry.
func TestDelayEndsWithClient(t *testing.T) {
	finished := make(chan Request, 10)
	s, err := Listen(Script{Turns: []Turn{
		{Text: "slow", Delay: 300 * time.Millisecond},
		{Text: "failing", Delay: 300 * time.Millisecond, Fail: &Failure{Status: 503, Times: 1}},
	}}, Options{OnRequest: func(r Request) { finished <- r }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// giveUp sends a request that leaves before the delay is over and
	// waits until the server has finished with it.
	giveUp := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/v1/chat/completions", strings.NewReader(chatBody))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("answered before the delay")
		}
		if r := <-finished; r.Status != 0 {
			t.Errorf("the abandoned request is logged as %v", r)
		}
	}
	giveUp()
	if d := decode(t, APIChat, false, post(t, s.URL(), "/v1/chat/completions", chatBody)); d.text != "slow" {
		t.Errorf("the retry got %q, want the turn the first request gave up on", d.text)
	}
	<-finished
	giveUp()
	if e := post(t, s.URL(), "/v1/chat/completions", chatBody); e.status != 503 {
		t.Errorf("the retry got %d, want the failure the first request gave up on", e.status)
	}
	<-finished
	if d := decode(t, APIChat, false, post(t, s.URL(), "/v1/chat/completions", chatBody)); d.text != "failing" {
		t.Errorf("after the failure: %q", d.text)
	}
}

func TestConcurrentRequestsGetDistinctTurns(t *testing.T) {
	var turns []Turn
	for i := 0; i < 40; i++ {
		turns = append(turns, Turn{Text: fmt.Sprint(i)})
	}
	s := Start(t, Script{Turns: turns})
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]bool{}
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(s.URL()+"/v1/chat/completions", "application/json", strings.NewReader(chatBody))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var m map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
				t.Error(err)
				return
			}
			text := asMap(asMap(list(m["choices"])[0])["message"])["content"].(string)
			mu.Lock()
			seen[text] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(seen) != 40 || s.TurnsServed() != 40 {
		t.Errorf("%d distinct turns served of 40 (TurnsServed %d)", len(seen), s.TurnsServed())
	}
}

func TestRoutes(t *testing.T) {
	s := Start(t, Script{})
	tests := []struct {
		method, path, body string
		status             int
		api                API
	}{
		{http.MethodHead, "/", "", 200, APIHealth},
		{http.MethodGet, "/", "", 200, APIHealth},
		{http.MethodGet, "/npm-registry-sink/@opencode-ai%2fplugin", "", 404, APINPM},
		{http.MethodPost, "/v1/messages/count_tokens", `{"messages":[]}`, 200, APICountTokens},
		{http.MethodPost, "/v1beta/models/fake-model:countTokens", `{"contents":[]}`, 200, APICountTokens},
		{http.MethodPost, "/v1beta/models/fake-model:embedContent", `{}`, 404, APIGemini},
		{http.MethodGet, "/v1/models", "", 404, APIUnknown},
		{http.MethodGet, "/v1/messages", "", 404, APIUnknown},
		{http.MethodPost, "/v1/messages", `{not json`, 400, APIAnthropic},
		{http.MethodPost, "/messages", `{"model":"m","messages":[]}`, 200, APIAnthropic}, // base URL without /v1
	}
	for i, tt := range tests {
		req, _ := http.NewRequest(tt.method, s.URL()+tt.path, strings.NewReader(tt.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		r := s.Requests()[i]
		if resp.StatusCode != tt.status || r.API != tt.api || r.Status != tt.status {
			t.Errorf("%s %s: status %d, logged %v; want %d %s", tt.method, tt.path, resp.StatusCode, r, tt.status, tt.api)
		}
	}
	if r := s.Requests()[8]; !strings.Contains(r.Error, "decode anthropic request body") {
		t.Errorf("bad body error: %q", r.Error)
	}
}

func TestGeminiStreamWithoutSSE(t *testing.T) {
	s := Start(t, Script{Turns: []Turn{{Text: "array"}}})
	e := post(t, s.URL(), "/v1beta/models/m:streamGenerateContent", apiCases[3].body(true))
	if !strings.HasPrefix(e.body, "[{") || !strings.Contains(e.body, `"text":"array"`) {
		t.Errorf("body %s, want a JSON array of one response", e.body)
	}
}

func TestGeminiRoute(t *testing.T) {
	tests := []struct {
		path, model, method string
		ok                  bool
	}{
		{"/v1beta/models/fake-model:streamGenerateContent", "fake-model", "streamGenerateContent", true},
		{"/v1/models/gemini-3.1-pro-preview:generateContent", "gemini-3.1-pro-preview", "generateContent", true},
		{"/v1beta/models/:generateContent", "", "", false},
		{"/v1beta/models/a/b:generateContent", "", "", false},
		{"/v1beta/models/fake-model", "", "", false},
		{"/v1/responses", "", "", false},
	}
	for _, tt := range tests {
		model, method, ok := geminiRoute(tt.path)
		if model != tt.model || method != tt.method || ok != tt.ok {
			t.Errorf("geminiRoute(%q) = %q %q %t", tt.path, model, method, ok)
		}
	}
}

func TestChunks(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want []string
	}{
		{"", 4, nil},
		{"abc", 4, []string{"abc"}},
		{"abcdefgh", 4, []string{"abcd", "efgh"}},
		{"aéb", 2, []string{"a", "é", "b"}}, // é is two bytes: never split
		{"ééé", 3, []string{"é", "é", "é"}},
		{"\x80\x80\x80\x80", 2, []string{"\x80\x80", "\x80\x80"}}, // invalid UTF-8 still ends
	}
	for _, tt := range tests {
		got := chunks(tt.s, tt.n)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("chunks(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}

func TestFindCwd(t *testing.T) {
	tests := []struct {
		name string
		body map[string]any
		want string
	}{
		{"claude", map[string]any{"system": []any{map[string]any{"text": "# Environment\n - Primary working directory: /tmp/repo one\n - Is a git repository: true"}}}, "/tmp/repo one"},
		{"opencode", map[string]any{"messages": []any{map[string]any{"content": "<env>\n  Working directory: /w/r\n  Workspace root folder: /w\n</env>"}}}, "/w/r"},
		{"codex", map[string]any{"input": []any{map[string]any{"text": "<environment_context>\n  <cwd>/x/y</cwd>\n</environment_context>"}}}, "/x/y"},
		{"gemini", map[string]any{"contents": []any{map[string]any{"text": "- **Workspace Directories:**\n  - /g/h\n- **Directory Structure:**"}}}, "/g/h"},
		{"tools ignored", map[string]any{"tools": []any{map[string]any{"description": "Working directory: /not/this"}}}, ""},
		{"none", map[string]any{"messages": []any{"no path here"}}, ""},
	}
	for _, tt := range tests {
		if got := findCwd(tt.body); got != tt.want {
			t.Errorf("%s: findCwd = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestLastUserText(t *testing.T) {
	items := []any{
		map[string]any{"role": "user", "content": "first prompt"},
		map[string]any{"role": "assistant", "content": "ok"},
		map[string]any{"role": "user", "content": []any{map[string]any{"type": "tool_result", "content": "x"}}},
	}
	if got := lastUserText(items, "role", "user", "content"); got != "first prompt" {
		t.Errorf("skipping tool results: %q", got)
	}
	items = append(items, map[string]any{"role": "user", "content": []any{
		map[string]any{"type": "text", "text": "<system-reminder>"},
		map[string]any{"type": "image"},
		map[string]any{"type": "input_text", "text": "second"},
	}})
	if got := lastUserText(items, "role", "user", "content"); got != "second" {
		t.Errorf("last text part: %q", got)
	}
}

func TestRequestString(t *testing.T) {
	r := Request{Seq: 3, Method: "POST", Path: "/v1/responses", API: APIResponses, Model: "gpt-5.5", Turn: 1,
		Tools: []string{"a", "b"}, Calls: []string{"apply_patch"}, Fault: FailStatus, Status: 429, Error: `no "tool"`}
	want := `#3 POST /v1/responses [responses model=gpt-5.5 turn=1 tools=2 calls=apply_patch fault=status status=429 error="no \"tool\""]`
	if got := r.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
	aux := Request{Seq: 1, Method: "POST", Path: "/p", API: APIChat, Aux: true, Turn: -1, Exhausted: true, Status: 200}
	if got := aux.String(); got != "#1 POST /p [chat aux exhausted status=200]" {
		t.Errorf("String() = %s", got)
	}
}

func TestRequestsIsACopy(t *testing.T) {
	s := Start(t, Script{Turns: []Turn{{Text: "x"}}})
	post(t, s.URL(), "/v1/chat/completions", chatBody)
	reqs := s.Requests()
	reqs[0].Tools[0] = "changed"
	reqs[0].Body[0] = 'X'
	if again := s.Requests()[0]; again.Tools[0] == "changed" || again.Body[0] == 'X' {
		t.Error("Requests shares memory with the server's log")
	}
}

func TestOnRequest(t *testing.T) {
	var mu sync.Mutex
	var got []Request
	s, err := Listen(Script{Turns: []Turn{{Text: "x"}}}, Options{OnRequest: func(r Request) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	post(t, s.URL(), "/v1/chat/completions", chatBody)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Status != 200 || got[0].API != APIChat {
		t.Errorf("OnRequest got %v", got)
	}
}

func TestListenBadAddr(t *testing.T) {
	if _, err := Listen(Script{}, Options{Addr: "256.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "listen on 256.0.0.1:0") {
		t.Errorf("Listen = %v", err)
	}
}
