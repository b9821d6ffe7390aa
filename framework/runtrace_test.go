package framework_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/internal/freeport"
)

// TestRunTraceSpansSubmitAttemptsAndWebhook follows one trace from an
// HTTP submit (with the caller's traceparent) to the run's attempts, the
// first in one service, interrupted by its shutdown, the second in a new
// service on the same SQLite file, and to the webhook delivery, whose
// receiver gets a traceparent of the same trace.
func TestRunTraceSpansSubmitAttemptsAndWebhook(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	dir := t.TempDir()
	got := make(chan string, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Traceparent")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)

	start := func() (string, func()) {
		cfg, err := framework.ParseEnv(env(map[string]string{
			"TASKGATE_DATA_DIR":              dir,
			"TASKGATE_AUTH_TOKENS":           obsToken + "=alice",
			"TASKGATE_NODE_ID":               "node-a",
			"TASKGATE_METRICS_ADDR":          freeport.Addr(t),
			"TASKGATE_WEBHOOK_ALLOW_PRIVATE": "true",
			"TASKGATE_DRAIN_TIMEOUT":         "0",
			"TASKGATE_LOG_LEVEL":             "warn",
		}))
		require.NoError(t, err)
		cfg.TracerProvider = tp
		env := webhook.MustNew(webhook.Config{Settings: environments.Settings{Name: "ml"}, Groups: []string{webhook.GroupAll}})
		svc, err := framework.FromEnv(t.Context(), cfg, cfg.NewLogger(&syncBuffer{}), demo.Registry(), env)
		require.NoError(t, err)
		base, stop, errc := serve(t, svc.App)
		require.Eventually(t, func() bool {
			resp, err := http.Get(base + "/health")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 10*time.Second, 10*time.Millisecond)
		return base, func() {
			stop()
			require.NoError(t, <-errc)
		}
	}

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	base, stop := start()
	resp, out := call(t, http.MethodPost, base+"/run-task/demo/development/sleep?webhook="+url.QueryEscape(receiver.URL+"/hook"),
		obsToken, `{"seconds":2}`, http.Header{"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"}})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, out)
	name := runName(t, out)
	waitPhase(t, base, name, "running")
	stop() // drains at once: the attempt is interrupted and requeued

	base, stop = start()
	defer stop()
	waitPhase(t, base, name, "succeeded")
	select {
	case h := <-got:
		require.Regexp(t, `^00-`+traceID+`-[0-9a-f]{16}-01$`, h)
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook delivered")
	}

	var submit trace.SpanContext
	attempts := map[int64]sdktrace.ReadOnlySpan{}
	var hook sdktrace.ReadOnlySpan
	commits := map[string]bool{}
	require.Eventually(t, func() bool {
		for _, s := range exp.GetSpans().Snapshots() {
			switch s.Name() {
			case "store commit submit", "store commit transitions":
				commits[s.Name()] = true
			case "submit demo/development/sleep":
				submit = s.SpanContext()
			case "attempt demo/development/sleep":
				for _, a := range s.Attributes() {
					if a.Key == "taskgate.attempt" {
						attempts[a.Value.AsInt64()] = s
					}
				}
			case "webhook completed":
				hook = s
			}
		}
		return submit.IsValid() && len(attempts) == 2 && hook != nil && len(commits) == 2
	}, 10*time.Second, 20*time.Millisecond, "store commits have spans too: %v", commits)
	require.Equal(t, traceID, submit.TraceID().String())
	for n, a := range attempts {
		require.Equal(t, submit.TraceID(), a.SpanContext().TraceID(), "attempt %d", n)
		require.Equal(t, submit.SpanID(), a.Parent().SpanID(), "attempt %d is a child of the submit", n)
	}
	require.Equal(t, submit.TraceID(), hook.SpanContext().TraceID())
	require.Equal(t, submit.SpanID(), hook.Parent().SpanID())
}

// runName reads the name of the run a submit answered with.
func runName(t *testing.T, body string) string {
	t.Helper()
	var run struct{ Name string }
	require.NoError(t, json.Unmarshal([]byte(body), &run))
	require.NotEmpty(t, run.Name)
	return run.Name
}
