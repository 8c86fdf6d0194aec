package orchestrator

import (
	"errors"
	"testing"
)

func TestParseVerdict(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    verdict
		wantErr bool
	}{
		{"approve", `Looks right.` + "\n" + `{"verdict": "approve"}`, verdict{Approve: true}, false},
		{"approve alone", `{"verdict":"approve"}`, verdict{Approve: true}, false},
		{"reject", "The test is missing.\n{\"verdict\": \"reject\", \"reasons\": \"add a test for empty input\"}\n",
			verdict{Reasons: "add a test for empty input"}, false},
		{"reject over lines", "Notes.\n{\n  \"verdict\": \"reject\",\n  \"reasons\": \"rename x\"\n}",
			verdict{Reasons: "rename x"}, false},
		{"fenced", "ok\n```json\n{\"verdict\": \"approve\"}\n```", verdict{Approve: true}, false},
		{"braces in prose before", "use {x}\n{\"verdict\": \"approve\"}", verdict{Approve: true}, false},
		{"after prose on its line", `Looks right. {"verdict": "approve"}`, verdict{Approve: true}, false},
		{"reject after prose on its line", "Notes.\nNot yet: {\"verdict\": \"reject\", \"reasons\": \"say {v2}\"}",
			verdict{Reasons: "say {v2}"}, false},
		{"opened after prose, over lines", "Verdict: {\n  \"verdict\": \"approve\"\n}", verdict{Approve: true}, false},
		{"prose with a brace before it on its line", `use {x}: {"verdict": "approve"}`, verdict{}, true},
		{"no object", "APPROVE", verdict{}, true},
		{"text after object", "{\"verdict\": \"approve\"}\nthanks", verdict{}, true},
		{"empty", "", verdict{}, true},
		{"other verdict", `{"verdict": "lgtm"}`, verdict{}, true},
		{"upper case", `{"verdict": "APPROVE"}`, verdict{}, true},
		{"reject without reasons", `{"verdict": "reject"}`, verdict{}, true},
		{"reject blank reasons", `{"verdict": "reject", "reasons": "  "}`, verdict{}, true},
		{"approve with reasons", `{"verdict": "approve", "reasons": "but fix x"}`, verdict{}, true},
		{"unknown key", `{"verdict": "approve", "score": 9}`, verdict{}, true},
		{"no verdict key", `{"reasons": "x"}`, verdict{}, true},
		{"verdict not a string", `{"verdict": true}`, verdict{}, true},
		{"truncated", `{"verdict": "approve"`, verdict{}, true},
		{"two objects", `{"verdict": "reject", "reasons": "x"} {"verdict": "approve"}`, verdict{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVerdict(tt.text)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseVerdict(%q) err = %v, want error %v", tt.text, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errNoVerdict) {
				t.Fatalf("err = %v, want errNoVerdict", err)
			}
			if got != tt.want {
				t.Fatalf("parseVerdict(%q) = %+v, want %+v", tt.text, got, tt.want)
			}
		})
	}
}
