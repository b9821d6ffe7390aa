package framework_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/framework"
)

// plainEnv is the smallest Environment: a handler and settings.
type plainEnv struct {
	s environments.Settings
	h http.Handler
}

func (e *plainEnv) Settings() *environments.Settings               { return &e.s }
func (e *plainEnv) Build(*environments.Deps) (http.Handler, error) { return e.h, nil }

func openEnv(name, prefix string, h http.HandlerFunc) *plainEnv {
	return &plainEnv{s: environments.Settings{Name: name, PathPrefix: prefix, Auth: environments.Auth{Disabled: true}}, h: h}
}

// serve runs app on a loopback port until the test ends and returns its base URL.
func serve(t *testing.T, app *framework.App) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- app.Serve(ctx, ln) }()
	t.Cleanup(cancel)
	return "http://" + ln.Addr().String(), cancel, errc
}

func TestValidateRefusesBadConfig(t *testing.T) {
	t.Parallel()
	h := http.NotFoundHandler().ServeHTTP
	cases := map[string]*framework.App{
		"no environments":   {},
		"duplicate names":   {Environments: []environments.Environment{openEnv("a", "", h), openEnv("a", "/x", h)}},
		"duplicate prefix":  {Environments: []environments.Environment{openEnv("a", "/x", h), openEnv("b", "/x", h)}},
		"bad proxy CIDR":    {Environments: []environments.Environment{openEnv("a", "", h)}, TrustedProxies: []string{"10.0.0.0/33"}},
		"bad env name":      {Environments: []environments.Environment{openEnv("Not_A_Label", "", h)}},
		"bad prefix":        {Environments: []environments.Environment{openEnv("a", "x/", h)}},
		"unpaired OnStop":   {Environments: []environments.Environment{openEnv("a", "", h)}, OnStart: make([]func(context.Context) error, 2), OnStop: make([]func(context.Context) error, 1)},
		"body limit > 4GiB": {Environments: []environments.Environment{&plainEnv{s: environments.Settings{Name: "a", Limits: environments.Limits{MaxBodyBytes: 5 << 30}}, h: http.NotFoundHandler()}}},
	}
	for name, app := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := app.Handler()
			require.Error(t, err)
		})
	}
}

func TestLifecycleHooksRunLikeALifespan(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var calls []string
	rec := func(s string, err error) func(context.Context) error {
		return func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, s)
			return err
		}
	}
	env := openEnv("a", "", func(w http.ResponseWriter, r *http.Request) {})
	env.s.OnStart, env.s.OnStop = rec("env start", nil), rec("env stop", nil)
	app := &framework.App{
		Environments: []environments.Environment{env},
		OnStart:      []func(context.Context) error{rec("start 1", nil), rec("start 2", nil)},
		OnStop:       []func(context.Context) error{rec("stop 1", nil), rec("stop 2", nil)},
	}
	require.NoError(t, app.Start(context.Background()))
	require.NoError(t, app.Stop(context.Background()))
	require.Equal(t, []string{"start 1", "start 2", "env start", "env stop", "stop 2", "stop 1"}, calls)

	// A failing OnStart stops only what started before it.
	calls = nil
	app2 := &framework.App{
		Environments: []environments.Environment{openEnv("b", "", func(http.ResponseWriter, *http.Request) {})},
		OnStart:      []func(context.Context) error{rec("start 1", nil), rec("start 2", errors.New("boom"))},
		OnStop:       []func(context.Context) error{rec("stop 1", nil), rec("stop 2", nil)},
	}
	err := app2.Start(context.Background())
	require.ErrorContains(t, err, "boom")
	require.Equal(t, []string{"start 1", "start 2", "stop 1"}, calls)
}

func TestGracefulShutdownFinishesInFlightAndRefusesNew(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{})
	env := openEnv("a", "", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		fmt.Fprint(w, "done")
	})
	app := &framework.App{Environments: []environments.Environment{env}, ListenerCloseDelay: 300 * time.Millisecond}
	base, cancel, errc := serve(t, app)

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	<-entered
	cancel() // as SIGTERM would
	require.Eventually(t, app.ShuttingDown, 2*time.Second, 5*time.Millisecond)

	// A new request during the drain gets 503 problem+json.
	resp, err := http.Get(base + "/fast")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))

	close(release)
	require.Equal(t, "200 done", <-slow)
	require.NoError(t, <-errc)
}

func TestClientIPOnlyFromTrustedProxies(t *testing.T) {
	t.Parallel()
	handler := func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, chimw.GetClientIP(r.Context())) }
	get := func(base string) string {
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		req.Header.Set("X-Real-IP", "198.51.100.1")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	untrusted, _, _ := serve(t, &framework.App{Environments: []environments.Environment{openEnv("a", "", handler)}})
	require.Equal(t, "127.0.0.1", get(untrusted), "a client must not choose its own IP")

	trusted, _, _ := serve(t, &framework.App{Environments: []environments.Environment{openEnv("a", "", handler)}, TrustedProxies: []string{"127.0.0.1"}})
	require.Equal(t, "203.0.113.7", get(trusted))
}

func TestRoutesByLongestPathPrefix(t *testing.T) {
	t.Parallel()
	echo := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "%s %s", name, r.URL.Path) }
	}
	app := &framework.App{Environments: []environments.Environment{
		openEnv("root", "", echo("root")),
		openEnv("team-a", "/team-a", echo("a")),
	}}
	base, _, _ := serve(t, app)
	for path, want := range map[string]string{
		"/health":          "root /health",
		"/team-a/health":   "a /health",
		"/team-a":          "a /",
		"/team-ab/health":  "root /team-ab/health",
		"/team-a/run/x/io": "a /run/x/io",
	} {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, want, string(b), path)
	}
}

// TestPanicIsProblemJSON: a panic is a 500 whose body names the request
// id under which the log has the panic, and says nothing of the panic.
func TestPanicIsProblemJSON(t *testing.T) {
	t.Parallel()
	var log lockedBuffer
	app := &framework.App{
		Environments: []environments.Environment{openEnv("a", "", func(http.ResponseWriter, *http.Request) { panic("kaboom") })},
		Logger:       slog.New(slog.NewJSONHandler(&log, nil)),
	}
	base, _, _ := serve(t, app)
	resp, err := http.Get(base + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	require.NotContains(t, string(b), "kaboom", "panic values may hold secrets; they go to the log only")
	var body struct{ Detail string }
	require.NoError(t, json.Unmarshal(b, &body))
	_, id, ok := strings.Cut(body.Detail, "request id ")
	require.True(t, ok, "no request id in %s", b)
	require.Contains(t, log.String(), `"request_id":"`+id+`"`)
	require.Contains(t, log.String(), "kaboom")
}

// lockedBuffer is a log sink that handlers may write while a test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	app := &framework.App{
		Environments:      []environments.Environment{openEnv("a", "", func(http.ResponseWriter, *http.Request) {})},
		ReadHeaderTimeout: 200 * time.Millisecond,
	}
	base, _, _ := serve(t, app)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")) // never finishes its headers
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	// The server closes the connection (a clean EOF) rather than our read
	// deadline firing (a timeout error).
	_, err = io.ReadAll(conn)
	require.NoError(t, err, "the server must close a connection whose headers never end")
}

// A long-lived response (an event stream) ends when shutdown begins, so it
// does not hold the drain, and the stop hooks get a live context.
func TestShutdownEndsStreamsAndGivesStopHooksTime(t *testing.T) {
	t.Parallel()
	started, ended := make(chan struct{}), make(chan struct{})
	env := openEnv("a", "", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
		close(ended)
	})
	hookErr := make(chan error, 1)
	app := &framework.App{
		Environments:    []environments.Environment{env},
		ShutdownTimeout: 30 * time.Second,
		OnStop:          []func(context.Context) error{func(ctx context.Context) error { hookErr <- ctx.Err(); return nil }},
	}
	base, cancel, errc := serve(t, app)
	go func() {
		resp, err := http.Get(base + "/stream")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	<-started
	cancel()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream's context was not cancelled by shutdown")
	}
	require.NoError(t, <-errc)
	require.NoError(t, <-hookErr, "OnStop gets a context that is not already expired")
}

// On its own host, an environment with a PathPrefix answers both at the
// root and under the prefix its URLs carry.
func TestHostRoutedEnvironmentAcceptsItsPrefix(t *testing.T) {
	t.Parallel()
	env := openEnv("team-a", "/team-a", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.URL.Path) })
	env.s.CustomDomains = []string{"a.example.com"}
	base, _, _ := serve(t, &framework.App{Environments: []environments.Environment{env}})
	get := func(host, path string) string {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	require.Equal(t, "/run/x", get("a.example.com", "/run/x"))
	require.Equal(t, "/run/x", get("a.example.com", "/team-a/run/x"))
	require.Equal(t, "/run/x", get("other.example.com", "/team-a/run/x"))
}
