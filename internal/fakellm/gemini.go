package fakellm

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

func geminiUsage(u Usage) map[string]any {
	return map[string]any{"promptTokenCount": u.Input, "candidatesTokenCount": u.Output, "totalTokenCount": u.Input + u.Output}
}

func (a *answer) geminiResponse(parts []any, last bool) map[string]any {
	cand := map[string]any{"content": map[string]any{"role": "model", "parts": parts}, "index": 0}
	resp := map[string]any{"candidates": []any{cand}, "modelVersion": a.model, "responseId": "resp_fake_" + strconv.Itoa(a.seq)}
	if last {
		cand["finishReason"] = "STOP"
		resp["usageMetadata"] = geminiUsage(a.usage)
	}
	return resp
}

func (a *answer) geminiCallParts() []any {
	var parts []any
	for _, c := range a.calls {
		parts = append(parts, map[string]any{"functionCall": map[string]any{"id": c.id, "name": c.name, "args": c.args}})
	}
	return parts
}

// writeGemini answers generateContent (one JSON response) or
// streamGenerateContent?alt=sse (one response per text piece, then the
// functionCall parts with finishReason STOP and usageMetadata). array is
// streamGenerateContent without alt=sse, which is a JSON array of
// responses: here one.
func writeGemini(w http.ResponseWriter, a *answer, stream, array bool) {
	if !stream {
		var parts []any
		if a.text != "" {
			parts = append(parts, map[string]any{"text": a.text})
		}
		parts = append(parts, a.geminiCallParts()...)
		if parts == nil {
			parts = []any{}
		}
		if array {
			writeJSON(w, http.StatusOK, []any{a.geminiResponse(parts, true)})
			return
		}
		writeJSON(w, http.StatusOK, a.geminiResponse(parts, true))
		return
	}
	s := startSSE(w)
	pieces := chunks(a.text, textChunk)
	calls := a.geminiCallParts()
	for i, piece := range pieces {
		last := i == len(pieces)-1 && len(calls) == 0
		s.data(a.geminiResponse([]any{map[string]any{"text": piece}}, last))
	}
	if len(calls) > 0 || len(pieces) == 0 {
		if calls == nil {
			// An empty answer still ends with a usage-bearing response.
			calls = []any{map[string]any{"text": ""}}
		}
		s.data(a.geminiResponse(calls, true))
	}
}

func writeGeminiMalformed(w http.ResponseWriter, a *answer) {
	s := startSSE(w)
	s.data(a.geminiResponse([]any{map[string]any{"text": "fakellm"}}, false))
	s.raw(garbage)
}

// geminiStatus is the google.rpc status name Gemini's API uses for an HTTP
// status.
func geminiStatus(status int) string {
	switch status {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 409:
		return "ABORTED"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 501:
		return "UNIMPLEMENTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

// writeGeminiError writes {"error":{code,message,status}}; a RetryAfter
// becomes a google.rpc.RetryInfo detail, where Gemini CLI looks for the
// delay of a retryable quota error.
func writeGeminiError(w http.ResponseWriter, f *Failure) {
	status := f.Type
	if status == "" {
		status = geminiStatus(f.status())
	}
	e := map[string]any{"code": f.status(), "message": f.message(), "status": status}
	if f.RetryAfter > 0 {
		secs := strconv.FormatFloat(f.RetryAfter.Seconds(), 'f', -1, 64)
		e["details"] = []any{map[string]any{
			"@type":      "type.googleapis.com/google.rpc.RetryInfo",
			"retryDelay": secs + "s",
		}}
	}
	writeJSON(w, f.status(), map[string]any{"error": e})
}

func geminiCountTokens(w http.ResponseWriter, body []byte) {
	writeJSON(w, http.StatusOK, map[string]any{"totalTokens": estimateTokens(body)})
}

// geminiRoute splits ".../models/{model}:{method}" into model and method.
func geminiRoute(path string) (model, method string, ok bool) {
	i := strings.LastIndex(path, "/models/")
	if i < 0 {
		return "", "", false
	}
	rest := path[i+len("/models/"):]
	model, method, ok = strings.Cut(rest, ":")
	if !ok || model == "" || strings.Contains(model, "/") {
		return "", "", false
	}
	return model, method, true
}

// geminiMethodError is returned for a models/ path whose method the server
// does not speak.
func geminiMethodError(method string) string {
	return fmt.Sprintf("fakellm: unsupported Gemini method %q", method)
}
