//go:build unix

package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/middleware"
)

// The helpers of environments' own tests (app_test.go) that these tests
// use: an environment served as the App serves it, and plain requests.

const (
	appAlice = "alice-token-0123456789abcdef0123456789"
	appBob   = "bob-token-0123456789abcdef0123456789ab"
)

// appDeps is what an App would hand environments: static bearer tokens
// for alice and bob, a logger that writes into the test's output.
func appDeps(t *testing.T) *environments.Deps {
	t.Helper()
	auth, err := middleware.NewStaticTokens(
		middleware.StaticToken{Token: appAlice, Subject: "alice"},
		middleware.StaticToken{Token: appBob, Subject: "bob"},
	)
	if err != nil {
		t.Fatal(err)
	}
	return &environments.Deps{
		Logger:        slog.New(slog.NewTextHandler(t.Output(), nil)),
		Authenticator: auth,
		Version:       "test",
		URLs:          environments.URLSettings{Workspace: "acme", BaseDomain: "apps.test", App: "shop"},
	}
}

// serve builds env, wraps it with auth and limits as the App does, and
// serves it on loopback.
func serveEnv(t *testing.T, env environments.Environment, deps *environments.Deps) *httptest.Server {
	t.Helper()
	h, err := env.Build(deps)
	if err != nil {
		t.Fatal(err)
	}
	h, err = environments.Wrap(env, deps, h)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

type result struct {
	status int
	header http.Header
	body   string
}

// do sends one request; token "" sends none.
func send(t *testing.T, method, url, token, body string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (r result) expect(t *testing.T, status int, contains ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	for _, s := range contains {
		if !strings.Contains(r.body, s) {
			t.Fatalf("body %s does not contain %q", r.body, s)
		}
	}
}
