package orchestrator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// A reviewer agent's answer ends with its verdict, one JSON object:
//
//	{"verdict": "approve"}
//	{"verdict": "reject", "reasons": "what to change, for the next attempt"}
//
// The object is the last thing in the agent's final message (a closing
// Markdown fence after it is allowed); it may span lines, and may follow
// prose on the line it starts on. Anything else
// (no object, another key, another verdict, a reject without reasons) is
// a reviewer failure, never an approval.

// verdict is a reviewer agent's parsed answer.
type verdict struct {
	Approve bool
	Reasons string // a reject's reasons: the next attempt's feedback
}

// errNoVerdict is the reviewer failure of an answer without a well-formed
// verdict.
var errNoVerdict = errors.New("no verdict")

// verdictFormat is what the reviewer is told to answer with.
const verdictFormat = "End your answer with your verdict, a JSON object and nothing after it:\n\n" +
	"    {\"verdict\": \"approve\"}\n\n" +
	"when the change does what the step asks and is correct, or\n\n" +
	"    {\"verdict\": \"reject\", \"reasons\": \"...\"}\n\n" +
	"with what must change: the reasons are given to the next attempt as they are. " +
	"Any other answer counts as no verdict.\n"

// parseVerdict reads the verdict at the end of a reviewer's final message.
func parseVerdict(text string) (verdict, error) {
	body := strings.TrimRight(text, " \t\r\n")
	if strings.HasSuffix(body, "```") {
		body = strings.TrimRight(strings.TrimSuffix(body, "```"), " \t\r\n")
	}
	if !strings.HasSuffix(body, "}") {
		return verdict{}, fmt.Errorf("%w: the answer does not end with a JSON object", errNoVerdict)
	}
	// The object starts at the first brace of some line, at its
	// beginning or after prose ("Looks right. {...}", as models write
	// it): try the last such line first, then earlier ones (an object
	// spread over lines). Only the first brace of a line, so that two
	// objects on one line (a reject, then an approve) are no verdict.
	lines := strings.Split(body, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		brace := strings.IndexByte(lines[i], '{')
		if brace < 0 {
			continue
		}
		tail := strings.TrimSpace(strings.Join(append([]string{lines[i][brace:]}, lines[i+1:]...), "\n"))
		tail = strings.TrimPrefix(tail, "```json")
		if v, err := decodeVerdict(tail); err == nil || !errors.Is(err, errNotJSON) {
			return v, err
		}
	}
	return verdict{}, fmt.Errorf("%w: the answer does not end with a JSON object", errNoVerdict)
}

// errNotJSON: the text is not one JSON object (an earlier line may start
// it).
var errNotJSON = errors.New("not a JSON object")

// decodeVerdict decodes exactly one verdict object.
func decodeVerdict(s string) (verdict, error) {
	var raw struct {
		Verdict *string `json:"verdict"`
		Reasons *string `json:"reasons"`
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) {
			return verdict{}, errNotJSON
		}
		return verdict{}, fmt.Errorf("%w: %v", errNoVerdict, err)
	}
	if len(bytes.TrimSpace([]byte(s[dec.InputOffset():]))) > 0 {
		return verdict{}, errNotJSON
	}
	switch {
	case raw.Verdict == nil:
		return verdict{}, fmt.Errorf(`%w: the JSON object has no "verdict"`, errNoVerdict)
	case *raw.Verdict == "approve":
		if raw.Reasons != nil && strings.TrimSpace(*raw.Reasons) != "" {
			return verdict{}, fmt.Errorf(`%w: an approval with reasons (approve, or reject with reasons)`, errNoVerdict)
		}
		return verdict{Approve: true}, nil
	case *raw.Verdict == "reject":
		if raw.Reasons == nil || strings.TrimSpace(*raw.Reasons) == "" {
			return verdict{}, fmt.Errorf(`%w: a reject without "reasons"`, errNoVerdict)
		}
		return verdict{Reasons: strings.TrimSpace(*raw.Reasons)}, nil
	}
	return verdict{}, fmt.Errorf(`%w: "verdict" is %q, not "approve" or "reject"`, errNoVerdict, *raw.Verdict)
}
