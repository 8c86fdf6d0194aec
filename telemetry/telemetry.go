// Package telemetry exports a trace of every run through the OpenTelemetry
// Go SDK when OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: a span per run, a child span
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
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/codemachine/codemachine/orchestrator"
)

// Endpoint variables: either turns tracing on.
const (
	EndpointEnv       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	TracesEndpointEnv = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
)

// Enabled reports whether environ asks for traces: it names an endpoint,
// and neither turns the SDK off (OTEL_SDK_DISABLED=true) nor names no
// traces exporter (OTEL_TRACES_EXPORTER=none), as the OpenTelemetry
// environment variables specify.
func Enabled(environ []string) bool {
	if strings.EqualFold(strings.TrimSpace(lookup(environ, "OTEL_SDK_DISABLED")), "true") ||
		strings.EqualFold(strings.TrimSpace(lookup(environ, "OTEL_TRACES_EXPORTER")), "none") {
		return false
	}
	return lookup(environ, EndpointEnv) != "" || lookup(environ, TracesEndpointEnv) != ""
}

// protocol is the OTLP protocol environ asks for traces:
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL.
func protocol(environ []string) (name, value string) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := lookup(environ, k); v != "" {
			return k, v
		}
	}
	return "", ""
}

func lookup(environ []string, key string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(environ[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// Tracer makes spans of one process's runs.
type Tracer struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	warn   *onceHandler

	mu    sync.Mutex
	run   context.Context // the run span's context, nil between runs
	runSp trace.Span
	steps map[string]stepSpan // by unit key
}

type stepSpan struct {
	ctx  context.Context
	span trace.Span
	// retry is why the unit runs again (StepRetrying's message), when it
	// said so.
	retry string
}

// Start returns a Tracer exporting to the OTLP endpoint the environment
// names (over HTTP with protobuf; readHTTPConfig reads the other
// OTEL_EXPORTER_OTLP_* settings, headers and timeouts among them), or nil when environ names
// none. version is codemachine's, the service's version. The first
// export that fails (a collector that is down or refuses) is told on
// warn, once, as a note; later ones are not: traces never stop a run or
// fill its output.
func Start(ctx context.Context, environ []string, version string, warn io.Writer) (*Tracer, error) {
	if !Enabled(environ) {
		return nil, nil
	}
	h := &onceHandler{w: warn}
	otel.SetErrorHandler(h)
	if k, p := protocol(environ); p != "" && p != "http/protobuf" {
		return nil, fmt.Errorf("traces: %s=%s is not supported; codemachine exports over http/protobuf", k, p)
	}
	cfg, err := readHTTPConfig(environ)
	if err != nil {
		return nil, fmt.Errorf("traces: %w", err)
	}
	exp := newExporter(cfg, version)
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", "codemachine"), attribute.String("service.version", version)))
	if err != nil {
		return nil, fmt.Errorf("traces: %w", err)
	}
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracer{tp: tp, tracer: tp.Tracer("github.com/codemachine/codemachine"), warn: h, steps: map[string]stepSpan{}}, nil
}

// onceHandler is the SDK's error handler (otel.SetErrorHandler): it says
// the first error as a codemachine note, in place of the SDK's own
// timestamped log line for every failed export.
type onceHandler struct {
	w    io.Writer
	once sync.Once
}

// Handle tells err the first time it is called.
func (h *onceHandler) Handle(err error) {
	h.once.Do(func() {
		if h.w != nil {
			fmt.Fprintf(h.w, "codemachine: note: %v (later trace export errors are not shown)\n", err)
		}
	})
}

// Shutdown ends what is still open and sends what is left, until ctx
// ends. Spans it could not send are told as the first failed export is
// (once, as a note), and returned.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	now := time.Now()
	for k, s := range t.steps {
		s.span.End(trace.WithTimestamp(now))
		delete(t.steps, k)
	}
	if t.runSp != nil {
		t.runSp.End(trace.WithTimestamp(now))
		t.run, t.runSp = nil, nil
	}
	t.mu.Unlock()
	if err := t.tp.Shutdown(ctx); err != nil {
		err = fmt.Errorf("traces: the last spans were not sent: %w", err)
		t.warn.Handle(err)
		return err
	}
	return nil
}

// Event makes spans of a run's events (orchestrator.Config.OnEvent; safe
// for concurrent use, and quick: the batcher sends in the background).
func (t *Tracer) Event(e orchestrator.Event) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Kind {
	case orchestrator.RunStarted:
		t.run, t.runSp = t.tracer.Start(context.Background(), "codemachine run", trace.WithTimestamp(e.At),
			trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attribute.String("codemachine.run.id", e.Run)))
	case orchestrator.RunFinished:
		t.endRun(e)
	case orchestrator.StepStarted:
		t.startStep(e)
	case orchestrator.StepAttempt:
		t.attempt(e)
	case orchestrator.StepRetrying:
		if s, ok := t.steps[e.Key()]; ok {
			s.retry = e.Message
			t.steps[e.Key()] = s
		}
	case orchestrator.StepLanded, orchestrator.StepFailed, orchestrator.StepConflict, orchestrator.StepReview:
		t.endStep(e)
	}
}

func (t *Tracer) endRun(e orchestrator.Event) {
	if t.runSp == nil {
		return
	}
	t.runSp.SetAttributes(attribute.Int64("codemachine.tokens", e.Tokens), attribute.Float64("codemachine.cost_usd", e.CostUSD))
	if e.Message != "" {
		t.runSp.SetStatus(codes.Error, e.Message)
	}
	t.runSp.End(trace.WithTimestamp(e.At))
	t.run, t.runSp = nil, nil
}

func (t *Tracer) startStep(e orchestrator.Event) {
	parent := t.run
	if parent == nil {
		parent = context.Background()
	}
	attrs := []attribute.KeyValue{attribute.String("codemachine.step", e.Step), attribute.String("codemachine.engine", e.Engine)}
	if e.Task != "" {
		attrs = append(attrs, attribute.String("codemachine.task", e.Task), attribute.String("codemachine.task.title", e.Title))
	}
	if e.Model != "" {
		attrs = append(attrs, attribute.String("gen_ai.request.model", e.Model))
	}
	if s, ok := t.steps[e.Key()]; ok {
		// The unit starts again in the same run (a reviewer agent rejected
		// its change): its earlier run's span ends here, so that it and
		// the spans under it are sent.
		s.span.SetAttributes(attribute.String("codemachine.outcome", "retried"))
		if s.retry != "" {
			s.span.SetAttributes(attribute.String("codemachine.retry.reason", firstLine(s.retry)))
		}
		s.span.End(trace.WithTimestamp(e.At))
	}
	ctx, span := t.tracer.Start(parent, "step "+e.Key(), trace.WithTimestamp(e.At), trace.WithAttributes(attrs...))
	t.steps[e.Key()] = stepSpan{ctx: ctx, span: span}
}

// attempt is the span of one engine run, from its end and its duration.
// An agent's is a GenAI "invoke_agent" span; a command's (shell engine)
// is an "execute" span without GenAI attributes.
func (t *Tracer) attempt(e orchestrator.Event) {
	parent, ok := t.steps[e.Key()]
	if !ok {
		return
	}
	attrs := []attribute.KeyValue{attribute.Int("codemachine.attempt", e.Attempt), attribute.String("codemachine.engine", e.Engine)}
	name, agent := "execute "+e.Key(), e.Key()
	if e.Reviewer != "" {
		// A reviewer agent's run: its round, not an attempt of the unit.
		agent = e.Reviewer
		attrs = []attribute.KeyValue{attribute.Int("codemachine.review.round", e.Attempt), attribute.String("codemachine.engine", e.Engine),
			attribute.String("codemachine.reviewer", e.Reviewer)}
	}
	if e.Engine != "shell" {
		name = "invoke_agent " + agent
		attrs = append(attrs,
			attribute.String("gen_ai.operation.name", "invoke_agent"),
			attribute.String("gen_ai.agent.name", agent),
			attribute.String("gen_ai.provider.name", provider(e.Engine)),
			attribute.Int64("gen_ai.usage.input_tokens", e.TokensIn),
			attribute.Int64("gen_ai.usage.output_tokens", e.TokensOut))
		if e.RequestModel != "" {
			attrs = append(attrs, attribute.String("gen_ai.request.model", e.RequestModel))
		}
		if e.Model != "" {
			attrs = append(attrs, attribute.String("gen_ai.response.model", e.Model))
		}
	}
	if e.CostOK {
		attrs = append(attrs, attribute.Float64("codemachine.cost_usd", e.CostUSD))
	}
	_, span := t.tracer.Start(parent.ctx, name, trace.WithTimestamp(e.At.Add(-e.Duration)),
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	if e.Message != "" {
		span.SetStatus(codes.Error, e.Message)
		span.SetAttributes(attribute.String("error.type", errorType(e.Message)))
	}
	span.End(trace.WithTimestamp(e.At))
}

func (t *Tracer) endStep(e orchestrator.Event) {
	s, ok := t.steps[e.Key()]
	if !ok {
		return
	}
	delete(t.steps, e.Key())
	outcome := map[orchestrator.EventKind]string{orchestrator.StepLanded: "landed", orchestrator.StepFailed: "failed",
		orchestrator.StepConflict: "conflict", orchestrator.StepReview: "review"}[e.Kind]
	s.span.SetAttributes(attribute.String("codemachine.outcome", outcome), attribute.Int64("codemachine.tokens", e.Tokens))
	if e.Commit != "" {
		s.span.SetAttributes(attribute.String("codemachine.commit", e.Commit))
	}
	if e.CostOK {
		s.span.SetAttributes(attribute.Float64("codemachine.cost_usd", e.CostUSD))
	}
	if e.Kind == orchestrator.StepFailed || e.Kind == orchestrator.StepConflict {
		s.span.SetStatus(codes.Error, firstLine(e.Message))
	}
	s.span.End(trace.WithTimestamp(e.At))
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
