package telemetry

import (
	"context"
	"testing"

	"github.com/codemachine/codemachine/orchestrator"
)

// TestOffWhenUnset: without an OTLP endpoint nothing is made (no exporter,
// no provider), and the nil Tracer takes events and shutdowns.
func TestOffWhenUnset(t *testing.T) {
	env := []string{"OTEL_SERVICE_NAME=x", "OTEL_EXPORTER_OTLP_HEADERS=a=b", "OTEL_EXPORTER_OTLP_ENDPOINT="}
	if Enabled(env) {
		t.Fatal("enabled without an endpoint")
	}
	tr, err := Start(context.Background(), env, "v")
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
	if _, err := Start(context.Background(), []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}, "v"); err == nil {
		t.Error("grpc was accepted; only http/protobuf is exported")
	}
}
