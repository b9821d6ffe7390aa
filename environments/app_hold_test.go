package environments_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/tasks"
)

// TestAppHoldsItsGPU serves an app environment that holds an A100 through
// the scheduler: its handler sees the device, a task of the same GPU waits
// for it, and while a task holds the GPU the app answers 503 with the
// reason.
func TestAppHoldsItsGPU(t *testing.T) {
	t.Parallel()
	app := environments.MustAppEnvironment(environments.AppConfig{
		Settings:  environments.Settings{Name: "held", PathPrefix: "/held"},
		Resources: tasks.Resources{GPU: "A100:1"},
		Hold:      true,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ids, env, ok := environments.HeldDevices(r.Context())
			fmt.Fprintf(w, "%v %s %s", ok, strings.Join(ids, ","), strings.Join(env, " "))
		}),
	})
	s := envtest.NewStackEnv(t, map[string]string{"TASKGATE_NODE_GPUS": "A100:1"}, demo.Webhook(), app)
	get := func() envtest.Reply { return s.Do(http.MethodGet, "/held/x", envtest.WhAlice, "") }

	var r envtest.Reply
	require.Eventually(t, func() bool { r = get(); return r.Status == http.StatusOK }, 20*time.Second, 20*time.Millisecond)
	require.Regexp(t, `^true (\S+) CUDA_VISIBLE_DEVICES=(\S+) NVIDIA_VISIBLE_DEVICES=(\S+)$`, r.Raw)
	require.Equal(t, http.StatusOK, s.Do(http.MethodGet, "/ready", "", "").Status)

	train := func(body string) string {
		acc := s.Do(http.MethodPost, "/run-task/demo/development/train", envtest.WhAlice, body)
		require.Equal(t, http.StatusAccepted, acc.Status, acc.Raw)
		return acc.Body["name"].(string)
	}
	phase := func(run string) any { return s.Do(http.MethodGet, "/run/"+run, envtest.WhAlice, "").Body["phase"] }
	first := train(`{}`)
	require.Eventually(t, func() bool { return phase(first) == string(tasks.PhaseWaitingForResources) },
		20*time.Second, 20*time.Millisecond, "the task waits for the app's GPU")

	// Stopped, the app lets the GPU go: the task runs.
	require.NoError(t, app.Settings().OnStop(t.Context()))
	require.Equal(t, string(tasks.PhaseSucceeded), s.WaitDone(first, envtest.WhAlice).Body["phase"])

	// Started while a task holds the GPU, it waits, and says why.
	second := train(`{"seconds":60}`)
	require.Eventually(t, func() bool { return phase(second) == string(tasks.PhaseRunning) }, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, app.Settings().OnStart(t.Context()))
	require.Eventually(t, func() bool {
		r = get()
		return r.Status == http.StatusServiceUnavailable && strings.Contains(r.Raw, "waiting for resources: ")
	}, 20*time.Second, 20*time.Millisecond, "last: %d %s", r.Status, r.Raw)
	require.Equal(t, "5", r.Header.Get("Retry-After"))
	ready := s.Do(http.MethodGet, "/ready", "", "")
	require.Equal(t, http.StatusServiceUnavailable, ready.Status)
	require.Contains(t, ready.Raw, "environment held: waiting for resources")
	require.Equal(t, http.StatusOK, s.Do(http.MethodGet, "/held/health", "", "").Status, "/health answers meanwhile")

	require.Equal(t, http.StatusAccepted, s.Do(http.MethodPost, "/run/"+second+"/abort", envtest.WhAlice, `{}`).Status)
	require.Eventually(t, func() bool { return get().Status == http.StatusOK }, 20*time.Second, 20*time.Millisecond)
}
