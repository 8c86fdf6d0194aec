package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// exporter posts ExportTraceServiceRequests to an OTLP/HTTP endpoint as
// the OTLP exporter specification has it: the OTEL_EXPORTER_OTLP_* and
// OTEL_EXPORTER_OTLP_TRACES_* settings (endpoint, headers, timeout,
// compression, certificates; the TRACES_ one wins), and a retry with
// back-off on the answers that ask for one (429, 502, 503, 504).
type exporter struct {
	url      string
	headers  map[string]string
	timeout  time.Duration
	compress bool
	client   *http.Client
}

// setting is the traces-specific variable when set, else the general one.
func setting(environ []string, name string) string {
	if v := lookup(environ, "OTEL_EXPORTER_OTLP_TRACES_"+name); v != "" {
		return v
	}
	return lookup(environ, "OTEL_EXPORTER_OTLP_"+name)
}

func newExporter(environ []string) (*exporter, error) {
	e := &exporter{url: lookup(environ, TracesEndpointEnv), headers: map[string]string{}, timeout: 10 * time.Second}
	if e.url == "" {
		// The general endpoint is a base: the signal's path goes under it.
		e.url = strings.TrimSuffix(lookup(environ, EndpointEnv), "/") + "/v1/traces"
	}
	if u, err := url.Parse(e.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("traces: the OTLP endpoint %q is not an http or https URL", e.url)
	}
	if h := setting(environ, "HEADERS"); h != "" {
		for _, kv := range strings.Split(h, ",") {
			k, v, ok := strings.Cut(kv, "=")
			key, kerr := url.PathUnescape(strings.TrimSpace(k))
			val, verr := url.PathUnescape(strings.TrimSpace(v))
			if !ok || key == "" || kerr != nil || verr != nil {
				return nil, fmt.Errorf("traces: OTEL_EXPORTER_OTLP_HEADERS: %q is not key=value", kv)
			}
			e.headers[key] = val
		}
	}
	if t := setting(environ, "TIMEOUT"); t != "" {
		ms, err := strconv.Atoi(t)
		if err != nil || ms <= 0 {
			return nil, fmt.Errorf("traces: OTEL_EXPORTER_OTLP_TIMEOUT=%s is not a number of milliseconds", t)
		}
		e.timeout = time.Duration(ms) * time.Millisecond
	}
	switch c := setting(environ, "COMPRESSION"); c {
	case "", "none":
	case "gzip":
		e.compress = true
	default:
		return nil, fmt.Errorf("traces: OTEL_EXPORTER_OTLP_COMPRESSION=%s is not supported (gzip or none)", c)
	}
	tlsConf, err := tlsConfig(environ)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	e.client = &http.Client{Transport: tr}
	return e, nil
}

// tlsConfig is the certificate authority and client certificate the
// settings name, nil when they name none.
func tlsConfig(environ []string) (*tls.Config, error) {
	ca, cert, key := setting(environ, "CERTIFICATE"), setting(environ, "CLIENT_CERTIFICATE"), setting(environ, "CLIENT_KEY")
	if ca == "" && cert == "" {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("traces: OTEL_EXPORTER_OTLP_CERTIFICATE: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("traces: OTEL_EXPORTER_OTLP_CERTIFICATE: no certificate in %s", ca)
		}
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("traces: OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: %w", err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}

// export sends one request, retrying while the receiver asks to and ctx
// and the timeout allow.
func (e *exporter) export(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	if e.compress {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = buf.Bytes()
	}
	wait := 500 * time.Millisecond
	for {
		retry, err := e.post(ctx, body)
		if !retry {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("traces: %w (after: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// post sends body once: whether to try again, and what went wrong.
func (e *exporter) post(ctx context.Context, body []byte) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("traces: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "codemachine")
	if e.compress {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range e.headers {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return ctx.Err() == nil, fmt.Errorf("traces: %w", err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == 429, resp.StatusCode == 502, resp.StatusCode == 503, resp.StatusCode == 504:
		return true, fmt.Errorf("traces: %s answered %s", e.url, resp.Status)
	}
	return false, fmt.Errorf("traces: %s answered %s: %s", e.url, resp.Status, strings.TrimSpace(string(msg)))
}
