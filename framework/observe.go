package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskgate/taskgate/internal/telemetry"
	"github.com/taskgate/taskgate/tasks/callback"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
)

// observer builds the middleware that gives each request its id, server
// span, metrics and access log line, and registers the Go and process
// collectors beside the request metrics.
func (a *App) observer() (*telemetry.HTTP, error) {
	cfg := telemetry.Config{Logger: a.Logger, TracerProvider: a.TracerProvider}
	if a.Metrics != nil {
		cfg.Metrics = a.Metrics
		if err := telemetry.RegisterRuntime(a.Metrics); err != nil {
			return nil, fmt.Errorf("framework: App.Metrics: %w", err)
		}
	}
	obs, err := telemetry.NewHTTP(cfg)
	if err != nil {
		return nil, fmt.Errorf("framework: App.Metrics: %w", err)
	}
	if a.Metrics != nil && a.Dispatcher != nil {
		if err := telemetry.RegisterState(a.Metrics, a.Dispatcher); err != nil {
			return nil, fmt.Errorf("framework: App.Metrics: %w", err)
		}
	}
	if c, ok := a.Authenticator.(telemetry.IdentityCache); ok && a.Metrics != nil {
		if err := telemetry.RegisterIdentityCache(a.Metrics, c); err != nil {
			return nil, fmt.Errorf("framework: App.Metrics: %w", err)
		}
	}
	return obs, nil
}

// registerPools registers the connection pool metrics of st, where it
// has pools (both taskgate stores do). The App knows only the dispatcher,
// so FromEnv, which opens the store, does it.
func registerPools(reg prometheus.Registerer, st store.Store) error {
	p, ok := st.(store.PoolReporter)
	if !ok {
		return nil
	}
	if err := telemetry.RegisterPools(reg, p); err != nil {
		return fmt.Errorf("framework: store pool metrics: %w", err)
	}
	return nil
}

// RunObserver hears of runs, attempts, placements, store commits and
// webhook deliveries: give it to dispatch.Config.Observer and
// callback.WorkerConfig.Observer.
type RunObserver interface {
	dispatch.Observer
	callback.Observer
}

// NewRunMetrics registers on reg the metrics of runs, attempts, scheduling
// rounds, store commits and webhook deliveries (see README "Operating
// taskgate"), and returns the observer that counts them. Give reg to
// App.Metrics too: the App adds the queue and node gauges, read from its
// Dispatcher at each scrape. FromEnv does all of it.
func NewRunMetrics(reg prometheus.Registerer) (RunObserver, error) {
	m, err := telemetry.NewRuns(reg)
	if err != nil {
		return nil, fmt.Errorf("framework: run metrics: %w", err)
	}
	return m, nil
}

// serveOperator listens on MetricsAddr and serves /metrics and pprof
// there until the returned func is called; with no MetricsAddr it does
// nothing. Its listener opens before the App starts, so that a taken port
// fails the start rather than leaving the service unwatched.
func (a *App) serveOperator() (stop func(), err error) {
	if a.MetricsAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", a.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("framework: metrics listener (MetricsAddr, TASKGATE_METRICS_ADDR): %w", err)
	}
	srv := &http.Server{
		Handler:           telemetry.OperatorHandler(a.Metrics, a.Logger),
		ReadHeaderTimeout: a.ReadHeaderTimeout,
		// A CPU profile or an execution trace takes its ?seconds= (30 by
		// default) to answer.
		WriteTimeout: 2 * time.Minute,
		IdleTimeout:  a.IdleTimeout,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			a.Logger.Error("metrics listener stopped", "err", err)
		}
	}()
	a.Logger.Info("serving metrics and pprof", "addr", ln.Addr().String())
	return func() {
		_ = srv.Close()
		<-done
	}, nil
}

// DefaultMetricsAddr is TASKGATE_METRICS_ADDR's default: loopback only.
const DefaultMetricsAddr = "127.0.0.1:9464"

// parseObservability reads the metrics, log and OTEL_* variables.
func (c *EnvConfig) parseObservability(lookup func(string) (string, bool)) error {
	c.MetricsAddr = DefaultMetricsAddr
	if v, ok := lookup("TASKGATE_METRICS_ADDR"); ok {
		c.MetricsAddr = v
	}
	switch v, _ := lookup("TASKGATE_LOG_FORMAT"); v {
	case "", "text":
		c.LogFormat = "text"
	case "json":
		c.LogFormat = "json"
	default:
		return fmt.Errorf("TASKGATE_LOG_FORMAT=%q: want text or json", v)
	}
	if v, _ := lookup("TASKGATE_LOG_LEVEL"); v != "" {
		switch strings.ToLower(v) {
		case "debug", "info", "warn", "error":
			_ = c.LogLevel.UnmarshalText([]byte(v))
		default:
			return fmt.Errorf("TASKGATE_LOG_LEVEL=%q: want debug, info, warn or error", v)
		}
	}
	env := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	disabled, _ := strconv.ParseBool(env("OTEL_SDK_DISABLED"))
	exporter := strings.ToLower(env("OTEL_TRACES_EXPORTER"))
	endpoint := env("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	c.Traces = !disabled && exporter != "none" && (exporter != "" || endpoint)
	return nil
}

// NewLogger returns the logger TASKGATE_LOG_FORMAT and TASKGATE_LOG_LEVEL
// describe, writing to w. FromEnv uses it, on stderr, when given none.
func (c EnvConfig) NewLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// tracing makes the tracer provider the OTEL_* variables ask for, with
// the hooks that flush and stop it; no provider when they ask for none.
func tracing(ctx context.Context, cfg EnvConfig) (trace.TracerProvider, func(context.Context) error, error) {
	if cfg.TracerProvider != nil {
		return cfg.TracerProvider, func(context.Context) error { return nil }, nil
	}
	if !cfg.Traces {
		return nil, func(context.Context) error { return nil }, nil
	}
	tp, err := telemetry.NewTracerProvider(ctx, "taskgate", "")
	if err != nil {
		return nil, nil, fmt.Errorf("OTEL_*: %w", err)
	}
	return tp, tp.Shutdown, nil
}
