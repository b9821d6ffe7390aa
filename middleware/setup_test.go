package middleware_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/middleware/oidctest"
)

// clock is the fake clock the tests inject; the one boundary faked here.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// meResponse is what the test /me handler answers: the identity plus what
// the handler saw of the credentials.
type meResponse struct {
	middleware.Identity
	Source string `json:"source"`
	Admin  bool   `json:"admin"`
}

// meHandler plays the core group's GET /me.
func meHandler(w http.ResponseWriter, r *http.Request) {
	id, ok := middleware.IdentityFromContext(r.Context())
	if !ok {
		http.Error(w, "no identity", http.StatusInternalServerError)
		return
	}
	creds, _ := middleware.CredentialsFromContext(r.Context())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(meResponse{Identity: id, Source: creds.Source.String(), Admin: middleware.IsAdmin(r.Context())})
}

func okHandler(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }

// testApp is a chi router behind Passthrough, served over real HTTP.
type testApp struct {
	srv  *httptest.Server
	logs *syncBuffer
}

func newTestApp(t *testing.T, cfg middleware.PassthroughConfig) *testApp {
	t.Helper()
	logs := &syncBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r := chi.NewRouter()
	r.Use(middleware.Passthrough(cfg))
	r.Get("/health", okHandler)
	r.Get("/me", meHandler)
	r.Post("/me", meHandler)
	r.Get("/run-task/*", okHandler)
	r.Post("/run-task/*", okHandler)
	r.Get("/docs", okHandler)
	r.Get("/docs/*", okHandler)
	r.Get("/openapi.json", okHandler)
	r.Get("/schemas/*", okHandler)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &testApp{srv: srv, logs: logs}
}

// do sends one request and returns the response with its body read.
func (a *testApp) do(t *testing.T, method, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, a.srv.URL+path, nil)
	require.NoError(t, err)
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := a.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// oidcFixture is an issuer, an OIDC authenticator on a fake clock, and an
// app that uses it.
type oidcFixture struct {
	iss   *oidctest.Issuer
	clock *clock
	auth  *middleware.OIDC
	app   *testApp
}

func newOIDCFixture(t *testing.T, mod func(*middleware.OIDCConfig)) *oidcFixture {
	t.Helper()
	iss := oidctest.NewIssuer(t)
	clk := newClock()
	iss.Now = clk.Now
	cfg := middleware.OIDCConfig{
		Issuer:     iss.URL,
		Audience:   iss.Audience,
		HTTPClient: iss.Client(),
		Now:        clk.Now,
		Logger:     slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	auth, err := middleware.NewOIDC(t.Context(), cfg)
	require.NoError(t, err)
	app := newTestApp(t, middleware.PassthroughConfig{Authenticator: auth, AdminGroup: "admins"})
	return &oidcFixture{iss: iss, clock: clk, auth: auth, app: app}
}

// requireRefused checks a 401 that says only that a token was refused.
func requireRefused(t *testing.T, resp *http.Response, body string, invalid bool) {
	t.Helper()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	challenge := resp.Header.Get("WWW-Authenticate")
	require.True(t, strings.HasPrefix(challenge, "Bearer"), challenge)
	require.Equal(t, invalid, strings.Contains(challenge, `error="invalid_token"`), challenge)
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &p))
	require.Equal(t, http.StatusUnauthorized, p.Status)
	require.Equal(t, "authentication required", p.Detail)
}
