package telemetry

import (
	"compress/gzip"
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestReadHTTPConfig: the OTEL_EXPORTER_OTLP_* variables as the
// OpenTelemetry specification defines them for OTLP/HTTP.
func TestReadHTTPConfig(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     []string
		url     string
		headers map[string]string
		timeout time.Duration
		gzip    bool
		err     string
	}{
		{name: "base endpoint", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318"}, url: "http://127.0.0.1:4318/v1/traces", timeout: 10 * time.Second},
		{name: "base endpoint with a path", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=https://collector.example/otlp/"}, url: "https://collector.example/otlp/v1/traces", timeout: 10 * time.Second},
		{name: "signal endpoint as it is", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://b:2/custom"}, url: "http://b:2/custom", timeout: 10 * time.Second},
		{name: "signal endpoint without a path", env: []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://b:2"}, url: "http://b:2/", timeout: 10 * time.Second},
		{name: "no scheme is https", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318"}, url: "https://collector:4318/v1/traces", timeout: 10 * time.Second},
		{name: "no scheme, insecure", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318", "OTEL_EXPORTER_OTLP_INSECURE=true"}, url: "http://collector:4318/v1/traces", timeout: 10 * time.Second},
		{name: "headers", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:1", "OTEL_EXPORTER_OTLP_HEADERS= api-key = s%20cret ,x=1,"},
			url: "http://a:1/v1/traces", headers: map[string]string{"api-key": "s cret", "x": "1"}, timeout: 10 * time.Second},
		{name: "traces headers win", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:1", "OTEL_EXPORTER_OTLP_HEADERS=a=1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS=b=2"},
			url: "http://a:1/v1/traces", headers: map[string]string{"b": "2"}, timeout: 10 * time.Second},
		{name: "timeout and gzip", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:1", "OTEL_EXPORTER_OTLP_TIMEOUT=2500", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=GZIP"},
			url: "http://a:1/v1/traces", timeout: 2500 * time.Millisecond, gzip: true},
		{name: "bad scheme", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=ftp://a:1"}, err: "OTEL_EXPORTER_OTLP_ENDPOINT=ftp://a:1: not an http or https address"},
		{name: "bad header", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:1", "OTEL_EXPORTER_OTLP_HEADERS=novalue"}, err: `OTEL_EXPORTER_OTLP_HEADERS: "novalue" is not key=value`},
		{name: "bad timeout", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:1", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=5s"}, err: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=5s: not a number of milliseconds"},
		{name: "bad compression", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:1", "OTEL_EXPORTER_OTLP_COMPRESSION=zstd"}, err: "OTEL_EXPORTER_OTLP_COMPRESSION=zstd: not gzip or none"},
		{name: "missing certificate", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=https://a:1", "OTEL_EXPORTER_OTLP_CERTIFICATE=" + filepath.Join(dir, "none.pem")}, err: "OTEL_EXPORTER_OTLP_CERTIFICATE: open "},
		{name: "certificate not PEM", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=https://a:1", "OTEL_EXPORTER_OTLP_CERTIFICATE=" + notPEM}, err: "no PEM certificate in it"},
		{name: "client certificate without its key", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=https://a:1", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=" + notPEM}, err: "needs both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := readHTTPConfig(tt.env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.url != tt.url || cfg.timeout != tt.timeout || cfg.gzip != tt.gzip || len(cfg.headers) != len(tt.headers) {
				t.Fatalf("got url %q timeout %v gzip %v headers %v; want %q %v %v %v", cfg.url, cfg.timeout, cfg.gzip, cfg.headers, tt.url, tt.timeout, tt.gzip, tt.headers)
			}
			for k, v := range tt.headers {
				if cfg.headers[k] != v {
					t.Errorf("header %s = %q, want %q", k, cfg.headers[k], v)
				}
			}
		})
	}
}

// collector is an OTLP/HTTP receiver on 127.0.0.1 that answers each
// request with the next of its replies (the last one repeats).
type collector struct {
	mu       sync.Mutex
	requests []*http.Request
	bodies   []*coltracepb.ExportTraceServiceRequest
	replies  []func(http.ResponseWriter)
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	msg := &coltracepb.ExportTraceServiceRequest{}
	if err == nil {
		err = proto.Unmarshal(b, msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.requests = append(c.requests, r)
	c.bodies = append(c.bodies, msg)
	reply := c.replies[min(len(c.requests), len(c.replies))-1]
	c.mu.Unlock()
	reply(w)
}

func status(code int, header ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
	}
}

func someSpans() []*tracepb.ResourceSpans {
	return []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
		{Name: "codemachine run", TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567")},
		{Name: "step a", TraceId: []byte("0123456789abcdef"), SpanId: []byte("89abcdef"), ParentSpanId: []byte("01234567")},
	}}}}, {ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: "other resource"}}}}}}
}

// someRequest is the ExportTraceServiceRequest of someSpans.
func someRequest(t *testing.T) []byte {
	t.Helper()
	b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: someSpans()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUploadTraces: what the collector receives is the OTLP request for
// the spans, with the configured headers, path and compression; a "try
// later" is tried again, other refusals and dropped spans are errors.
func TestUploadTraces(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		replies  []func(http.ResponseWriter)
		requests int
		err      string
	}{
		{name: "accepted", replies: []func(http.ResponseWriter){status(200)}, requests: 1},
		{name: "gzip and headers", env: []string{"OTEL_EXPORTER_OTLP_COMPRESSION=gzip", "OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20t"},
			replies: []func(http.ResponseWriter){status(200)}, requests: 1},
		{name: "busy, then accepted", replies: []func(http.ResponseWriter){status(503), status(429, "Retry-After", "1"), status(200)}, requests: 3},
		{name: "refused", replies: []func(http.ResponseWriter){func(w http.ResponseWriter) { http.Error(w, "bad spans", http.StatusBadRequest) }},
			requests: 1, err: "400 Bad Request (bad spans)"},
		{name: "still busy when the time is up", env: []string{"OTEL_EXPORTER_OTLP_TIMEOUT=300"}, replies: []func(http.ResponseWriter){status(503)},
			err: "503 Service Unavailable"},
		{name: "partial success", replies: []func(http.ResponseWriter){func(w http.ResponseWriter) {
			b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 2, ErrorMessage: "too old"}})
			w.Header().Set("Content-Type", "application/x-protobuf")
			_, _ = w.Write(b)
		}}, requests: 1, err: "the collector dropped spans: 2 rejected (too old)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &collector{replies: tt.replies}
			srv := httptest.NewServer(c)
			defer srv.Close()
			cfg, err := readHTTPConfig(append([]string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + srv.URL + "/base"}, tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			err = newExporter(cfg, "1.2.3").upload(context.Background(), someRequest(t))
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if tt.requests > 0 && len(c.requests) != tt.requests {
				t.Fatalf("%d requests, want %d", len(c.requests), tt.requests)
			}
			want := &coltracepb.ExportTraceServiceRequest{ResourceSpans: someSpans()}
			for i, r := range c.requests {
				if r.URL.Path != "/base/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || r.Header.Get("User-Agent") != "codemachine/1.2.3" {
					t.Errorf("request %d: %s %s %v", i, r.Method, r.URL.Path, r.Header)
				}
				for k, v := range cfg.headers {
					if r.Header.Get(k) != v {
						t.Errorf("request %d: header %s = %q, want %q", i, k, r.Header.Get(k), v)
					}
				}
				if !proto.Equal(c.bodies[i], want) {
					t.Errorf("request %d: the collector read %v, want %v", i, c.bodies[i], want)
				}
			}
		})
	}
}

// TestUploadTracesTLS: OTEL_EXPORTER_OTLP_CERTIFICATE is the authority the
// collector's certificate is checked against.
func TestUploadTracesTLS(t *testing.T) {
	c := &collector{replies: []func(http.ResponseWriter){status(200)}}
	srv := httptest.NewTLSServer(c)
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, trust := range []bool{false, true} {
		env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + srv.URL}
		if trust {
			env = append(env, "OTEL_EXPORTER_OTLP_CERTIFICATE="+ca)
		}
		cfg, err := readHTTPConfig(env)
		if err != nil {
			t.Fatal(err)
		}
		err = newExporter(cfg, "v").upload(context.Background(), someRequest(t))
		if trust && err != nil {
			t.Errorf("with the collector's authority: %v", err)
		}
		if !trust && (err == nil || !strings.Contains(err.Error(), "certificate")) {
			t.Errorf("without the collector's authority: %v, want a certificate error", err)
		}
	}
}
