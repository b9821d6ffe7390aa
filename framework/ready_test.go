package framework_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

func TestParseEnvInterruptionsAndDrain(t *testing.T) {
	t.Parallel()
	cfg, err := framework.ParseEnv(env(nil))
	require.NoError(t, err)
	require.Equal(t, 10, cfg.MaxInterruptions)
	require.Equal(t, 30*time.Second, cfg.DrainTimeout)

	cfg, err = framework.ParseEnv(env(map[string]string{"TASKGATE_MAX_INTERRUPTIONS": "3", "TASKGATE_DRAIN_TIMEOUT": "5s"}))
	require.NoError(t, err)
	require.Equal(t, 3, cfg.MaxInterruptions)
	require.Equal(t, 5*time.Second, cfg.DrainTimeout)

	// 0 means none (dispatch.Config spells it negative; its 0 is the default).
	cfg, err = framework.ParseEnv(env(map[string]string{"TASKGATE_MAX_INTERRUPTIONS": "0", "TASKGATE_DRAIN_TIMEOUT": "0"}))
	require.NoError(t, err)
	require.Negative(t, cfg.MaxInterruptions)
	require.Negative(t, cfg.DrainTimeout)

	for name, vars := range map[string]map[string]string{
		"interruptions negative": {"TASKGATE_MAX_INTERRUPTIONS": "-1"},
		"interruptions not int":  {"TASKGATE_MAX_INTERRUPTIONS": "ten"},
		"drain in days":          {"TASKGATE_DRAIN_TIMEOUT": "1d"},
		"drain negative":         {"TASKGATE_DRAIN_TIMEOUT": "-5s"},
	} {
		_, err := framework.ParseEnv(env(vars))
		require.Error(t, err, name)
		for k := range vars {
			require.ErrorContains(t, err, k, name)
		}
	}
}

// TestShutdownDrainsRunsWhileServing stops a service (as SIGTERM does)
// while a short and a long sleep run: until the node drained, the API
// still answers reads, refuses submits with 503 and Retry-After, and
// /ready says draining; the short run finishes and succeeds, the long
// one, past TASKGATE_DRAIN_TIMEOUT, goes back to the queue as an
// interruption, not a failure.
func TestShutdownDrainsRunsWhileServing(t *testing.T) {
	t.Parallel()
	const token = "drain-test-token-0123456789"
	dir := t.TempDir()
	cfg, err := framework.ParseEnv(env(map[string]string{
		"TASKGATE_DATA_DIR":      dir,
		"TASKGATE_AUTH_TOKENS":   token + "=alice",
		"TASKGATE_NODE_ID":       "drain-node",
		"TASKGATE_DRAIN_TIMEOUT": "1500ms",
	}))
	require.NoError(t, err)
	cfg.MetricsAddr = "" // Serve would listen on the default port
	svc, err := framework.FromEnv(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), demo.Registry(), demo.Webhook())
	require.NoError(t, err)

	// Before Start, /ready says starting (no credentials needed).
	h, err := svc.App.Handler()
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ready", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	require.Contains(t, rec.Body.String(), `"detail":"starting"`)

	base, stop, errc := serve(t, svc.App)
	do := func(method, path string, body any) (*http.Response, []byte) {
		t.Helper()
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, base+path, r)
		require.NoError(t, err)
		if path != "/ready" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, b
	}
	require.Eventually(t, func() bool {
		resp, _ := do(http.MethodGet, "/ready", nil)
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond)
	resp, body := do(http.MethodGet, "/ready", nil)
	require.JSONEq(t, `{"status":"ready"}`, string(body))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	resp, body = do(http.MethodHead, "/ready", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, body)

	submit := func(seconds float64) string {
		resp, body := do(http.MethodPost, "/run-task/demo/development/sleep", map[string]any{"seconds": seconds})
		require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))
		var a struct{ Name string }
		require.NoError(t, json.Unmarshal(body, &a))
		return a.Name
	}
	phase := func(name string) string {
		resp, body := do(http.MethodGet, "/run/"+name, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var st struct{ Phase string }
		require.NoError(t, json.Unmarshal(body, &st))
		return st.Phase
	}
	short, long := submit(0.5), submit(60)
	require.Eventually(t, func() bool { return phase(short) == "running" && phase(long) == "running" },
		10*time.Second, 10*time.Millisecond)

	stop() // as SIGTERM does
	require.Eventually(t, func() bool {
		resp, body := do(http.MethodGet, "/ready", nil)
		return resp.StatusCode == http.StatusServiceUnavailable && bytes.Contains(body, []byte(`"detail":"draining"`))
	}, 5*time.Second, 5*time.Millisecond)
	resp, body = do(http.MethodPost, "/run-task/demo/development/echo", map[string]any{"message": "late"})
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, string(body))
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	// Reads are served while the runs drain, and the short run ends.
	require.Eventually(t, func() bool { return phase(short) == "succeeded" }, 10*time.Second, 10*time.Millisecond)

	select {
	case err := <-errc:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the App did not stop")
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "taskgate.db"))
	require.NoError(t, err)
	defer st.Close()
	got, err := st.GetRun(context.Background(), long)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseQueued, got.Phase, got.Error)
	require.Zero(t, got.Failures)
	require.Equal(t, 1, got.Interruptions)
	require.True(t, got.Attempts[0].Interrupted)
}

// TestReadyReportsAStoreThatDoesNotAnswer: the store's error stays in the
// log; the probe says what kind of failure it is.
func TestReadyReportsAStoreThatDoesNotAnswer(t *testing.T) {
	t.Parallel()
	st, err := sqlite.OpenDir(context.Background(), t.TempDir())
	require.NoError(t, err)
	d, err := dispatch.New(dispatch.Config{Store: st, Registry: tasks.NewRegistry(), Node: dispatch.NodeConfig{ID: "n"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	require.NoError(t, d.Start(context.Background()))
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	app := &framework.App{Environments: []environments.Environment{openEnv("a", "", http.NotFound)}, Dispatcher: d,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h, err := app.Handler()
	require.NoError(t, err)
	probe := func(method string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/ready", nil))
		return rec
	}
	require.Equal(t, http.StatusOK, probe(http.MethodGet).Code)
	require.NoError(t, st.Close())
	rec := probe(http.MethodGet)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Contains(t, rec.Body.String(), `"detail":"store unreachable: closed"`)
	require.Equal(t, http.StatusServiceUnavailable, probe(http.MethodHead).Code)
	require.Equal(t, http.StatusNotFound, probe(http.MethodPost).Code, "other methods reach the environments")
}
