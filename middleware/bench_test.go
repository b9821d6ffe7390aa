package middleware_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/middleware/oidctest"
)

// discardWriter is the cheapest ResponseWriter, so that the in-process
// figures measure routing and auth rather than a recorder's buffers.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

var benchBody = []byte(`{"subject":"alice","groups":["ml"]}`)

func benchRouter(auth middleware.Authenticator) http.Handler {
	r := chi.NewRouter()
	if auth != nil {
		r.Use(middleware.Passthrough(middleware.PassthroughConfig{
			Authenticator: auth,
			Logger:        slog.New(slog.DiscardHandler),
		}))
	}
	r.Get("/me", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(benchBody)
	})
	return r
}

// BenchmarkAuth measures one GET /me through chi: with no auth (the
// baseline), with an OIDC token whose verified identity is cached, with the
// same token verified every time (RS256 signature check), and with a static
// token; first in-process, then over loopback HTTP.
//
// The shared two-core machines this runs on are noisy, so each auth case
// interleaves blocks of baseline requests with blocks of its own and
// reports:
//   - ns/op: its own time per request,
//   - noauth-ns/op: the baseline's, measured alongside,
//   - x-noauth: the ratio of the two, the figure the goal is set on,
//   - allocs/op and B/op: its own heap allocations per request.
//
// Every request carries the same Authorization header, the baseline's
// included (there it is ignored), so the ratio isolates the middleware from
// the cost of sending a kilobyte header.
func BenchmarkAuth(b *testing.B) {
	iss := oidctest.NewIssuer(b)
	oidcAuth, err := middleware.NewOIDC(b.Context(), middleware.OIDCConfig{
		Issuer: iss.URL, Audience: iss.Audience, HTTPClient: iss.Client(),
	})
	if err != nil {
		b.Fatal(err)
	}
	// A token of realistic size: a name, an email, a few groups.
	tok := iss.Mint(map[string]any{
		"sub": "8d3c2f9e-4b7a-4c1d-9e2f-6a5b4c3d2e1f", "name": "Alice Liddell",
		"email": "alice@example.com", "groups": []string{"ml", "admins", "gpu-users"},
		"exp": time.Now().Add(24 * time.Hour).Unix(),
	})
	const staticTok = "tok-alice-0123456789abcdef0123456789"
	static, err := middleware.ParseStaticTokens(staticTok + "=alice:ml")
	if err != nil {
		b.Fatal(err)
	}
	noauth := benchRouter(nil)
	cases := []struct {
		name  string
		h     http.Handler
		token string
	}{
		// A second no-auth server measured like the others: its ratio
		// shows how much of a ratio is the machine's noise.
		{"noauth_control", benchRouter(nil), tok},
		{"oidc_cached", benchRouter(middleware.NewCache(oidcAuth, middleware.CacheConfig{})), tok},
		{"oidc_uncached", benchRouter(oidcAuth), tok},
		{"static", benchRouter(static), staticTok},
	}
	b.Logf("OIDC token: %d bytes", len(tok))

	b.Run("inprocess", func(b *testing.B) {
		serve := func(h http.Handler, token string) func() {
			req := httptest.NewRequest(http.MethodGet, "/me", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			w := &discardWriter{h: http.Header{}}
			return func() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
		}
		b.Run("noauth", func(b *testing.B) {
			do := serve(noauth, tok)
			b.ReportAllocs()
			for b.Loop() {
				do()
			}
		})
		for _, c := range cases {
			b.Run(c.name, func(b *testing.B) {
				paired(b, serve(noauth, c.token), serve(c.h, c.token))
			})
		}
	})

	b.Run("loopback", func(b *testing.B) {
		get := func(b *testing.B, h http.Handler, token string) func() {
			srv := httptest.NewServer(h)
			b.Cleanup(srv.Close)
			client := srv.Client()
			req, err := http.NewRequestWithContext(b.Context(), http.MethodGet, srv.URL+"/me", nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			return func() {
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		}
		b.Run("noauth", func(b *testing.B) {
			do := get(b, noauth, tok)
			b.ReportAllocs()
			for b.Loop() {
				do()
			}
		})
		for _, c := range cases {
			b.Run(c.name, func(b *testing.B) {
				paired(b, get(b, noauth, c.token), get(b, c.h, c.token))
			})
		}
	})
}

// paired runs blocks of baseline requests and blocks of the measured ones
// in the order baseline, measured, measured, baseline, so that both see the
// same machine load and neither always goes first, and reports per-request
// figures (see BenchmarkAuth).
func paired(b *testing.B, baseline, measured func()) {
	const block = 4
	run := func(f func()) time.Duration {
		start := time.Now()
		for range block {
			f()
		}
		return time.Since(start)
	}
	baseline() // warm connections and caches
	measured()
	allocs, bytes := memPerCall(64, measured)
	var tBase, tMeasured time.Duration
	n := 0
	for b.Loop() {
		tBase += run(baseline)
		tMeasured += run(measured) + run(measured)
		tBase += run(baseline)
		n += 2 * block
	}
	perReq := float64(tMeasured.Nanoseconds()) / float64(n)
	basePerReq := float64(tBase.Nanoseconds()) / float64(n)
	b.ReportMetric(perReq, "ns/op")
	b.ReportMetric(basePerReq, "noauth-ns/op")
	b.ReportMetric(perReq/basePerReq, "x-noauth")
	b.ReportMetric(allocs, "allocs/op")
	b.ReportMetric(bytes, "B/op")
}

// memPerCall returns the heap allocations and bytes per call of f, over n
// calls, counting every goroutine (a loopback server's included) as
// -benchmem does.
func memPerCall(n int, f func()) (allocs, bytes float64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(n), float64(after.TotalAlloc-before.TotalAlloc) / float64(n)
}
