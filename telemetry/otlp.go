package telemetry

import (
	"encoding/binary"
	"math"
	"time"
)

// The OTLP trace messages codemachine sends, encoded in protobuf's wire
// format by hand (opentelemetry-proto's trace.proto, common.proto and
// resource.proto give the field numbers). The OpenTelemetry SDK and its
// exporter would link gRPC and the protobuf runtime into every command,
// and Go initialises each linked package at start-up; the few messages of
// a trace need neither.

// spanKind is trace.proto's Span.SpanKind.
type spanKind int

const (
	kindInternal spanKind = 1
	kindClient   spanKind = 3
)

// statusCode is trace.proto's Status.StatusCode.
type statusCode int

const (
	statusUnset statusCode = 0
	statusError statusCode = 2
)

// attr is a KeyValue whose value is a string, an int, a float or a bool.
type attr struct {
	key string
	val any // string, int64, float64 or bool
}

func str(k, v string) attr           { return attr{k, v} }
func integer(k string, v int64) attr { return attr{k, v} }
func float(k string, v float64) attr { return attr{k, v} }

// span is one finished span.
type span struct {
	traceID    [16]byte
	spanID     [8]byte
	parentID   [8]byte // zero for a root span
	name       string
	kind       spanKind
	start, end time.Time
	attrs      []attr
	status     statusCode
	message    string
}

// Wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
)

func appendTag(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wire))
}

func appendBytes(b []byte, field int, v []byte) []byte {
	b = appendTag(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, field int, v string) []byte {
	if v == "" {
		return b
	}
	b = appendTag(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendVarint(b []byte, field int, v uint64) []byte {
	if v == 0 {
		return b
	}
	return binary.AppendUvarint(appendTag(b, field, wireVarint), v)
}

func appendFixed64(b []byte, field int, v uint64) []byte {
	return binary.LittleEndian.AppendUint64(appendTag(b, field, wireFixed64), v)
}

// appendAttr appends a KeyValue{key = 1, value = 2} with an AnyValue{string
// = 1, bool = 2, int = 3, double = 4} in field.
func appendAttr(b []byte, field int, a attr) []byte {
	var val []byte
	switch v := a.val.(type) {
	case string:
		val = appendTag(val, 1, wireBytes)
		val = binary.AppendUvarint(val, uint64(len(v)))
		val = append(val, v...)
	case bool:
		val = appendTag(val, 2, wireVarint)
		bit := byte(0)
		if v {
			bit = 1
		}
		val = append(val, bit)
	case int64:
		val = binary.AppendUvarint(appendTag(val, 3, wireVarint), uint64(v))
	case float64:
		val = appendFixed64(val, 4, math.Float64bits(v))
	}
	kv := appendString(nil, 1, a.key)
	kv = appendBytes(kv, 2, val)
	return appendBytes(b, field, kv)
}

// appendSpan appends a Span: trace_id 1, span_id 2, parent_span_id 4,
// name 5, kind 6, start_time_unix_nano 7, end_time_unix_nano 8,
// attributes 9, status 15 (message 2, code 3).
func appendSpan(b []byte, field int, s span) []byte {
	m := appendBytes(nil, 1, s.traceID[:])
	m = appendBytes(m, 2, s.spanID[:])
	if s.parentID != ([8]byte{}) {
		m = appendBytes(m, 4, s.parentID[:])
	}
	m = appendString(m, 5, s.name)
	m = appendVarint(m, 6, uint64(s.kind))
	m = appendFixed64(m, 7, uint64(s.start.UnixNano()))
	m = appendFixed64(m, 8, uint64(s.end.UnixNano()))
	for _, a := range s.attrs {
		m = appendAttr(m, 9, a)
	}
	if s.status != statusUnset {
		st := appendString(nil, 2, s.message)
		st = appendVarint(st, 3, uint64(s.status))
		m = appendBytes(m, 15, st)
	}
	return appendBytes(b, field, m)
}

// exportRequest is an ExportTraceServiceRequest{resource_spans = 1} of one
// ResourceSpans{resource = 1 (Resource{attributes = 1}), scope_spans = 2}
// with one ScopeSpans{scope = 1 (InstrumentationScope{name = 1,
// version = 2}), spans = 2}.
func exportRequest(resource []attr, scopeName, scopeVersion string, spans []span) []byte {
	var res []byte
	for _, a := range resource {
		res = appendAttr(res, 1, a)
	}
	scope := appendString(nil, 1, scopeName)
	scope = appendString(scope, 2, scopeVersion)
	ss := appendBytes(nil, 1, scope)
	for _, s := range spans {
		ss = appendSpan(ss, 2, s)
	}
	rs := appendBytes(nil, 1, res)
	rs = appendBytes(rs, 2, ss)
	return appendBytes(nil, 1, rs)
}
