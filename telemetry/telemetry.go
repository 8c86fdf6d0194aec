// Package telemetry exports a trace of every run over OTLP/HTTP (protobuf)
// when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
// is set: a span per run, a child span
// per step or task, and under it a span per engine run (attempt), with the
// engine, model, tokens and cost as attributes following OpenTelemetry's
// GenAI semantic conventions. The spans are made from the orchestrator's
// events (their times included), so the orchestrator knows nothing of
// tracing: this package sits above it, like watch.
//
// Unset, Start returns nil and nothing is made or sent: a nil *Tracer
// takes events and does nothing.
package telemetry

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/codemachine/codemachine/orchestrator"
)

// Endpoint variables: either turns tracing on.
const (
	EndpointEnv       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	TracesEndpointEnv = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
)

// Enabled reports whether environ asks for traces.
func Enabled(environ []string) bool {
	return lookup(environ, EndpointEnv) != "" || lookup(environ, TracesEndpointEnv) != ""
}

func lookup(environ []string, key string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(environ[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// Tracer makes spans of one process's runs and sends them in the
// background, in batches, as the SDK's batching processor does: every
// five seconds, or sooner when a batch is full, and what is left at
// Shutdown.
type Tracer struct {
	exp      *exporter
	resource []attr
	version  string

	mu    sync.Mutex
	run   *span            // the run's span, nil between runs
	steps map[string]*span // open step spans, by unit key
	done  []span           // ended, not yet sent
	err   error            // the first export that failed

	sendMu   sync.Mutex // one export at a time, in order
	kick     chan struct{}
	stop     chan struct{}
	loopDone chan struct{}
}

const (
	batchDelay = 5 * time.Second // OTEL_BSP_SCHEDULE_DELAY's default
	batchSize  = 512             // OTEL_BSP_MAX_EXPORT_BATCH_SIZE's default
)

// Start returns a Tracer exporting to the OTLP endpoint the environment
// names (over HTTP with protobuf; the other OTEL_EXPORTER_OTLP_* settings,
// headers, timeout, compression and certificates among them, are read as
// the OTLP exporter specification has them), or nil when environ names
// none. version is codemachine's, the service's version.
func Start(_ context.Context, environ []string, version string) (*Tracer, error) {
	if !Enabled(environ) {
		return nil, nil
	}
	if p := setting(environ, "PROTOCOL"); p != "" && p != "http/protobuf" {
		return nil, fmt.Errorf("traces: OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported; codemachine exports over http/protobuf", p)
	}
	exp, err := newExporter(environ)
	if err != nil {
		return nil, err
	}
	t := &Tracer{exp: exp, resource: resourceAttrs(environ, version), version: version, steps: map[string]*span{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), loopDone: make(chan struct{})}
	go t.loop()
	return t, nil
}

// resourceAttrs describe the service: codemachine and its version, then
// OTEL_RESOURCE_ATTRIBUTES (key=value,...; percent-encoded values), then
// OTEL_SERVICE_NAME, each winning over what comes before.
func resourceAttrs(environ []string, version string) []attr {
	vals := map[string]string{"service.name": "codemachine", "service.version": version, "telemetry.sdk.language": "go"}
	keys := []string{"service.name", "service.version", "telemetry.sdk.language"}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	for _, kv := range strings.Split(lookup(environ, "OTEL_RESOURCE_ATTRIBUTES"), ",") {
		k, v, ok := strings.Cut(kv, "=")
		if val, err := url.PathUnescape(strings.TrimSpace(v)); ok && err == nil && strings.TrimSpace(k) != "" {
			set(strings.TrimSpace(k), val)
		}
	}
	if name := lookup(environ, "OTEL_SERVICE_NAME"); name != "" {
		set("service.name", name)
	}
	attrs := make([]attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, str(k, vals[k]))
	}
	return attrs
}

func (t *Tracer) loop() {
	defer close(t.loopDone)
	tick := time.NewTicker(batchDelay)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		case <-t.kick:
		}
		t.flush(context.Background())
	}
}

// flush sends the ended spans, in batches of batchSize.
func (t *Tracer) flush(ctx context.Context) {
	t.sendMu.Lock()
	defer t.sendMu.Unlock()
	t.mu.Lock()
	batch := t.done
	t.done = nil
	t.mu.Unlock()
	for len(batch) > 0 {
		n := min(len(batch), batchSize)
		err := t.exp.export(ctx, exportRequest(t.resource, "github.com/codemachine/codemachine", t.version, batch[:n]))
		batch = batch[n:]
		if err != nil {
			t.mu.Lock()
			if t.err == nil {
				t.err = err
			}
			t.mu.Unlock()
		}
	}
}

// Shutdown ends what is still open and sends what is left: the first
// export that failed, if one did.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	now := time.Now()
	for k, s := range t.steps {
		t.end(s, now)
		delete(t.steps, k)
	}
	if t.run != nil {
		t.end(t.run, now)
		t.run = nil
	}
	t.mu.Unlock()
	close(t.stop)
	<-t.loopDone
	t.flush(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// open starts a span under parent (a new trace when parent is nil).
func open(parent *span, name string, kind spanKind, at time.Time, attrs ...attr) *span {
	s := &span{name: name, kind: kind, start: at, attrs: attrs}
	if parent != nil {
		s.traceID, s.parentID = parent.traceID, parent.spanID
	} else {
		_, _ = rand.Read(s.traceID[:])
	}
	_, _ = rand.Read(s.spanID[:])
	return s
}

// end ends s at at and queues it; t.mu is held.
func (t *Tracer) end(s *span, at time.Time) {
	s.end = at
	t.done = append(t.done, *s)
	if len(t.done) >= batchSize {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// Event makes spans of a run's events (orchestrator.Config.OnEvent; safe
// for concurrent use, and quick: spans are sent in the background).
func (t *Tracer) Event(e orchestrator.Event) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Kind {
	case orchestrator.RunStarted:
		t.run = open(nil, "codemachine run", kindInternal, e.At, str("codemachine.run.id", e.Run))
	case orchestrator.RunFinished:
		t.endRun(e)
	case orchestrator.StepStarted:
		t.startStep(e)
	case orchestrator.StepAttempt:
		t.attempt(e)
	case orchestrator.StepLanded, orchestrator.StepFailed, orchestrator.StepConflict, orchestrator.StepReview:
		t.endStep(e)
	}
}

func (t *Tracer) endRun(e orchestrator.Event) {
	if t.run == nil {
		return
	}
	t.run.attrs = append(t.run.attrs, integer("codemachine.tokens", e.Tokens), float("codemachine.cost_usd", e.CostUSD))
	if e.Message != "" {
		t.run.status, t.run.message = statusError, e.Message
	}
	t.end(t.run, e.At)
	t.run = nil
}

func (t *Tracer) startStep(e orchestrator.Event) {
	attrs := []attr{str("codemachine.step", e.Step), str("codemachine.engine", e.Engine)}
	if e.Task != "" {
		attrs = append(attrs, str("codemachine.task", e.Task), str("codemachine.task.title", e.Title))
	}
	if e.Model != "" {
		attrs = append(attrs, str("gen_ai.request.model", e.Model))
	}
	t.steps[e.Key()] = open(t.run, "step "+e.Key(), kindInternal, e.At, attrs...)
}

// attempt is the span of one engine run, from its end and its duration.
// An agent's is a GenAI "invoke_agent" span; a command's (shell engine)
// is an "execute" span without GenAI attributes.
func (t *Tracer) attempt(e orchestrator.Event) {
	parent, ok := t.steps[e.Key()]
	if !ok {
		return
	}
	attrs := []attr{integer("codemachine.attempt", int64(e.Attempt)), str("codemachine.engine", e.Engine)}
	name := "execute " + e.Key()
	if e.Engine != "shell" {
		name = "invoke_agent " + e.Key()
		attrs = append(attrs,
			str("gen_ai.operation.name", "invoke_agent"),
			str("gen_ai.agent.name", e.Key()),
			str("gen_ai.provider.name", provider(e.Engine)),
			integer("gen_ai.usage.input_tokens", e.TokensIn),
			integer("gen_ai.usage.output_tokens", e.TokensOut))
		if e.RequestModel != "" {
			attrs = append(attrs, str("gen_ai.request.model", e.RequestModel))
		}
		if e.Model != "" {
			attrs = append(attrs, str("gen_ai.response.model", e.Model))
		}
	}
	if e.CostOK {
		attrs = append(attrs, float("codemachine.cost_usd", e.CostUSD))
	}
	s := open(parent, name, kindClient, e.At.Add(-e.Duration), attrs...)
	if e.Message != "" {
		s.status, s.message = statusError, e.Message
		s.attrs = append(s.attrs, str("error.type", errorType(e.Message)))
	}
	t.end(s, e.At)
}

func (t *Tracer) endStep(e orchestrator.Event) {
	s, ok := t.steps[e.Key()]
	if !ok {
		return
	}
	delete(t.steps, e.Key())
	outcome := map[orchestrator.EventKind]string{orchestrator.StepLanded: "landed", orchestrator.StepFailed: "failed",
		orchestrator.StepConflict: "conflict", orchestrator.StepReview: "review"}[e.Kind]
	s.attrs = append(s.attrs, str("codemachine.outcome", outcome), integer("codemachine.tokens", e.Tokens))
	if e.Commit != "" {
		s.attrs = append(s.attrs, str("codemachine.commit", e.Commit))
	}
	if e.CostOK {
		s.attrs = append(s.attrs, float("codemachine.cost_usd", e.CostUSD))
	}
	if e.Kind == orchestrator.StepFailed || e.Kind == orchestrator.StepConflict {
		s.status, s.message = statusError, firstLine(e.Message)
	}
	t.end(s, e.At)
}

// provider is gen_ai.provider.name for an engine: the vendor whose API its
// CLI calls by default.
func provider(engine string) string {
	switch engine {
	case "claude":
		return "anthropic"
	case "codex":
		return "openai"
	case "gemini":
		return "gcp.gemini"
	}
	return engine // opencode, replay: no one vendor
}

// errorType is error.type for a failed engine run: its class of failure.
func errorType(msg string) string {
	switch {
	case strings.Contains(msg, "timed out"), strings.Contains(msg, "timeout"):
		return "timeout"
	case strings.Contains(msg, "interrupted"), strings.Contains(msg, "canceled"):
		return "canceled"
	}
	return "_OTHER"
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
