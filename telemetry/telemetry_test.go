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
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
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
