package framework_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/internal/freeport"
	"github.com/taskgate/taskgate/tasks"
)

// broken fails every attempt; its retry policy allows three.
var broken = tasks.MustDefine("demo", "development", "broken",
	func(context.Context, struct{}) (struct{}, error) { return struct{}{}, errors.New("broken on purpose") },
	&tasks.Options{Retry: &tasks.RetryPolicy{MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, Multiplier: 1}})

// serveRuns serves a FromEnv service of the demo tasks on node "gpu-node"
// with two declared A100s, its metrics on a free port, webhooks allowed
// to loopback.
func serveRuns(t *testing.T) observed {
	t.Helper()
	opsAddr := freeport.Addr(t)
	cfg, err := framework.ParseEnv(env(map[string]string{
		"TASKGATE_DATA_DIR":              t.TempDir(),
		"TASKGATE_AUTH_TOKENS":           obsToken + "=alice",
		"TASKGATE_NODE_ID":               "gpu-node",
		"TASKGATE_NODE_GPUS":             "A100:2",
		"TASKGATE_METRICS_ADDR":          opsAddr,
		"TASKGATE_WEBHOOK_ALLOW_PRIVATE": "true",
		"TASKGATE_LOG_LEVEL":             "warn",
	}))
	require.NoError(t, err)
	logs := &syncBuffer{}
	env := webhook.MustNew(webhook.Config{Settings: environments.Settings{Name: "ml"}, Groups: []string{webhook.GroupAll}})
	reg := demo.Registry()
	reg.MustRegister(broken)
	svc, err := framework.FromEnv(t.Context(), cfg, cfg.NewLogger(logs), reg, env)
	require.NoError(t, err)
	base, _, _ := serve(t, svc.App)
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond)
	return observed{base: base, ops: "http://" + opsAddr, logs: logs}
}

// submitRun submits a run of the demo task and returns its name.
func submitRun(t *testing.T, base, task, query, body string) string {
	t.Helper()
	resp, out := call(t, http.MethodPost, base+"/run-task/demo/development/"+task+query, obsToken, body, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, out)
	var run struct{ Name string }
	require.NoError(t, json.Unmarshal([]byte(out), &run))
	return run.Name
}

// waitPhase waits for the run to reach phase.
func waitPhase(t *testing.T, base, name, phase string) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, out := call(t, http.MethodGet, base+"/run/"+name, obsToken, "", nil)
		var run struct{ Phase string }
		return json.Unmarshal([]byte(out), &run) == nil && run.Phase == phase
	}, 20*time.Second, 20*time.Millisecond, "run %s never reached %s", name, phase)
}

// TestRunMetricsCountRealRuns scrapes the operator port of a running
// service after real runs: one retried twice then succeeded, one failed,
// one holding a GPU, one with a webhook; the counters, histograms and
// scrape-time gauges must hold the values those runs make.
func TestRunMetricsCountRealRuns(t *testing.T) {
	t.Parallel()
	o := serveRuns(t)
	hooks := make(chan string, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hooks <- r.Header.Get("Webhook-Id")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)

	flaky := submitRun(t, o.base, "flaky", "", `{"failures":2}`)
	echo := submitRun(t, o.base, "echo", "?webhook="+url.QueryEscape(receiver.URL+"/hook"), `{"message":"hi"}`)
	train := submitRun(t, o.base, "train", "", `{"seconds":30}`)
	waitPhase(t, o.base, flaky, "succeeded")
	waitPhase(t, o.base, echo, "succeeded")
	waitPhase(t, o.base, train, "running")
	select {
	case <-hooks:
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook delivered")
	}

	const (
		flakyTask = "demo/development/flaky"
		echoTask  = "demo/development/echo"
		trainTask = "demo/development/train"
	)
	gpu := map[string]string{"node": "gpu-node", "type": "A100-40GB", "mig": ""}
	// A run's end is committed, then counted: the scrape may come between.
	var fams map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		fams, _ = scrape(t, o.ops)
		return sample(fams, "taskgate_runs_finished_total", nil) == 2 && sample(fams, "taskgate_run_queued_seconds", nil) == 3
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 1.0, sample(fams, "taskgate_runs_submitted_total", map[string]string{"task": flakyTask}))
	require.Equal(t, 1.0, sample(fams, "taskgate_runs_submitted_total", map[string]string{"task": trainTask}))
	require.Equal(t, 1.0, sample(fams, "taskgate_runs_finished_total", map[string]string{"task": flakyTask, "phase": "succeeded"}))
	require.Equal(t, 1.0, sample(fams, "taskgate_runs_finished_total", map[string]string{"task": echoTask, "phase": "succeeded"}))
	require.Equal(t, 1.0, sample(fams, "taskgate_run_queued_seconds", map[string]string{"task": trainTask}), "one submit→running observation")
	require.Equal(t, 1.0, sample(fams, "taskgate_run_duration_seconds", map[string]string{"task": flakyTask}))
	require.Equal(t, 2.0, sample(fams, "taskgate_attempts_total", map[string]string{"task": flakyTask, "outcome": "retried"}))
	require.Equal(t, 1.0, sample(fams, "taskgate_attempts_total", map[string]string{"task": flakyTask, "outcome": "succeeded"}))
	require.Equal(t, 1.0, sample(fams, "taskgate_webhook_deliveries_total", map[string]string{"outcome": "delivered"}))
	require.Equal(t, 1.0, sample(fams, "taskgate_webhook_delivery_duration_seconds", nil))
	require.Equal(t, 2.0, sample(fams, "taskgate_node_gpus", gpu))
	require.Equal(t, 2.0, sample(fams, "taskgate_node_gpus_healthy", gpu))
	require.Equal(t, 1.0, sample(fams, "taskgate_node_gpus_allocated", gpu), "the train run holds one A100")
	require.Equal(t, 1000.0, sample(fams, "taskgate_node_cpu_allocated_millicores", map[string]string{"node": "gpu-node"}))
	require.Equal(t, float64(1<<30), sample(fams, "taskgate_node_memory_allocated_bytes", map[string]string{"node": "gpu-node"}))
	require.Equal(t, 1.0, sample(fams, "taskgate_queue_runs", map[string]string{"phase": "running"}))
	require.Equal(t, 1.0, sample(fams, "taskgate_scheduler_leader", nil))
	require.Less(t, sample(fams, "taskgate_node_heartbeat_age_seconds", map[string]string{"node": "gpu-node"}), 10.0)
	require.GreaterOrEqual(t, sample(fams, "taskgate_scheduler_placements_total", nil), 5.0) // 3 runs, 2 retries
	require.Positive(t, sample(fams, "taskgate_scheduler_round_duration_seconds", nil))
	require.Equal(t, 3.0, histogramSum(fams, "taskgate_store_commit_batch_size", map[string]string{"writer": "submit"}), "three runs submitted")
	require.Positive(t, sample(fams, "taskgate_store_commit_duration_seconds", map[string]string{"writer": "transitions"}))
	require.Equal(t, 1.0, sample(fams, "taskgate_store_commit_duration_seconds", map[string]string{"writer": "outbox"}))

	// The run that fails every attempt: three failures, two of them
	// retried; then the train run aborted frees its GPU.
	failed := submitRun(t, o.base, "broken", "", `{}`)
	waitPhase(t, o.base, failed, "failed")
	resp, out := call(t, http.MethodPost, o.base+"/run/"+train+"/abort", obsToken, "", nil)
	require.Less(t, resp.StatusCode, 300, out)
	waitPhase(t, o.base, train, "aborted")
	require.Eventually(t, func() bool {
		fams, _ = scrape(t, o.ops)
		return sample(fams, "taskgate_runs_finished_total", nil) == 4
	}, 10*time.Second, 10*time.Millisecond)
	const brokenTask = "demo/development/broken"
	require.Equal(t, 1.0, sample(fams, "taskgate_runs_finished_total", map[string]string{"task": brokenTask, "phase": "failed"}))
	require.Equal(t, 2.0, sample(fams, "taskgate_attempts_total", map[string]string{"task": brokenTask, "outcome": "retried"}))
	require.Equal(t, 1.0, sample(fams, "taskgate_attempts_total", map[string]string{"task": brokenTask, "outcome": "failed"}))
	require.Equal(t, 2.0, sample(fams, "taskgate_attempts_total", map[string]string{"task": flakyTask, "outcome": "retried"}))
	require.Equal(t, 1.0, sample(fams, "taskgate_attempts_total", map[string]string{"task": trainTask, "outcome": "aborted"}))
	require.Equal(t, 1.0, sample(fams, "taskgate_runs_finished_total", map[string]string{"task": trainTask, "phase": "aborted"}))
	require.Equal(t, 0.0, sample(fams, "taskgate_node_gpus_allocated", gpu), "the aborted run released its A100")
	require.Equal(t, 0.0, sample(fams, "taskgate_queue_runs", nil))
}

// histogramSum is the sum of the observations of a histogram's series
// whose labels include want.
func histogramSum(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
series:
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; ok && v != l.GetValue() {
				continue series
			}
		}
		sum += m.GetHistogram().GetSampleSum()
	}
	return sum
}

// TestStoreAndIdentityCacheMetrics scrapes a running service after n
// requests with one token: the token is verified once, then served from
// the identity cache; SQLite's write connection and read pool report
// their connections.
func TestStoreAndIdentityCacheMetrics(t *testing.T) {
	t.Parallel()
	o := serveRuns(t)
	const n = 5
	for range n {
		resp, out := call(t, http.MethodGet, o.base+"/runs", obsToken, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
	}
	fams, _ := scrape(t, o.ops)
	require.Equal(t, float64(n-1), sample(fams, "taskgate_identity_cache_hits_total", nil))
	require.Equal(t, 1.0, sample(fams, "taskgate_identity_cache_misses_total", nil))

	writer, reader := map[string]string{"pool": "writer"}, map[string]string{"pool": "reader"}
	require.Equal(t, 1.0, sample(fams, "taskgate_store_pool_max_connections", writer))
	require.Equal(t, 1.0, sample(fams, "taskgate_store_pool_open_connections", writer), "the write connection stays open")
	require.Equal(t, float64(max(4, runtime.GOMAXPROCS(0))), sample(fams, "taskgate_store_pool_max_connections", reader))
	open := sample(fams, "taskgate_store_pool_open_connections", reader)
	require.GreaterOrEqual(t, open, 1.0, "GET /runs read through the pool")
	require.LessOrEqual(t, open, sample(fams, "taskgate_store_pool_max_connections", reader))
	for _, pool := range []map[string]string{writer, reader} {
		require.Equal(t, sample(fams, "taskgate_store_pool_open_connections", pool),
			sample(fams, "taskgate_store_pool_in_use_connections", pool)+sample(fams, "taskgate_store_pool_idle_connections", pool))
		require.GreaterOrEqual(t, sample(fams, "taskgate_store_pool_waits_total", pool), 0.0)
		require.GreaterOrEqual(t, sample(fams, "taskgate_store_pool_wait_seconds_total", pool), 0.0)
	}
}
