package telemetry

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/codemachine/codemachine/orchestrator"
)

// TestOffWhenUnset: without an OTLP endpoint nothing is made (no exporter,
// no provider), and the nil Tracer takes events and shutdowns.
func TestOffWhenUnset(t *testing.T) {
	env := []string{"OTEL_SERVICE_NAME=x", "OTEL_EXPORTER_OTLP_HEADERS=a=b", "OTEL_EXPORTER_OTLP_ENDPOINT="}
	if Enabled(env) {
		t.Fatal("enabled without an endpoint")
	}
	tr, err := Start(context.Background(), env, "v", nil)
	if tr != nil || err != nil {
		t.Fatalf("Start without an endpoint: %v, %v; want nil, nil", tr, err)
	}
	tr.Event(orchestrator.Event{Kind: orchestrator.RunStarted})
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, env := range [][]string{{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1"}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:1/v1/traces"}} {
		if !Enabled(env) {
			t.Errorf("%v: not enabled", env)
		}
	}
	if _, err := Start(context.Background(), []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}, "v", nil); err == nil {
		t.Error("grpc was accepted; only http/protobuf is exported")
	}
	if _, err := Start(context.Background(), []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_TIMEOUT=soon"}, "v", nil); err == nil ||
		!strings.Contains(err.Error(), "traces: OTEL_EXPORTER_OTLP_TIMEOUT=soon") {
		t.Errorf("an unusable setting: %v, want an error naming it", err)
	}
}

// TestCollectorDownSaidOnce: a collector that refuses the export is told
// as a codemachine note on the writer Start was given (not as the SDK's
// timestamped log line), once however many exports fail.
func TestCollectorDownSaidOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close() // connections refused from now on
	var warn bytes.Buffer
	tr, err := Start(context.Background(), []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint}, "v", &warn)
	if err != nil {
		t.Fatal(err)
	}
	tr.Event(orchestrator.Event{Kind: orchestrator.RunStarted, At: time.Now()})
	tr.Event(orchestrator.Event{Kind: orchestrator.RunFinished, At: time.Now()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = tr.Shutdown(ctx)
	otel.Handle(errors.New("a later export failed"))
	if n := strings.Count(warn.String(), "codemachine: note: "); n != 1 || !strings.Contains(warn.String(), "connection refused") {
		t.Fatalf("%d notes, want 1 naming the refused connection:\n%s", n, warn.String())
	}
}

// TestEnabled: an endpoint turns traces on unless the OpenTelemetry
// variables that switch them off say so.
func TestEnabled(t *testing.T) {
	const ep = "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1"
	tests := []struct {
		env  []string
		want bool
	}{
		{[]string{ep}, true},
		{[]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:1/v1/traces"}, true},
		{[]string{}, false},
		{[]string{ep, "OTEL_SDK_DISABLED=true"}, false},
		{[]string{ep, "OTEL_SDK_DISABLED=TRUE"}, false},
		{[]string{ep, "OTEL_SDK_DISABLED=false"}, true},
		{[]string{ep, "OTEL_SDK_DISABLED="}, true},
		{[]string{ep, "OTEL_TRACES_EXPORTER=none"}, false},
		{[]string{ep, "OTEL_TRACES_EXPORTER=otlp"}, true},
		{[]string{ep, "OTEL_SDK_DISABLED=true", "OTEL_SDK_DISABLED=false"}, true}, // the last one wins
	}
	for _, tt := range tests {
		if got := Enabled(tt.env); got != tt.want {
			t.Errorf("Enabled(%q) = %v, want %v", tt.env, got, tt.want)
		}
	}
}

// TestProtocol: the traces' own protocol variable wins over the general
// one; either naming another protocol than http/protobuf is refused,
// naming the variable.
func TestProtocol(t *testing.T) {
	const ep = "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1"
	tests := []struct {
		env     []string
		wantErr string
	}{
		{[]string{ep, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc is not supported"},
		{[]string{ep, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported"},
		{[]string{ep, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf"}, ""},
		{[]string{ep, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json"}, "TRACES_PROTOCOL=http/json"},
	}
	for _, tt := range tests {
		tr, err := Start(context.Background(), tt.env, "v", nil)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tt.env, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%q: %v, want an error saying %q", tt.env, err, tt.wantErr)
		}
		_ = tr.Shutdown(context.Background())
	}
}

// TestSlowCollectorSaid: a collector that takes the connection and never
// answers holds the last spans only as long as the context Shutdown is
// given, and that is said as a note, not in silence.
func TestSlowCollectorSaid(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	endpoint := "OTEL_EXPORTER_OTLP_ENDPOINT=http://" + ln.Addr().String()
	var warn bytes.Buffer
	tr, err := Start(context.Background(), []string{endpoint}, "v", &warn)
	if err != nil {
		t.Fatal(err)
	}
	tr.Event(orchestrator.Event{Kind: orchestrator.RunStarted, At: time.Now()})
	tr.Event(orchestrator.Event{Kind: orchestrator.RunFinished, At: time.Now()})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := tr.Shutdown(ctx); err == nil {
		t.Error("Shutdown reported the spans sent")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Shutdown took %v with a context of 200ms", d)
	}
	if n := strings.Count(warn.String(), "codemachine: note: "); n != 1 || !strings.Contains(warn.String(), "the last spans were not sent") {
		t.Errorf("%d notes, want 1 saying the last spans were not sent:\n%s", n, warn.String())
	}
}
