package webhook_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/queue"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/middleware"
)

const (
	whAlice = "alice-token-0123456789"
	whBob   = "bob-token-0123456789"
	whAdmin = "admin-token-0123456789"
)

// stack is a real App over a real SQLite file, served on loopback.
type stack struct {
	t    *testing.T
	base string
	svc  *framework.Service
}

func newStack(t *testing.T, envs ...environments.Environment) *stack {
	t.Helper()
	return newStackEnv(t, nil, envs...)
}

// newStackEnv is newStack with extra TASKGATE_* variables.
func newStackEnv(t *testing.T, extra map[string]string, envs ...environments.Environment) *stack {
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
			return whAlice + "=alice:ml," + whBob + "=bob," + whAdmin + "=root:admins"
		case "TASKGATE_NODE_GPUS":
			return "A100:2"
		}
		return ""
	})
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := framework.FromEnv(context.Background(), cfg, logger, demo.Registry(), envs...)
	require.NoError(t, err)
	return &stack{t: t, base: frameworktest.Serve(t, svc.App), svc: svc}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (s *stack) do(method, path, token, body string, headers ...string) reply {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	require.NoError(s.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return roundTrip(s.t, req)
}

// roundTrip sends req and reads the reply: its JSON body, or for an event
// stream the status and headers only (a stream ends with its run).
func roundTrip(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return reply{status: resp.StatusCode, header: resp.Header}
	}
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}

// waitDone polls GET /run/{name} until the run is terminal.
func (s *stack) waitDone(name, token string) reply {
	s.t.Helper()
	var r reply
	require.Eventually(s.t, func() bool {
		r = s.do(http.MethodGet, "/run/"+name, token, "")
		return r.status == 200 && r.body["done"] == true
	}, 20*time.Second, 20*time.Millisecond)
	return r
}

func TestQuickstartTour(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	require.Equal(t, `{"status":"healthy"}`, strings.TrimSpace(s.do("GET", "/health", "", "").raw))

	r := s.do("POST", "/run-task/demo/development/echo", whAlice, `{"message":"hi"}`)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	name := r.body["name"].(string)
	require.Equal(t, "/run/"+name, r.body["url"])
	require.Equal(t, "/run/"+name, r.header.Get("Location"))

	done := s.waitDone(name, whAlice)
	require.Equal(t, "succeeded", done.body["phase"])
	io := s.do("GET", "/run/"+name+"/io", whAlice, "")
	require.Equal(t, map[string]any{"message": "hi"}, io.body["outputs"])
	require.Equal(t, map[string]any{"message": "hi"}, io.body["inputs"])
}

func TestUnauthenticatedIs401WithChallenge(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	for _, tc := range []struct{ token, challenge string }{
		{"", `Bearer realm="taskgate"`},
		{"wrong", `Bearer realm="taskgate", error="invalid_token"`},
	} {
		r := s.do("POST", "/run-task/demo/development/echo", tc.token, `{"message":"hi"}`)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Equal(t, tc.challenge, r.header.Get("WWW-Authenticate"))
		require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	}
	for _, open := range []string{"/health", "/docs", "/openapi.json", "/openapi.yaml", "/openapi-3.0.json", "/openapi-3.0.yaml"} {
		require.Equal(t, http.StatusOK, s.do("GET", open, "", "").status, open)
	}
}

func TestInvalidInputsAre422AndCreateNoRun(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	cases := map[string]struct{ body, field string }{
		"wrong type":     {`{"message": 5}`, "body.message"},
		"missing field":  {`{}`, "body.message"},
		"unknown field":  {`{"message":"hi","extra":1}`, "body.extra"},
		"not an object":  {`[1,2]`, "body"},
		"sleep negative": {`{"seconds": -1}`, "body.seconds"},
	}
	for name, tc := range cases {
		path := "/run-task/demo/development/echo"
		if strings.HasPrefix(name, "sleep") {
			path = "/run-task/demo/development/sleep"
		}
		r := s.do("POST", path, whAlice, tc.body)
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s: %s", name, r.raw)
		require.Contains(t, r.raw, tc.field, name)
	}
	bad := s.do("POST", "/run-task/demo/development/echo", whAlice, `{"message":`)
	require.Equal(t, http.StatusBadRequest, bad.status, "malformed JSON is a bad request: %s", bad.raw)
	runs := s.do("GET", "/runs", whAlice, "")
	require.Empty(t, runs.body["runs"], "no run may exist after refused inputs")
}

func TestOwnershipBetweenUsers(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	r := s.do("POST", "/run-task/demo/development/sleep", whAlice, `{"seconds": 30}`)
	require.Equal(t, http.StatusAccepted, r.status)
	name := r.body["name"].(string)

	for _, p := range []string{"/run/" + name, "/run/" + name + "/io", "/run/" + name + "/events"} {
		require.Equal(t, http.StatusNotFound, s.do("GET", p, whBob, "").status, "bob must not see alice's run at %s", p)
		require.Equal(t, http.StatusOK, s.do("GET", p, whAdmin, "").status, "admins see every run at %s", p)
	}
	require.Equal(t, http.StatusNotFound, s.do("POST", "/run/"+name+"/abort", whBob, "").status)
	require.Equal(t, http.StatusNotFound, s.do("GET", "/run/rdoesnotexist", whAlice, "").status)
	require.Empty(t, s.do("GET", "/runs", whBob, "").body["runs"])

	ab := s.do("POST", "/run/"+name+"/abort?reason=changed+my+mind", whAlice, "")
	require.Equal(t, http.StatusAccepted, ab.status, ab.raw)
	require.Equal(t, "abort_requested", ab.body["status"])
	require.Equal(t, "changed my mind", ab.body["reason"])
	require.Equal(t, "aborted", s.waitDone(name, whAlice).body["phase"])
	require.Equal(t, http.StatusConflict, s.do("POST", "/run/"+name+"/abort", whAlice, "").status)
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	first := s.do("POST", "/run-task/demo/development/echo", whAlice, `{"message":"a"}`, "Idempotency-Key", "k1")
	again := s.do("POST", "/run-task/demo/development/echo", whAlice, `{"message":"a"}`, "Idempotency-Key", "k1")
	require.Equal(t, first.body["name"], again.body["name"])
	other := s.do("POST", "/run-task/demo/development/echo", whAlice, `{"message":"b"}`, "Idempotency-Key", "k1")
	require.Equal(t, http.StatusConflict, other.status)
	// Keys are per caller: bob's k1 is his own.
	bob := s.do("POST", "/run-task/demo/development/echo", whBob, `{"message":"a"}`, "Idempotency-Key", "k1")
	require.Equal(t, http.StatusAccepted, bob.status)
	require.NotEqual(t, first.body["name"], bob.body["name"])
}

func TestPreferWait(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	r := s.do("POST", "/run-task/demo/development/flaky", whAlice, `{"failures":1}`, "Prefer", "wait=20")
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, "wait=20", r.header.Get("Preference-Applied"))
	require.Equal(t, map[string]any{"attempt": float64(2)}, r.body["outputs"])

	slow := s.do("POST", "/run-task/demo/development/sleep", whAlice, `{"seconds":30}`, "Prefer", "wait=1")
	require.Equal(t, http.StatusAccepted, slow.status)
	require.Equal(t, "wait=1", slow.header.Get("Preference-Applied"))
	require.Nil(t, slow.body["outputs"])
}

func TestRunEventsStreamAndResume(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	r := s.do("POST", "/run-task/demo/development/echo", whAlice, `{"message":"sse"}`)
	name := r.body["name"].(string)
	s.waitDone(name, whAlice)

	read := func(lastID string) []string {
		req, _ := http.NewRequest("GET", s.base+"/run/"+name+"/events", nil)
		req.Header.Set("Authorization", "Bearer "+whAlice)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		var ids []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() { // the stream ends after the terminal event
			if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				ids = append(ids, id)
			}
		}
		return ids
	}
	all := read("")
	require.GreaterOrEqual(t, len(all), 3, "queued, running and succeeded at least")
	resumed := read(all[0])
	require.Equal(t, all[1:], resumed, "resume skips what the client saw")
}

func TestListRunsPaginatesAndFilters(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	var names []string
	for i := range 5 {
		r := s.do("POST", "/run-task/demo/development/echo", whAlice, fmt.Sprintf(`{"message":"%d"}`, i))
		names = append(names, r.body["name"].(string))
	}
	for _, n := range names {
		s.waitDone(n, whAlice)
	}
	var seen []string
	cursor := ""
	for {
		r := s.do("GET", "/runs?limit=2&cursor="+cursor, whAlice, "")
		require.Equal(t, 200, r.status, r.raw)
		for _, run := range r.body["runs"].([]any) {
			seen = append(seen, run.(map[string]any)["name"].(string))
		}
		next, _ := r.body["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	require.Len(t, seen, 5)
	require.Equal(t, names[4], seen[0], "newest first")
	require.Empty(t, s.do("GET", "/runs?phase=failed", whAlice, "").body["runs"])
	require.Len(t, s.do("GET", "/runs?task=demo/development/echo&phase=succeeded", whAlice, "").body["runs"], 5)
	require.Equal(t, 422, s.do("GET", "/runs?phase=bogus", whAlice, "").status)
	require.Equal(t, 422, s.do("GET", "/runs?cursor=abc", whAlice, "").status, "a forged cursor is invalid input, not a 500")
	require.Equal(t, 422, s.do("GET", "/runs?task=foo", whAlice, "").status)
}

func TestGroupsAndAllowlist(t *testing.T) {
	t.Parallel()
	coreOnly := webhook.MustNew(webhook.Config{
		Settings: environments.Settings{Name: "core-only", PathPrefix: "/core"}, Groups: []string{"core"},
	})
	limited := webhook.MustNew(webhook.Config{
		Settings:     environments.Settings{Name: "limited", PathPrefix: "/limited"},
		Groups:       []string{"task", "run"},
		AllowedTasks: []string{"echo", "demo/sleep", "demo/development/fla*"},
	})
	s := newStack(t, coreOnly, limited, webhook.MustNew(webhook.Config{
		Settings: environments.Settings{Name: "star", PathPrefix: "/star"}, Groups: []string{"task"},
		AllowedTasks: []string{"*/development/*"},
	}))
	require.Equal(t, 200, s.do("GET", "/core/me", whAlice, "").status)
	require.Equal(t, 404, s.do("GET", "/core/tasks", whAlice, "").status, "task group off")
	require.Equal(t, 404, s.do("GET", "/core/run/x", whAlice, "").status, "run group off")
	require.Equal(t, 404, s.do("GET", "/limited/me", whAlice, "").status, "core group off")

	tasks := s.do("GET", "/limited/tasks", whAlice, "")
	var listed []string
	for _, tk := range tasks.body["tasks"].([]any) {
		listed = append(listed, tk.(map[string]any)["name"].(string))
	}
	require.ElementsMatch(t, []string{"echo", "sleep", "flaky"}, listed)
	require.Equal(t, 403, s.do("GET", "/limited/task/demo/development/train", whAlice, "").status)
	require.Equal(t, 403, s.do("POST", "/limited/run-task/demo/development/train", whAlice, `{}`).status)
	require.Equal(t, 404, s.do("GET", "/limited/task/demo/development/nope", whAlice, "").status)
	require.Len(t, s.do("GET", "/star/tasks", whAlice, "").body["tasks"], 4)

	_, err := webhook.New(webhook.Config{Settings: environments.Settings{Name: "x"}, Groups: []string{"bogus"}})
	require.ErrorContains(t, err, "bogus")
	_, err = webhook.New(webhook.Config{Settings: environments.Settings{Name: "x"}, Endpoints: []string{"run-everything"}})
	require.ErrorContains(t, err, "run-everything")
	_, err = webhook.New(webhook.Config{Settings: environments.Settings{Name: "x"}, AllowedTasks: []string{"a/b/c/d"}})
	require.Error(t, err)
	// Patterns are DNS labels with '*' in them: one no task name can
	// match is refused rather than matching nothing.
	for _, bad := range []string{"-*", "train-", "demo/Echo", "a/b_c/*", "[a-z]*"} {
		_, err = webhook.New(webhook.Config{Settings: environments.Settings{Name: "x"}, AllowedTasks: []string{bad}})
		require.ErrorContains(t, err, "allowlist entry", bad)
	}
}

func TestNodesAndQueueAreForAdmins(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	require.Equal(t, 403, s.do("GET", "/nodes", whAlice, "").status)
	require.Equal(t, 403, s.do("GET", "/queue", whAlice, "").status)
	n := s.do("GET", "/nodes", whAdmin, "")
	require.Equal(t, 200, n.status, n.raw)
	require.Contains(t, n.raw, "A100")
	require.Equal(t, 200, s.do("GET", "/queue", whAdmin, "").status)
}

func TestGetTaskShowsSchemasAndResources(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	r := s.do("GET", "/task/demo/development/train", whAlice, "")
	require.Equal(t, 200, r.status, r.raw)
	require.Equal(t, "A100:1", r.body["resources"].(map[string]any)["gpu"])
	in := r.body["input_schema"].(map[string]any)
	require.Contains(t, in["properties"], "epochs")
	out := r.body["output_schema"].(map[string]any)
	require.Contains(t, out["properties"], "cuda_visible_devices")
}

func TestTrainGetsItsGPU(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	r := s.do("POST", "/run-task/demo/development/train", whAlice, `{}`, "Prefer", "wait=20")
	require.Equal(t, 200, r.status, r.raw)
	out := r.body["outputs"].(map[string]any)
	require.Len(t, out["devices"], 1)
	require.NotEmpty(t, out["cuda_visible_devices"])
}

func TestRunCallbackIsSignedAndVisibleOnTheRun(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	got := make(chan map[string]any, 4)
	receiver := httptest.NewServer(middleware.VerifyWebhook(secret)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p map[string]any
		_ = json.NewDecoder(r.Body).Decode(&p)
		got <- p
		w.WriteHeader(http.StatusNoContent)
	})))
	defer receiver.Close()
	s := newStackEnv(t, map[string]string{"TASKGATE_WEBHOOK_SECRET": secret, "TASKGATE_WEBHOOK_ALLOW_PRIVATE": "1"})

	r := s.do("POST", "/run-task/demo/development/echo?webhook="+url.QueryEscape(receiver.URL+"/hook?token=abc"), whAlice, `{"message":"cb"}`)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	name := r.body["name"].(string)
	select {
	case p := <-got:
		require.Equal(t, "run.completed", p["type"])
		data := p["data"].(map[string]any)
		require.Equal(t, name, data["name"])
		require.Equal(t, "succeeded", data["phase"])
	case <-time.After(15 * time.Second):
		t.Fatal("no signed callback arrived")
	}
	require.Eventually(t, func() bool {
		run := s.do("GET", "/run/"+name, whAlice, "")
		ds, _ := run.body["deliveries"].([]any)
		if len(ds) != 1 {
			return false
		}
		d := ds[0].(map[string]any)
		require.NotContains(t, d["url"], "token", "the URL is shown without its query")
		return d["state"] == "delivered"
	}, 10*time.Second, 50*time.Millisecond)

	bad := s.do("POST", "/run-task/demo/development/echo?webhook=ftp://x", whAlice, `{"message":"cb"}`)
	require.Equal(t, http.StatusUnprocessableEntity, bad.status)
	require.Contains(t, bad.raw, "query.webhook")
}

func TestCallbackToLoopbackIsRefusedByTheSSRFGuard(t *testing.T) {
	t.Parallel()
	hits := 0
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer receiver.Close()
	s := newStack(t) // the guard is on by default
	r := s.do("POST", "/run-task/demo/development/echo?webhook="+url.QueryEscape(receiver.URL), whAlice, `{"message":"x"}`)
	require.Equal(t, http.StatusAccepted, r.status)
	name := r.body["name"].(string)
	require.Eventually(t, func() bool {
		run := s.do("GET", "/run/"+name, whAlice, "")
		ds, _ := run.body["deliveries"].([]any)
		if len(ds) != 1 {
			return false
		}
		attempts, _ := ds[0].(map[string]any)["attempts"].([]any)
		return len(attempts) > 0 && strings.Contains(fmt.Sprint(attempts[0]), "not allowed (loopback)")
	}, 10*time.Second, 50*time.Millisecond)
	require.Zero(t, hits, "nothing may reach a loopback receiver with the guard on")
}

func TestLimitsGiveExactStatusCodes(t *testing.T) {
	t.Parallel()
	small := webhook.MustNew(webhook.Config{
		Settings: environments.Settings{Name: "small", PathPrefix: "/small", Limits: environments.Limits{MaxBodyBytes: 64}},
		Groups:   []string{"task", "run"},
	})
	narrow := webhook.MustNew(webhook.Config{
		Settings: environments.Settings{Name: "narrow", PathPrefix: "/narrow",
			Limits: environments.Limits{MaxInFlight: 1, QueueTimeout: 50 * time.Millisecond}},
		Groups: []string{"task", "run"},
	})
	s := newStack(t, small, narrow)

	big := s.do("POST", "/small/run-task/demo/development/echo", whAlice, `{"message":"`+strings.Repeat("x", 100)+`"}`)
	require.Equal(t, http.StatusRequestEntityTooLarge, big.status, big.raw)
	require.Equal(t, "application/problem+json", big.header.Get("Content-Type"))
	require.Equal(t, http.StatusAccepted, s.do("POST", "/small/run-task/demo/development/echo", whAlice, `{"message":"ok"}`).status)

	// One request holds the only slot (Prefer: wait on a sleeping run); the
	// next waits QueueTimeout, then gets 429 with Retry-After.
	hold := make(chan reply, 1)
	go func() {
		hold <- s.do("POST", "/narrow/run-task/demo/development/sleep", whAlice, `{"seconds":1}`, "Prefer", "wait=5")
	}()
	require.Eventually(t, func() bool {
		r := s.do("GET", "/narrow/runs", whAlice, "")
		if r.status == http.StatusTooManyRequests {
			require.NotEmpty(t, r.header.Get("Retry-After"))
			require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
			return true
		}
		return false
	}, 5*time.Second, 10*time.Millisecond)
	// The slot is still held: health checks and the docs are not counted.
	for _, p := range []string{"/narrow/docs", "/narrow/openapi.json"} { // no core group: no /health
		r := s.do("GET", p, "", "")
		require.Equal(t, http.StatusOK, r.status, p)
	}
	require.Equal(t, http.StatusTooManyRequests, s.do("GET", "/narrow/runs", whAlice, "").status, "the slot was still held")
	require.Equal(t, http.StatusOK, (<-hold).status)
}

func TestSeveralWebhookEnvironmentsByHost(t *testing.T) {
	t.Parallel()
	a := webhook.MustNew(webhook.Config{
		Settings:     environments.Settings{Name: "team-a", CustomDomains: []string{"a.example.com"}},
		AllowedTasks: []string{"echo"},
	})
	b := webhook.MustNew(webhook.Config{
		Settings:     environments.Settings{Name: "team-b", CustomDomains: []string{"*.b.example.com"}, Auth: environments.Auth{RequiredGroup: "ml"}},
		AllowedTasks: []string{"sleep"},
	})
	s := newStack(t, a, b)
	get := func(host, path, token string) reply {
		req, _ := http.NewRequest("GET", s.base+path, nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		r := reply{status: resp.StatusCode}
		_ = json.NewDecoder(resp.Body).Decode(&r.body)
		return r
	}
	names := func(r reply) []string {
		var out []string
		for _, tk := range r.body["tasks"].([]any) {
			out = append(out, tk.(map[string]any)["name"].(string))
		}
		return out
	}
	require.Equal(t, []string{"echo"}, names(get("a.example.com", "/tasks", whAlice)))
	require.Equal(t, []string{"sleep"}, names(get("eu.b.example.com:443", "/tasks", whAlice)))
	require.Equal(t, http.StatusForbidden, get("eu.b.example.com", "/tasks", whBob).status, "team-b requires the ml group")
	require.Equal(t, http.StatusNotFound, get("c.example.com", "/tasks", whAlice).status, "no environment serves that host")
}

func TestQueueReplayTasksAreNotReachableThroughRunTask(t *testing.T) {
	t.Parallel()
	app := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "myapp", PathPrefix: "/app"},
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }),
		Queue:    queue.MustNew(queue.Config{}),
	})
	s := newStack(t, demo.Webhook(), app)
	for _, tk := range s.do("GET", "/tasks", whAdmin, "").body["tasks"].([]any) {
		require.NotEqual(t, environments.QueueProject, tk.(map[string]any)["project"])
	}
	forged := s.do("POST", "/run-task/"+environments.QueueProject+"/myapp/replay", whAdmin,
		`{"method":"GET","path":"/","client_ip":"10.0.0.1"}`)
	require.Equal(t, http.StatusForbidden, forged.status, forged.raw)
}

func TestDocsOfAnEnvironmentShowOnlyItsAllowedTasks(t *testing.T) {
	t.Parallel()
	limited := webhook.MustNew(webhook.Config{
		Settings: environments.Settings{Name: "limited", PathPrefix: "/limited"}, AllowedTasks: []string{"echo"},
	})
	s := newStack(t, limited)
	doc := s.do("GET", "/limited/openapi.json", "", "")
	require.Equal(t, http.StatusOK, doc.status)
	require.Contains(t, doc.raw, "EchoInput")
	require.NotContains(t, doc.raw, "TrainInput", "a task outside the allowlist is absent from the docs")
	require.NotContains(t, doc.raw, "SleepInput")
}

// TestDocsExclusionsNeverReachTheUsersHandler: /docs, /schemas and the
// OpenAPI documents are served without credentials, so paths under them
// that the docs do not serve are 404, not the app's own routes served to
// anyone; a proxied server gets no docs exclusions at all.
func TestDocsExclusionsNeverReachTheUsersHandler(t *testing.T) {
	t.Parallel()
	reached := make(chan string, 8)
	app := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "mine"},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reached <- r.URL.Path
			fmt.Fprint(w, "secret")
		}),
	})
	s := newStack(t, app)
	for _, p := range []string{"/docs/secret", "/schemas/x/y", "/docs/assets/../../secret"} {
		r := s.do("GET", p, "", "")
		require.NotEqual(t, http.StatusOK, r.status, p)
		require.NotContains(t, r.raw, "secret", p)
	}
	require.Equal(t, http.StatusUnauthorized, s.do("GET", "/secret", "", "").status)
	require.Equal(t, http.StatusOK, s.do("GET", "/docs", "", "").status)
	require.Equal(t, http.StatusOK, s.do("GET", "/openapi.json", "", "").status)
	require.Equal(t, http.StatusOK, s.do("GET", "/health", "", "").status, "/health is open, and reaches the handler")
	require.Equal(t, "/health", <-reached)
	require.Empty(t, reached, "no docs path reached the handler")
}
