package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/middleware/report"
)

// reporting serves h behind a layer that gives each request a Report and
// keeps the last one, as the App does for its metrics and access log.
func reporting(t *testing.T, h http.Handler) (url string, last func() report.Report) {
	t.Helper()
	var mu sync.Mutex
	var rep report.Report
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var mine report.Report
		h.ServeHTTP(w, r.WithContext(report.NewContext(r.Context(), &mine)))
		mu.Lock()
		rep = mine
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() report.Report {
		mu.Lock()
		defer mu.Unlock()
		return rep
	}
}

// TestRefusalsAreReported: each middleware that answers 401, 403 or 429
// says why in the request's Report, and Passthrough names the verified
// caller.
func TestRefusalsAreReported(t *testing.T) {
	t.Parallel()
	tokens, err := middleware.ParseStaticTokens(aliceToken + "=alice:admins+ml," + bobToken + "=bob")
	require.NoError(t, err)
	auth := middleware.Passthrough(middleware.PassthroughConfig{Authenticator: tokens, RequiredGroup: "ml"})
	busy := middleware.NewLimiter(1, 0)
	release, ok := busy.TryAcquire()
	require.True(t, ok)
	t.Cleanup(release)
	ok200 := http.HandlerFunc(okHandler)
	cases := []struct {
		name    string
		h       http.Handler
		method  string
		header  http.Header
		status  int
		refusal report.Refusal
		subject string
	}{
		{"no credentials", auth(ok200), http.MethodGet, nil, 401, report.MissingCredentials, ""},
		{"unknown token", auth(ok200), http.MethodGet, bearer("not-a-token-0123456789"), 401, report.InvalidToken, ""},
		{"malformed credential", auth(ok200), http.MethodGet, http.Header{"Authorization": {"Bearer "}}, 401, report.InvalidToken, ""},
		{"outside the group", auth(ok200), http.MethodGet, bearer(bobToken), 403, report.ForbiddenGroup, "bob"},
		{"cross-site cookie POST", auth(ok200), http.MethodPost,
			http.Header{"Cookie": {middleware.DefaultCookieName + "=" + aliceToken}, "Origin": {"https://evil.example"}},
			403, report.CSRF, "alice"},
		{"no free slot", busy.Middleware()(ok200), http.MethodGet, nil, 429, report.MaxInFlight, ""},
		{"verified", auth(ok200), http.MethodGet, bearer(aliceToken), 200, "", "alice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url, last := reporting(t, tc.h)
			req, err := http.NewRequestWithContext(t.Context(), tc.method, url, strings.NewReader(""))
			require.NoError(t, err)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode)
			require.Equal(t, report.Report{Subject: tc.subject, Refusal: tc.refusal}, last())
		})
	}
}

func TestRateLimitRefusalIsReported(t *testing.T) {
	t.Parallel()
	url, last := reporting(t, middleware.RateLimitByIdentity(1, time.Minute)(http.HandlerFunc(okHandler)))
	for _, want := range []struct {
		status  int
		refusal report.Refusal
	}{{200, ""}, {429, report.RateLimit}} {
		resp, err := http.Get(url)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want.status, resp.StatusCode)
		require.Equal(t, want.refusal, last().Refusal)
	}
}
