package fakellm

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// This file speaks the two OpenAI APIs: Responses (Codex) and Chat
// Completions (opencode through @ai-sdk/openai-compatible).

func (a *answer) responseID() string { return "resp_fake_" + strconv.Itoa(a.seq) }

// responseItems are the output items of a Responses answer, as
// response.output_item.done and response.completed carry them.
func (a *answer) responseItems() []map[string]any {
	var items []map[string]any
	if a.text != "" {
		items = append(items, map[string]any{
			"id": fmt.Sprintf("msg_fake_%d", a.seq), "type": "message", "status": "completed", "role": "assistant",
			"content": []any{map[string]any{"type": "output_text", "text": a.text, "annotations": []any{}}},
		})
	}
	for i, c := range a.calls {
		if c.custom {
			items = append(items, map[string]any{
				"id": fmt.Sprintf("ctc_fake_%d_%d", a.seq, i), "type": "custom_tool_call", "status": "completed",
				"call_id": c.id, "name": c.name, "input": c.text,
			})
			continue
		}
		items = append(items, map[string]any{
			"id": fmt.Sprintf("fc_fake_%d_%d", a.seq, i), "type": "function_call", "status": "completed",
			"call_id": c.id, "name": c.name, "arguments": a.argsJSON(c),
		})
	}
	if items == nil {
		items = []map[string]any{}
	}
	return items
}

func responsesUsage(u Usage) map[string]any {
	return map[string]any{
		"input_tokens":          u.Input,
		"input_tokens_details":  map[string]any{"cached_tokens": 0},
		"output_tokens":         u.Output,
		"output_tokens_details": map[string]any{"reasoning_tokens": 0},
		"total_tokens":          u.Input + u.Output,
	}
}

func (a *answer) response(status string, output []map[string]any, usage any) map[string]any {
	return map[string]any{
		"id": a.responseID(), "object": "response", "created_at": created, "status": status,
		"model": a.model, "output": output, "usage": usage,
	}
}

// responsesStream numbers the events of one Responses stream.
type responsesStream struct {
	*sse
	seq int
}

func (s *responsesStream) send(typ string, fields map[string]any) {
	fields["type"] = typ
	fields["sequence_number"] = s.seq
	s.seq++
	s.event(typ, fields)
}

// writeResponses answers a Responses request: response.created, then per
// output item output_item.added, its deltas (output_text, function call
// arguments, custom tool call input) and output_item.done, then
// response.completed with usage; or the response object as JSON.
func writeResponses(w http.ResponseWriter, a *answer, stream bool) {
	items := a.responseItems()
	if !stream {
		writeJSON(w, http.StatusOK, a.response("completed", items, responsesUsage(a.usage)))
		return
	}
	s := &responsesStream{sse: startSSE(w)}
	s.send("response.created", map[string]any{"response": a.response("in_progress", []map[string]any{}, nil)})
	s.send("response.in_progress", map[string]any{"response": a.response("in_progress", []map[string]any{}, nil)})
	for idx, item := range items {
		id := item["id"]
		added := map[string]any{}
		for k, v := range item {
			added[k] = v
		}
		added["status"] = "in_progress"
		switch item["type"] {
		case "message":
			added["content"] = []any{}
			s.send("response.output_item.added", map[string]any{"output_index": idx, "item": added})
			s.send("response.content_part.added", map[string]any{"item_id": id, "output_index": idx, "content_index": 0,
				"part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})
			for _, piece := range chunks(a.text, textChunk) {
				s.send("response.output_text.delta", map[string]any{"item_id": id, "output_index": idx, "content_index": 0, "delta": piece})
			}
			s.send("response.output_text.done", map[string]any{"item_id": id, "output_index": idx, "content_index": 0, "text": a.text})
			s.send("response.content_part.done", map[string]any{"item_id": id, "output_index": idx, "content_index": 0,
				"part": map[string]any{"type": "output_text", "text": a.text, "annotations": []any{}}})
		case "function_call":
			args, _ := item["arguments"].(string)
			added["arguments"] = ""
			s.send("response.output_item.added", map[string]any{"output_index": idx, "item": added})
			for _, piece := range chunks(args, argsChunk) {
				s.send("response.function_call_arguments.delta", map[string]any{"item_id": id, "output_index": idx, "delta": piece})
			}
			s.send("response.function_call_arguments.done", map[string]any{"item_id": id, "output_index": idx, "arguments": args})
		case "custom_tool_call":
			input, _ := item["input"].(string)
			added["input"] = ""
			s.send("response.output_item.added", map[string]any{"output_index": idx, "item": added})
			for _, piece := range chunks(input, argsChunk) {
				s.send("response.custom_tool_call_input.delta", map[string]any{"item_id": id, "output_index": idx, "delta": piece})
			}
			s.send("response.custom_tool_call_input.done", map[string]any{"item_id": id, "output_index": idx, "input": input})
		}
		s.send("response.output_item.done", map[string]any{"output_index": idx, "item": item})
	}
	s.send("response.completed", map[string]any{"response": a.response("completed", items, responsesUsage(a.usage))})
}

func writeResponsesMalformed(w http.ResponseWriter, a *answer) {
	s := &responsesStream{sse: startSSE(w)}
	s.send("response.created", map[string]any{"response": a.response("in_progress", []map[string]any{}, nil)})
	s.raw("event: response.output_item.added\n" + garbage)
}

func (a *answer) chatID() string { return "chatcmpl-fake-" + strconv.Itoa(a.seq) }

func chatFinishReason(a *answer) string {
	if len(a.calls) > 0 {
		return "tool_calls"
	}
	return "stop"
}

func chatUsage(u Usage) map[string]any {
	return map[string]any{"prompt_tokens": u.Input, "completion_tokens": u.Output, "total_tokens": u.Input + u.Output}
}

func (a *answer) chatChunk(choices []any) map[string]any {
	return map[string]any{"id": a.chatID(), "object": "chat.completion.chunk", "created": created, "model": a.model, "choices": choices}
}

func chatDelta(delta map[string]any, finish any) []any {
	return []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}
}

// writeChat answers a Chat Completions request: chunks with content deltas
// and tool_calls deltas (id and name first, then argument pieces), a chunk
// with finish_reason, a usage chunk when the request asked for
// stream_options.include_usage, and [DONE]; or one chat.completion object.
func writeChat(w http.ResponseWriter, a *answer, stream, includeUsage bool) {
	if !stream {
		msg := map[string]any{"role": "assistant", "content": nil}
		if a.text != "" {
			msg["content"] = a.text
		}
		if len(a.calls) > 0 {
			var calls []any
			for _, c := range a.calls {
				calls = append(calls, map[string]any{"id": c.id, "type": "function",
					"function": map[string]any{"name": c.name, "arguments": a.argsJSON(c)}})
			}
			msg["tool_calls"] = calls
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": a.chatID(), "object": "chat.completion", "created": created, "model": a.model,
			"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": chatFinishReason(a)}},
			"usage":   chatUsage(a.usage),
		})
		return
	}
	s := startSSE(w)
	s.data(a.chatChunk(chatDelta(map[string]any{"role": "assistant", "content": ""}, nil)))
	for _, piece := range chunks(a.text, textChunk) {
		s.data(a.chatChunk(chatDelta(map[string]any{"content": piece}, nil)))
	}
	for i, c := range a.calls {
		s.data(a.chatChunk(chatDelta(map[string]any{"tool_calls": []any{map[string]any{
			"index": i, "id": c.id, "type": "function", "function": map[string]any{"name": c.name, "arguments": ""},
		}}}, nil)))
		for _, piece := range chunks(a.argsJSON(c), argsChunk) {
			s.data(a.chatChunk(chatDelta(map[string]any{"tool_calls": []any{map[string]any{
				"index": i, "function": map[string]any{"arguments": piece},
			}}}, nil)))
		}
	}
	s.data(a.chatChunk(chatDelta(map[string]any{}, chatFinishReason(a))))
	if includeUsage {
		chunk := a.chatChunk([]any{})
		chunk["usage"] = chatUsage(a.usage)
		s.data(chunk)
	}
	s.raw("data: [DONE]\n\n")
}

func writeChatMalformed(w http.ResponseWriter, a *answer) {
	s := startSSE(w)
	s.data(a.chatChunk(chatDelta(map[string]any{"role": "assistant", "content": ""}, nil)))
	s.raw(garbage)
}

// openAIErrorType is the error.type OpenAI's APIs use for a status.
func openAIErrorType(status int) string {
	switch {
	case status == 401:
		return "authentication_error"
	case status == 403:
		return "permission_error"
	case status == 404:
		return "not_found_error"
	case status == 429:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// writeOpenAIError writes {"error":{message,type,param,code}}. A 429 gets
// code rate_limit_exceeded; with RetryAfter its message ends in "Please try
// again in Ns.", the sentence Codex parses for its back-off.
func writeOpenAIError(w http.ResponseWriter, f *Failure) {
	typ := f.Type
	if typ == "" {
		typ = openAIErrorType(f.status())
	}
	msg := f.message()
	var code any
	if f.status() == 429 {
		code = "rate_limit_exceeded"
		if f.RetryAfter > 0 {
			if !strings.HasSuffix(msg, ".") {
				msg += "."
			}
			msg += fmt.Sprintf(" Please try again in %ss.", strconv.FormatFloat(f.RetryAfter.Seconds(), 'f', -1, 64))
		}
	}
	writeJSON(w, f.status(), map[string]any{"error": map[string]any{
		"message": msg, "type": typ, "param": nil, "code": code,
	}})
}

// retryAfterHeaders announces a retry delay the ways the SDKs read it:
// retry-after in whole seconds (rounded up) and retry-after-ms.
func retryAfterHeaders(w http.ResponseWriter, d time.Duration) {
	if d <= 0 {
		return
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	w.Header().Set("Retry-After-Ms", strconv.FormatInt(d.Milliseconds(), 10))
}
