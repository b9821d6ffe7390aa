package telemetry

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// durationBuckets cover a cached GET (a millisecond) up to a submit that
// waits for its run (Prefer: wait, at most 60 s).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// httpMetrics are the request metrics. Every label value comes from a
// bounded set: environment names, route templates, known methods, status
// classes and Refusal values, never from the raw request.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	refused  *prometheus.CounterVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskgate_http_requests_total",
			Help: "HTTP requests answered, by environment, route template, method and status class (2xx…).",
		}, []string{"environment", "route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taskgate_http_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its response (an event stream's whole life), by environment, route template and method.",
			Buckets: durationBuckets,
		}, []string{"environment", "route", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "taskgate_http_requests_in_flight",
			Help: "HTTP requests being served now.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskgate_http_refusals_total",
			Help: "Requests refused with 401, 403 or 429, by environment, status and reason.",
		}, []string{"environment", "status", "reason"}),
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.inFlight, err = register(reg, m.inFlight); err != nil {
		return nil, err
	}
	if m.refused, err = register(reg, m.refused); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c on reg, or returns the collector of the same
// description already there: two Apps given one registry share their
// metrics rather than fail.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// RegisterRuntime registers the Go runtime and process collectors on reg,
// unless it has them already (prometheus.DefaultRegisterer does).
func RegisterRuntime(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if _, err := register(reg, c); err != nil {
			return err
		}
	}
	return nil
}

// OperatorHandler serves what an operator's port shows: GET /metrics from
// g, in the Prometheus text format or OpenMetrics as the scraper asks,
// and net/http/pprof under /debug/pprof/, on a mux of its own (never
// http.DefaultServeMux, which anything imported may fill). The command
// line (/debug/pprof/cmdline) is left out: it may hold a secret. Serve it
// only where operators reach it: a profile costs CPU, and shows the code.
func OperatorHandler(g prometheus.Gatherer, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// A collector that fails leaves its metrics out; the rest still
		// reach the scraper.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
