// Package telemetry is how a taskgate App shows what it does: Prometheus
// metrics, OpenTelemetry server spans and one access log line per
// request, and the operator's port that serves /metrics and pprof.
//
// The App puts HTTP's Middleware first on its root router and
// Environment in front of each environment; package middleware reports
// the verified caller and why it refused a request through a
// report.Report in the request's context, so it never imports
// Prometheus:
//
//	obs, err := telemetry.NewHTTP(telemetry.Config{Logger: logger, Metrics: reg, TracerProvider: tp})
//	if err != nil { … }
//	r := chi.NewRouter()
//	r.Use(obs.Middleware)
//	r.With(telemetry.Environment("ml")).Handle("/*", envHandler)
//	go http.Serve(opsListener, telemetry.OperatorHandler(reg, logger))
//
// Every label value comes from a bounded set (environment names, route
// templates, known methods, status classes, report.Refusal values):
// a raw path or query never becomes a label or a log field.
//
// # Place on the data path
//
// telemetry watches the request → auth → environment step for framework,
// which wires it. Below that step (dispatch, store, callbacks) nothing
// imports it: their metrics reach it through the observer interfaces
// those packages define (dispatch.Observer, callback.Observer), which Runs
// implements, as middleware/report's Report does here; StateCollector reads the
// queue and the nodes from the dispatcher at each scrape, RegisterPools a
// store's connection pools (store.PoolReporter) and RegisterIdentityCache
// middleware.Cache's hit and miss counts, both plain values.
package telemetry
