package agents

import (
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		msg    string
		def    Class
		want   Class
	}{
		{429, "", Fatal, Transient},
		{500, "", Fatal, Transient},
		{503, "", Fatal, Transient},
		{529, "overloaded", Fatal, Transient},
		{408, "", Fatal, Transient},
		{400, "please try again", Transient, Fatal},
		{401, "", Transient, Fatal},
		{403, "", Transient, Fatal},
		{404, "", Transient, Fatal},
		{0, "Invalid API key · Please run /login", Transient, Fatal},
		{0, "error: unknown option '--bogus'", Transient, Fatal},
		{0, "No conversation found with session ID: x", Transient, Fatal},
		{0, "Cannot connect to API: Unable to connect", Fatal, Transient},
		{0, "stream disconnected before completion", Fatal, Transient},
		{0, "JSON parsing failed: Unexpected EOF", Fatal, Transient},
		{0, "something odd", Fatal, Fatal},
		{0, "something odd", Transient, Transient},
	}
	for _, tt := range tests {
		if got := classify(tt.status, tt.msg, tt.def); got != tt.want {
			t.Errorf("classify(%d, %q, %s) = %s, want %s", tt.status, tt.msg, tt.def, got, tt.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		msg  string
		want time.Duration
	}{
		{"Rate limit reached. Please try again in 1.5s.", 1500 * time.Millisecond},
		{"Please try again in 20ms", 20 * time.Millisecond},
		{"retry after 3 seconds", 3 * time.Second},
		{"Suggested retry after 7s.. Retrying after 7209ms...", 7 * time.Second},
		{"Retry-After: 2", 2 * time.Second},
		{`"retryDelay": "12s"`, 12 * time.Second},
		{"try again in 2 minutes", 2 * time.Minute},
		{"try again in 90000 minutes", time.Hour},
		{"try again later", 0},
		{"", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.msg); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.msg, got, tt.want)
		}
	}
}

func TestDescribeAPIError(t *testing.T) {
	tests := []struct {
		msg, want string
		status    int
	}{
		{`[API Error: {"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}]`, "API error 400 (INVALID_ARGUMENT): bad", 400},
		{`{"error":{"code":null,"message":"bad","type":"invalid_request_error"}}`, "API error (invalid_request_error): bad", 0},
		{`prefix {"not":"an error"} then {"type":"error","error":{"type":"overloaded_error","message":"busy"}}`,
			"API error (overloaded_error): busy", 0},
		{"no json here", "no json here", 0},
		{`{broken`, `{broken`, 0},
	}
	for _, tt := range tests {
		got, status := describeAPIError(tt.msg)
		if got != tt.want || status != tt.status {
			t.Errorf("describeAPIError(%q) = %q, %d; want %q, %d", tt.msg, got, status, tt.want, tt.status)
		}
	}
}

func TestStatusIn(t *testing.T) {
	tests := map[string]int{
		"API Error: 400 bad":                    400,
		"unexpected status 401 Unauthorized":    401,
		"last status: 429 Too Many Requests":    429,
		"HTTP 502 Bad Gateway":                  502,
		"status code 503":                       503,
		"returned an empty response (HTTP 200)": 0,
		"4000 tokens":                           0,
	}
	for msg, want := range tests {
		if got := statusIn(msg); got != want {
			t.Errorf("statusIn(%q) = %d, want %d", msg, got, want)
		}
	}
}
