package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkMiddleware measures what the observer adds to a request whose
// handler does nothing, served in process (no network): with nothing on
// but the request id and the access log line (to a discarding handler),
// with metrics, with tracing (every request sampled into a batching
// exporter that discards), and with both.
func BenchmarkMiddleware(b *testing.B) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"bare", Config{}},
		{"log", Config{Logger: logger}},
		{"log+metrics", Config{Logger: logger, Metrics: prometheus.NewRegistry()}},
		{"log+tracing", Config{Logger: logger, TracerProvider: tp}},
		{"log+metrics+tracing", Config{Logger: logger, Metrics: prometheus.NewRegistry(), TracerProvider: tp}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := chi.NewRouter()
			if bc.name != "bare" {
				obs, err := NewHTTP(bc.cfg)
				if err != nil {
					b.Fatal(err)
				}
				r.Use(obs.Middleware)
			}
			env := chi.NewRouter()
			env.Post("/run-task/{project}/{domain}/{name}", func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusAccepted)
			})
			r.With(Environment("ml")).Handle("/*", env)
			req := httptest.NewRequest(http.MethodPost, "/run-task/demo/development/echo", nil)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r.ServeHTTP(httptest.NewRecorder(), req)
				}
			})
		})
	}
}
