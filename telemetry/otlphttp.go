package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// This file is the SDK's OTLP/HTTP trace exporter, written here: it posts
// the spans otlpencode.go writes. The SDK's exporters (otlptracehttp, and
// otlptrace under it) build the request from go.opentelemetry.io/proto/otlp's
// messages, which link the protobuf runtime, and the collector package
// with them gRPC, HTTP/2, grpc-gateway and protojson; Go initialises every
// linked package before main, in every command (docs/benchmarks.md).

// tracesPath is where OTLP/HTTP takes traces below a base endpoint.
const tracesPath = "v1/traces"

// Field numbers of ExportTraceServiceResponse
// (opentelemetry/proto/collector/trace/v1/trace_service.proto).
const (
	responsePartialSuccess = 1
	partialRejectedSpans   = 1
	partialErrorMessage    = 2
)

// maxResponse bounds how much of a collector's answer is read.
const maxResponse = 64 << 10

// httpConfig is what the OTEL_EXPORTER_OTLP_* variables ask of the
// transport; the TRACES_ variant of each wins over the general one.
type httpConfig struct {
	url      string
	headers  map[string]string
	timeout  time.Duration
	gzip     bool
	tls      *tls.Config // nil: the system's roots, no client certificate
	insecure bool        // OTEL_EXPORTER_OTLP_INSECURE, for an endpoint without a scheme
}

// readHTTPConfig reads the exporter's settings from environ, as the
// OpenTelemetry specification defines them, with an error naming the
// variable for a value that cannot be used.
func readHTTPConfig(environ []string) (httpConfig, error) {
	cfg := httpConfig{timeout: 10 * time.Second}
	get := func(name string) (key, value string) {
		for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_" + name, "OTEL_EXPORTER_OTLP_" + name} {
			if v := strings.TrimSpace(lookup(environ, k)); v != "" {
				return k, v
			}
		}
		return "", ""
	}
	if k, v := get("INSECURE"); k != "" {
		cfg.insecure = strings.EqualFold(v, "true")
	}
	var err error
	if cfg.url, err = endpointURL(environ, cfg.insecure); err != nil {
		return cfg, err
	}
	if k, v := get("HEADERS"); k != "" {
		if cfg.headers, err = parseHeaders(v); err != nil {
			return cfg, fmt.Errorf("%s: %w", k, err)
		}
	}
	if k, v := get("TIMEOUT"); k != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return cfg, fmt.Errorf("%s=%s: not a number of milliseconds", k, v)
		}
		cfg.timeout = time.Duration(ms) * time.Millisecond
	}
	if k, v := get("COMPRESSION"); k != "" {
		switch strings.ToLower(v) {
		case "gzip":
			cfg.gzip = true
		case "none":
		default:
			return cfg, fmt.Errorf("%s=%s: not gzip or none", k, v)
		}
	}
	cfg.tls, err = readTLS(get)
	return cfg, err
}

// endpointURL is where traces go: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it
// is (its root when it has no path), else OTEL_EXPORTER_OTLP_ENDPOINT with
// v1/traces below its path. An endpoint without a scheme is https, or http
// with OTEL_EXPORTER_OTLP_INSECURE=true.
func endpointURL(environ []string, insecure bool) (string, error) {
	key, raw, signal := TracesEndpointEnv, strings.TrimSpace(lookup(environ, TracesEndpointEnv)), true
	if raw == "" {
		key, raw, signal = EndpointEnv, strings.TrimSpace(lookup(environ, EndpointEnv)), false
	}
	if !strings.Contains(raw, "://") {
		scheme := "https://"
		if insecure {
			scheme = "http://"
		}
		raw = scheme + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s=%s: not an http or https address", key, lookup(environ, key))
	}
	switch {
	case signal && u.Path == "":
		u.Path = "/"
	case !signal:
		u.Path = path.Join("/", u.Path, tracesPath)
		u.RawPath = ""
	}
	return u.String(), nil
}

// parseHeaders reads "key=value,key2=value2" with percent-encoded values.
func parseHeaders(v string) (map[string]string, error) {
	h := map[string]string{}
	for _, pair := range strings.Split(v, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return nil, fmt.Errorf("%q is not key=value", pair)
		}
		dec, err := url.PathUnescape(val)
		if err != nil {
			return nil, fmt.Errorf("the value of %s: %w", k, err)
		}
		h[k] = strings.TrimSpace(dec)
	}
	return h, nil
}

// readTLS reads the certificate authority and the client certificate the
// variables name, or returns nil when they name none.
func readTLS(get func(string) (string, string)) (*tls.Config, error) {
	caKey, ca := get("CERTIFICATE")
	certKey, cert := get("CLIENT_CERTIFICATE")
	keyKey, key := get("CLIENT_KEY")
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", caKey, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s=%s: no PEM certificate in it", caKey, ca)
		}
		conf.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, fmt.Errorf("a client certificate needs both %s and %s", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_KEY")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("%s, %s: %w", certKey, keyKey, err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}

// exporter sends the SDK's finished spans to the collector
// (sdktrace.SpanExporter), a batch per request.
type exporter struct {
	cfg       httpConfig
	userAgent string
	client    *http.Client
}

var _ sdktrace.SpanExporter = (*exporter)(nil)

func newExporter(cfg httpConfig, version string) *exporter {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.tls != nil {
		transport.TLSClientConfig = cfg.tls
	}
	return &exporter{cfg: cfg, userAgent: "codemachine/" + version, client: &http.Client{Transport: transport}}
}

// ExportSpans sends one batch.
func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	msg := encodeSpans(spans)
	if len(msg) == 0 {
		return nil
	}
	if err := e.upload(ctx, msg); err != nil {
		return fmt.Errorf("traces export: %w", err)
	}
	return nil
}

// Shutdown closes idle connections; an export in flight ends with its
// context.
func (e *exporter) Shutdown(context.Context) error {
	e.client.CloseIdleConnections()
	return nil
}

// upload sends one ExportTraceServiceRequest, msg, again after a
// collector's "try later" (429, 502, 503, 504) until the batch's time
// (OTEL_EXPORTER_OTLP_TIMEOUT) or ctx ends.
func (e *exporter) upload(ctx context.Context, msg []byte) error {
	body, err := compress(msg, e.cfg.gzip)
	if err != nil {
		return err
	}
	if e.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.cfg.timeout)
		defer cancel()
	}
	backoff := 200 * time.Millisecond
	for {
		wait, err := e.post(ctx, body)
		if err == nil || wait < 0 {
			return err
		}
		if wait == 0 {
			wait = backoff
			backoff = min(2*backoff, 5*time.Second)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-timer.C:
		}
	}
}

// post sends body once. wait says what to do after an error: -1 give up,
// 0 try again after a backoff, more: try again after that long.
func (e *exporter) post(ctx context.Context, body []byte) (wait time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.url, bytes.NewReader(body))
	if err != nil {
		return -1, err
	}
	for k, v := range e.cfg.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", e.userAgent)
	if e.cfg.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		// Not tried again: a collector that is down would hold every
		// command's end for the whole flush time.
		return -1, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	switch code := resp.StatusCode; {
	case code >= 200 && code <= 299:
		return -1, partialSuccess(answer, resp.Header.Get("Content-Type"))
	case code == http.StatusTooManyRequests || code == http.StatusBadGateway ||
		code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
		return retryAfter(resp.Header.Get("Retry-After")), responseError(e.cfg.url, resp.Status, answer)
	default:
		return -1, responseError(e.cfg.url, resp.Status, answer)
	}
}

func responseError(url, status string, answer []byte) error {
	text := strings.TrimSpace(string(answer))
	if text == "" || !isText(text) {
		return fmt.Errorf("failed to send to %s: %s", url, status)
	}
	return fmt.Errorf("failed to send to %s: %s (%s)", url, status, clip(text, 200))
}

// retryAfter is a Retry-After header's seconds (0 when it has none).
func retryAfter(v string) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(min(s, 60)) * time.Second
}

// compress is msg, gzipped when asked.
func compress(msg []byte, gzipped bool) ([]byte, error) {
	if !gzipped {
		return msg, nil
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(msg); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// errPartial is a collector's answer that it dropped some spans.
var errPartial = errors.New("the collector dropped spans")

// partialSuccess reads an ExportTraceServiceResponse (protobuf) and returns
// an error when it says spans were rejected.
func partialSuccess(answer []byte, contentType string) error {
	if len(answer) == 0 || !strings.HasPrefix(contentType, "application/x-protobuf") {
		return nil
	}
	partial, ok := field(answer, responsePartialSuccess, wireBytes)
	if !ok {
		return nil
	}
	var rejected uint64
	if v, ok := field(partial, partialRejectedSpans, wireVarint); ok {
		rejected, _ = binary.Uvarint(v)
	}
	msg, _ := field(partial, partialErrorMessage, wireBytes)
	if rejected == 0 && len(msg) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d rejected (%s)", errPartial, rejected, clip(string(msg), 200))
}

// field returns the last occurrence of field num of wire type typ in msg:
// the value's bytes for wireBytes, the encoded varint for wireVarint. A
// message it cannot read (or with groups, which OTLP does not use) has
// none.
func field(msg []byte, num, typ int) ([]byte, bool) {
	var found []byte
	ok := false
	for len(msg) > 0 {
		tag, n := binary.Uvarint(msg)
		if n <= 0 || tag>>3 == 0 {
			return nil, false
		}
		msg = msg[n:]
		var value []byte // the field's value as field returns it
		var size int     // the bytes it takes in msg
		switch int(tag & 7) {
		case wireVarint:
			if _, size = binary.Uvarint(msg); size <= 0 {
				return nil, false
			}
			value = msg[:size]
		case wireFixed64:
			size = 8
		case wireFixed32:
			size = 4
		case wireBytes:
			l, n := binary.Uvarint(msg)
			if n <= 0 || l > uint64(len(msg)-n) {
				return nil, false
			}
			size = n + int(l)
			value = msg[n:size]
		default:
			return nil, false
		}
		if size > len(msg) {
			return nil, false
		}
		if tag>>3 == uint64(num) && int(tag&7) == typ {
			found, ok = value, true
		}
		msg = msg[size:]
	}
	return found, ok
}

// isText reports whether s reads as text (a collector's error page may be
// a protobuf Status, which is not shown).
func isText(s string) bool {
	for _, r := range s {
		if r == '\uFFFD' || (r < ' ' && r != '\n' && r != '\t' && r != '\r') {
			return false
		}
	}
	return true
}

// clip is s's first line, cut to at most limit bytes.
func clip(s string, limit int) string {
	s = firstLine(s)
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "") + "…"
	}
	return s
}
