package fakellm

import (
	"net/http"
	"strconv"
)

// answer is one model response, in neutral form, ready to render in any
// API's format.
type answer struct {
	seq   int // request sequence number, for unique, stable ids
	model string
	text  string
	calls []outCall
	usage Usage
}

// Deltas are cut into pieces this big (bytes), so that clients must
// assemble them as with a real model.
const (
	textChunk = 24
	argsChunk = 48
)

// created is the fixed creation time (2026-01-01T00:00:00Z) put in
// responses, which keeps rendered streams reproducible.
const created = 1767225600

func (a *answer) argsJSON(c outCall) string {
	return string(mustJSON(c.args))
}

func anthropicStopReason(a *answer) string {
	if len(a.calls) > 0 {
		return "tool_use"
	}
	return "end_turn"
}

func anthropicUsage(input, output int64) map[string]any {
	return map[string]any{
		"input_tokens":                input,
		"output_tokens":               output,
		"cache_creation_input_tokens": 0,
		"cache_read_input_tokens":     0,
	}
}

func (a *answer) anthropicID() string { return "msg_fake_" + strconv.Itoa(a.seq) }

// writeAnthropic answers a Messages request: an SSE stream
// (message_start, content blocks with text_delta / input_json_delta,
// message_delta with usage, message_stop) or one JSON message.
func writeAnthropic(w http.ResponseWriter, a *answer, stream bool) {
	if !stream {
		var content []any
		if a.text != "" {
			content = append(content, map[string]any{"type": "text", "text": a.text})
		}
		for _, c := range a.calls {
			content = append(content, map[string]any{"type": "tool_use", "id": c.id, "name": c.name, "input": c.args})
		}
		if content == nil {
			content = []any{}
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": a.anthropicID(), "type": "message", "role": "assistant", "model": a.model,
			"content": content, "stop_reason": anthropicStopReason(a), "stop_sequence": nil,
			"usage": anthropicUsage(a.usage.Input, a.usage.Output),
		})
		return
	}
	s := startSSE(w)
	s.event("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": a.anthropicID(), "type": "message", "role": "assistant", "model": a.model,
		"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
		"usage": anthropicUsage(a.usage.Input, 1),
	}})
	index := 0
	if a.text != "" {
		s.event("content_block_start", map[string]any{"type": "content_block_start", "index": index,
			"content_block": map[string]any{"type": "text", "text": ""}})
		for _, piece := range chunks(a.text, textChunk) {
			s.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": index,
				"delta": map[string]any{"type": "text_delta", "text": piece}})
		}
		s.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": index})
		index++
	}
	for _, c := range a.calls {
		s.event("content_block_start", map[string]any{"type": "content_block_start", "index": index,
			"content_block": map[string]any{"type": "tool_use", "id": c.id, "name": c.name, "input": map[string]any{}}})
		for _, piece := range chunks(a.argsJSON(c), argsChunk) {
			s.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": index,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": piece}})
		}
		s.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": index})
		index++
	}
	s.event("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": anthropicStopReason(a), "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": a.usage.Output}})
	s.event("message_stop", map[string]any{"type": "message_stop"})
}

// writeAnthropicMalformed starts a valid stream, then breaks it.
func writeAnthropicMalformed(w http.ResponseWriter, a *answer) {
	s := startSSE(w)
	s.event("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": a.anthropicID(), "type": "message", "role": "assistant", "model": a.model,
		"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
		"usage": anthropicUsage(a.usage.Input, 1),
	}})
	s.raw("event: content_block_start\n" + garbage)
}

// anthropicErrorType is the error.type Anthropic's API uses for a status.
func anthropicErrorType(status int) string {
	switch status {
	case 400, 422:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	return "api_error"
}

func writeAnthropicError(w http.ResponseWriter, f *Failure) {
	typ := f.Type
	if typ == "" {
		typ = anthropicErrorType(f.status())
	}
	writeJSON(w, f.status(), map[string]any{"type": "error",
		"error": map[string]any{"type": typ, "message": f.message()}})
}

// anthropicCountTokens answers /v1/messages/count_tokens with an estimate
// from the body size (about four bytes a token).
func anthropicCountTokens(w http.ResponseWriter, body []byte) {
	writeJSON(w, http.StatusOK, map[string]any{"input_tokens": estimateTokens(body)})
}

func estimateTokens(body []byte) int {
	return len(body)/4 + 1
}
