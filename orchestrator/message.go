package orchestrator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/codemachine/codemachine/gitstate"
)

// message is the step commit's message.
func (j *job) message() gitstate.Message {
	u := j.u
	text := strings.TrimSpace(j.out.result.Text)
	var subject, body string
	switch {
	case u.task != nil:
		subject = u.task.Title
		body = text
	case u.step.Run != "":
		subject = "run " + firstLine(u.step.Run)
	default:
		subject, body = summary(text)
		if subject == "" && u.agent != nil && u.agent.Description != "" {
			subject = u.agent.Description
		} else if subject == "" {
			subject = "update " + strings.Join(u.step.Outputs, ", ")
		}
	}
	return gitstate.Message{
		Subject:  fmt.Sprintf("codemachine(%s): %s", u.key(), truncate(subject, 72)),
		Body:     strings.TrimSpace(body + "\n\n" + j.outcomeNotes()),
		Trailers: j.trailers(),
	}
}

// summary splits an agent's final message into the commit's subject, its
// first line, and body, the rest. A message that opens with a Markdown
// code fence (an answer that is a fenced JSON value, as structured
// outputs often are) has no summary line: the subject is then the block's
// JSON value on one line, or else its first line, and the body the whole
// message, its fence whole, rather than "```json" over a body that starts
// mid-block.
func summary(text string) (subject, body string) {
	first, rest, _ := strings.Cut(text, "\n")
	if !isFence(first) {
		subject = firstLine(text)
		if subject == "" {
			return "", ""
		}
		return subject, strings.TrimSpace(rest)
	}
	block, _, _ := strings.Cut(rest, "\n"+strings.TrimSpace(first)[:3])
	var compact bytes.Buffer
	if json.Compact(&compact, []byte(block)) == nil {
		// A pretty-printed value's first line would be "{".
		return compact.String(), text
	}
	for _, line := range strings.Split(rest, "\n") {
		if line = strings.TrimSpace(line); line != "" && !isFence(line) {
			return line, text
		}
	}
	return "", text
}

// isFence reports whether line opens or closes a Markdown code block:
// three or more backticks or tildes, then at most an info string.
func isFence(line string) bool {
	line = strings.TrimSpace(line)
	for _, mark := range []string{"```", "~~~"} {
		if strings.HasPrefix(line, mark) {
			return !strings.Contains(strings.TrimLeft(line, mark[:1]), mark[:1])
		}
	}
	return false
}

// outcomeNotes is what the commit body says about the run besides the
// agent's message: outputs it left unchanged, tool calls that failed.
func (j *job) outcomeNotes() string {
	var b strings.Builder
	if j.out.unchanged != "" {
		fmt.Fprintf(&b, "codemachine: the agent %s.\n", j.out.unchanged)
	}
	if errs := j.out.result.ToolErrors; len(errs) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "Tool errors the CLI reported (%d):\n", len(errs))
		for _, e := range errs {
			b.WriteString("- " + e + "\n")
		}
	}
	return b.String()
}

// by says who did the unit's work, for its Codemachine-By trailer: a
// person in the agent's UI, the agent alone, or nobody for a command, a
// replay (which says nothing of who made the recording) or an agent that
// never ran (its prompt failed to render).
func (j *job) by() string {
	switch {
	case j.u.step.Run != "" || j.engineName == "replay" || j.out.noAgent:
		return ""
	case j.rs.interactive(j.u):
		return ByPerson(j.engineName)
	}
	return ByAgent
}

// ByAgent is the Codemachine-By of a step the agent did alone.
const ByAgent = "agent"

// ByPerson is the Codemachine-By of a step a person drove in engine's UI.
func ByPerson(engine string) string { return "person in " + engine + "'s UI" }

// trailers are the provenance trailers of a step commit or failed ref.
func (j *job) trailers() []gitstate.Trailer {
	u, out := j.u, j.out
	t := []gitstate.Trailer{{Key: gitstate.TrailerStep, Value: u.step.ID}}
	add := func(key, value string) {
		if value != "" {
			t = append(t, gitstate.Trailer{Key: key, Value: value})
		}
	}
	if u.task != nil {
		add(gitstate.TrailerTask, u.task.ID)
	}
	add(gitstate.TrailerEngine, j.engineName)
	add(gitstate.TrailerModel, j.model())
	add(gitstate.TrailerSession, out.result.SessionID)
	add(gitstate.TrailerBy, j.by())
	if u.step.Run == "" {
		add(gitstate.TrailerTokensIn, strconv.FormatInt(out.result.TokensIn, 10))
		add(gitstate.TrailerTokensOut, strconv.FormatInt(out.result.TokensOut, 10))
	}
	if out.result.CostKnown {
		add(gitstate.TrailerCostUSD, strconv.FormatFloat(out.result.CostUSD, 'f', 4, 64))
	}
	took := j.took
	if took == 0 {
		took = j.o.cfg.Now().Sub(j.start)
	}
	add(gitstate.TrailerDuration, took.Round(time.Millisecond).String())
	add(gitstate.TrailerAttempts, strconv.Itoa(max(out.attempts, 1)))
	add(gitstate.TrailerFingerprint, u.fingerprint())
	add(gitstate.TrailerRun, j.rs.id)
	if u.step.Until != nil {
		add(gitstate.TrailerIteration, strconv.Itoa(iteration(j.snap, u)))
	}
	return t
}

// author is the agent's identity: "codemachine <engine>/<model>
// <codemachine@localhost>", the address configurable with
// CODEMACHINE_AUTHOR_EMAIL.
func (o *Orchestrator) author(engineName, model string) gitstate.Signature {
	email := o.getenv("CODEMACHINE_AUTHOR_EMAIL")
	if email == "" {
		email = "codemachine@localhost"
	}
	return gitstate.Signature{Name: "codemachine " + engineLabel(engineName, model), Email: email}
}
