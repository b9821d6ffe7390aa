package benchstack

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
)

// Token is the stack's static bearer token (subject "bencher", group
// "admins").
const Token = "bench-token-0123456789abcdef"

// Server is a handler served on a loopback port.
type Server struct {
	// URL is http://127.0.0.1:port.
	URL string
	srv *http.Server
}

// Serve serves h on a free loopback port.
func Serve(h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &Server{URL: "http://" + ln.Addr().String(), srv: srv}, nil
}

// Close stops serving at once.
func (s *Server) Close() { _ = s.srv.Close() }

// BareChi is the baseline: chi with one JSON handler at GET /health.
func BareChi() http.Handler {
	r := chi.NewRouter()
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "healthy"})
	})
	return r
}

// Stack is the quickstart's service, started and served.
type Stack struct {
	*Server
	Service *framework.Service
}

// Start builds and serves the stack: SQLite in dir when dbURL is empty,
// else that database; role as TASKGATE_ROLE ("" runs scheduler and node
// agent, as `make run` does; "agent" runs no scheduler, so runs stay
// queued and only the submit path works). Metrics and tracing are off.
func Start(ctx context.Context, dir, dbURL, role string) (*Stack, error) {
	return StartObserved(ctx, dir, dbURL, role, Observability{})
}

// Observability is what a stack's App is given to measure itself with.
type Observability struct {
	// Metrics is App.Metrics; nil: no metrics.
	Metrics *prometheus.Registry
	// TracerProvider is App.TracerProvider; nil: no spans.
	TracerProvider trace.TracerProvider
}

// StartObserved is Start with the App's metrics and tracing as obs says.
// The operator's port is never opened: its scrapes are not measured.
func StartObserved(ctx context.Context, dir, dbURL, role string, obs Observability) (*Stack, error) {
	cfg, err := framework.ParseEnv(func(k string) string {
		switch k {
		case "TASKGATE_DATA_DIR":
			return dir
		case "TASKGATE_DATABASE_URL":
			return dbURL
		case "TASKGATE_AUTH_TOKENS":
			return Token + "=bencher:admins"
		case "TASKGATE_NODE_GPUS":
			return "A100:1"
		case "TASKGATE_NODE_ID":
			return "bench-node"
		case "TASKGATE_ROLE":
			return role
		}
		return ""
	})
	if err != nil {
		return nil, err
	}
	// The run metrics and the run's spans count as much as the App's:
	// the dispatcher is given them too.
	cfg.MetricsAddr, cfg.Metrics, cfg.TracerProvider = "", obs.Metrics, obs.TracerProvider
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := framework.FromEnv(ctx, cfg, logger, demo.Registry(), demo.Webhook())
	if err != nil {
		return nil, err
	}
	svc.App.MetricsAddr = ""
	svc.App.Metrics = obs.Metrics
	svc.App.TracerProvider = obs.TracerProvider
	h, err := svc.App.Handler()
	if err != nil {
		return nil, err
	}
	if err := svc.App.Start(ctx); err != nil {
		return nil, err
	}
	s, err := Serve(h)
	if err != nil {
		_ = svc.App.Stop(ctx)
		return nil, err
	}
	return &Stack{Server: s, Service: svc}, nil
}

// Close stops serving and stops the service.
func (st *Stack) Close() {
	st.Server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = st.Service.App.Stop(ctx)
}
