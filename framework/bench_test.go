package framework_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskgate/taskgate/internal/benchstack"
)

// benchToken is the static bearer token of the benchmarked App.
const benchToken = benchstack.Token

// benchParallelism is the client goroutines per GOMAXPROCS: enough to
// keep the server busy over loopback.
const benchParallelism = 16

// BenchmarkStack measures what the App's stack costs per request against a
// bare chi router with one JSON handler, served the same way (httptest on
// loopback, GOMAXPROCS*16 keep-alive client goroutines) in the same run:
//
//   - bare-chi: chi router, one handler writing {"status":"healthy"};
//   - app-health: GET /health through the full App (request ID, client IP,
//     recoverer, drain, environment routing, huma);
//   - app-me: GET /me with a static bearer token (passthrough, static
//     token authenticator behind the identity cache, huma).
//
// Each reports req/s. The app ones also measure bare chi again, interleaved
// with their own requests in 8 rounds of bare, app, app, bare (the timer
// runs only for the app's), and report it as bare_req/s and their ratio
// as ratio_to_bare: on a shared machine, load that comes and goes then
// weighs on both sides of the ratio alike.
func BenchmarkStack(b *testing.B) {
	bare := httptest.NewServer(benchstack.BareChi())
	defer bare.Close()
	b.Run("bare-chi", func(b *testing.B) {
		hc := benchClient()
		b.ResetTimer()
		d := benchHammer(b, hc, bare.URL+"/health", "", b.N)
		b.ReportMetric(float64(b.N)/d.Seconds(), "req/s")
	})
	base := benchApp(b)
	for _, bc := range []struct{ name, path, token string }{
		{"app-health", "/health", ""},
		{"app-me", "/me", benchToken},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hc := benchClient()
			var appT, bareT time.Duration
			var appN, bareN int
			b.ResetTimer()
			b.StopTimer()
			// Each chunk goes to both sides, in the order bare, app, then
			// app, bare for the next (ABBA): drifting load weighs on both.
			for i, n := range benchChunks(b.N, 2*benchRounds) {
				bareFirst := i%2 == 0
				if bareFirst {
					bareT += benchHammer(b, hc, bare.URL+"/health", "", n)
				}
				b.StartTimer()
				appT += benchHammer(b, hc, base+bc.path, bc.token, n)
				b.StopTimer()
				if !bareFirst {
					bareT += benchHammer(b, hc, bare.URL+"/health", "", n)
				}
				appN += n
				bareN += n
			}
			appRate := float64(appN) / appT.Seconds()
			bareRate := float64(bareN) / bareT.Seconds()
			b.ReportMetric(appRate, "req/s")
			b.ReportMetric(bareRate, "bare_req/s")
			b.ReportMetric(appRate/bareRate, "ratio_to_bare")
		})
	}
}

// BenchmarkObservability measures what the App's metrics and tracing
// cost on the submit path: POST /run-task (echo) with a bearer token on
// the quickstart's SQLite stack with no scheduler in the process
// (TASKGATE_ROLE=agent), so that each request is the durable 202 alone.
// "on" has a Prometheus registry and a tracer provider that samples every
// request into a batching exporter that discards the spans; "off" has
// neither. Both log the access line (to a discarding handler). The two
// stacks run in the same process and take turns in obsRounds ABBA
// rounds, the timer running for "on" only; it reports runs/s for both and
// their ratio, on_off_ratio (the goal is 0.9 or more).
func BenchmarkObservability(b *testing.B) {
	off := benchObservedStack(b, benchstack.Observability{})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	on := benchObservedStack(b, benchstack.Observability{Metrics: prometheus.NewRegistry(), TracerProvider: tp})
	body := []byte(`{"message":"hi"}`)
	const path = "/run-task/demo/development/echo"
	hc := benchClient()
	var onT, offT time.Duration
	var total int
	b.ResetTimer()
	b.StopTimer()
	for i, n := range benchChunks(b.N, 2*obsRounds) {
		offFirst := i%2 == 0
		if offFirst {
			offT += benchSend(b, hc, http.MethodPost, off+path, benchToken, body, http.StatusAccepted, n)
		}
		b.StartTimer()
		onT += benchSend(b, hc, http.MethodPost, on+path, benchToken, body, http.StatusAccepted, n)
		b.StopTimer()
		if !offFirst {
			offT += benchSend(b, hc, http.MethodPost, off+path, benchToken, body, http.StatusAccepted, n)
		}
		total += n
	}
	onRate, offRate := float64(total)/onT.Seconds(), float64(total)/offT.Seconds()
	b.ReportMetric(onRate, "runs/s")
	b.ReportMetric(offRate, "off_runs/s")
	b.ReportMetric(onRate/offRate, "on_off_ratio")
}

// obsRounds is how many ABBA rounds BenchmarkObservability runs: more
// than BenchmarkStack's, since a 5% difference is what it must see
// through the load of a shared machine.
const obsRounds = 32

// benchObservedStack serves the submit-only stack (no scheduler) with
// obs and returns its base URL.
func benchObservedStack(b *testing.B, obs benchstack.Observability) string {
	b.Helper()
	st, err := benchstack.StartObserved(context.Background(), b.TempDir(), "", "agent", obs)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	return st.URL
}

// benchApp serves the quickstart's stack (internal/benchstack: SQLite in
// a temp dir, a static token) on loopback and returns its base URL.
func benchApp(b *testing.B) string {
	b.Helper()
	st, err := benchstack.Start(context.Background(), b.TempDir(), "", "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	return st.URL
}

// benchRounds is how many ABBA rounds (bare, app, app, bare) an app
// sub-benchmark runs.
const benchRounds = 8

// benchChunks splits n into k nearly equal positive parts (fewer when
// n < k).
func benchChunks(n, k int) []int {
	k = max(1, min(k, n))
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out
}

// benchClient keeps one connection alive per client goroutine.
func benchClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 1024
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// benchHammer GETs url n times in all from GOMAXPROCS*benchParallelism
// goroutines and returns the time it took. Any status but 200 fails the
// benchmark.
func benchHammer(b *testing.B, hc *http.Client, url, token string, n int) time.Duration {
	b.Helper()
	return benchSend(b, hc, http.MethodGet, url, token, nil, http.StatusOK, n)
}

// benchSend sends method url (with body, when not nil) n times in all
// from GOMAXPROCS*benchParallelism goroutines and returns the time it
// took. Any status but want fails the benchmark.
func benchSend(b *testing.B, hc *http.Client, method, url, token string, body []byte, want, n int) time.Duration {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range runtime.GOMAXPROCS(0) * benchParallelism {
		wg.Go(func() {
			req, err := http.NewRequest(method, url, nil)
			if err != nil {
				b.Error(err)
				return
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
				req.ContentLength = int64(len(body))
			}
			for next.Add(1) <= int64(n) {
				if body != nil {
					req.Body = io.NopCloser(bytes.NewReader(body))
				}
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					b.Errorf("%s %s: status %d", method, url, resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
