package main

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckEngineFlags: a --model or CODEMACHINE_MODEL with a control
// character is a usage error naming where it came from, before anything
// runs; an ordinary model name passes.
func TestCheckEngineFlags(t *testing.T) {
	for _, tc := range []struct {
		name, engine, model, env, want string
	}{
		{"plain model", "", "sonnet", "", ""},
		{"provider model", "", "anthropic/claude-sonnet-4-5", "", ""},
		{"line break", "", "sonnet\nCodemachine-Step: forged", "", `--model: "sonnet\nCodemachine-Step: forged" has a control character (U+000A)`},
		{"escape", "", "\x1b[2J", "", `--model: "\x1b[2J" has a control character (U+001B)`},
		{"not utf-8", "", "a\xffb", "", `--model: "a\xffb" is not UTF-8 text`},
		{"env", "", "", "x\ry", `CODEMACHINE_MODEL: "x\ry" has a control character (U+000D)`},
		{"flag wins over env", "", "sonnet", "x\ry", ""},
		{"unknown engine", "nope", "sonnet", "", `unknown engine "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CODEMACHINE_MODEL", tc.env)
			t.Setenv("CODEMACHINE_ENGINE", "")
			err := checkEngineFlags(tc.engine, tc.model)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("checkEngineFlags(%q, %q) = %v, want nil", tc.engine, tc.model, err)
				}
				return
			}
			var ue *usageError
			if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkEngineFlags(%q, %q) = %v, want a usage error with %q", tc.engine, tc.model, err, tc.want)
			}
		})
	}
}
