package fakellm

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// API names the protocol a request spoke.
type API string

// The APIs and endpoints the server answers.
const (
	APIAnthropic   API = "anthropic"    // POST /v1/messages
	APIResponses   API = "responses"    // POST /v1/responses (Codex)
	APIChat        API = "chat"         // POST /v1/chat/completions (opencode)
	APIGemini      API = "gemini"       // POST /v1beta/models/M:streamGenerateContent, :generateContent
	APICountTokens API = "count_tokens" // Anthropic /v1/messages/count_tokens, Gemini :countTokens
	APIHealth      API = "health"       // HEAD or GET /
	APINPM         API = "npm"          // GET /npm-registry-sink/... (always 404)
	APIUnknown     API = "unknown"      // anything else (404); a test can assert there is none
)

// Request is the log entry of one HTTP request the server received.
type Request struct {
	Seq    int       `json:"seq"` // 1-based order of arrival
	Time   time.Time `json:"time"`
	API    API       `json:"api"`
	Method string    `json:"method"`
	Path   string    `json:"path"` // path and query as received
	Model  string    `json:"model,omitempty"`
	Stream bool      `json:"stream,omitempty"`
	// Turn is the index in Script.Turns that this request was answered (or
	// failed) with; -1 for requests outside the script (Aux, health, npm).
	Turn int `json:"turn"`
	// Aux is set for tool-less helper requests (session titles, Gemini's
	// model router, token counting), answered without using a turn.
	Aux bool `json:"aux,omitempty"`
	// Exhausted is set when the script had no turn left for this request.
	Exhausted bool     `json:"exhausted,omitempty"`
	Tools     []string `json:"tools,omitempty"` // names of the tools offered, in request order
	Calls     []string `json:"calls,omitempty"` // names of the tools the answer called
	// Messages is the number of conversation items sent (messages,
	// contents, input items): a resumed session sends its history.
	Messages int `json:"messages,omitempty"`
	// UserText is the last text part of the last user message that has
	// text: the prompt (a tool result is not user text).
	UserText string      `json:"user_text,omitempty"`
	Cwd      string      `json:"cwd,omitempty"`   // the working directory the CLI stated in its prompt
	Fault    FailureKind `json:"fault,omitempty"` // the injected failure; "" when answered normally
	Status   int         `json:"status"`          // HTTP status answered; 0 while pending or when the client left
	// Error says why the server could not serve the turn it chose (no
	// offered tool fits a call, an unreadable body); it answered 400.
	Error string `json:"error,omitempty"`
	// Body is the raw request body (not in the JSON form of the entry).
	Body []byte `json:"-"`
}

// toolSpec is one tool a request offered.
type toolSpec struct {
	name   string
	custom bool            // freeform text input (OpenAI "custom" tools)
	props  map[string]bool // parameter names of a function tool
}

// incoming is what the server needs to know of a model request, whatever
// its API.
type incoming struct {
	api      API
	model    string
	stream   bool
	tools    []toolSpec
	cwd      string
	schema   map[string]any // the JSON schema the answer must follow ("" = free text)
	messages int
	userText string
	// includeUsage: a Chat Completions stream must end with a usage chunk.
	includeUsage bool
	// jsonArray: a Gemini stream without alt=sse, answered as a JSON array.
	jsonArray bool
}

func (in *incoming) tool(name string) (toolSpec, bool) {
	for _, t := range in.tools {
		if t.name == name {
			return t, true
		}
	}
	return toolSpec{}, false
}

func (in *incoming) toolNames() []string {
	names := make([]string, len(in.tools))
	for i, t := range in.tools {
		names[i] = t.name
	}
	return names
}

// parseIncoming decodes a model request body of the given API. model is the
// model named in the URL (Gemini), "" otherwise.
func parseIncoming(api API, model string, stream bool, body []byte) (*incoming, error) {
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("decode %s request body: %w", api, err)
	}
	in := &incoming{api: api, model: model, stream: stream}
	if m, ok := raw["model"].(string); ok && in.model == "" {
		in.model = m
	}
	if s, ok := raw["stream"].(bool); ok {
		in.stream = s
	}
	switch api {
	case APIAnthropic:
		for _, t := range list(raw["tools"]) {
			tm, _ := t.(map[string]any)
			name, _ := tm["name"].(string)
			if name == "" {
				continue
			}
			in.tools = append(in.tools, toolSpec{name: name, props: schemaProps(tm["input_schema"])})
		}
		in.schema = mapAt(raw, "output_config", "format", "schema")
		msgs := list(raw["messages"])
		in.messages = len(msgs)
		in.userText = lastUserText(msgs, "role", "user", "content")
	case APIResponses:
		for _, t := range list(raw["tools"]) {
			tm, _ := t.(map[string]any)
			name, _ := tm["name"].(string)
			typ, _ := tm["type"].(string)
			if name == "" {
				// Hosted tools (web_search, ...) have a type and no name.
				name = typ
			}
			if name == "" {
				continue
			}
			in.tools = append(in.tools, toolSpec{name: name, custom: typ == "custom", props: schemaProps(tm["parameters"])})
		}
		in.schema = mapAt(raw, "text", "format", "schema")
		items := list(raw["input"])
		in.messages = len(items)
		in.userText = lastUserText(items, "role", "user", "content")
	case APIChat:
		for _, t := range list(raw["tools"]) {
			fn := mapAt(asMap(t), "function")
			name, _ := fn["name"].(string)
			if name == "" {
				continue
			}
			in.tools = append(in.tools, toolSpec{name: name, props: schemaProps(fn["parameters"])})
		}
		in.schema = mapAt(raw, "response_format", "json_schema", "schema")
		in.includeUsage, _ = mapAt(raw, "stream_options")["include_usage"].(bool)
		msgs := list(raw["messages"])
		in.messages = len(msgs)
		in.userText = lastUserText(msgs, "role", "user", "content")
	case APIGemini:
		for _, t := range list(raw["tools"]) {
			for _, d := range list(asMap(t)["functionDeclarations"]) {
				dm := asMap(d)
				name, _ := dm["name"].(string)
				if name == "" {
					continue
				}
				params := dm["parametersJsonSchema"]
				if params == nil {
					params = dm["parameters"]
				}
				in.tools = append(in.tools, toolSpec{name: name, props: schemaProps(params)})
			}
		}
		in.schema = mapAt(raw, "generationConfig", "responseJsonSchema")
		if in.schema == nil {
			in.schema = mapAt(raw, "generationConfig", "responseSchema")
		}
		contents := list(raw["contents"])
		in.messages = len(contents)
		in.userText = lastUserText(contents, "role", "user", "parts")
	}
	in.cwd = findCwd(raw)
	return in, nil
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// mapAt follows keys through nested objects; nil when any is missing.
func mapAt(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m = asMap(m[k])
		if m == nil {
			return nil
		}
	}
	return m
}

func schemaProps(schema any) map[string]bool {
	props := map[string]bool{}
	for k := range asMap(asMap(schema)["properties"]) {
		props[k] = true
	}
	return props
}

// lastUserText returns the last text part of the last item whose roleKey
// is role and that carries text: a string content, or text parts
// ({"type":"text"}, {"type":"input_text"}, Gemini's {"text"}). The CLIs put
// context (system reminders, session context) in parts before the prompt,
// so the last part is the prompt; items holding only tool results are
// skipped, so on a follow-up turn this is still the prompt.
func lastUserText(items []any, roleKey, role, contentKey string) string {
	for i := len(items) - 1; i >= 0; i-- {
		m := asMap(items[i])
		if r, _ := m[roleKey].(string); r != role {
			continue
		}
		if s, ok := m[contentKey].(string); ok {
			return s
		}
		parts := list(m[contentKey])
		for j := len(parts) - 1; j >= 0; j-- {
			pm := asMap(parts[j])
			typ, _ := pm["type"].(string)
			if typ != "" && typ != "text" && typ != "input_text" {
				continue
			}
			if s, ok := pm["text"].(string); ok {
				return s
			}
		}
	}
	return ""
}

// cwdPatterns find the working directory that each CLI states in its prompt:
// Codex's <environment_context><cwd>, Claude's and opencode's "Working
// directory:" lines, Gemini's session context.
var cwdPatterns = []*regexp.Regexp{
	// Codex: <environment_context><cwd>/repo</cwd>.
	regexp.MustCompile(`<cwd>([^<\n]+)</cwd>`),
	// Claude: " - Primary working directory: /repo"; opencode: "  Working directory: /repo".
	regexp.MustCompile(`(?m)^[ \t*-]*(?:Primary working directory|Working directory|Current working directory)\s*:\s*(/[^\n]*?)\s*$`),
	// Gemini: "- **Workspace Directories:**\n  - /repo" in <session_context>.
	regexp.MustCompile(`\*\*Workspace Directories:\*\*\s*\n\s*-\s*(/[^\n]*?)\s*(?:\n|$)`),
}

// findCwd searches every string of the request, in a stable order, for a
// statement of the working directory.
func findCwd(raw map[string]any) string {
	var texts []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			if strings.Contains(v, "/") {
				texts = append(texts, v)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if k == "tools" {
					// Tool descriptions show example paths, never the cwd.
					continue
				}
				walk(v[k])
			}
		}
	}
	walk(raw)
	for _, re := range cwdPatterns {
		for _, s := range texts {
			if m := re.FindStringSubmatch(s); m != nil {
				return strings.TrimSpace(m[1])
			}
		}
	}
	return ""
}
