package webhook_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/environments/queue"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/middleware"
)

func TestQuickstartTour(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	require.Equal(t, `{"status":"healthy"}`, strings.TrimSpace(s.Do("GET", "/health", "", "").Raw))

	r := s.Do("POST", "/run-task/demo/development/echo", envtest.WhAlice, `{"message":"hi"}`)
	require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
	name := r.Body["name"].(string)
	require.Equal(t, "/run/"+name, r.Body["url"])
	require.Equal(t, "/run/"+name, r.Header.Get("Location"))

	done := s.WaitDone(name, envtest.WhAlice)
	require.Equal(t, "succeeded", done.Body["phase"])
	io := s.Do("GET", "/run/"+name+"/io", envtest.WhAlice, "")
	require.Equal(t, map[string]any{"message": "hi"}, io.Body["outputs"])
	require.Equal(t, map[string]any{"message": "hi"}, io.Body["inputs"])
}

func TestUnauthenticatedIs401WithChallenge(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	for _, tc := range []struct{ token, challenge string }{
		{"", `Bearer realm="taskgate"`},
		{"wrong", `Bearer realm="taskgate", error="invalid_token"`},
	} {
		r := s.Do("POST", "/run-task/demo/development/echo", tc.token, `{"message":"hi"}`)
		require.Equal(t, http.StatusUnauthorized, r.Status)
		require.Equal(t, tc.challenge, r.Header.Get("WWW-Authenticate"))
		require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
	}
	for _, open := range []string{"/health", "/docs", "/openapi.json", "/openapi.yaml", "/openapi-3.0.json", "/openapi-3.0.yaml"} {
		require.Equal(t, http.StatusOK, s.Do("GET", open, "", "").Status, open)
	}
}

func TestInvalidInputsAre422AndCreateNoRun(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
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
		r := s.Do("POST", path, envtest.WhAlice, tc.body)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "%s: %s", name, r.Raw)
		require.Contains(t, r.Raw, tc.field, name)
	}
	bad := s.Do("POST", "/run-task/demo/development/echo", envtest.WhAlice, `{"message":`)
	require.Equal(t, http.StatusBadRequest, bad.Status, "malformed JSON is a bad request: %s", bad.Raw)
	runs := s.Do("GET", "/runs", envtest.WhAlice, "")
	require.Empty(t, runs.Body["runs"], "no run may exist after refused inputs")
}

func TestOwnershipBetweenUsers(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	r := s.Do("POST", "/run-task/demo/development/sleep", envtest.WhAlice, `{"seconds": 30}`)
	require.Equal(t, http.StatusAccepted, r.Status)
	name := r.Body["name"].(string)

	for _, p := range []string{"/run/" + name, "/run/" + name + "/io", "/run/" + name + "/events"} {
		require.Equal(t, http.StatusNotFound, s.Do("GET", p, envtest.WhBob, "").Status, "bob must not see alice's run at %s", p)
		require.Equal(t, http.StatusOK, s.Do("GET", p, envtest.WhAdmin, "").Status, "admins see every run at %s", p)
	}
	require.Equal(t, http.StatusNotFound, s.Do("POST", "/run/"+name+"/abort", envtest.WhBob, "").Status)
	require.Equal(t, http.StatusNotFound, s.Do("GET", "/run/rdoesnotexist", envtest.WhAlice, "").Status)
	require.Empty(t, s.Do("GET", "/runs", envtest.WhBob, "").Body["runs"])

	ab := s.Do("POST", "/run/"+name+"/abort?reason=changed+my+mind", envtest.WhAlice, "")
	require.Equal(t, http.StatusAccepted, ab.Status, ab.Raw)
	require.Equal(t, "abort_requested", ab.Body["status"])
	require.Equal(t, "changed my mind", ab.Body["reason"])
	require.Equal(t, "aborted", s.WaitDone(name, envtest.WhAlice).Body["phase"])
	require.Equal(t, http.StatusConflict, s.Do("POST", "/run/"+name+"/abort", envtest.WhAlice, "").Status)
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	first := s.Do("POST", "/run-task/demo/development/echo", envtest.WhAlice, `{"message":"a"}`, "Idempotency-Key", "k1")
	again := s.Do("POST", "/run-task/demo/development/echo", envtest.WhAlice, `{"message":"a"}`, "Idempotency-Key", "k1")
	require.Equal(t, first.Body["name"], again.Body["name"])
	other := s.Do("POST", "/run-task/demo/development/echo", envtest.WhAlice, `{"message":"b"}`, "Idempotency-Key", "k1")
	require.Equal(t, http.StatusConflict, other.Status)
	// Keys are per caller: bob's k1 is his own.
	bob := s.Do("POST", "/run-task/demo/development/echo", envtest.WhBob, `{"message":"a"}`, "Idempotency-Key", "k1")
	require.Equal(t, http.StatusAccepted, bob.Status)
	require.NotEqual(t, first.Body["name"], bob.Body["name"])
}

func TestPreferWait(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	r := s.Do("POST", "/run-task/demo/development/flaky", envtest.WhAlice, `{"failures":1}`, "Prefer", "wait=20")
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Equal(t, "wait=20", r.Header.Get("Preference-Applied"))
	require.Equal(t, map[string]any{"attempt": float64(2)}, r.Body["outputs"])

	slow := s.Do("POST", "/run-task/demo/development/sleep", envtest.WhAlice, `{"seconds":30}`, "Prefer", "wait=1")
	require.Equal(t, http.StatusAccepted, slow.Status)
	require.Equal(t, "wait=1", slow.Header.Get("Preference-Applied"))
	require.Nil(t, slow.Body["outputs"])
}

func TestRunEventsStreamAndResume(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	r := s.Do("POST", "/run-task/demo/development/echo", envtest.WhAlice, `{"message":"sse"}`)
	name := r.Body["name"].(string)
	s.WaitDone(name, envtest.WhAlice)

	read := func(lastID string) []string {
		req, _ := http.NewRequest("GET", s.Base+"/run/"+name+"/events", nil)
		req.Header.Set("Authorization", "Bearer "+envtest.WhAlice)
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
	s := envtest.NewStack(t)
	var names []string
	for i := range 5 {
		r := s.Do("POST", "/run-task/demo/development/echo", envtest.WhAlice, fmt.Sprintf(`{"message":"%d"}`, i))
		names = append(names, r.Body["name"].(string))
	}
	for _, n := range names {
		s.WaitDone(n, envtest.WhAlice)
	}
	var seen []string
	cursor := ""
	for {
		r := s.Do("GET", "/runs?limit=2&cursor="+cursor, envtest.WhAlice, "")
		require.Equal(t, 200, r.Status, r.Raw)
		for _, run := range r.Body["runs"].([]any) {
			seen = append(seen, run.(map[string]any)["name"].(string))
		}
		next, _ := r.Body["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	require.Len(t, seen, 5)
	require.Equal(t, names[4], seen[0], "newest first")
	require.Empty(t, s.Do("GET", "/runs?phase=failed", envtest.WhAlice, "").Body["runs"])
	require.Len(t, s.Do("GET", "/runs?task=demo/development/echo&phase=succeeded", envtest.WhAlice, "").Body["runs"], 5)
	require.Equal(t, 422, s.Do("GET", "/runs?phase=bogus", envtest.WhAlice, "").Status)
	require.Equal(t, 422, s.Do("GET", "/runs?cursor=abc", envtest.WhAlice, "").Status, "a forged cursor is invalid input, not a 500")
	require.Equal(t, 422, s.Do("GET", "/runs?task=foo", envtest.WhAlice, "").Status)

	// Creation-time windows, paged: the third run's time splits them.
	third, err := time.Parse(time.RFC3339Nano, s.Do("GET", "/run/"+names[2], envtest.WhAlice, "").Body["created_at"].(string))
	require.NoError(t, err)
	at := url.QueryEscape(third.Format(time.RFC3339Nano))
	list := func(q string) []string {
		var got []string
		for cursor := ""; ; {
			r := s.Do("GET", "/runs?limit=1&"+q+"&cursor="+cursor, envtest.WhAlice, "")
			require.Equal(t, 200, r.Status, r.Raw)
			for _, run := range r.Body["runs"].([]any) {
				got = append(got, run.(map[string]any)["name"].(string))
			}
			if cursor, _ = r.Body["next_cursor"].(string); cursor == "" {
				return got
			}
		}
	}
	require.Equal(t, []string{names[4], names[3], names[2]}, list("created_after="+at))
	require.Equal(t, []string{names[1], names[0]}, list("created_before="+at))
	require.Equal(t, []string{names[2]}, list("created_after="+at+"&created_before="+url.QueryEscape(third.Add(time.Nanosecond).Format(time.RFC3339Nano))))
	require.Empty(t, list("created_after="+url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))))
	for q, field := range map[string]string{
		"created_after=yesterday":                       "query.created_after",
		"created_before=2026-12-01":                     "query.created_before",
		"created_after=" + at + "&created_before=" + at: "query.created_before",
		"created_before=3000-01-01T00:00:00Z":           "query.created_before",
		"created_after=1000-01-01T00:00:00Z":            "query.created_after",
	} {
		r := s.Do("GET", "/runs?"+q, envtest.WhAlice, "")
		require.Equal(t, 422, r.Status, "%s: %s", q, r.Raw)
		require.Contains(t, r.Raw, field, q)
	}
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
	s := envtest.NewStack(t, coreOnly, limited, webhook.MustNew(webhook.Config{
		Settings: environments.Settings{Name: "star", PathPrefix: "/star"}, Groups: []string{"task"},
		AllowedTasks: []string{"*/development/*"},
	}))
	require.Equal(t, 200, s.Do("GET", "/core/me", envtest.WhAlice, "").Status)
	require.Equal(t, 404, s.Do("GET", "/core/tasks", envtest.WhAlice, "").Status, "task group off")
	require.Equal(t, 404, s.Do("GET", "/core/run/x", envtest.WhAlice, "").Status, "run group off")
	require.Equal(t, 404, s.Do("GET", "/limited/me", envtest.WhAlice, "").Status, "core group off")

	tasks := s.Do("GET", "/limited/tasks", envtest.WhAlice, "")
	var listed []string
	for _, tk := range tasks.Body["tasks"].([]any) {
		listed = append(listed, tk.(map[string]any)["name"].(string))
	}
	require.ElementsMatch(t, []string{"echo", "sleep", "flaky"}, listed)
	require.Equal(t, 403, s.Do("GET", "/limited/task/demo/development/train", envtest.WhAlice, "").Status)
	require.Equal(t, 403, s.Do("POST", "/limited/run-task/demo/development/train", envtest.WhAlice, `{}`).Status)
	require.Equal(t, 404, s.Do("GET", "/limited/task/demo/development/nope", envtest.WhAlice, "").Status)
	require.Len(t, s.Do("GET", "/star/tasks", envtest.WhAlice, "").Body["tasks"], 4)

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
	s := envtest.NewStack(t)
	require.Equal(t, 403, s.Do("GET", "/nodes", envtest.WhAlice, "").Status)
	require.Equal(t, 403, s.Do("GET", "/queue", envtest.WhAlice, "").Status)
	n := s.Do("GET", "/nodes", envtest.WhAdmin, "")
	require.Equal(t, 200, n.Status, n.Raw)
	require.Contains(t, n.Raw, "A100")
	require.Equal(t, 200, s.Do("GET", "/queue", envtest.WhAdmin, "").Status)
}

func TestGetTaskShowsSchemasAndResources(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	r := s.Do("GET", "/task/demo/development/train", envtest.WhAlice, "")
	require.Equal(t, 200, r.Status, r.Raw)
	require.Equal(t, "A100:1", r.Body["resources"].(map[string]any)["gpu"])
	in := r.Body["input_schema"].(map[string]any)
	require.Contains(t, in["properties"], "epochs")
	out := r.Body["output_schema"].(map[string]any)
	require.Contains(t, out["properties"], "cuda_visible_devices")
}

func TestTrainGetsItsGPU(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	r := s.Do("POST", "/run-task/demo/development/train", envtest.WhAlice, `{}`, "Prefer", "wait=20")
	require.Equal(t, 200, r.Status, r.Raw)
	out := r.Body["outputs"].(map[string]any)
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
	s := envtest.NewStackEnv(t, map[string]string{"TASKGATE_WEBHOOK_SECRET": secret, "TASKGATE_WEBHOOK_ALLOW_PRIVATE": "1"})

	r := s.Do("POST", "/run-task/demo/development/echo?webhook="+url.QueryEscape(receiver.URL+"/hook?token=abc"), envtest.WhAlice, `{"message":"cb"}`)
	require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
	name := r.Body["name"].(string)
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
		run := s.Do("GET", "/run/"+name, envtest.WhAlice, "")
		ds, _ := run.Body["deliveries"].([]any)
		if len(ds) != 1 {
			return false
		}
		d := ds[0].(map[string]any)
		require.NotContains(t, d["url"], "token", "the URL is shown without its query")
		return d["state"] == "delivered"
	}, 10*time.Second, 50*time.Millisecond)

	bad := s.Do("POST", "/run-task/demo/development/echo?webhook=ftp://x", envtest.WhAlice, `{"message":"cb"}`)
	require.Equal(t, http.StatusUnprocessableEntity, bad.Status)
	require.Contains(t, bad.Raw, "query.webhook")
}

func TestCallbackToLoopbackIsRefusedByTheSSRFGuard(t *testing.T) {
	t.Parallel()
	hits := 0
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer receiver.Close()
	s := envtest.NewStack(t) // the guard is on by default
	r := s.Do("POST", "/run-task/demo/development/echo?webhook="+url.QueryEscape(receiver.URL), envtest.WhAlice, `{"message":"x"}`)
	require.Equal(t, http.StatusAccepted, r.Status)
	name := r.Body["name"].(string)
	require.Eventually(t, func() bool {
		run := s.Do("GET", "/run/"+name, envtest.WhAlice, "")
		ds, _ := run.Body["deliveries"].([]any)
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
	s := envtest.NewStack(t, small, narrow)

	big := s.Do("POST", "/small/run-task/demo/development/echo", envtest.WhAlice, `{"message":"`+strings.Repeat("x", 100)+`"}`)
	require.Equal(t, http.StatusRequestEntityTooLarge, big.Status, big.Raw)
	require.Equal(t, "application/problem+json", big.Header.Get("Content-Type"))
	require.Equal(t, http.StatusAccepted, s.Do("POST", "/small/run-task/demo/development/echo", envtest.WhAlice, `{"message":"ok"}`).Status)

	// One request holds the only slot (Prefer: wait on a sleeping run); the
	// next waits QueueTimeout, then gets 429 with Retry-After. The holder's
	// run is watched through the unlimited environment: a poll of /narrow
	// itself could take the slot first and turn the holder away.
	hold := make(chan envtest.Reply, 1)
	go func() {
		hold <- s.Do("POST", "/narrow/run-task/demo/development/sleep", envtest.WhAlice, `{"seconds":4}`, "Prefer", "wait=30")
	}()
	require.Eventually(t, func() bool {
		r := s.Do("GET", "/small/runs?phase=running", envtest.WhAlice, "")
		runs, _ := r.Body["runs"].([]any)
		return len(runs) == 1
	}, 15*time.Second, 10*time.Millisecond, "the holder's sleep run never ran")
	r := s.Do("GET", "/narrow/runs", envtest.WhAlice, "")
	require.Equal(t, http.StatusTooManyRequests, r.Status, r.Raw)
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
	// The slot is still held: health checks and the docs are not counted.
	for _, p := range []string{"/narrow/docs", "/narrow/openapi.json"} { // no core group: no /health
		r := s.Do("GET", p, "", "")
		require.Equal(t, http.StatusOK, r.Status, p)
	}
	require.Equal(t, http.StatusTooManyRequests, s.Do("GET", "/narrow/runs", envtest.WhAlice, "").Status, "the slot was still held")
	require.Equal(t, http.StatusOK, (<-hold).Status)
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
	s := envtest.NewStack(t, a, b)
	get := func(host, path, token string) envtest.Reply {
		req, _ := http.NewRequest("GET", s.Base+path, nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		r := envtest.Reply{Status: resp.StatusCode}
		_ = json.NewDecoder(resp.Body).Decode(&r.Body)
		return r
	}
	names := func(r envtest.Reply) []string {
		var out []string
		for _, tk := range r.Body["tasks"].([]any) {
			out = append(out, tk.(map[string]any)["name"].(string))
		}
		return out
	}
	require.Equal(t, []string{"echo"}, names(get("a.example.com", "/tasks", envtest.WhAlice)))
	require.Equal(t, []string{"sleep"}, names(get("eu.b.example.com:443", "/tasks", envtest.WhAlice)))
	require.Equal(t, http.StatusForbidden, get("eu.b.example.com", "/tasks", envtest.WhBob).Status, "team-b requires the ml group")
	require.Equal(t, http.StatusNotFound, get("c.example.com", "/tasks", envtest.WhAlice).Status, "no environment serves that host")
}

func TestQueueReplayTasksAreNotReachableThroughRunTask(t *testing.T) {
	t.Parallel()
	app := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "myapp", PathPrefix: "/app"},
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }),
		Queue:    queue.MustNew(queue.Config{}),
	})
	s := envtest.NewStack(t, demo.Webhook(), app)
	for _, tk := range s.Do("GET", "/tasks", envtest.WhAdmin, "").Body["tasks"].([]any) {
		require.NotEqual(t, environments.QueueProject, tk.(map[string]any)["project"])
	}
	forged := s.Do("POST", "/run-task/"+environments.QueueProject+"/myapp/replay", envtest.WhAdmin,
		`{"method":"GET","path":"/","client_ip":"10.0.0.1"}`)
	require.Equal(t, http.StatusForbidden, forged.Status, forged.Raw)
}

func TestDocsOfAnEnvironmentShowOnlyItsAllowedTasks(t *testing.T) {
	t.Parallel()
	limited := webhook.MustNew(webhook.Config{
		Settings: environments.Settings{Name: "limited", PathPrefix: "/limited"}, AllowedTasks: []string{"echo"},
	})
	s := envtest.NewStack(t, limited)
	doc := s.Do("GET", "/limited/openapi.json", "", "")
	require.Equal(t, http.StatusOK, doc.Status)
	require.Contains(t, doc.Raw, "EchoInput")
	require.NotContains(t, doc.Raw, "TrainInput", "a task outside the allowlist is absent from the docs")
	require.NotContains(t, doc.Raw, "SleepInput")
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
	s := envtest.NewStack(t, app)
	for _, p := range []string{"/docs/secret", "/schemas/x/y", "/docs/assets/../../secret"} {
		r := s.Do("GET", p, "", "")
		require.NotEqual(t, http.StatusOK, r.Status, p)
		require.NotContains(t, r.Raw, "secret", p)
	}
	require.Equal(t, http.StatusUnauthorized, s.Do("GET", "/secret", "", "").Status)
	require.Equal(t, http.StatusOK, s.Do("GET", "/docs", "", "").Status)
	require.Equal(t, http.StatusOK, s.Do("GET", "/openapi.json", "", "").Status)
	require.Equal(t, http.StatusOK, s.Do("GET", "/health", "", "").Status, "/health is open, and reaches the handler")
	require.Equal(t, "/health", <-reached)
	require.Empty(t, reached, "no docs path reached the handler")
}
