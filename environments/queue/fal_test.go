package queue_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
)

// The requests below are the ones fal's JS client (@fal-ai/client 1.10.1,
// github.com/fal-ai/fal-js at 381105e) sends, configured with
// config({credentials, proxyUrl: {url, when: "always"}}), recorded from its
// source:
//   - every request (libs/client/src/request.ts:57-91): method uppercased,
//     "Authorization: Key <credentials>", "Accept: application/json",
//     "Content-Type: application/json", "User-Agent: @fal-ai/client/<v>",
//     the body JSON.stringify(input) unless GET;
//   - the proxy (libs/client/src/middleware.ts:81-98): the URL becomes the
//     proxy URL and the fal URL goes in x-fal-target-url;
//   - the fal URL (request.ts:135-162): https://queue.fal.run/<app id>/<path>
//     with the query from URLSearchParams;
//   - submit (libs/client/src/queue.ts:332-352): POST <app id>[/<path>],
//     ?fal_webhook=<url> when webhookUrl is set, x-fal-queue-priority
//     (default "normal"), x-fal-request-timeout when startTimeout is set;
//   - status (queue.ts:360-372): GET <owner>/<alias>/requests/<id>/status?logs=0;
//   - streamed status (queue.ts:386-397, libs/client/src/streaming.ts:200-214):
//     GET …/requests/<id>/status/stream?logs=0 with "accept: text/event-stream";
//   - result (queue.ts:515-529): GET …/requests/<id>, x-fal-request-id read
//     from the answer (libs/client/src/response.ts:7,121-129);
//   - cancel (queue.ts:538-548): PUT …/requests/<id>/cancel;
//   - errors (response.ts:81-107): the body is read only when Content-Type
//     includes application/json.
const (
	falUserAgent = "@fal-ai/client/1.10.1"
	falHost      = "https://queue.fal.run"
)

// falRequest is one request of fal's client through the proxy at
// base+"/gen/fal" for the fal URL target.
func falRequest(t *testing.T, s *queueStack, method, target, key, body string, headers ...string) envtest.Reply {
	t.Helper()
	resp := falDo(t, s, method, target, key, body, headers...)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := envtest.Reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(b)}
	_ = json.Unmarshal(b, &r.Body)
	return r
}

func falDo(t *testing.T, s *queueStack, method, target, key, body string, headers ...string) *http.Response {
	t.Helper()
	var rd io.Reader
	if method != http.MethodGet && body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.base+"/gen/fal", rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Key "+key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", falUserAgent)
	req.Header.Set("X-Fal-Target-Url", target)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

func falEnv(app *queueApp) *environments.AppEnvironment {
	return queueEnv(app, func(c *environments.AppConfig) { c.PathPrefix = "/gen" })
}

func TestFalClientSequence(t *testing.T) {
	t.Parallel()
	app := newQueueApp()
	s := queueStart(t, t.TempDir(), "A100:2", falEnv(app), nil)
	s.prefix = "/gen"
	app2 := falHost + "/my-team/gen"

	// Submit, as fal.queue.submit("my-team/gen/echo/run", {input, webhookUrl,
	// priority: "low", startTimeout: 30}).
	const hook = "http://127.0.0.1:9/hook"
	r := falRequest(t, s, http.MethodPost, app2+"/echo/run?fal_webhook="+url.QueryEscape(hook), queueAlice, `{"prompt":"a cat"}`,
		"x-fal-queue-priority", "low", "x-fal-request-timeout", "30")
	require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
	id, _ := r.Body["request_id"].(string)
	require.NotEmpty(t, id)
	require.Equal(t, id, r.Header.Get("X-Fal-Request-Id"))
	base := s.base + "/gen/fal/my-team/gen/requests/" + id
	require.Equal(t, map[string]any{
		"request_id": id, "status": "IN_QUEUE", "queue_position": float64(0),
		"status_url": base + "/status", "response_url": base, "cancel_url": base + "/cancel",
	}, r.Body)
	run, err := s.svc.Dispatcher.Get(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, -10, run.Priority, "x-fal-queue-priority: low")
	require.Contains(t, string(run.Inputs), `"start_timeout":30`, "x-fal-request-timeout")
	require.Equal(t, hook, run.Webhook, "?fal_webhook= is ?webhook=")

	// Streamed status (subscribe with mode "streaming") until COMPLETED.
	resp := falDo(t, s, http.MethodGet, app2+"/requests/"+id+"/status/stream?logs=0", queueAlice, "",
		"accept", "text/event-stream")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, id, resp.Header.Get("X-Fal-Request-Id"))
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))
	var last map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			require.NoError(t, json.Unmarshal([]byte(data), &last))
		}
	}
	resp.Body.Close()
	require.Equal(t, "COMPLETED", last["status"])

	// Status (polling mode).
	st := falRequest(t, s, http.MethodGet, app2+"/requests/"+id+"/status?logs=0", queueAlice, "")
	require.Equal(t, http.StatusOK, st.Status, st.Raw)
	require.Equal(t, "COMPLETED", st.Body["status"])
	require.Equal(t, base, st.Body["response_url"])
	require.Equal(t, id, st.Header.Get("X-Fal-Request-Id"))

	// Result.
	res := falRequest(t, s, http.MethodGet, app2+"/requests/"+id, queueAlice, "")
	require.Equal(t, http.StatusCreated, res.Status, res.Raw)
	require.Equal(t, id, res.Header.Get("X-Fal-Request-Id"))
	require.Equal(t, "alice", res.Body["subject"], "Authorization: Key is verified as the bearer token is")
	require.Equal(t, "/echo/run", res.Body["path"])
	require.Empty(t, res.Body["query"], "fal_webhook is the queue's, not the app's")
	require.Equal(t, `{"prompt":"a cat"}`, res.Body["body"])
	headers := res.Body["headers"].(map[string]any)
	for _, h := range []string{"Authorization", "X-Fal-Target-Url", "X-Fal-Queue-Priority", "X-Fal-Request-Timeout"} {
		require.NotContains(t, headers, h)
	}

	// The absolute URLs of the submit answer work as they are.
	direct, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/status", nil)
	require.NoError(t, err)
	direct.Header.Set("Authorization", "Key "+queueAlice)
	require.Equal(t, "COMPLETED", envtest.RoundTrip(t, direct).Body["status"])

	// Cancel of a completed request: fal's client reads the error body.
	c := falRequest(t, s, http.MethodPut, app2+"/requests/"+id+"/cancel", queueAlice, "")
	require.Equal(t, http.StatusBadRequest, c.Status, c.Raw)
	require.Equal(t, "application/json", c.Header.Get("Content-Type"), "fal's client asked for application/json")
	require.Equal(t, "ALREADY_COMPLETED", c.Body["code"])

	// Another caller's request is not found.
	nf := falRequest(t, s, http.MethodGet, app2+"/requests/"+id, queueBob, "")
	require.Equal(t, http.StatusNotFound, nf.Status, nf.Raw)
	require.Equal(t, "application/json", nf.Header.Get("Content-Type"))
}

func TestFalClientCancelAndErrors(t *testing.T) {
	t.Parallel()
	app := newQueueApp()
	s := queueStart(t, t.TempDir(), "A100:2", falEnv(app), nil)
	s.prefix = "/gen"
	app2 := falHost + "/my-team/gen"

	r := falRequest(t, s, http.MethodPost, app2+"/block", queueAlice, `{}`, "x-fal-queue-priority", "normal")
	require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
	id := r.Body["request_id"].(string)
	queueReceive(t, app.entered)
	c := falRequest(t, s, http.MethodPut, app2+"/requests/"+id+"/cancel", queueAlice, "")
	require.Equal(t, http.StatusAccepted, c.Status, c.Raw)
	require.Equal(t, "CANCELLATION_REQUESTED", c.Body["status"])
	require.Equal(t, id, c.Header.Get("X-Fal-Request-Id"))
	queueReceive(t, app.cancelled)
	s.waitStatus(id, queueAlice, "COMPLETED")
	res := falRequest(t, s, http.MethodGet, app2+"/requests/"+id, queueAlice, "")
	require.Equal(t, http.StatusConflict, res.Status, res.Raw)
	require.Equal(t, "CANCELLED", res.Body["code"])
	require.Equal(t, "application/json", res.Header.Get("Content-Type"))

	tests := []struct {
		name, target string
		headers      []string
		want         int
	}{
		// ?fal_webhook= goes through the webhook checks of ?webhook=.
		{"fal_webhook not http", app2 + "/echo/x?fal_webhook=" + url.QueryEscape("ftp://example.com/hook"), nil, http.StatusUnprocessableEntity},
		{"unknown priority", app2 + "/echo/x", []string{"x-fal-queue-priority", "urgent"}, http.StatusUnprocessableEntity},
		{"not fal's queue host", "https://fal.run/my-team/gen/echo/x", nil, http.StatusBadRequest},
		{"no app id", falHost + "/my-team", nil, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := falRequest(t, s, http.MethodPost, tt.target, queueAlice, `{}`, tt.headers...)
			require.Equal(t, tt.want, e.Status, e.Raw)
			require.Equal(t, "application/json", e.Header.Get("Content-Type"))
			require.NotEmpty(t, e.Body["detail"], e.Raw)
		})
	}

	// A caller that accepts problem+json gets it.
	p := s.call(http.MethodGet, "/gen/fal/my-team/gen/requests/nope", queueAlice, "", "Accept", "application/problem+json")
	require.Equal(t, http.StatusNotFound, p.Status)
	require.Equal(t, "application/problem+json", p.Header.Get("Content-Type"))
}
