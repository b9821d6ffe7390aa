package telemetry

import (
	"context"
	"net"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the server spans.
const tracerName = "github.com/taskgate/taskgate/internal/telemetry"

// The server span is made here rather than by otelhttp's handler, which
// wraps the response writer again (this middleware already has one),
// clones the request a second time and records OpenTelemetry metrics
// that taskgate keeps in Prometheus: together, about three times the
// cost of the span itself on every request.

// startSpan starts the request's server span, child of the W3C
// traceparent it came with, if any. Only the trace context crosses the
// boundary: a caller's baggage is not taken in. Its attributes are set
// once, by annotateSpan, when the response is known: the SDK's samplers
// do not read them, and one call copies them once.
func (h *HTTP) startSpan(ctx context.Context, r *http.Request) (context.Context, trace.Span) {
	ctx = propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(r.Header))
	return h.tracer.Start(ctx, spanMethod(r.Method), trace.WithSpanKind(trace.SpanKindServer))
}

// spanMethod is the method as a span name starts with it: "HTTP" for one
// outside the known set, as the conventions say, so that a caller cannot
// make up span names.
func spanMethod(m string) string {
	if methodLabel(m) == "other" {
		return "HTTP"
	}
	return m
}

// annotateSpan names the span after its route template, as the semantic
// conventions ask ("POST /run-task/{project}/{domain}/{name}"), and adds
// what the response told. A 5xx is an error of the server's; a 4xx is the
// caller's, so it leaves the status unset. (A span from a layer before
// the App's, when the App has no TracerProvider, is named the same way.)
func annotateSpan(span trace.Span, r *http.Request, a answer) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs := make([]attribute.KeyValue, 0, 10)
	method := r.Method
	if methodLabel(method) == "other" {
		method = "_OTHER" // the conventions' word for a method outside the known set
	}
	attrs = append(attrs,
		semconv.HTTPRequestMethodKey.String(method),
		semconv.URLScheme(scheme),
		semconv.URLPath(r.URL.Path),
		semconv.ServerAddress(r.Host),
		semconv.HTTPResponseStatusCode(a.status),
		semconv.HTTPResponseBodySize(a.bytes),
	)
	if peer, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		attrs = append(attrs, semconv.NetworkPeerAddress(peer))
	}
	if a.route != OtherRoute {
		span.SetName(spanMethod(r.Method) + " " + a.route)
		attrs = append(attrs, semconv.HTTPRoute(a.route))
	}
	if a.env != "" {
		attrs = append(attrs, attribute.String("taskgate.environment", a.env))
	}
	span.SetAttributes(attrs...)
	if a.status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(a.status))
	}
}
