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
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
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

// TestSystemSubjectIsRefused: the runs that hold an environment's GPU
// belong to environments.SystemSubject; a caller whose verified subject is
// that same string (an issuer's sub) is refused with 403 everywhere,
// rather than seeing, following and aborting the replica as its own.
func TestSystemSubjectIsRefused(t *testing.T) {
	t.Parallel()
	iss := frameworktest.NewIssuer(t)
	app := environments.MustAppEnvironment(environments.AppConfig{
		Settings:  environments.Settings{Name: "held", PathPrefix: "/held"},
		Resources: tasks.Resources{GPU: "A100:1"},
		Hold:      true,
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }),
	})
	s := envtest.NewStackEnv(t, map[string]string{
		"TASKGATE_NODE_GPUS":     "A100:1",
		"TASKGATE_OIDC_ISSUER":   iss.URL,
		"TASKGATE_OIDC_AUDIENCE": iss.Audience,
	}, demo.Webhook(), app)
	require.Eventually(t, func() bool { return s.Do(http.MethodGet, "/held/x", envtest.WhAlice, "").Status == http.StatusOK },
		20*time.Second, 20*time.Millisecond)
	runs, _, err := s.Svc.Dispatcher.List(t.Context(), dispatch.ListOptions{Owner: environments.SystemSubject})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	replica := runs[0].Name

	system := iss.Mint(map[string]any{"sub": environments.SystemSubject})
	someone := iss.Mint(map[string]any{"sub": "someone"})
	require.Equal(t, http.StatusOK, s.Do(http.MethodGet, "/me", someone, "").Status, "the issuer's tokens are accepted")
	require.Equal(t, http.StatusNotFound, s.Do(http.MethodGet, "/run/"+replica, someone, "").Status)
	require.Equal(t, http.StatusOK, s.Do(http.MethodGet, "/run/"+replica, envtest.WhAdmin, "").Status)
	for _, req := range [][2]string{
		{http.MethodGet, "/me"},
		{http.MethodGet, "/run/" + replica},
		{http.MethodGet, "/run/" + replica + "/logs"},
		{http.MethodGet, "/runs"},
		{http.MethodPost, "/run/" + replica + "/abort"},
		{http.MethodPost, "/run-task/demo/development/echo"},
		{http.MethodGet, "/held/x"},
	} {
		body := ""
		if req[0] == http.MethodPost {
			body = `{}`
		}
		r := s.Do(req[0], req[1], system, body)
		require.Equal(t, http.StatusForbidden, r.Status, "%s %s: %s", req[0], req[1], r.Raw)
	}
	got, err := s.Svc.Dispatcher.Get(t.Context(), replica)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseRunning, got.Phase, "the replica still runs")
}
