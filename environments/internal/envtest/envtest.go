package envtest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/middleware"
)

// Tokens AppDeps accepts.
const (
	AppAlice = "alice-token-0123456789abcdef0123456789"
	AppBob   = "bob-token-0123456789abcdef0123456789ab"
)

// Tokens a Stack accepts: alice in group ml, bob, and root in admins.
const (
	WhAlice = "alice-token-0123456789"
	WhBob   = "bob-token-0123456789"
	WhAdmin = "admin-token-0123456789"
)

// AppDeps is what an App would hand environments: static bearer tokens
// for alice and bob, a logger that writes into the test's output.
func AppDeps(t *testing.T) *environments.Deps {
	t.Helper()
	auth, err := middleware.NewStaticTokens(
		middleware.StaticToken{Token: AppAlice, Subject: "alice"},
		middleware.StaticToken{Token: AppBob, Subject: "bob"},
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

// ServeEnv builds env, wraps it with auth and limits as the App does, and
// serves it on loopback.
func ServeEnv(t *testing.T, env environments.Environment, deps *environments.Deps) *httptest.Server {
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

// Result is a reply read by Send.
type Result struct {
	Status int
	Header http.Header
	Body   string
}

// Send sends one request; token "" sends none.
func Send(t *testing.T, method, url, token, body string) Result {
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
	return Result{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// Expect fails t unless r has status and its body contains each of contains.
func (r Result) Expect(t *testing.T, status int, contains ...string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	for _, s := range contains {
		if !strings.Contains(r.Body, s) {
			t.Fatalf("body %s does not contain %q", r.Body, s)
		}
	}
}

// Stack is a real App over a real SQLite file, served on loopback.
type Stack struct {
	T    testing.TB
	Base string
	Svc  *framework.Service
}

// NewStack serves envs, or the quickstart's webhook without any, with the
// quickstart's tasks.
func NewStack(t testing.TB, envs ...environments.Environment) *Stack {
	t.Helper()
	return NewStackEnv(t, nil, envs...)
}

// NewStackEnv is NewStack with extra TASKGATE_* variables.
func NewStackEnv(t testing.TB, extra map[string]string, envs ...environments.Environment) *Stack {
	t.Helper()
	if len(envs) == 0 {
		envs = []environments.Environment{demo.Webhook()}
	}
	dataDir := t.TempDir()
	cfg, err := framework.ParseEnv(func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		switch k {
		case "TASKGATE_DATA_DIR":
			return dataDir
		case "TASKGATE_AUTH_TOKENS":
			return WhAlice + "=alice:ml," + WhBob + "=bob," + WhAdmin + "=root:admins"
		case "TASKGATE_NODE_GPUS":
			return "A100:2"
		}
		return ""
	})
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := framework.FromEnv(context.Background(), cfg, logger, demo.Registry(), envs...)
	require.NoError(t, err)
	return &Stack{T: t, Base: frameworktest.Serve(t, svc.App), Svc: svc}
}

// Reply is a reply read by RoundTrip.
type Reply struct {
	Status int
	Header http.Header
	Body   map[string]any // the JSON body, if it is one
	Raw    string
}

// Do sends one request to the stack; token "" sends none, headers are
// name, value pairs.
func (s *Stack) Do(method, path, token, body string, headers ...string) Reply {
	s.T.Helper()
	req, err := http.NewRequest(method, s.Base+path, strings.NewReader(body))
	require.NoError(s.T, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return RoundTrip(s.T, req)
}

// WaitDone polls GET /run/{name} until the run is terminal.
func (s *Stack) WaitDone(name, token string) Reply {
	s.T.Helper()
	var r Reply
	require.Eventually(s.T, func() bool {
		r = s.Do(http.MethodGet, "/run/"+name, token, "")
		return r.Status == 200 && r.Body["done"] == true
	}, 20*time.Second, 20*time.Millisecond)
	return r
}

// RoundTrip sends req and reads the reply: its JSON body, or for an event
// stream the status and headers only (a stream ends with its run).
func RoundTrip(t testing.TB, req *http.Request) Reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return Reply{Status: resp.StatusCode, Header: resp.Header}
	}
	b, _ := io.ReadAll(resp.Body)
	r := Reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(b)}
	_ = json.Unmarshal(b, &r.Body)
	return r
}
