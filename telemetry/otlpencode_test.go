package telemetry

import (
	"context"
	"sort"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// sdkClient keeps what the SDK's own OTLP exporter (otlptrace) would send.
type sdkClient struct{ got []*tracepb.ResourceSpans }

func (c *sdkClient) Start(context.Context) error { return nil }
func (c *sdkClient) Stop(context.Context) error  { return nil }
func (c *sdkClient) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	c.got = append(c.got, rs...)
	return nil
}

// everyValue is an attribute of every type the SDK knows, zero values and
// empty lists included.
var everyValue = []attribute.KeyValue{
	attribute.Bool("bool", true), attribute.Bool("false", false),
	attribute.Int64("int", -42), attribute.Int64("zero", 0),
	attribute.Float64("float", 2.5), attribute.Float64("fzero", 0),
	attribute.String("string", "s"), attribute.String("empty", ""),
	attribute.ByteSlice("bytes", []byte{0, 1}), attribute.ByteSlice("nobytes", nil),
	attribute.BoolSlice("bools", []bool{true, false}), attribute.Int64Slice("ints", []int64{1, -1, 0}),
	attribute.Float64Slice("floats", []float64{0.5}), attribute.StringSlice("strings", []string{"a", ""}),
	attribute.StringSlice("nostrings", nil),
	attribute.Slice("mixed", attribute.IntValue(1), attribute.StringValue("x"), attribute.MapValue(attribute.Bool("in", true))),
	attribute.Map("map", attribute.String("k", "v"), attribute.Int("n", 3)),
	{Key: "unset"},
	{Key: "", Value: attribute.StringValue("no key")},
}

func someReadOnlySpans() []sdktrace.ReadOnlySpan {
	tid := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	ts, _ := trace.ParseTraceState("vendor=value,other=1")
	sc := func(sid byte, remote bool, flags trace.TraceFlags) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{sid, 1, 2, 3, 4, 5, 6, 7},
			TraceFlags: flags, TraceState: ts, Remote: remote})
	}
	resA := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.0.0", attribute.String("service.name", "codemachine"), attribute.Int("pid", 7))
	resB := resource.NewSchemaless(attribute.String("service.name", "other"))
	scopeA := instrumentation.Scope{Name: "a", Version: "1.0", SchemaURL: "https://example.com/s",
		Attributes: attribute.NewSet(attribute.String("scope", "attr"))}
	start := time.Unix(1700000000, 123456789)
	stubs := []tracetest.SpanStub{
		{Name: "root", SpanContext: sc(1, false, trace.FlagsSampled), SpanKind: trace.SpanKindInternal,
			StartTime: start, EndTime: start.Add(time.Second), Attributes: everyValue,
			Status: sdktrace.Status{Code: codes.Ok}, Resource: resA, InstrumentationScope: scopeA},
		{Name: "child", SpanContext: sc(2, false, 0), Parent: sc(1, true, trace.FlagsSampled), SpanKind: trace.SpanKindClient,
			StartTime: start, EndTime: start.Add(time.Millisecond),
			Events: []sdktrace.Event{{Name: "retry", Time: start.Add(time.Microsecond), Attributes: everyValue[:3], DroppedAttributeCount: 2}, {Name: "bare"}},
			Links: []sdktrace.Link{{SpanContext: sc(9, true, trace.FlagsSampled), Attributes: everyValue[6:8], DroppedAttributeCount: 1},
				{SpanContext: sc(8, false, 0)}},
			Status:            sdktrace.Status{Code: codes.Error, Description: "boom"},
			DroppedAttributes: 3, DroppedEvents: 4, DroppedLinks: 5, Resource: resA, InstrumentationScope: scopeA},
		{Name: "other scope", SpanContext: sc(3, false, trace.FlagsSampled), SpanKind: trace.SpanKindServer,
			StartTime: start, EndTime: start, Resource: resA, InstrumentationScope: instrumentation.Scope{Name: "b"}},
		{Name: "no scope", SpanContext: sc(4, false, trace.FlagsSampled), SpanKind: trace.SpanKindProducer, Resource: resA},
		{Name: "other resource", SpanContext: sc(5, false, trace.FlagsSampled), SpanKind: trace.SpanKindConsumer,
			StartTime: time.Unix(-5, 0), Resource: resB, InstrumentationScope: scopeA},
		{Name: "odd kind, no resource", SpanContext: sc(6, false, 0), SpanKind: trace.SpanKind(99), DroppedAttributes: -1},
		{Name: "unset status", SpanContext: sc(7, false, 0), Status: sdktrace.Status{Code: codes.Unset, Description: "ignored"}, Resource: resB},
	}
	spans := make([]sdktrace.ReadOnlySpan, len(stubs))
	for i, s := range stubs {
		spans[i] = s.Snapshot()
	}
	return spans
}

// byFirstSpan orders a request's resources, which the SDK's exporter
// sends in a map's order.
func byFirstSpan(rs []*tracepb.ResourceSpans) {
	sort.Slice(rs, func(i, j int) bool {
		return rs[i].ScopeSpans[0].Spans[0].Name < rs[j].ScopeSpans[0].Spans[0].Name
	})
}

// TestEncodeSpansAsTheSDKExporter: the request written here is, decoded by
// protobuf, the one the SDK's own exporter builds from the same spans.
func TestEncodeSpansAsTheSDKExporter(t *testing.T) {
	spans := someReadOnlySpans()
	client := &sdkClient{}
	exp, err := otlptrace.New(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	want := &coltracepb.ExportTraceServiceRequest{ResourceSpans: client.got}
	got := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(encodeSpans(spans), got); err != nil {
		t.Fatalf("the request does not decode: %v", err)
	}
	byFirstSpan(want.ResourceSpans)
	byFirstSpan(got.ResourceSpans)
	if !proto.Equal(got, want) {
		t.Errorf("the request differs from the SDK exporter's:\n got %v\nwant %v", got, want)
	}
	if b := encodeSpans(nil); len(b) != 0 {
		t.Errorf("no spans: %x, want nothing to send", b)
	}
}
