package agents

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/codemachine/codemachine/internal/lazyre"
)

// statusClass classifies a failed model request by its HTTP status: a rate
// limit, a request timeout and server errors may pass (Transient); any other
// 4xx is the request itself, the credentials or the account (Fatal). ok is
// false for 0 and other statuses that say nothing.
func statusClass(status int) (c Class, ok bool) {
	switch {
	case status == 408 || status == 425 || status == 429 || status == 529:
		return Transient, true
	case status >= 500 && status <= 599:
		return Transient, true
	case status >= 400 && status <= 499:
		return Fatal, true
	}
	return Fatal, false
}

// fatalHints are phrases of messages that no retry can fix: credentials,
// permissions, bad requests, a bad command line or configuration, a session
// that does not exist. They are checked before transientHints, so that
// "invalid api key (connection ...)" stays fatal.
var fatalHints = []string{
	"authenticat", "unauthorized", "api key", "api_key", "apikey", "credential", "login", "log in",
	"permission", "forbidden", "invalid request", "invalid_request", "invalid argument", "invalid_argument",
	"bad request", "not found", "no conversation", "no rollout", "no previous sessions", "unknown option",
	"unknown argument", "unexpected argument", "unrecognized", "usage:", "config", "cannot be used with root",
	"credit balance", "usage limit", "billing", "quota", "context length", "context window", "too long",
	"max_turns", "maximum number of turns",
}

// transientHints are phrases of messages about the network, overload or a
// broken response: the next attempt may well succeed.
var transientHints = []string{
	"rate limit", "rate_limit", "too many requests", "overloaded", "timeout", "timed out", "econnreset",
	"econnrefused", "etimedout", "socket hang up", "network", "connection", "connect", "fetch failed",
	"stream disconnected", "stream closed", "temporar", "high demand", "unavailable", "try again",
	"malformed", "unexpected end of json", "json pars", "parse error", "internal error", "server error",
	"server_error", "bad gateway", "gateway",
}

// hintClass classifies a failure message by its wording; ok is false when
// no phrase matched.
func hintClass(msg string) (c Class, ok bool) {
	m := strings.ToLower(msg)
	for _, h := range fatalHints {
		if strings.Contains(m, h) {
			return Fatal, true
		}
	}
	for _, h := range transientHints {
		if strings.Contains(m, h) {
			return Transient, true
		}
	}
	return Fatal, false
}

// classify decides a failure's class: from the HTTP status when the engine
// reported one, else from its message, else def.
func classify(status int, msg string, def Class) Class {
	if c, ok := statusClass(status); ok {
		return c
	}
	if c, ok := hintClass(msg); ok {
		return c
	}
	return def
}

// retryAfterRe finds a retry delay in an error message, in the wordings of
// the four CLIs and their APIs: "Please try again in 1.5s", "retry after 3
// seconds", "Suggested retry after 1s", "Retry-After: 2", "retryDelay":
// "7s", "retry in 200ms".
var retryAfterRe = lazyre.New(`(?i)(?:try again in|retry after|retry-after:?|retry in|retrydelay"?\s*:\s*")\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?)?\b`)

// parseRetryAfter returns the first retry delay s mentions, 0 if none.
func parseRetryAfter(s string) time.Duration {
	m := retryAfterRe().FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil || n < 0 {
		return 0
	}
	unit := time.Second
	switch u := strings.ToLower(m[2]); {
	case strings.HasPrefix(u, "ms") || strings.HasPrefix(u, "milli"):
		unit = time.Millisecond
	case u == "m" || strings.HasPrefix(u, "min"):
		unit = time.Minute
	}
	d := time.Duration(n * float64(unit))
	const maxRetryAfter = time.Hour // a bigger hint is a quota reset, not a back-off
	if d > maxRetryAfter {
		d = maxRetryAfter
	}
	return d
}

// apiError is what an error message that embeds an API's JSON error body
// says: {"error":{"code":400,"message":"...","status":"INVALID_ARGUMENT"}}
// (Gemini), {"error":{"message":"...","type":"invalid_request_error"}}
// (OpenAI) or {"type":"error","error":{"type":"...","message":"..."}}
// (Anthropic).
type apiError struct {
	status int
	msg    string
	kind   string // type or status word
}

// parseAPIError finds the first JSON object in s that holds an API error.
func parseAPIError(s string) (apiError, bool) {
	for i := strings.IndexByte(s, '{'); i >= 0; {
		dec := json.NewDecoder(strings.NewReader(s[i:]))
		var v struct {
			Error json.RawMessage `json:"error"`
		}
		if dec.Decode(&v) == nil && len(v.Error) > 0 {
			var e struct {
				Code    json.RawMessage `json:"code"`
				Message string          `json:"message"`
				Status  string          `json:"status"`
				Type    string          `json:"type"`
			}
			if json.Unmarshal(v.Error, &e) == nil && e.Message != "" {
				ae := apiError{msg: e.Message, kind: e.Type}
				if ae.kind == "" {
					ae.kind = e.Status
				}
				if n, err := strconv.Atoi(string(e.Code)); err == nil {
					ae.status = n
				}
				return ae, true
			}
		}
		j := strings.IndexByte(s[i+1:], '{')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return apiError{}, false
}

// describeAPIError rewrites a message that wraps a JSON error body into a
// readable line: "[API Error: {"error":{"code":400,"message":"bad",
// "status":"INVALID_ARGUMENT"}}]" becomes "API error 400 (INVALID_ARGUMENT):
// bad". It also returns the status found in the body (0 if none).
func describeAPIError(msg string) (string, int) {
	ae, ok := parseAPIError(msg)
	if !ok {
		return msg, 0
	}
	return apiErrorLine(ae.status, ae.kind, ae.msg), ae.status
}

// apiErrorLine formats a model API's error: "API error 429
// (rate_limit_error): slow down", leaving out what is unknown.
func apiErrorLine(status int, kind, msg string) string {
	var b strings.Builder
	b.WriteString("API error")
	if status != 0 {
		b.WriteString(" " + strconv.Itoa(status))
	}
	if kind != "" {
		b.WriteString(" (" + kind + ")")
	}
	b.WriteString(": " + msg)
	return b.String()
}

// statusRe finds an HTTP status in an error message: "API Error: 400 ...",
// "unexpected status 401 Unauthorized", "last status: 429 Too Many
// Requests", "status code 503", "HTTP 502".
var statusRe = lazyre.New(`(?i)(?:api error:?|status(?: code)?:?|http)\s*([45][0-9]{2})\b`)

// statusIn returns the HTTP status an error message names, 0 if none.
func statusIn(msg string) int {
	m := statusRe().FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// oneLine squeezes an engine's message into one line of bounded length, as
// the orchestrator prints failures.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxMessageLine {
		cut := maxMessageLine
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
