package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskgate/taskgate/middleware/report"
)

// RequestIDHeader carries the request id both ways.
const RequestIDHeader = "X-Request-Id"

// maxRequestID bounds an incoming request id that is kept.
const maxRequestID = 128

// OtherRoute is the route label of a request that no route template
// matched (or that only a catch-all served), so that probes of random
// paths cannot add label values.
const OtherRoute = "other"

// Config configures an HTTP observer.
type Config struct {
	// Logger gets one access log line per request, at info.
	Logger *slog.Logger
	// Metrics gets the request metrics; nil: none.
	Metrics prometheus.Registerer
	// TracerProvider starts a server span per request, child of an
	// incoming W3C traceparent (see span.go); nil: no spans.
	TracerProvider trace.TracerProvider
}

// HTTP observes every request of an App: its request id, server span,
// metrics and access log line.
type HTTP struct {
	logger  *slog.Logger
	metrics *httpMetrics // nil: none
	tracer  trace.Tracer // nil: no spans
	ids     requestIDs
}

// NewHTTP registers the request metrics on cfg.Metrics, if any.
func NewHTTP(cfg Config) (*HTTP, error) {
	h := &HTTP{logger: cfg.Logger, ids: newRequestIDs()}
	if cfg.TracerProvider != nil {
		h.tracer = cfg.TracerProvider.Tracer(tracerName)
	}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	if cfg.Metrics != nil {
		m, err := newHTTPMetrics(cfg.Metrics)
		if err != nil {
			return nil, err
		}
		h.metrics = m
	}
	return h, nil
}

// Middleware goes first on the App's root chi router: what it measures
// includes every layer after it, and it reads the route template that
// chi's routing (the root's and the environments' routers, which share
// its route context) leaves behind.
func (h *HTTP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, next) })
}

// exchange is what the layers after Middleware tell it about a request.
type exchange struct {
	env    string
	report report.Report
}

type exchangeKey struct{}

// Environment returns middleware that names the environment serving the
// request in its metrics, span and access log line. The App puts it in
// front of each environment's handler.
func Environment(name string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if x, ok := r.Context().Value(exchangeKey{}).(*exchange); ok {
				x.env = name
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (h *HTTP) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	start := time.Now()
	id := r.Header.Get(RequestIDHeader)
	if !validRequestID(id) {
		id = h.ids.next()
	}
	w.Header().Set(RequestIDHeader, id)
	x := &exchange{}
	ctx := context.WithValue(r.Context(), chimw.RequestIDKey, id)
	ctx = context.WithValue(ctx, exchangeKey{}, x)
	ctx = report.NewContext(ctx, &x.report)
	span := trace.SpanFromContext(ctx)
	if h.tracer != nil {
		ctx, span = h.startSpan(ctx, r)
		defer span.End()
	}
	ww := chimw.NewWrapResponseWriter(w, r.ProtoMajor)
	if h.metrics != nil {
		h.metrics.inFlight.Inc()
		// Deferred: a handler's http.ErrAbortHandler panics through here.
		defer h.metrics.inFlight.Dec()
	}
	next.ServeHTTP(ww, r.WithContext(ctx))

	a := answer{
		id: id, env: x.env, route: routeOf(ctx), method: r.Method,
		status: ww.Status(), bytes: ww.BytesWritten(), elapsed: time.Since(start), report: x.report,
	}
	if a.status == 0 {
		a.status = http.StatusOK // net/http's answer to a handler that wrote nothing
	}
	if r.Method == http.MethodHead {
		a.bytes = 0 // net/http drops what a handler writes to HEAD
	}
	if span.IsRecording() {
		annotateSpan(span, r, a)
	}
	if h.metrics != nil {
		h.metrics.observe(a)
	}
	if h.logger.Enabled(ctx, slog.LevelInfo) {
		h.logRequest(ctx, a, span)
	}
}

// answer is what a request came to, as its span, metrics and access log
// line tell it.
type answer struct {
	id, env, route, method string
	status, bytes          int
	elapsed                time.Duration
	report                 report.Report
}

// logRequest writes the request's access log line: the route, never the
// raw URL, whose query string may hold a secret.
func (h *HTTP) logRequest(ctx context.Context, a answer, span trace.Span) {
	attrs := []slog.Attr{
		slog.String("request_id", a.id),
		slog.String("environment", a.env),
		slog.String("route", a.route),
		slog.String("method", a.method),
		slog.Int("status", a.status),
		slog.Float64("duration_ms", float64(a.elapsed.Microseconds())/1000),
		slog.Int("bytes", a.bytes),
		slog.String("subject", a.report.Subject),
	}
	if span.IsRecording() {
		attrs = append(attrs, slog.String("trace_id", span.SpanContext().TraceID().String()))
	}
	h.logger.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

func (m *httpMetrics) observe(a answer) {
	method := methodLabel(a.method)
	m.requests.WithLabelValues(a.env, a.route, method, statusClass(a.status)).Inc()
	m.duration.WithLabelValues(a.env, a.route, method).Observe(a.elapsed.Seconds())
	switch a.status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
		m.refused.WithLabelValues(a.env, strconv.Itoa(a.status), refusalLabel(a.report.Refusal)).Inc()
	}
}

// routeOf is the template of the route that served the request, or
// OtherRoute: unmatched, or served by a catch-all ("/*", a proxied
// server's every path).
func routeOf(ctx context.Context) string {
	rctx := chi.RouteContext(ctx)
	if rctx == nil {
		return OtherRoute
	}
	switch p := rctx.RoutePattern(); p {
	case "", "/*":
		return OtherRoute
	default:
		return p
	}
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

var statusClasses = [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func statusClass(code int) string {
	if c := code / 100; c >= 1 && c <= 5 {
		return statusClasses[c]
	}
	return statusClasses[0]
}

// refusalLabel keeps the reason label to the refusals middleware defines:
// a handler may record any string.
func refusalLabel(r report.Refusal) string {
	switch r {
	case report.MissingCredentials, report.InvalidToken, report.CSRF,
		report.ForbiddenGroup, report.ForbiddenTask,
		report.RateLimit, report.MaxInFlight:
		return string(r)
	}
	return "other"
}

// validRequestID accepts an incoming id of at most maxRequestID
// printable ASCII characters without spaces: anything else could break a
// log line or grow it without bound.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := range len(id) {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// requestIDs makes the ids of requests that came without a valid one: a
// random prefix per process and a counter, unique across processes and
// restarts, and cheaper than random bytes per request.
type requestIDs struct {
	prefix string
	n      *atomic.Uint64
}

func newRequestIDs() requestIDs {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return requestIDs{
		prefix: base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b) + "-",
		n:      new(atomic.Uint64),
	}
}

func (g requestIDs) next() string { return g.prefix + strconv.FormatUint(g.n.Add(1), 10) }
