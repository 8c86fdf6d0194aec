package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace receiver on 127.0.0.1: what a
// collector is to codemachine's traces.
type otlpReceiver struct {
	srv      *http.Server
	url      string
	mu       sync.Mutex
	requests int
	spans    []span
}

// span is a received span, flattened for assertions.
type span struct {
	name, service  string
	id, parent     string
	start, end     time.Time
	attrs          map[string]string
	status, errMsg string
}

func startOTLP(ts *testscript.TestScript) *otlpReceiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	r := &otlpReceiver{url: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.traces)
	r.srv = &http.Server{Handler: mux}
	go func() { _ = r.srv.Serve(ln) }()
	ts.Defer(func() { _ = r.srv.Close() })
	return r
}

func (r *otlpReceiver) traces(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	var msg coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	for _, rs := range msg.ResourceSpans {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				r.spans = append(r.spans, span{name: s.Name, service: service,
					id: fmt.Sprintf("%x", s.SpanId), parent: fmt.Sprintf("%x", s.ParentSpanId),
					start: time.Unix(0, int64(s.StartTimeUnixNano)), end: time.Unix(0, int64(s.EndTimeUnixNano)),
					attrs: attrs(s.Attributes), status: s.GetStatus().GetCode().String(), errMsg: s.GetStatus().GetMessage()})
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.Key] = fmt.Sprint(x.DoubleValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.Key] = fmt.Sprint(x.BoolValue)
		}
	}
	return m
}

type otlpKey struct{}

// cmdOTLP: otlp start (a receiver; OTEL_EXPORTER_OTLP_ENDPOINT points at
// it) | otlp spans (one line per span, parents before children:
// "name <- parent | key=value ..." sorted, and the status when not unset)
// | otlp requests (how many export requests came).
func cmdOTLP(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: otlp start|spans|requests")
	}
	switch args[0] {
	case "start":
		r := startOTLP(ts)
		ts.Value(otlpKey{}).(*otlpState).r = r
		ts.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.url)
	case "spans":
		r := receiver(ts)
		r.mu.Lock()
		defer r.mu.Unlock()
		fmt.Fprint(ts.Stdout(), r.describe())
	case "requests":
		r := receiver(ts)
		r.mu.Lock()
		defer r.mu.Unlock()
		fmt.Fprintf(ts.Stdout(), "%d\n", r.requests)
	default:
		ts.Fatalf("otlp: unknown subcommand %q", args[0])
	}
}

type otlpState struct{ r *otlpReceiver }

func receiver(ts *testscript.TestScript) *otlpReceiver {
	st, _ := ts.Value(otlpKey{}).(*otlpState)
	if st == nil || st.r == nil {
		ts.Fatalf("otlp: start the receiver first")
	}
	return st.r
}

// describe lists the spans, each under its parent, with their attributes
// and times checked: a child within its parent.
func (r *otlpReceiver) describe() string {
	byID := map[string]span{}
	for _, s := range r.spans {
		byID[s.id] = s
	}
	var lines []string
	for _, s := range r.spans {
		parent := "-"
		if p, ok := byID[s.parent]; ok {
			parent = p.name
			if s.start.Before(p.start) || s.end.After(p.end) {
				parent += " (NOT WITHIN)"
			}
		}
		keys := make([]string, 0, len(s.attrs))
		for k := range s.attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, k+"="+s.attrs[k])
		}
		line := fmt.Sprintf("%s <- %s | service=%s %s", s.name, parent, s.service, strings.Join(kv, " "))
		if s.status != "STATUS_CODE_UNSET" {
			line += " | " + s.status + " " + s.errMsg
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// withOTLP adds the otlp command to a suite's scripts.
func withOTLP(p testscript.Params) testscript.Params {
	setup := p.Setup
	p.Setup = func(env *testscript.Env) error {
		if setup != nil {
			if err := setup(env); err != nil {
				return err
			}
		}
		env.Values[otlpKey{}] = &otlpState{}
		return nil
	}
	p.Cmds["otlp"] = cmdOTLP
	return p
}
