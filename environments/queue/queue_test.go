package queue_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/environments/queue"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
)

const (
	queueAlice = "queue-alice-token-0123456789"
	queueBob   = "queue-bob-token-0123456789"
	queueAdmin = "queue-admin-token-0123456789"
)

// queueApp is the user's application behind the queue: its routes record
// what the replayed requests looked like.
type queueApp struct {
	entered   chan string   // /block: a request started
	release   chan struct{} // /block: closed to let blocked requests finish
	cancelled chan string   // /block: a request saw its context cancelled

	mu    sync.Mutex
	order []string // /record/{name}, in the order served
}

func newQueueApp() *queueApp {
	return &queueApp{
		entered: make(chan string, 16), release: make(chan struct{}), cancelled: make(chan string, 16),
	}
}

func (a *queueApp) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := middleware.IdentityFromContext(r.Context())
		_, creds := middleware.CredentialsFromContext(r.Context())
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Out", "yes")
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s3cret"})
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"subject": id.Subject, "groups": id.Groups, "creds": creds,
			"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery, "body": string(body),
			"headers": r.Header, "client_ip": chimw.GetClientIP(r.Context()),
		})
	})
	mux.HandleFunc("POST /block", func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Queue-Request-Id")
		a.entered <- id
		select {
		case <-a.release:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
			a.cancelled <- id
		}
	})
	mux.HandleFunc("POST /record/{name}", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.order = append(a.order, r.PathValue("name"))
		a.mu.Unlock()
	})
	mux.HandleFunc("POST /log", func(w http.ResponseWriter, r *http.Request) {
		tasks.Logger(r.Context()).Info("hello from the handler", "n", 7)
		_, _ = io.WriteString(w, "logged")
	})
	mux.HandleFunc("POST /big", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(make([]byte, 2048))
	})
	mux.HandleFunc("POST /bytes", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write([]byte{0xff, 0x00, 0xfe, 'x'})
	})
	return mux
}

func (a *queueApp) served() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.order...)
}

// queueEnv is an app environment with the queue enabled over app.
func queueEnv(app *queueApp, mod func(*environments.AppConfig)) *environments.AppEnvironment {
	cfg := environments.AppConfig{
		Settings: environments.Settings{Name: "gen"},
		Handler:  app.handler(),
		Queue:    queue.MustNew(queue.Config{}),
	}
	if mod != nil {
		mod(&cfg)
	}
	return environments.MustAppEnvironment(cfg)
}

// queueStack is a real App over a real SQLite file in dataDir, served on
// loopback; gpus is the node's inventory.
type queueStack struct {
	t      *testing.T
	base   string
	prefix string // the environment's PathPrefix
	svc    *framework.Service
	srv    *httptest.Server
}

func queueStart(t *testing.T, dataDir, gpus string, env environments.Environment, extra map[string]string, more ...environments.Environment) *queueStack {
	t.Helper()
	cfg, err := framework.ParseEnv(func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		switch k {
		case "TASKGATE_DATA_DIR":
			return dataDir
		case "TASKGATE_AUTH_TOKENS":
			return queueAlice + "=alice:ml," + queueBob + "=bob," + queueAdmin + "=root:admins"
		case "TASKGATE_NODE_GPUS":
			return gpus
		}
		return ""
	})
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := framework.FromEnv(context.Background(), cfg, logger, tasks.NewRegistry(), append([]environments.Environment{env}, more...)...)
	require.NoError(t, err)
	h, err := svc.App.Handler()
	require.NoError(t, err)
	require.NoError(t, svc.App.Start(context.Background()))
	s := &queueStack{t: t, svc: svc, srv: httptest.NewServer(h)}
	s.base = s.srv.URL
	t.Cleanup(s.stop)
	return s
}

func (s *queueStack) stop() {
	s.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.svc.App.Stop(ctx)
}

func (s *queueStack) call(method, path, token, body string, headers ...string) envtest.Reply {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	require.NoError(s.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	return envtest.RoundTrip(s.t, req)
}

// submit queues POST path as token and returns the request id.
func (s *queueStack) submit(path, token, body string, headers ...string) string {
	s.t.Helper()
	r := s.call(http.MethodPost, s.prefix+"/queue/submit"+path, token, body, headers...)
	require.Equal(s.t, http.StatusAccepted, r.Status, r.Raw)
	id, _ := r.Body["request_id"].(string)
	require.NotEmpty(s.t, id, r.Raw)
	return id
}

// waitStatus polls the status until it is want and returns it.
func (s *queueStack) waitStatus(id, token, want string) envtest.Reply {
	s.t.Helper()
	var r envtest.Reply
	require.Eventually(s.t, func() bool {
		r = s.call(http.MethodGet, s.requests(id, "/status"), token, "")
		return r.Body["status"] == want
	}, 20*time.Second, 10*time.Millisecond, "want %s", want)
	return r
}

// requests is the path of request id's route suffix ("/status", "").
func (s *queueStack) requests(id, suffix string) string {
	return s.prefix + "/queue/requests/" + id + suffix
}

func queueReceive(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for the handler")
		return ""
	}
}

func TestQueueSubmitReplaysAsCallerAndStoresResponse(t *testing.T) {
	t.Parallel()
	app := newQueueApp()
	s := queueStart(t, t.TempDir(), "A100:2", queueEnv(app, func(c *environments.AppConfig) {
		c.PathPrefix = "/team"
	}), nil)
	s.prefix = "/team"

	r := s.call(http.MethodPost, "/team/queue/submit/echo/a%2Fb/c?x=1&webhook_events_filter=start&y=%20z", queueAlice,
		`{"prompt": "a cat"}`,
		"Content-Type", "application/json", "X-Custom", "kept", "X-Api-Key", "dropped", "Cookie", "c=dropped",
		"X-Forwarded-For", "203.0.113.9", "X-Queue-Request-Id", "forged", "X-Session-Id", "dropped")
	require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
	id := r.Body["request_id"].(string)
	require.Equal(t, map[string]any{
		"request_id": id, "status": "IN_QUEUE",
		"status_url":   "/team/queue/requests/" + id + "/status",
		"response_url": "/team/queue/requests/" + id,
		"cancel_url":   "/team/queue/requests/" + id + "/cancel",
	}, r.Body)
	require.Equal(t, "/team/queue/requests/"+id+"/status", r.Header.Get("Location"))

	done := s.waitStatus(id, queueAlice, "COMPLETED")
	require.Equal(t, http.StatusOK, done.Status)
	require.Equal(t, "/team/queue/requests/"+id, done.Body["response_url"])
	require.NotContains(t, done.Body, "error")

	resp := s.call(http.MethodGet, s.requests(id, ""), queueAlice, "")
	require.Equal(t, http.StatusCreated, resp.Status, resp.Raw)
	require.Equal(t, "yes", resp.Header.Get("X-Out"))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Empty(t, resp.Header.Get("Set-Cookie"), "cookies are not stored")
	require.Equal(t, id, resp.Header.Get("X-Queue-Request-Id"))
	require.Equal(t, "alice", resp.Body["subject"])
	require.Equal(t, []any{"ml"}, resp.Body["groups"])
	require.Equal(t, true, resp.Body["creds"], "the submitting process keeps the credentials in memory")
	require.Equal(t, "POST", resp.Body["method"])
	require.Equal(t, "/echo/a/b/c", resp.Body["path"])
	require.Equal(t, "x=1&y=%20z", resp.Body["query"], "the queue's own parameters are removed, the rest kept as sent")
	require.Equal(t, `{"prompt": "a cat"}`, resp.Body["body"], "the body is replayed byte for byte")
	require.Equal(t, "127.0.0.1", resp.Body["client_ip"])
	headers := resp.Body["headers"].(map[string]any)
	require.Equal(t, []any{"kept"}, headers["X-Custom"])
	require.Equal(t, []any{"application/json"}, headers["Content-Type"])
	require.Equal(t, []any{id}, headers["X-Queue-Request-Id"], "the queue sets it; the caller's is dropped")
	for _, h := range []string{"Authorization", "X-Api-Key", "Cookie", "X-Forwarded-For", "X-Session-Id"} {
		require.NotContains(t, headers, h)
	}
}

func TestQueueBinaryResponseRoundTrips(t *testing.T) {
	t.Parallel()
	s := queueStart(t, t.TempDir(), "", queueEnv(newQueueApp(), nil), nil)
	id := s.submit("/bytes", queueAlice, "")
	s.waitStatus(id, queueAlice, "COMPLETED")
	resp := s.call(http.MethodGet, s.requests(id, ""), queueAlice, "")
	require.Equal(t, http.StatusOK, resp.Status)
	require.Equal(t, string([]byte{0xff, 0x00, 0xfe, 'x'}), resp.Raw)
	require.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
}

func TestQueueQueuedRequest(t *testing.T) {
	t.Parallel()
	// The app needs an H100; the node has none, so requests stay queued.
	s := queueStart(t, t.TempDir(), "A100:2", queueEnv(newQueueApp(), func(c *environments.AppConfig) {
		c.Resources = tasks.Resources{GPU: "H100:1"}
	}), nil)
	first := s.submit("/echo/1", queueAlice, "")
	second := s.submit("/echo/2", queueAlice, "")

	var st envtest.Reply
	require.Eventually(t, func() bool {
		st = s.call(http.MethodGet, s.requests(second, "/status"), queueAlice, "")
		return st.Body["queue_position"] == float64(1)
	}, 10*time.Second, 10*time.Millisecond, "the second request has one ahead")
	require.Equal(t, http.StatusAccepted, st.Status)
	require.Equal(t, "IN_QUEUE", st.Body["status"])
	st = s.call(http.MethodGet, s.requests(first, "/status"), queueAlice, "")
	require.Equal(t, http.StatusAccepted, st.Status)
	require.Equal(t, "IN_QUEUE", st.Body["status"])
	require.Equal(t, float64(0), st.Body["queue_position"])

	early := s.call(http.MethodGet, s.requests(first, ""), queueAlice, "")
	require.Equal(t, http.StatusBadRequest, early.Status)
	require.Equal(t, "IN_QUEUE", early.Body["code"])
	require.Equal(t, "application/problem+json", early.Header.Get("Content-Type"))

	c := s.call(http.MethodPut, s.requests(first, "/cancel"), queueAlice, "")
	require.Equal(t, http.StatusAccepted, c.Status, c.Raw)
	require.Equal(t, map[string]any{"status": "CANCELLATION_REQUESTED"}, c.Body)

	// Removed from the queue at once.
	st = s.call(http.MethodGet, s.requests(first, "/status"), queueAlice, "")
	require.Equal(t, http.StatusOK, st.Status)
	require.Equal(t, "COMPLETED", st.Body["status"])
	require.Equal(t, "CANCELLED", st.Body["error_type"])
	require.Eventually(t, func() bool {
		st = s.call(http.MethodGet, s.requests(second, "/status"), queueAlice, "")
		return st.Body["queue_position"] == float64(0)
	}, 10*time.Second, 10*time.Millisecond, "the second request moves up")

	gone := s.call(http.MethodGet, s.requests(first, ""), queueAlice, "")
	require.Equal(t, http.StatusConflict, gone.Status)
	require.Equal(t, "CANCELLED", gone.Body["code"])

	again := s.call(http.MethodPut, s.requests(first, "/cancel"), queueAlice, "")
	require.Equal(t, http.StatusBadRequest, again.Status)
	require.Equal(t, "ALREADY_COMPLETED", again.Body["code"])
	require.Equal(t, "application/problem+json", again.Header.Get("Content-Type"))
}

func TestQueueCancelRunningRequest(t *testing.T) {
	t.Parallel()
	app := newQueueApp()
	s := queueStart(t, t.TempDir(), "", queueEnv(app, nil), nil)
	id := s.submit("/block", queueAlice, "")
	require.Equal(t, id, queueReceive(t, app.entered))

	st := s.call(http.MethodGet, s.requests(id, "/status"), queueAlice, "")
	require.Equal(t, http.StatusAccepted, st.Status)
	require.Equal(t, "IN_PROGRESS", st.Body["status"])
	require.Equal(t, float64(0), st.Body["queue_position"])
	early := s.call(http.MethodGet, s.requests(id, ""), queueAlice, "")
	require.Equal(t, http.StatusBadRequest, early.Status)
	require.Equal(t, "IN_PROGRESS", early.Body["code"])

	c := s.call(http.MethodPut, s.requests(id, "/cancel"), queueAlice, "")
	require.Equal(t, http.StatusAccepted, c.Status, c.Raw)
	require.Equal(t, "CANCELLATION_REQUESTED", c.Body["status"])
	require.Equal(t, id, queueReceive(t, app.cancelled), "the handler's context is cancelled")

	done := s.waitStatus(id, queueAlice, "COMPLETED")
	require.Equal(t, "CANCELLED", done.Body["error_type"])
	require.Contains(t, done.Body["error"], "cancelled by the caller")
}

func TestQueueCancelCompletedRequest(t *testing.T) {
	t.Parallel()
	s := queueStart(t, t.TempDir(), "", queueEnv(newQueueApp(), nil), nil)
	id := s.submit("/echo/x", queueAlice, "")
	s.waitStatus(id, queueAlice, "COMPLETED")
	c := s.call(http.MethodPut, s.requests(id, "/cancel"), queueAlice, "")
	require.Equal(t, http.StatusBadRequest, c.Status)
	require.Equal(t, "ALREADY_COMPLETED", c.Body["code"])
	require.Equal(t, float64(400), c.Body["status"])
	require.Equal(t, "application/problem+json", c.Header.Get("Content-Type"))
	// The response is still there.
	require.Equal(t, http.StatusCreated, s.call(http.MethodGet, s.requests(id, ""), queueAlice, "").Status)
}

func TestQueueLowPriorityRunsAfterNormal(t *testing.T) {
	t.Parallel()
	app := newQueueApp()
	// Each request takes both GPUs of the node: one at a time.
	s := queueStart(t, t.TempDir(), "A100:2", queueEnv(app, func(c *environments.AppConfig) {
		c.Resources = tasks.Resources{GPU: "A100:2"}
	}), nil)
	blocker := s.submit("/block", queueAlice, "")
	queueReceive(t, app.entered)
	low := s.submit("/record/low", queueAlice, "", "X-Queue-Priority", "low")
	normal := s.submit("/record/normal", queueBob, "", "X-Queue-Priority", "normal")
	require.Eventually(t, func() bool {
		l := s.call(http.MethodGet, s.requests(low, "/status"), queueAlice, "")
		n := s.call(http.MethodGet, s.requests(normal, "/status"), queueBob, "")
		return l.Body["queue_position"] == float64(1) && n.Body["queue_position"] == float64(0)
	}, 10*time.Second, 10*time.Millisecond, "the normal request is ahead of the earlier low one")

	close(app.release)
	s.waitStatus(blocker, queueAlice, "COMPLETED")
	s.waitStatus(low, queueAlice, "COMPLETED")
	s.waitStatus(normal, queueBob, "COMPLETED")
	require.Equal(t, []string{"normal", "low"}, app.served())
}

func TestQueueStartTimeout(t *testing.T) {
	t.Parallel()
	s := queueStart(t, t.TempDir(), "A100:2", queueEnv(newQueueApp(), func(c *environments.AppConfig) {
		c.Resources = tasks.Resources{GPU: "H100:1"}
	}), nil)
	timed := s.submit("/echo/x", queueAlice, "", "X-Queue-Start-Timeout", "0.2")
	patient := s.submit("/echo/y", queueAlice, "")

	done := s.waitStatus(timed, queueAlice, "COMPLETED")
	require.Equal(t, "START_TIMEOUT", done.Body["error_type"])
	require.Contains(t, done.Body["error"], "start timeout: not started within 200ms")
	resp := s.call(http.MethodGet, s.requests(timed, ""), queueAlice, "")
	require.Equal(t, http.StatusGatewayTimeout, resp.Status)
	require.Equal(t, "START_TIMEOUT", resp.Body["code"])

	st := s.call(http.MethodGet, s.requests(patient, "/status"), queueAlice, "")
	require.Equal(t, "IN_QUEUE", st.Body["status"], "no timeout, still waiting")
}

func TestQueueLogs(t *testing.T) {
	t.Parallel()
	s := queueStart(t, t.TempDir(), "", queueEnv(newQueueApp(), nil), nil)
	id := s.submit("/log", queueAlice, "")
	s.waitStatus(id, queueAlice, "COMPLETED")
	require.NotContains(t, s.call(http.MethodGet, s.requests(id, "/status"), queueAlice, "").Body, "logs")

	var messages []string
	require.Eventually(t, func() bool {
		st := s.call(http.MethodGet, s.requests(id, "/status?logs=1"), queueAlice, "")
		logs, _ := st.Body["logs"].([]any)
		messages = messages[:0]
		for _, l := range logs {
			messages = append(messages, l.(map[string]any)["message"].(string))
		}
		return len(messages) >= 3
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{"replaying request", "hello from the handler", "replayed request"}, messages)
}

func TestQueueStatusStreamEndsAtCompleted(t *testing.T) {
	t.Parallel()
	app := newQueueApp()
	s := queueStart(t, t.TempDir(), "", queueEnv(app, nil), nil)
	id := s.submit("/block", queueAlice, "")
	queueReceive(t, app.entered)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+s.requests(id, "/status/stream"), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+queueAlice)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

	var statuses []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var st queue.Status
		require.NoError(t, json.Unmarshal([]byte(data), &st))
		statuses = append(statuses, st.Status)
		if len(statuses) == 1 {
			close(app.release) // the first event is sent: let the request finish
		}
	}
	require.NoError(t, sc.Err(), "the stream ends by itself")
	require.Equal(t, []string{"IN_PROGRESS", "COMPLETED"}, statuses)
}

func TestQueueOwnership(t *testing.T) {
	t.Parallel()
	s := queueStart(t, t.TempDir(), "A100:2", queueEnv(newQueueApp(), func(c *environments.AppConfig) {
		c.Resources = tasks.Resources{GPU: "H100:1"}
	}), nil)
	id := s.submit("/echo/x", queueAlice, "")
	for _, tc := range []struct{ method, suffix string }{
		{http.MethodGet, "/status"},
		{http.MethodGet, "/status/stream"},
		{http.MethodGet, ""},
		{http.MethodPut, "/cancel"},
	} {
		r := s.call(tc.method, s.requests(id, tc.suffix), queueBob, "")
		require.Equal(t, http.StatusNotFound, r.Status, "%s %s", tc.method, tc.suffix)
		require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
		require.Equal(t, http.StatusNotFound, s.call(tc.method, s.requests("rnosuchrequest", tc.suffix), queueAlice, "").Status)
		require.Equal(t, http.StatusUnauthorized, s.call(tc.method, s.requests(id, tc.suffix), "", "").Status)
	}
	require.Equal(t, http.StatusAccepted, s.call(http.MethodGet, s.requests(id, "/status"), queueAdmin, "").Status,
		"the admin group sees every request")
	require.Equal(t, http.StatusAccepted, s.call(http.MethodGet, s.requests(id, "/status"), queueAlice, "").Status)
}

func TestQueueSubmitRefusals(t *testing.T) {
	t.Parallel()
	s := queueStart(t, t.TempDir(), "", queueEnv(newQueueApp(), nil), nil)
	for _, tc := range []struct {
		name, path, token string
		headers           []string
		status            int
	}{
		{"no credentials", "/queue/submit/echo/x", "", nil, http.StatusUnauthorized},
		{"bad priority", "/queue/submit/echo/x", queueAlice, []string{"X-Queue-Priority", "urgent"}, http.StatusUnprocessableEntity},
		{"negative start timeout", "/queue/submit/echo/x", queueAlice, []string{"X-Queue-Start-Timeout", "-1"}, http.StatusUnprocessableEntity},
		{"start timeout over a day", "/queue/submit/echo/x", queueAlice, []string{"X-Queue-Start-Timeout", "86401"}, http.StatusUnprocessableEntity},
		{"webhook not http", "/queue/submit/echo/x?webhook=ftp://example.com/h", queueAlice, nil, http.StatusUnprocessableEntity},
		{"webhook with credentials", "/queue/submit/echo/x?webhook=https://u:p@example.com/h", queueAlice, nil, http.StatusUnprocessableEntity},
		{"unknown webhook event", "/queue/submit/echo/x?webhook=https://example.com/h&webhook_events_filter=never", queueAlice, nil, http.StatusUnprocessableEntity},
		{"the queue itself", "/queue/submit/queue/submit/echo", queueAlice, nil, http.StatusBadRequest},
		{"the queue itself, dotted", "/queue/submit/x/../queue/requests/r1/cancel", queueAlice, nil, http.StatusBadRequest},
		{"the queue itself, escaped", "/queue/submit/queue%2Frequests/r1/cancel", queueAlice, nil, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.call(http.MethodPost, tc.path, tc.token, "{}", tc.headers...)
			require.Equal(t, tc.status, r.Status, r.Raw)
			require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
		})
	}
}

func TestQueueResponseTooLargeFails(t *testing.T) {
	t.Parallel()
	s := queueStart(t, t.TempDir(), "", queueEnv(newQueueApp(), func(c *environments.AppConfig) {
		c.Queue = queue.MustNew(queue.Config{MaxResponseBytes: 1024})
	}), nil)
	id := s.submit("/big", queueAlice, "")
	done := s.waitStatus(id, queueAlice, "COMPLETED")
	require.Equal(t, "FAILED", done.Body["error_type"])
	require.Contains(t, done.Body["error"], "queued response body too large")
	r := s.call(http.MethodGet, s.requests(id, ""), queueAlice, "")
	require.Equal(t, http.StatusInternalServerError, r.Status)
	require.Equal(t, "FAILED", r.Body["code"])
}

func TestQueueWebhookIsDelivered(t *testing.T) {
	t.Parallel()
	got := make(chan map[string]any, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p map[string]any
		_ = json.NewDecoder(r.Body).Decode(&p)
		p["webhook-id"] = r.Header.Get("webhook-id")
		got <- p
	}))
	t.Cleanup(recv.Close)
	s := queueStart(t, t.TempDir(), "", queueEnv(newQueueApp(), nil),
		map[string]string{"TASKGATE_WEBHOOK_ALLOW_PRIVATE": "1"})
	id := s.submit("/echo/x?webhook="+recv.URL+"/hook", queueAlice, "")
	select {
	case p := <-got:
		require.NotEmpty(t, p["webhook-id"])
		data, _ := p["data"].(map[string]any)
		require.Equal(t, id, data["name"], "the callback carries the request")
		require.Equal(t, "succeeded", data["phase"])
	case <-time.After(20 * time.Second):
		t.Fatal("no callback")
	}
	resp := s.call(http.MethodGet, s.requests(id, ""), queueAlice, "")
	require.Equal(t, "", resp.Body["query"], "the webhook parameter is not replayed")
}

func TestQueueSurvivesRestartWithoutCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := func() *environments.AppEnvironment {
		return queueEnv(newQueueApp(), func(c *environments.AppConfig) { c.Resources = tasks.Resources{GPU: "H100:1"} })
	}
	// No H100 on the first run of the server: the request waits.
	first := queueStart(t, dir, "A100:1", env(), nil)
	id := first.submit("/echo/x", queueAlice, "payload", "Content-Type", "text/plain")
	require.Equal(t, "IN_QUEUE", first.call(http.MethodGet, first.requests(id, "/status"), queueAlice, "").Body["status"])
	first.stop()

	second := queueStart(t, dir, "H100:1", env(), nil)
	second.waitStatus(id, queueAlice, "COMPLETED")
	resp := second.call(http.MethodGet, second.requests(id, ""), queueAlice, "")
	require.Equal(t, http.StatusCreated, resp.Status, resp.Raw)
	require.Equal(t, "alice", resp.Body["subject"], "the identity was stored")
	require.Equal(t, false, resp.Body["creds"], "raw credentials do not survive a restart")
	require.Equal(t, "payload", resp.Body["body"])
}

func TestQueueDocumentsItsRoutes(t *testing.T) {
	t.Parallel()
	s := queueStart(t, t.TempDir(), "", queueEnv(newQueueApp(), nil), nil)
	r := s.call(http.MethodGet, "/openapi.json", "", "")
	require.Equal(t, http.StatusOK, r.Status)
	paths := r.Body["paths"].(map[string]any)
	for _, p := range []string{"/queue/submit/{path}", "/queue/requests/{id}/status", "/queue/requests/{id}/status/stream",
		"/queue/requests/{id}", "/queue/requests/{id}/cancel"} {
		require.Contains(t, paths, p)
	}
	require.NotContains(t, paths, "/queue/submit/*")
}

func TestQueueReplaysWithinMaxInFlight(t *testing.T) {
	t.Parallel()
	app := newQueueApp()
	s := queueStart(t, t.TempDir(), "", queueEnv(app, func(c *environments.AppConfig) {
		c.Limits.MaxInFlight = 1
	}), nil)
	first := s.submit("/block", queueAlice, "")
	second := s.submit("/block", queueAlice, "")
	entered := queueReceive(t, app.entered)
	// The other request started as a run but waits for the slot.
	other := map[string]string{first: second, second: first}[entered]
	require.NotEmpty(t, other)
	require.Eventually(t, func() bool {
		st := s.call(http.MethodGet, s.requests(other, "/status?logs=true"), queueAlice, "")
		logs, _ := st.Body["logs"].([]any)
		return len(logs) > 0 && logs[0].(map[string]any)["message"] == "waiting for an in-flight slot"
	}, 10*time.Second, 20*time.Millisecond)
	select {
	case id := <-app.entered:
		t.Fatalf("%s entered while %s held the only slot", id, entered)
	case <-time.After(100 * time.Millisecond):
	}
	close(app.release)
	require.Equal(t, other, queueReceive(t, app.entered))
	s.waitStatus(first, queueAlice, "COMPLETED")
	s.waitStatus(second, queueAlice, "COMPLETED")
}

// GreetInput and GreetOutput are a function endpoint of the queued app.
type GreetInput struct {
	Body struct {
		Name string `json:"name" minLength:"1"`
	}
}

type GreetOutput struct {
	Body struct {
		Greeting string `json:"greeting"`
	}
}

func TestQueueReplaysHumaOperations(t *testing.T) {
	t.Parallel()
	env := queueEnv(newQueueApp(), nil)
	environments.Endpoint(env, "greet", func(ctx context.Context, in *GreetInput) (*GreetOutput, error) {
		id, _ := middleware.IdentityFromContext(ctx)
		out := &GreetOutput{}
		out.Body.Greeting = "hello " + in.Body.Name + " from " + id.Subject
		return out, nil
	}, &environments.EndpointOptions{Method: http.MethodPost})
	s := queueStart(t, t.TempDir(), "", env, nil)

	ok := s.submit("/greet", queueAlice, `{"name":"world"}`, "Content-Type", "application/json")
	bad := s.submit("/greet", queueAlice, `{"name":""}`, "Content-Type", "application/json")
	s.waitStatus(ok, queueAlice, "COMPLETED")
	done := s.waitStatus(bad, queueAlice, "COMPLETED")
	require.NotContains(t, done.Body, "error_type", "an error response of the handler is a response")

	r := s.call(http.MethodGet, s.requests(ok, ""), queueAlice, "")
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Equal(t, "hello world from alice", r.Body["greeting"])
	r = s.call(http.MethodGet, s.requests(bad, ""), queueAlice, "")
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, r.Raw)
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
}

// The replay task is internal: the webhook environment neither lists nor
// runs it, so nobody can forge a stored request (client IP, headers,
// credentials_ref) through run-task. A submit still enforces the app's
// RequiredGroup.
func TestQueueReplayStartedElsewhereIsRefused(t *testing.T) {
	t.Parallel()
	hooks := webhook.MustNew(webhook.Config{Settings: environments.Settings{Name: "hooks", PathPrefix: "/hooks"}})
	s := queueStart(t, t.TempDir(), "", queueEnv(newQueueApp(), func(c *environments.AppConfig) {
		c.Auth.RequiredGroup = "ml"
	}), nil, hooks)
	require.Equal(t, http.StatusForbidden, s.call(http.MethodPost, "/queue/submit/echo/x", queueBob, "").Status)

	stored := `{"method":"POST","path":"/echo/x","headers":{"X-Forwarded-For":["198.51.100.7"],"Authorization":["Bearer forged"],"X-Ok":["1"]}}`
	for _, token := range []string{queueAlice, queueBob, queueAdmin} {
		r := s.call(http.MethodPost, "/hooks/run-task/taskgate-queue/gen/replay", token, stored)
		require.Equal(t, http.StatusForbidden, r.Status, r.Raw)
	}
	require.Equal(t, http.StatusForbidden, s.call(http.MethodGet, "/hooks/task/taskgate-queue/gen/replay", queueAdmin, "").Status)
}

// A replay gets the held credentials only when it runs as their owner:
// another caller who names the same credentials_ref gets none.
func TestQueueCredentialsGoOnlyToTheirOwner(t *testing.T) {
	t.Parallel()
	app := newQueueApp()
	hooks := webhook.MustNew(webhook.Config{Settings: environments.Settings{Name: "hooks", PathPrefix: "/hooks"}})
	s := queueStart(t, t.TempDir(), "H100:1", queueEnv(app, func(c *environments.AppConfig) {
		c.Resources = tasks.Resources{GPU: "H100:1"}
	}), nil, hooks)
	blocker := s.submit("/block", queueAlice, "")
	queueReceive(t, app.entered)
	waiting := s.submit("/echo/alice", queueAlice, "")

	io := s.call(http.MethodGet, "/hooks/run/"+waiting+"/io", queueAlice, "")
	require.Equal(t, http.StatusOK, io.Status, io.Raw)
	inputs := io.Body["inputs"].(map[string]any)
	ref, _ := inputs["credentials_ref"].(string)
	require.NotEmpty(t, ref, "the request holds the caller's credentials")
	require.NotContains(t, io.Raw, queueAlice, "the token itself is never stored")

	stolen := fmt.Sprintf(`{"method":"POST","path":"/echo/root","credentials_ref":%q}`, ref)
	r := s.call(http.MethodPost, "/hooks/run-task/taskgate-queue/gen/replay?priority=10", queueAdmin, stolen)
	require.Equal(t, http.StatusForbidden, r.Status, "a replay naming someone's credentials_ref cannot be started: %s", r.Raw)

	close(app.release)
	s.waitStatus(blocker, queueAlice, "COMPLETED")
	s.waitStatus(waiting, queueAlice, "COMPLETED")

	mine := s.call(http.MethodGet, s.requests(waiting, ""), queueAlice, "")
	require.Equal(t, "alice", mine.Body["subject"])
	require.Equal(t, true, mine.Body["creds"], "the owner's replay still has them")
}

// A Queue holds the state of one environment's requests: a second
// environment cannot share it, and a bad Config is refused at New.
func TestQueueServesOneEnvironment(t *testing.T) {
	t.Parallel()
	q := queue.MustNew(queue.Config{})
	a := environments.MustAppEnvironment(environments.AppConfig{Settings: environments.Settings{Name: "a", PathPrefix: "/a"}, Queue: q})
	b := environments.MustAppEnvironment(environments.AppConfig{Settings: environments.Settings{Name: "b", PathPrefix: "/b"}, Queue: q})
	cfg, err := framework.ParseEnv(func(k string) string {
		if k == "TASKGATE_DATA_DIR" {
			return t.TempDir()
		}
		return ""
	})
	require.NoError(t, err)
	svc, err := framework.FromEnv(context.Background(), cfg, slog.New(slog.DiscardHandler), tasks.NewRegistry(), a, b)
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.App.Stop(context.Background()) })
	_, err = svc.App.Handler()
	require.ErrorContains(t, err, "the queue already serves environment a")

	for _, cfg := range []queue.Config{{MaxResponseBytes: -1}, {MaxResponseBytes: queue.MaxResponseLimit + 1}, {Timeout: -time.Second}, {MaxStartTimeout: -time.Second}} {
		_, err := queue.New(cfg)
		require.Error(t, err, "%+v", cfg)
	}
}
