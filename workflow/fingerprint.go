package workflow

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"slices"
	"strconv"
)

// fingerprintVersion is hashed first; change it when the encoding changes so
// that old and new fingerprints can never be equal by accident.
const fingerprintVersion = "codemachine fingerprint v1"

// Fingerprint is the hex SHA-256 that decides whether a step's last result
// still stands. It covers the step's definition, the agent file's
// bytes, the resolved engine and model, and every input file's path and
// blob id. Each part is length-prefixed so no two different inputs encode
// alike.
//
// The definition is normalized: list order in inputs, outputs and needs does
// not count, and settings that only steer how a step runs (timeout,
// parallel, attempts, review, interactive) are left out, so tuning them does
// not re-run finished work.
func Fingerprint(s *Step, agent *Agent, engine, model string, inputs []InputFile) string {
	h := sha256.New()
	field(h, "version", []byte(fingerprintVersion))
	field(h, "step", stepJSON(s))
	if agent != nil {
		field(h, "agent", agent.Raw)
	} else {
		field(h, "no-agent", nil)
	}
	field(h, "engine", []byte(engine))
	field(h, "model", []byte(model))
	sorted := slices.SortedFunc(slices.Values(inputs), func(a, b InputFile) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Hash, b.Hash))
	})
	for _, in := range sorted {
		field(h, "input", []byte(in.Path))
		field(h, "hash", []byte(in.Hash))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func field(h hash.Hash, name string, value []byte) {
	h.Write([]byte(name + " " + strconv.Itoa(len(value)) + "\n"))
	h.Write(value)
	h.Write([]byte("\n"))
}

// stepJSON is the step's normalized definition as canonical JSON: empty
// values left out (so that a key added later changes no fingerprint of a
// step without it), keys sorted (encoding/json sorts map keys).
func stepJSON(s *Step) []byte {
	m := map[string]any{}
	put := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	putList := func(k string, v []string) {
		if len(v) > 0 {
			sorted := slices.Clone(v)
			slices.Sort(sorted)
			m[k] = slices.Compact(sorted)
		}
	}
	put("id", s.ID)
	put("agent", s.Agent)
	put("run", s.Run)
	put("prompt", s.Prompt)
	put("engine", s.Engine)
	put("model", s.Model)
	put("effort", s.Effort)
	if len(s.Env) > 0 {
		m["env"] = s.Env
	}
	putList("inputs", s.Inputs)
	putList("outputs", s.Outputs)
	putList("needs", s.Needs)
	put("foreach", s.Foreach)
	if s.Each != nil {
		each := map[string]string{}
		if s.Each.Glob != "" {
			each["glob"] = s.Each.Glob
		} else {
			each["items"] = s.Each.Items
		}
		m["foreach"] = each
	}
	put("check", s.Check)
	if s.When != nil {
		m["when"] = s.When.Source
	}
	if s.Until != nil {
		m["until"] = s.Until.Source
	}
	if s.OutputSchema != nil {
		m["output_schema"] = string(s.OutputSchema.JSON)
	}
	if s.MCP {
		// The tools an agent has change what it does.
		m["mcp"] = true
	}
	hooks := map[string]string{}
	for k, v := range map[string]string{"before": s.Hooks.Before, "after": s.Hooks.After, "on_failure": s.Hooks.OnFailure} {
		if v != "" {
			hooks[k] = v
		}
	}
	if len(hooks) > 0 {
		m["hooks"] = hooks
	}
	// Strings, string slices and string maps always marshal: no error.
	data, _ := json.Marshal(m)
	return data
}

// TaskFingerprint is a task's fingerprint: its step's (stepFP) and the
// task's text (id, title, body, after:); for a fan-out task also its item
// (a file's blob id, a list item's JSON), so that editing one file makes
// exactly its task due.
func TaskFingerprint(stepFP string, t *Task) string {
	h := sha256.New()
	fmt.Fprintf(h, "codemachine task v1\x00%s\x00%s\x00%s\x00%s\x00", stepFP, t.ID, t.Title, t.Body)
	for _, a := range t.After {
		fmt.Fprintf(h, "%s\x00", a)
	}
	if t.Item != nil {
		fmt.Fprintf(h, "item\x00%s\x00", t.Item.Key())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// WithCondition folds the result of a step's when: into its fingerprint:
// the condition's inputs (files, earlier steps, vars) count through what
// they make it decide, so a skipped step becomes due when its condition
// turns true, and a step that ran is due again (to be skipped) when it
// turns false; an edit that leaves the decision as it was changes nothing.
func WithCondition(fp string, result bool) string {
	h := sha256.New()
	field(h, "step", []byte(fp))
	field(h, "when", []byte(strconv.FormatBool(result)))
	return hex.EncodeToString(h.Sum(nil))
}
