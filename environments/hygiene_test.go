package environments_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/environments/queue"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/postgres"
	"github.com/taskgate/taskgate/tasks/store/postgres/pgtest"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

// SubmitViaEndpointInput is POST /app/submit: an endpoint that runs
// demo/echo as its caller with environments.Submit.
type SubmitViaEndpointInput struct {
	Webhook string `query:"webhook"`
	Body    struct {
		Message string `json:"message"`
	}
}

// SubmitViaEndpointOutput names the run.
type SubmitViaEndpointOutput struct {
	Status int
	Body   struct {
		Name string `json:"name"`
	}
}

// hygieneApp serves, over st, the demo webhook environment at the root
// and an app environment at /app with a queue (over a handler that echoes
// the body) and an endpoint that submits with environments.Submit: every
// route that stores a request's text. appAlice and appBob are callers.
func hygieneApp(t *testing.T, st store.Store) string {
	t.Helper()
	r := chi.NewRouter()
	r.Post("/echo", func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(w, r.Body) })
	app := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "app", PathPrefix: "/app"},
		Handler:  r,
		Queue:    queue.MustNew(queue.Config{}),
	})
	environments.Endpoint(app, "submit", func(ctx context.Context, in *SubmitViaEndpointInput) (*SubmitViaEndpointOutput, error) {
		run, err := environments.Submit(ctx, demo.Echo, demo.EchoInput{Message: in.Body.Message},
			&environments.SubmitOptions{Webhook: in.Webhook})
		if err != nil {
			return nil, err
		}
		out := &SubmitViaEndpointOutput{Status: http.StatusAccepted}
		out.Body.Name = run.Name
		return out, nil
	}, nil)
	reg := demo.Registry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := dispatch.New(dispatch.Config{Store: st, Registry: reg, Logger: logger, Node: dispatch.NodeConfig{ID: "node-1"}})
	require.NoError(t, err)
	auth, err := middleware.NewStaticTokens(
		middleware.StaticToken{Token: envtest.AppAlice, Subject: "alice"},
		middleware.StaticToken{Token: envtest.AppBob, Subject: "bob"},
	)
	require.NoError(t, err)
	return frameworktest.Serve(t, &framework.App{
		Environments:  []environments.Environment{demo.Webhook(), app},
		Registry:      reg,
		Dispatcher:    d,
		Authenticator: auth,
		Logger:        logger,
		OnStart:       []func(context.Context) error{d.Start},
		OnStop:        []func(context.Context) error{d.Close},
	})
}

// badRequest is a request whose text cannot be stored as it is, and the
// place its 422 must name.
type badRequest struct {
	name, method, path, body string
	header                   http.Header
	location                 string
}

// badRequests has bad bytes in every text a request can store, on every
// route that stores one. abortable is a run of alice's.
func badRequests(abortable string) []badRequest {
	echo := "/run-task/demo/development/echo"
	return []badRequest{
		{"webhook byte", "POST", echo + "?webhook=https://127.0.0.1/%FF", `{"message":"hi"}`, nil, "query.webhook"},
		{"webhook NUL", "POST", echo + "?webhook=https://127.0.0.1/%00", `{"message":"hi"}`, nil, "query.webhook"},
		{"key byte", "POST", echo, `{"message":"hi"}`, http.Header{"Idempotency-Key": {"k\xff"}}, "header.Idempotency-Key"},
		{"inputs byte", "POST", echo, "{\"message\":\"\xff\"}", nil, "body.message"},
		{"inputs surrogate", "POST", echo, `{"message":"\ud800"}`, nil, "body.message"},
		{"inputs NUL", "POST", echo, `{"message":"\u0000"}`, nil, "body.message"},
		{"abort reason", "POST", "/run/" + abortable + "/abort?reason=%FF", "", nil, "query.reason"},
		{"queued header", "POST", "/app/queue/submit/echo", "hi", http.Header{"X-Note": {"\xff"}}, "header.X-Note"},
		{"queued webhook", "POST", "/app/queue/submit/echo?webhook=https://127.0.0.1/%FF", "hi", nil, "query.webhook"},
		{"submit inputs", "POST", "/app/submit", `{"message":"\u0000"}`, nil, "inputs.message"},
		{"submit webhook", "POST", "/app/submit?webhook=https://127.0.0.1/%FF", `{"message":"hi"}`, nil, "query.webhook"},
	}
}

// call sends one request as token and returns its status and body.
func call(ctx context.Context, base, token, method, path, body string, header http.Header) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// expect422 sends bad and checks that it was refused naming its place.
func expect422(ctx context.Context, base string, bad badRequest) error {
	status, body, err := call(ctx, base, envtest.AppAlice, bad.method, bad.path, bad.body, bad.header)
	if err != nil {
		return fmt.Errorf("%s: %w", bad.name, err)
	}
	var p struct {
		Errors []struct{ Location string }
	}
	_ = json.Unmarshal([]byte(body), &p)
	if status != http.StatusUnprocessableEntity || len(p.Errors) == 0 || p.Errors[0].Location != bad.location {
		return fmt.Errorf("%s: %d %s, want 422 at %s", bad.name, status, body, bad.location)
	}
	return nil
}

// startRun submits a run of demo/echo as token and returns its name.
func startRun(t *testing.T, base, token string) string {
	t.Helper()
	status, body, err := call(t.Context(), base, token, "POST", "/run-task/demo/development/echo", `{"message":"mine"}`, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, status, body)
	var r struct{ Name string }
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	return r.Name
}

// TestUnstorableTextIs422: on SQLite, which would store such text and
// serve it back, each bad request is a 422 naming the field, and nothing
// of it is stored.
func TestUnstorableTextIs422(t *testing.T) {
	t.Parallel()
	st, err := sqlite.OpenDir(t.Context(), t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	base := hygieneApp(t, st)
	mine := startRun(t, base, envtest.AppAlice)
	for _, bad := range badRequests(mine) {
		require.NoError(t, expect422(t.Context(), base, bad))
	}
	status, body, err := call(t.Context(), base, envtest.AppAlice, "GET", "/runs", "", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	var list struct{ Runs []struct{ Name string } }
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Len(t, list.Runs, 1, "a refused request was stored: %s", body)
}

// TestBadBytesNeverFailOthersOnPostgres: PostgreSQL refuses a text column
// with bad bytes, and with it the whole group commit. While one client
// sends bad bytes in every text field, another submitting at the same
// time sees every one of its submits accepted, and the bad client gets
// 422s.
func TestBadBytesNeverFailOthersOnPostgres(t *testing.T) {
	st := pgStore(t)
	t.Parallel()
	base := hygieneApp(t, st)
	mine := startRun(t, base, envtest.AppAlice)

	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		badErrs []error
		sent    int
	)
	for range 2 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				bads := badRequests(mine)
				err := expect422(ctx, base, bads[i%len(bads)])
				mu.Lock()
				if err != nil && ctx.Err() == nil {
					badErrs = append(badErrs, err)
				}
				sent++
				mu.Unlock()
			}
		})
	}

	const workers, each = 4, 40
	goodErrs := make(chan error, workers*each)
	var good sync.WaitGroup
	for w := range workers {
		good.Go(func() {
			for i := range each {
				path := "/run-task/demo/development/echo?priority=1&webhook=" + url.QueryEscape("https://127.0.0.1:9/hook")
				if i%2 == 1 {
					path = "/app/queue/submit/echo?webhook=" + url.QueryEscape("https://127.0.0.1:9/hook")
				}
				status, body, err := call(t.Context(), base, envtest.AppBob, "POST", path, `{"message":"good"}`,
					http.Header{"Idempotency-Key": {fmt.Sprintf("good-%d-%d", w, i)}})
				if err == nil && status != http.StatusAccepted {
					err = fmt.Errorf("%s: %d %s", path, status, body)
				}
				goodErrs <- err
			}
		})
	}
	good.Wait()
	stop()
	wg.Wait()
	close(goodErrs)
	var failed []error
	for err := range goodErrs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	require.Empty(t, failed, "%d of %d good submits failed", len(failed), workers*each)
	require.Empty(t, badErrs)
	t.Logf("%d bad requests sent during %d good submits", sent, workers*each)
}

// pgStore skips t without TASKGATE_TEST_POSTGRES_URL; else it opens a
// store on a fresh schema, dropped when t ends.
func pgStore(t *testing.T) *postgres.Store {
	t.Helper()
	return pgtest.Open(t, "environments", "the PostgreSQL test", 8)
}
