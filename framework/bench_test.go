package framework_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
)

// benchToken is the static bearer token of the benchmarked App.
const benchToken = "bench-token-0123456789abcdef"

// benchParallelism makes b.RunParallel use 16 client goroutines per
// GOMAXPROCS: enough to keep the server busy over loopback.
const benchParallelism = 16

// BenchmarkStack measures what the App's stack costs per request against a
// bare chi router with one JSON handler, served the same way (httptest on
// loopback, keep-alive clients in parallel) in the same run:
//
//   - bare-chi: chi router, one handler writing {"status":"healthy"};
//   - app-health: GET /health through the full App (request ID, client IP,
//     recoverer, drain, environment routing, huma);
//   - app-me: GET /me with a static bearer token (passthrough, static
//     token authenticator behind the identity cache, huma).
//
// Each reports req/s; the app ones also ratio_to_bare (their req/s over
// bare-chi's).
func BenchmarkStack(b *testing.B) {
	var bare float64
	b.Run("bare-chi", func(b *testing.B) {
		srv := httptest.NewServer(benchBareChi())
		defer srv.Close()
		bare = benchLoad(b, srv.URL+"/health", "")
	})
	base := benchApp(b)
	for _, bc := range []struct{ name, path, token string }{
		{"app-health", "/health", ""},
		{"app-me", "/me", benchToken},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rate := benchLoad(b, base+bc.path, bc.token)
			if bare > 0 {
				b.ReportMetric(rate/bare, "ratio_to_bare")
			}
		})
	}
}

// benchBareChi is the baseline: chi with one JSON handler.
func benchBareChi() http.Handler {
	r := chi.NewRouter()
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "healthy"})
	})
	return r
}

// benchApp serves the quickstart's App (SQLite in a temp dir, a static
// token) on loopback and returns its base URL.
func benchApp(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	cfg, err := framework.ParseEnv(func(k string) string {
		switch k {
		case "TASKGATE_DATA_DIR":
			return dir
		case "TASKGATE_AUTH_TOKENS":
			return benchToken + "=bencher:admins"
		case "TASKGATE_NODE_GPUS":
			return "A100:1"
		}
		return ""
	})
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := framework.FromEnv(context.Background(), cfg, logger, demo.Registry(), demo.Webhook())
	if err != nil {
		b.Fatal(err)
	}
	h, err := svc.App.Handler()
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.App.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = svc.App.Stop(ctx)
	})
	return srv.URL
}

// benchLoad GETs url from parallel keep-alive clients b.N times in all,
// fails on any status but 200, and reports and returns req/s.
func benchLoad(b *testing.B, url, token string) float64 {
	b.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 1024
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			b.Error(err)
			return
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for pb.Next() {
			resp, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("GET %s: status %d", url, resp.StatusCode)
				return
			}
		}
	})
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "req/s")
	return rate
}
