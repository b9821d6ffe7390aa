package middleware_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware"
)

const (
	aliceToken = "alice-token-0123456789abcdef"
	bobToken   = "bob-token-0123456789abcdef"
)

func staticApp(t *testing.T, mod func(*middleware.PassthroughConfig)) *testApp {
	t.Helper()
	tokens, err := middleware.ParseStaticTokens(aliceToken + "=alice:admins+ml," + bobToken + "=bob")
	require.NoError(t, err)
	cfg := middleware.PassthroughConfig{Authenticator: tokens, AdminGroup: "admins"}
	if mod != nil {
		mod(&cfg)
	}
	return newTestApp(t, cfg)
}

// rawRequest writes target verbatim on the wire, so that no client library
// cleans or re-escapes it, and returns the status code.
func rawRequest(t *testing.T, srv *httptest.Server, method, target string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, target, srv.Listener.Addr())
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestExcludedPathBypass sends requests without credentials: only the exact,
// clean spelling of an excluded path may skip authentication.
func TestExcludedPathBypass(t *testing.T) {
	t.Parallel()
	app := staticApp(t, nil)
	tests := []struct {
		target string
		want   int
	}{
		{"/health", http.StatusOK},
		{"/health?verbose=1", http.StatusOK},
		{"/docs", http.StatusOK},
		{"/docs/swagger-ui.css", http.StatusOK},
		{"/docs/assets/app.js", http.StatusOK},
		{"/openapi.json", http.StatusOK},
		{"/schemas/Run.json", http.StatusOK},

		{"/health/", http.StatusUnauthorized},
		{"//health", http.StatusUnauthorized},
		{"/./health", http.StatusUnauthorized},
		{"/health/.", http.StatusUnauthorized},
		{"/health/../run-task/demo/development/echo", http.StatusUnauthorized},
		{"/docs/../run-task/demo/development/echo", http.StatusUnauthorized},
		{"/schemas/../me", http.StatusUnauthorized},
		{"/health/%2e%2e/run-task/demo/development/echo", http.StatusUnauthorized},
		{"/health/%2E%2E/run-task/demo/development/echo", http.StatusUnauthorized},
		{"/health%2F..%2Frun-task%2Fdemo", http.StatusUnauthorized},
		{"/health%2f", http.StatusUnauthorized},
		{"/%68ealth", http.StatusUnauthorized},
		{"/docs%2Fx", http.StatusUnauthorized},
		{"/Health", http.StatusUnauthorized},
		{"/HEALTH", http.StatusUnauthorized},
		{"/Docs/x.css", http.StatusUnauthorized},
		{"/OPENAPI.JSON", http.StatusUnauthorized},
		{"/health;x", http.StatusUnauthorized},
		// Servlet containers behind a ServerEnvironment read "..;" as "..".
		{"/docs/x/..;/me", http.StatusUnauthorized},
		{"/docs/x;/../me", http.StatusUnauthorized},
		{"/docs/.hidden", http.StatusUnauthorized},
		{"/health%00", http.StatusUnauthorized},
		{"/health%20", http.StatusUnauthorized},
		{"/healthz", http.StatusUnauthorized},
		{"/docs/", http.StatusUnauthorized},
		{"/docsx", http.StatusUnauthorized},
		{"/schemas", http.StatusUnauthorized},
		{"/schemas/", http.StatusUnauthorized},
		{"/openapi.json/", http.StatusUnauthorized},
		{"/me", http.StatusUnauthorized},
		{"/run-task/demo/development/echo", http.StatusUnauthorized},
		{"/does-not-exist", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, rawRequest(t, app.srv, http.MethodGet, tt.target))
		})
	}
}

// TestExcludedPathBypassMounted checks that exclusions inside a chi
// sub-router match the path below the mount point, with the same rules.
func TestExcludedPathBypassMounted(t *testing.T) {
	t.Parallel()
	tokens, err := middleware.ParseStaticTokens(aliceToken + "=alice")
	require.NoError(t, err)
	r := chi.NewRouter()
	r.Route("/env/a", func(r chi.Router) {
		r.Use(middleware.Passthrough(middleware.PassthroughConfig{Authenticator: tokens}))
		r.Get("/health", okHandler)
		r.Get("/secret", okHandler)
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	tests := []struct {
		target string
		want   int
	}{
		{"/env/a/health", http.StatusOK},
		{"/env/a/health/", http.StatusUnauthorized},
		{"/env/a//health", http.StatusUnauthorized},
		{"/env/a/%68ealth", http.StatusUnauthorized},
		{"/env/a/health/../secret", http.StatusUnauthorized},
		{"/env/a/secret", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, rawRequest(t, srv, http.MethodGet, tt.target))
		})
	}
}

func TestPassthroughStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		mod        func(*middleware.PassthroughConfig)
		header     http.Header
		wantStatus int
		wantSub    string
	}{
		{"valid token", nil, bearer(aliceToken), http.StatusOK, "alice"},
		{"lower-case scheme", nil, http.Header{"Authorization": {"bearer " + aliceToken}}, http.StatusOK, "alice"},
		{"fal's key scheme by default", nil, http.Header{"Authorization": {"Key " + aliceToken}}, http.StatusOK, "alice"},
		{"unknown fal key", nil, http.Header{"Authorization": {"Key nobody-0123456789abcdef"}}, http.StatusUnauthorized, ""},
		{"unknown token", nil, bearer("nobody-0123456789abcdef"), http.StatusUnauthorized, ""},
		{"no credentials", nil, nil, http.StatusUnauthorized, ""},
		{"optional, no credentials", func(c *middleware.PassthroughConfig) { c.Optional = true }, nil, http.StatusInternalServerError, ""},
		{"optional, bad credentials", func(c *middleware.PassthroughConfig) { c.Optional = true }, bearer("nobody-0123456789abcdef"), http.StatusUnauthorized, ""},
		{"required group, member", func(c *middleware.PassthroughConfig) { c.RequiredGroup = "ml" }, bearer(aliceToken), http.StatusOK, "alice"},
		{"required group, not a member", func(c *middleware.PassthroughConfig) { c.RequiredGroup = "ml" }, bearer(bobToken), http.StatusForbidden, ""},
		{"custom header", func(c *middleware.PassthroughConfig) {
			c.Extractors = []middleware.Extractor{middleware.HeaderExtractor("X-Api-Key")}
		}, http.Header{"X-Api-Key": {bobToken}}, http.StatusOK, "bob"},
		{"custom header ignores bearer", func(c *middleware.PassthroughConfig) {
			c.Extractors = []middleware.Extractor{middleware.HeaderExtractor("X-Api-Key")}
		}, bearer(bobToken), http.StatusUnauthorized, ""},
		{"first extractor wins", func(c *middleware.PassthroughConfig) {
			c.Extractors = []middleware.Extractor{middleware.HeaderExtractor("X-Api-Key"), middleware.BearerExtractor()}
		}, http.Header{"X-Api-Key": {bobToken}, "Authorization": {"Bearer " + aliceToken}}, http.StatusOK, "bob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			app := staticApp(t, tt.mod)
			resp, body := app.do(t, http.MethodGet, "/me", tt.header)
			// The optional case reaches meHandler without an identity,
			// which answers 500: proof that the request got through.
			require.Equal(t, tt.wantStatus, resp.StatusCode, body)
			if tt.wantSub != "" {
				var me meResponse
				require.NoError(t, json.Unmarshal([]byte(body), &me))
				require.Equal(t, tt.wantSub, me.Subject)
			}
			if resp.StatusCode == http.StatusForbidden {
				require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestPassthroughAdminGroup(t *testing.T) {
	t.Parallel()
	app := staticApp(t, nil)
	for tok, want := range map[string]bool{aliceToken: true, bobToken: false} {
		resp, body := app.do(t, http.MethodGet, "/me", bearer(tok))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var me meResponse
		require.NoError(t, json.Unmarshal([]byte(body), &me))
		require.Equal(t, want, me.Admin, me.Subject)
	}
}

func TestPassthroughCSRF(t *testing.T) {
	t.Parallel()
	app := staticApp(t, func(c *middleware.PassthroughConfig) {
		c.CSRF.AllowedOrigins = []string{"https://app.example.com"}
	})
	host := app.srv.Listener.Addr().String()
	cookie := "taskgate_session=" + aliceToken
	tests := []struct {
		name   string
		method string
		header http.Header
		want   int
	}{
		{"cookie, POST, no origin", http.MethodPost, http.Header{"Cookie": {cookie}}, http.StatusForbidden},
		{"cookie, POST, cross-site origin", http.MethodPost, http.Header{"Cookie": {cookie}, "Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"cookie, POST, null origin", http.MethodPost, http.Header{"Cookie": {cookie}, "Origin": {"null"}}, http.StatusForbidden},
		{"cookie, POST, Sec-Fetch-Site cross-site", http.MethodPost, http.Header{"Cookie": {cookie}, "Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"cookie, POST, Sec-Fetch-Site same-site", http.MethodPost, http.Header{"Cookie": {cookie}, "Sec-Fetch-Site": {"same-site"}}, http.StatusForbidden},
		{"cookie, POST, same-origin Origin but cross-site fetch metadata", http.MethodPost, http.Header{"Cookie": {cookie}, "Origin": {"http://" + host}, "Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"cookie, DELETE, cross-site", http.MethodDelete, http.Header{"Cookie": {cookie}, "Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"cookie, POST, Sec-Fetch-Site same-origin", http.MethodPost, http.Header{"Cookie": {cookie}, "Sec-Fetch-Site": {"same-origin"}}, http.StatusOK},
		{"cookie, POST, same-origin Origin", http.MethodPost, http.Header{"Cookie": {cookie}, "Origin": {"http://" + host}}, http.StatusOK},
		{"cookie, POST, allowed origin", http.MethodPost, http.Header{"Cookie": {cookie}, "Origin": {"https://app.example.com"}, "Sec-Fetch-Site": {"same-site"}}, http.StatusOK},
		{"cookie, POST, CSRF header", http.MethodPost, http.Header{"Cookie": {cookie}, "X-Csrf-Token": {"1"}}, http.StatusOK},
		{"cookie, GET, cross-site", http.MethodGet, http.Header{"Cookie": {cookie}, "Sec-Fetch-Site": {"cross-site"}}, http.StatusOK},
		{"bearer, POST, cross-site", http.MethodPost, http.Header{"Authorization": {"Bearer " + aliceToken}, "Origin": {"https://evil.example"}}, http.StatusOK},
		{"two session cookies", http.MethodGet, http.Header{"Cookie": {cookie + "; taskgate_session=" + bobToken}}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := app.do(t, tt.method, "/me", tt.header)
			require.Equal(t, tt.want, resp.StatusCode, body)
			if tt.want == http.StatusOK {
				var me meResponse
				require.NoError(t, json.Unmarshal([]byte(body), &me))
				require.Equal(t, "alice", me.Subject)
			}
		})
	}
}

// TestPassthroughNeverLogsCredentials drives successes and every kind of
// refusal with debug logging on, then looks for the secrets in the log.
func TestPassthroughNeverLogsCredentials(t *testing.T) {
	t.Parallel()
	f := newOIDCFixture(t, nil)
	jwt := f.iss.Mint(nil)
	expired := f.iss.MintExpired(nil)
	forged := f.iss.MintHS256WithPublicKey(nil)
	for _, h := range []http.Header{
		bearer(jwt), bearer(expired), bearer(forged),
		{"Authorization": {"Bearer " + jwt, "Bearer " + jwt}},
		{"Cookie": {"taskgate_session=" + jwt}},
		{"Cookie": {"taskgate_session=" + expired}},
	} {
		f.app.do(t, http.MethodGet, "/me", h)
		f.app.do(t, http.MethodPost, "/me", h)
	}
	logs := f.app.logs.String()
	require.Contains(t, logs, "credentials refused", "the refusals were logged")
	for _, secret := range []string{jwt, expired, forged} {
		sig := secret[strings.LastIndexByte(secret, '.')+1:]
		require.NotContains(t, logs, sig)
		require.NotContains(t, logs, secret[:40])
	}
}

func TestPassthroughConfigPanics(t *testing.T) {
	t.Parallel()
	tokens, err := middleware.ParseStaticTokens(aliceToken + "=alice")
	require.NoError(t, err)
	tests := []struct {
		name string
		cfg  middleware.PassthroughConfig
		want string
	}{
		{"no authenticator", middleware.PassthroughConfig{}, "Authenticator"},
		{"relative exclude", middleware.PassthroughConfig{Authenticator: tokens, Exclude: []string{"health"}}, "Exclude"},
		{"unclean exclude", middleware.PassthroughConfig{Authenticator: tokens, Exclude: []string{"/health/"}}, "Exclude"},
		{"star inside exclude", middleware.PassthroughConfig{Authenticator: tokens, Exclude: []string{"/docs*"}}, "Exclude"},
		{"empty extractors", middleware.PassthroughConfig{Authenticator: tokens, Extractors: []middleware.Extractor{}}, "Extractors"},
		{"bad origin", middleware.PassthroughConfig{Authenticator: tokens, CSRF: middleware.CSRFConfig{AllowedOrigins: []string{"evil.example"}}}, "AllowedOrigins"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				require.NotNil(t, r)
				require.Contains(t, fmt.Sprint(r), tt.want)
			}()
			middleware.Passthrough(tt.cfg)
		})
	}
}
