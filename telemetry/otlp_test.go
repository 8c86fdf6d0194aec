package telemetry

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/codemachine/codemachine/orchestrator"
)

// TestExportRequestDecodes: what the hand-written encoder makes is the
// ExportTraceServiceRequest the OTLP protobuf definitions read, every
// field in place.
func TestExportRequestDecodes(t *testing.T) {
	start := time.Unix(1700000000, 123456789)
	s := span{traceID: [16]byte{1, 2, 3, 15: 4}, spanID: [8]byte{9, 8, 7}, parentID: [8]byte{5}, name: "step é",
		kind: kindClient, start: start, end: start.Add(1500 * time.Millisecond), status: statusError, message: "it broke",
		attrs: []attr{str("s", "v"), integer("i", -3), integer("big", 1<<40), float("f", 0.25), {"b", true}, {"no", false}, str("empty", "")}}
	root := span{traceID: [16]byte{1}, spanID: [8]byte{2}, name: "run", kind: kindInternal, start: start, end: start}
	body := exportRequest([]attr{str("service.name", "codemachine")}, "scope", "v1.2", []span{s, root})
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	if len(req.ResourceSpans) != 1 || len(req.ResourceSpans[0].ScopeSpans) != 1 {
		t.Fatalf("shape: %v", &req)
	}
	rs := req.ResourceSpans[0]
	if kv := rs.Resource.Attributes; len(kv) != 1 || kv[0].Key != "service.name" || kv[0].Value.GetStringValue() != "codemachine" {
		t.Errorf("resource: %v", rs.Resource)
	}
	ss := rs.ScopeSpans[0]
	if ss.Scope.Name != "scope" || ss.Scope.Version != "v1.2" || len(ss.Spans) != 2 {
		t.Fatalf("scope spans: %v", ss)
	}
	got := ss.Spans[0]
	want := &tracepb.Span{TraceId: s.traceID[:], SpanId: s.spanID[:], ParentSpanId: s.parentID[:], Name: "step é",
		Kind: tracepb.Span_SPAN_KIND_CLIENT, StartTimeUnixNano: uint64(start.UnixNano()), EndTimeUnixNano: uint64(start.Add(1500 * time.Millisecond).UnixNano()),
		Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "it broke"}}
	gotAttrs := got.Attributes
	got.Attributes = nil
	if !proto.Equal(got, want) {
		t.Errorf("span:\n got %v\nwant %v", got, want)
	}
	wantAttrs := []string{`s="v"`, "i=-3", "big=1099511627776", "f=0.25", "b=true", "no=false", `empty=""`}
	if len(gotAttrs) != len(wantAttrs) {
		t.Fatalf("attributes: %v", gotAttrs)
	}
	for i, kv := range gotAttrs {
		if got := kv.Key + "=" + anyString(kv.Value); got != wantAttrs[i] {
			t.Errorf("attribute %d: %s, want %s", i, got, wantAttrs[i])
		}
	}
	if r := ss.Spans[1]; len(r.ParentSpanId) != 0 || r.Kind != tracepb.Span_SPAN_KIND_INTERNAL || r.Status != nil {
		t.Errorf("root span: %v", r)
	}
}

// anyString shows an AnyValue with its type: strings quoted.
func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return strconv.Quote(x.StringValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	}
	return fmt.Sprintf("%T", v.GetValue())
}

// receiver is an OTLP/HTTP receiver that answers each request with the
// next status of codes (200 once they run out).
type receiver struct {
	mu       sync.Mutex
	codes    []int
	requests []*http.Request
	spans    []*tracepb.Span
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, req)
	if len(r.codes) > 0 {
		code := r.codes[0]
		r.codes = r.codes[1:]
		if code != 200 {
			http.Error(w, "no", code)
			return
		}
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	data, _ := io.ReadAll(body)
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &msg); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	for _, rs := range msg.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			r.spans = append(r.spans, ss.Spans...)
		}
	}
}

// TestExportSettings: the endpoint, headers, compression and retries of
// the OTEL_EXPORTER_OTLP_* settings, against a receiver.
func TestExportSettings(t *testing.T) {
	tests := []struct {
		name     string
		env      func(url string) []string
		codes    []int
		path     string
		requests int
		err      string
	}{
		{name: "base endpoint", env: func(u string) []string { return []string{EndpointEnv + "=" + u + "/"} }, path: "/v1/traces", requests: 1},
		{name: "traces endpoint as is", env: func(u string) []string {
			return []string{EndpointEnv + "=http://127.0.0.1:1", TracesEndpointEnv + "=" + u + "/custom"}
		}, path: "/custom", requests: 1},
		{name: "headers and gzip", env: func(u string) []string {
			return []string{EndpointEnv + "=" + u, "OTEL_EXPORTER_OTLP_HEADERS=api-key=a%20b, x-other=1", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=gzip"}
		}, path: "/v1/traces", requests: 1},
		{name: "retried on 503", env: func(u string) []string { return []string{EndpointEnv + "=" + u} }, codes: []int{503, 429},
			path: "/v1/traces", requests: 3},
		{name: "not retried on 400", env: func(u string) []string { return []string{EndpointEnv + "=" + u} }, codes: []int{400},
			path: "/v1/traces", requests: 1, err: "400 Bad Request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := &receiver{codes: tt.codes}
			srv := httptest.NewServer(rcv)
			defer srv.Close()
			tr, err := Start(context.Background(), tt.env(srv.URL), "v9")
			if err != nil {
				t.Fatal(err)
			}
			at := time.Now()
			tr.Event(orchestrator.Event{Kind: orchestrator.RunStarted, Run: "r1", At: at})
			tr.Event(orchestrator.Event{Kind: orchestrator.StepStarted, Step: "s", At: at})
			tr.Event(orchestrator.Event{Kind: orchestrator.StepLanded, Step: "s", At: at.Add(time.Millisecond)})
			tr.Event(orchestrator.Event{Kind: orchestrator.RunFinished, At: at.Add(2 * time.Millisecond)})
			err = tr.Shutdown(context.Background())
			if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("Shutdown: %v, want an error with %q", err, tt.err)
			}
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			if len(rcv.requests) != tt.requests {
				t.Fatalf("%d requests, want %d", len(rcv.requests), tt.requests)
			}
			req := rcv.requests[len(rcv.requests)-1]
			if req.URL.Path != tt.path || req.Header.Get("Content-Type") != "application/x-protobuf" {
				t.Errorf("request: %s %s", req.URL.Path, req.Header.Get("Content-Type"))
			}
			if tt.name == "headers and gzip" && (req.Header.Get("Api-Key") != "a b" || req.Header.Get("X-Other") != "1" || req.Header.Get("Content-Encoding") != "gzip") {
				t.Errorf("headers: %v", req.Header)
			}
			if tt.err == "" && (len(rcv.spans) != 2 || rcv.spans[0].Name != "step s" || rcv.spans[1].Name != "codemachine run" ||
				string(rcv.spans[0].ParentSpanId) != string(rcv.spans[1].SpanId) || string(rcv.spans[0].TraceId) != string(rcv.spans[1].TraceId)) {
				t.Errorf("spans: %v", rcv.spans)
			}
		})
	}
}

// TestBadSettings: a setting that cannot be honoured is an error at Start.
func TestBadSettings(t *testing.T) {
	for _, env := range [][]string{
		{EndpointEnv + "=127.0.0.1:4318"},
		{EndpointEnv + "=http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_HEADERS=novalue"},
		{EndpointEnv + "=http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_TIMEOUT=soon"},
		{EndpointEnv + "=http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_COMPRESSION=zstd"},
		{EndpointEnv + "=http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent.pem"},
		{EndpointEnv + "=http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json"},
	} {
		if tr, err := Start(context.Background(), env, "v"); err == nil {
			_ = tr.Shutdown(context.Background())
			t.Errorf("%v: accepted", env)
		}
	}
}

// TestResourceAttrs: OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME win
// over codemachine's own.
func TestResourceAttrs(t *testing.T) {
	got := resourceAttrs([]string{"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=ci,service.name=x,team=a%2Cb", "OTEL_SERVICE_NAME=cm"}, "v1")
	var s []string
	for _, a := range got {
		s = append(s, a.key+"="+a.val.(string))
	}
	want := "service.name=cm service.version=v1 telemetry.sdk.language=go deployment.environment=ci team=a,b"
	if strings.Join(s, " ") != want {
		t.Errorf("got %s\nwant %s", strings.Join(s, " "), want)
	}
}
