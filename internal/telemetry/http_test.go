package telemetry

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestValidRequestID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"abc-123":                              true,
		"4bf92f35-77b3-4da6-a3ce-929d0e0e4736": true,
		"host/aBcD-000042":                     true,
		strings.Repeat("x", maxRequestID):      true,
		strings.Repeat("x", maxRequestID+1):    false,
		"":                                     false,
		"with space":                           false,
		"new\nline":                            false,
		"tab\t":                                false,
		"del\x7f":                              false,
		"ünï":                                  false,
	} {
		require.Equal(t, want, validRequestID(id), "%q", id)
	}
}

func TestGeneratedRequestIDsAreValidAndDistinct(t *testing.T) {
	t.Parallel()
	a, b := newRequestIDs(), newRequestIDs()
	seen := map[string]bool{}
	for range 1000 {
		for _, id := range []string{a.next(), b.next()} {
			require.True(t, validRequestID(id), id)
			require.False(t, seen[id], id)
			seen[id] = true
		}
	}
}

// TestRouteLabels: the template of the route chi matched, through a
// sub-router reached by "/*"; a catch-all or no match is "other".
func TestRouteLabels(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	obs, err := NewHTTP(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: reg})
	require.NoError(t, err)
	env := chi.NewRouter()
	env.Get("/run/{name}", func(http.ResponseWriter, *http.Request) {})
	proxied := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	r := chi.NewRouter()
	r.Use(obs.Middleware)
	r.With(Environment("proxied")).Handle("/p/*", proxied)
	r.With(Environment("ml")).Handle("/*", env)
	for _, p := range []string{"/run/r-1", "/run/r-2", "/nope", "/p/anything"} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		require.NotEmpty(t, rec.Header().Get(RequestIDHeader))
	}
	m := obs.metrics.requests
	require.Equal(t, 2.0, testutil.ToFloat64(m.WithLabelValues("ml", "/run/{name}", "GET", "2xx")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.WithLabelValues("ml", OtherRoute, "GET", "4xx")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.WithLabelValues("proxied", "/p/*", "GET", "2xx")))
	require.Equal(t, 3, testutil.CollectAndCount(m))

	// A second observer on the same registry shares the metrics.
	again, err := NewHTTP(Config{Metrics: reg})
	require.NoError(t, err)
	require.Same(t, obs.metrics.requests, again.metrics.requests)
}
