package telemetry

import (
	"encoding/binary"
	"math"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// This file writes the SDK's finished spans as an OTLP
// ExportTraceServiceRequest in protobuf's wire format, the message the
// SDK's own exporter (otlptrace and its tracetransform) builds from the
// same spans, field for field. That exporter builds it from
// go.opentelemetry.io/proto/otlp's generated messages, which link the
// protobuf runtime and register every OTLP message descriptor: Go
// initialises all of that before main, in every command, where a trace is
// sent by a few of them at most (docs/benchmarks.md). The field numbers
// are those of opentelemetry/proto/{collector/trace,trace,common,resource}/v1.

// Wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// Field numbers, by message.
const (
	requestResourceSpans = 1 // ExportTraceServiceRequest

	resourceSpansResource   = 1 // ResourceSpans
	resourceSpansScopeSpans = 2
	resourceSpansSchemaURL  = 3

	resourceAttributes = 1 // Resource

	scopeSpansScope     = 1 // ScopeSpans
	scopeSpansSpans     = 2
	scopeSpansSchemaURL = 3

	scopeName       = 1 // InstrumentationScope
	scopeVersion    = 2
	scopeAttributes = 3

	spanTraceID           = 1 // Span
	spanSpanID            = 2
	spanTraceState        = 3
	spanParentSpanID      = 4
	spanName              = 5
	spanKind              = 6
	spanStartTime         = 7
	spanEndTime           = 8
	spanAttributes        = 9
	spanDroppedAttributes = 10
	spanEvents            = 11
	spanDroppedEvents     = 12
	spanLinks             = 13
	spanDroppedLinks      = 14
	spanStatus            = 15
	spanFlags             = 16

	eventTime              = 1 // Span.Event
	eventName              = 2
	eventAttributes        = 3
	eventDroppedAttributes = 4

	linkTraceID           = 1 // Span.Link
	linkSpanID            = 2
	linkAttributes        = 4
	linkDroppedAttributes = 5
	linkFlags             = 6

	statusMessage = 2 // Status
	statusCode    = 3

	keyValueKey   = 1 // KeyValue
	keyValueValue = 2

	anyString = 1 // AnyValue (a oneof)
	anyBool   = 2
	anyInt    = 3
	anyDouble = 4
	anyArray  = 5
	anyKVList = 6
	anyBytes  = 7

	listValues = 1 // ArrayValue, KeyValueList
)

// Enum values: Status.StatusCode and the SpanFlags bits.
const (
	statusCodeOK    = 1
	statusCodeError = 2

	flagsHasIsRemote = 0x100
	flagsIsRemote    = 0x200
)

// encodeSpans is the ExportTraceServiceRequest of spans: one ResourceSpans
// per resource, in it one ScopeSpans per instrumentation scope, each in
// the order the spans first name them.
func encodeSpans(spans []sdktrace.ReadOnlySpan) []byte {
	type scopeKey struct {
		res   attribute.Distinct
		scope instrumentation.Scope
	}
	type group struct {
		res    *resource.Resource
		scopes []scopeKey
	}
	var order []attribute.Distinct
	groups := map[attribute.Distinct]*group{}
	byScope := map[scopeKey][]byte{} // the scope's encoded spans
	for _, s := range spans {
		if s == nil {
			continue
		}
		rk := s.Resource().Equivalent()
		g := groups[rk]
		if g == nil {
			g = &group{res: s.Resource()}
			groups[rk] = g
			order = append(order, rk)
		}
		sk := scopeKey{res: rk, scope: s.InstrumentationScope()}
		if _, ok := byScope[sk]; !ok {
			g.scopes = append(g.scopes, sk)
		}
		byScope[sk] = appendMessage(byScope[sk], scopeSpansSpans, encodeSpan(s))
	}
	var req []byte
	for _, rk := range order {
		g := groups[rk]
		var rs []byte
		if g.res != nil {
			var res []byte
			for it := g.res.Iter(); it.Next(); {
				res = appendMessage(res, resourceAttributes, encodeKeyValue(it.Attribute()))
			}
			rs = appendMessage(rs, resourceSpansResource, res)
		}
		for _, sk := range g.scopes {
			var ss []byte
			if sk.scope != (instrumentation.Scope{}) {
				ss = appendMessage(ss, scopeSpansScope, encodeScope(sk.scope))
			}
			ss = append(ss, byScope[sk]...)
			ss = appendString(ss, scopeSpansSchemaURL, sk.scope.SchemaURL)
			rs = appendMessage(rs, resourceSpansScopeSpans, ss)
		}
		rs = appendString(rs, resourceSpansSchemaURL, g.res.SchemaURL())
		req = appendMessage(req, requestResourceSpans, rs)
	}
	return req
}

func encodeScope(s instrumentation.Scope) []byte {
	var b []byte
	b = appendString(b, scopeName, s.Name)
	b = appendString(b, scopeVersion, s.Version)
	for it := s.Attributes.Iter(); it.Next(); {
		b = appendMessage(b, scopeAttributes, encodeKeyValue(it.Attribute()))
	}
	return b
}

func encodeSpan(s sdktrace.ReadOnlySpan) []byte {
	var b []byte
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytes(b, spanTraceID, tid[:])
	b = appendBytes(b, spanSpanID, sid[:])
	b = appendString(b, spanTraceState, sc.TraceState().String())
	parent := s.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		b = appendBytes(b, spanParentSpanID, psid[:])
	}
	b = appendString(b, spanName, s.Name())
	b = appendVarint(b, spanKind, uint64(kindNumber(s.SpanKind())))
	b = appendFixed64(b, spanStartTime, unixNano(s.StartTime().UnixNano()))
	b = appendFixed64(b, spanEndTime, unixNano(s.EndTime().UnixNano()))
	for _, kv := range s.Attributes() {
		b = appendMessage(b, spanAttributes, encodeKeyValue(kv))
	}
	b = appendVarint(b, spanDroppedAttributes, uint64(clampUint32(s.DroppedAttributes())))
	for _, e := range s.Events() {
		var ev []byte
		ev = appendFixed64(ev, eventTime, unixNano(e.Time.UnixNano()))
		ev = appendString(ev, eventName, e.Name)
		for _, kv := range e.Attributes {
			ev = appendMessage(ev, eventAttributes, encodeKeyValue(kv))
		}
		ev = appendVarint(ev, eventDroppedAttributes, uint64(clampUint32(e.DroppedAttributeCount)))
		b = appendMessage(b, spanEvents, ev)
	}
	b = appendVarint(b, spanDroppedEvents, uint64(clampUint32(s.DroppedEvents())))
	for _, l := range s.Links() {
		var lb []byte
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		lb = appendBytes(lb, linkTraceID, ltid[:])
		lb = appendBytes(lb, linkSpanID, lsid[:])
		for _, kv := range l.Attributes {
			lb = appendMessage(lb, linkAttributes, encodeKeyValue(kv))
		}
		lb = appendVarint(lb, linkDroppedAttributes, uint64(clampUint32(l.DroppedAttributeCount)))
		lb = appendFixed32(lb, linkFlags, spanFlagsOf(l.SpanContext.TraceFlags(), l.SpanContext))
		b = appendMessage(b, spanLinks, lb)
	}
	b = appendVarint(b, spanDroppedLinks, uint64(clampUint32(s.DroppedLinks())))
	st := s.Status()
	var sb []byte
	sb = appendString(sb, statusMessage, st.Description)
	switch st.Code {
	case codes.Ok:
		sb = appendVarint(sb, statusCode, statusCodeOK)
	case codes.Error:
		sb = appendVarint(sb, statusCode, statusCodeError)
	}
	b = appendMessage(b, spanStatus, sb)
	b = appendFixed32(b, spanFlags, spanFlagsOf(sc.TraceFlags(), parent))
	return b
}

// kindNumber is a span kind as OTLP numbers it (0 unspecified).
func kindNumber(k trace.SpanKind) int {
	switch k {
	case trace.SpanKindInternal:
		return 1
	case trace.SpanKindServer:
		return 2
	case trace.SpanKindClient:
		return 3
	case trace.SpanKindProducer:
		return 4
	case trace.SpanKindConsumer:
		return 5
	}
	return 0
}

// spanFlagsOf is the W3C trace flags, and whether parent is remote
// (whose being known is always said).
func spanFlagsOf(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	flags := uint32(tf) | flagsHasIsRemote
	if parent.IsRemote() {
		flags |= flagsIsRemote
	}
	return flags
}

func unixNano(n int64) uint64 { return uint64(max(0, n)) }

func clampUint32(v int) uint32 {
	return uint32(min(max(v, 0), math.MaxUint32))
}

func encodeKeyValue(kv attribute.KeyValue) []byte {
	b := appendString(nil, keyValueKey, string(kv.Key))
	return appendMessage(b, keyValueValue, encodeValue(kv.Value))
}

// encodeValue is an AnyValue. Its value is a oneof: it is written even
// when it is the zero of its type.
func encodeValue(v attribute.Value) []byte {
	var b []byte
	switch v.Type() {
	case attribute.BOOL:
		b = appendTag(b, anyBool, wireVarint)
		b = binary.AppendUvarint(b, boolNumber(v.AsBool()))
	case attribute.INT64:
		b = appendTag(b, anyInt, wireVarint)
		b = binary.AppendUvarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = appendTag(b, anyDouble, wireFixed64)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		b = appendLen(b, anyString, []byte(v.AsString()))
	case attribute.BYTESLICE:
		b = appendLen(b, anyBytes, v.AsByteSlice())
	case attribute.BOOLSLICE:
		b = appendLen(b, anyArray, encodeList(v.AsBoolSlice(), attribute.BoolValue))
	case attribute.INT64SLICE:
		b = appendLen(b, anyArray, encodeList(v.AsInt64Slice(), attribute.Int64Value))
	case attribute.FLOAT64SLICE:
		b = appendLen(b, anyArray, encodeList(v.AsFloat64Slice(), attribute.Float64Value))
	case attribute.STRINGSLICE:
		b = appendLen(b, anyArray, encodeList(v.AsStringSlice(), attribute.StringValue))
	case attribute.SLICE:
		b = appendLen(b, anyArray, encodeList(v.AsSlice(), func(v attribute.Value) attribute.Value { return v }))
	case attribute.MAP:
		var kvs []byte
		for _, kv := range v.AsMap() {
			kvs = appendMessage(kvs, listValues, encodeKeyValue(kv))
		}
		b = appendLen(b, anyKVList, kvs)
	case attribute.EMPTY:
	default:
		b = appendLen(b, anyString, []byte("INVALID"))
	}
	return b
}

// encodeList is an ArrayValue of vals.
func encodeList[T any](vals []T, value func(T) attribute.Value) []byte {
	var b []byte
	for _, v := range vals {
		b = appendMessage(b, listValues, encodeValue(value(v)))
	}
	return b
}

func boolNumber(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

func appendTag(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wire))
}

// appendLen writes a length-delimited field, empty or not.
func appendLen(b []byte, field int, data []byte) []byte {
	b = appendTag(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// appendMessage writes an embedded message: present, even when empty.
func appendMessage(b []byte, field int, msg []byte) []byte { return appendLen(b, field, msg) }

// The proto3 scalars below are left out when they hold their zero value,
// as protobuf writes them.

func appendString(b []byte, field int, s string) []byte {
	if s == "" {
		return b
	}
	return appendLen(b, field, []byte(s))
}

func appendBytes(b []byte, field int, data []byte) []byte {
	if len(data) == 0 {
		return b
	}
	return appendLen(b, field, data)
}

func appendVarint(b []byte, field int, v uint64) []byte {
	if v == 0 {
		return b
	}
	return binary.AppendUvarint(appendTag(b, field, wireVarint), v)
}

func appendFixed64(b []byte, field int, v uint64) []byte {
	if v == 0 {
		return b
	}
	return binary.LittleEndian.AppendUint64(appendTag(b, field, wireFixed64), v)
}

func appendFixed32(b []byte, field int, v uint32) []byte {
	if v == 0 {
		return b
	}
	return binary.LittleEndian.AppendUint32(appendTag(b, field, wireFixed32), v)
}
