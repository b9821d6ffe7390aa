//go:build unix

package server_test

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/environments/server"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/discovery"
	"github.com/taskgate/taskgate/tasks/dispatch"
)

// heldStack serves the quickstart's webhook and env at /gpu on a real App
// whose node declares gpus.
func heldStack(t *testing.T, gpus string, env *server.Environment) *envtest.Stack {
	t.Helper()
	return envtest.NewStackEnv(t, map[string]string{"TASKGATE_NODE_GPUS": gpus}, demo.Webhook(), env)
}

// replicas lists the live replica runs of environment name.
func replicas(t *testing.T, s *envtest.Stack, name string) []*tasks.Run {
	t.Helper()
	runs, _, err := s.Svc.Dispatcher.List(t.Context(), dispatch.ListOptions{
		Task:   environments.SystemProject + "/" + environments.SystemDomain + "/" + name,
		Phases: []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources, tasks.PhaseInitializing, tasks.PhaseRunning},
	})
	require.NoError(t, err)
	return runs
}

func runNames(runs []*tasks.Run) []string {
	names := make([]string, len(runs))
	for i, r := range runs {
		names[i] = r.Name
	}
	slices.Sort(names)
	return names
}

// eventually polls get until it answers status with a body that contains
// want.
func eventually(t *testing.T, s *envtest.Stack, path string, status int, want string) envtest.Reply {
	t.Helper()
	var r envtest.Reply
	require.Eventually(t, func() bool {
		r = s.Do(http.MethodGet, path, envtest.WhAlice, "")
		return r.Status == status && strings.Contains(r.Raw, want)
	}, 30*time.Second, 20*time.Millisecond, "GET %s: last answer %d %s", path, r.Status, r.Raw)
	return r
}

// TestHeldServer runs servers whose replicas hold their resources through
// the scheduler, on the Go upstream of testdata/upstream.
func TestHeldServer(t *testing.T) {
	upstream := filepath.Join(t.TempDir(), "upstream")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", upstream, "./testdata/upstream")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build testdata/upstream: %v\n%s", err, out)
	}
	held := func(name string, mod func(*server.Config)) *server.Environment {
		cfg := server.Config{
			Settings:        environments.Settings{Name: name, PathPrefix: "/gpu"},
			Command:         []string{upstream},
			StopGracePeriod: 2 * time.Second,
			RestartBackoff:  50 * time.Millisecond,
		}
		mod(&cfg)
		return server.MustNew(cfg)
	}

	t.Run("holds its GPU: a task of the same GPU waits until it stops", func(t *testing.T) {
		t.Parallel()
		env := held("llm", func(c *server.Config) { c.Resources = environments.Resources{GPU: "A100:1"} })
		s := heldStack(t, "A100:1", env)

		r := eventually(t, s, "/gpu/env", http.StatusOK, "")
		require.True(t, env.Running())
		lines := strings.Split(strings.TrimSpace(r.Raw), "\n")
		require.Len(t, lines, 2, r.Raw)
		reps := replicas(t, s, "llm")
		require.Len(t, reps, 1)
		require.Equal(t, reps[0].Devices, strings.Split(lines[0], ","), "the process sees its run's devices")
		require.Equal(t, lines[0], lines[1], "NVIDIA_VISIBLE_DEVICES too")
		require.Equal(t, environments.SystemSubject, reps[0].Owner)

		// The replica shows on /nodes like a run.
		nodes := s.Do(http.MethodGet, "/nodes", envtest.WhAdmin, "")
		require.Equal(t, http.StatusOK, nodes.Status, nodes.Raw)
		require.Contains(t, nodes.Raw, reps[0].Name)
		// Its system task is nobody's to run.
		require.Equal(t, http.StatusForbidden, s.Do(http.MethodPost, "/run-task/taskgate/system/llm", envtest.WhAdmin, `{}`).Status)

		acc := s.Do(http.MethodPost, "/run-task/demo/development/train", envtest.WhAlice, `{}`)
		require.Equal(t, http.StatusAccepted, acc.Status, acc.Raw)
		run := acc.Body["name"].(string)
		var got envtest.Reply
		require.Eventually(t, func() bool {
			got = s.Do(http.MethodGet, "/run/"+run, envtest.WhAlice, "")
			return got.Body["phase"] == string(tasks.PhaseWaitingForResources) && got.Body["reason"] != nil
		}, 20*time.Second, 20*time.Millisecond, "the task waits for the server's GPU")
		t.Logf("waiting reason: %v", got.Body["reason"])

		require.NoError(t, env.Stop(t.Context()))
		done := s.WaitDone(run, envtest.WhAlice)
		require.Equal(t, string(tasks.PhaseSucceeded), done.Body["phase"], done.Raw)
		require.Empty(t, replicas(t, s, "llm"), "stopping the server stops its replica")
	})

	t.Run("waits for a GPU a task holds: 503 with the reason", func(t *testing.T) {
		t.Parallel()
		var env *server.Environment
		env = held("waiter", func(c *server.Config) {
			c.Resources = environments.Resources{GPU: "A100:1"}
			// Started by the test, after the task took the GPU.
			c.OnStart = func(context.Context) error { return nil }
			c.OnStop = func(ctx context.Context) error { return env.Stop(ctx) }
		})
		s := heldStack(t, "A100:1", env)
		acc := s.Do(http.MethodPost, "/run-task/demo/development/train", envtest.WhAlice, `{"seconds":60}`)
		require.Equal(t, http.StatusAccepted, acc.Status, acc.Raw)
		run := acc.Body["name"].(string)
		require.Eventually(t, func() bool {
			return s.Do(http.MethodGet, "/run/"+run, envtest.WhAlice, "").Body["phase"] == string(tasks.PhaseRunning)
		}, 20*time.Second, 20*time.Millisecond)
		require.NoError(t, env.Start(t.Context()))

		r := eventually(t, s, "/gpu/env", http.StatusServiceUnavailable, "waiting for resources")
		require.Equal(t, "5", r.Header.Get("Retry-After"))
		require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
		ready := s.Do(http.MethodGet, "/ready", "", "")
		require.Equal(t, http.StatusServiceUnavailable, ready.Status)
		require.Contains(t, ready.Raw, "environment waiter: waiting for resources")

		require.Equal(t, http.StatusAccepted, s.Do(http.MethodPost, "/run/"+run+"/abort", envtest.WhAlice, `{}`).Status)
		eventually(t, s, "/gpu/env", http.StatusOK, "")
		require.Equal(t, http.StatusOK, s.Do(http.MethodGet, "/ready", "", "").Status)
	})

	t.Run("replicas: least in flight, restarted on their allocation", func(t *testing.T) {
		t.Parallel()
		env := held("pair", func(c *server.Config) { c.Replicas = server.Replicas{Min: 2, Max: 2} })
		s := heldStack(t, "", env)
		require.Eventually(t, func() bool {
			reps := replicas(t, s, "pair")
			ready := 0
			for _, r := range reps {
				if r.Progress != nil && r.Progress.Done == 1 {
					ready++
				}
			}
			return ready == 2
		}, 30*time.Second, 20*time.Millisecond)
		before := runNames(replicas(t, s, "pair"))

		// A slow request holds one replica: the next goes to the other.
		var wg sync.WaitGroup
		var slow envtest.Reply
		wg.Go(func() { slow = s.Do(http.MethodGet, "/gpu/sleep?ms=1500", envtest.WhAlice, "") })
		time.Sleep(300 * time.Millisecond)
		fast := s.Do(http.MethodGet, "/gpu/pid", envtest.WhAlice, "")
		wg.Wait()
		require.Equal(t, http.StatusOK, slow.Status, slow.Raw)
		require.Equal(t, http.StatusOK, fast.Status, fast.Raw)
		require.NotEqual(t, slow.Raw, fast.Raw, "both requests went to one replica")

		// A killed process is restarted within its replica's run.
		pid, err := strconv.Atoi(fast.Raw)
		require.NoError(t, err)
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		require.Eventually(t, func() bool {
			seen := map[string]bool{}
			for range 6 {
				r := s.Do(http.MethodGet, "/gpu/pid", envtest.WhAlice, "")
				if r.Status == http.StatusOK {
					seen[r.Raw] = true
				}
			}
			return len(seen) == 2 && !seen[fast.Raw]
		}, 30*time.Second, 50*time.Millisecond, "the killed replica answers again with a new process")
		require.Equal(t, before, runNames(replicas(t, s, "pair")), "the replicas kept their runs")
	})

	t.Run("scales up while requests wait, down after the idle window", func(t *testing.T) {
		t.Parallel()
		env := held("elastic", func(c *server.Config) {
			c.Replicas = server.Replicas{Min: 1, Max: 2, MaxInFlight: 1, ScaledownWindow: time.Second}
		})
		s := heldStack(t, "", env)
		first := eventually(t, s, "/gpu/pid", http.StatusOK, "")
		require.Len(t, replicas(t, s, "elastic"), 1)

		// A request that holds the one replica until the test cancels it.
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Base+"/gpu/sleep?ms=60000", nil)
			req.Header.Set("Authorization", "Bearer "+envtest.WhAlice)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
		time.Sleep(300 * time.Millisecond)
		// The one replica is full: this request waits, and a second
		// replica starts for it.
		second := s.Do(http.MethodGet, "/gpu/pid", envtest.WhAlice, "")
		cancel()
		wg.Wait()
		require.Equal(t, http.StatusOK, second.Status, second.Raw)
		require.NotEqual(t, first.Raw, second.Raw, "served by a second replica")
		require.Len(t, replicas(t, s, "elastic"), 2)

		require.Eventually(t, func() bool { return len(replicas(t, s, "elastic")) == 1 },
			20*time.Second, 50*time.Millisecond, "the idle replica is stopped")
	})

	t.Run("a replica on another agent, reached at the address it reports", func(t *testing.T) {
		t.Parallel()
		env := held("remote", func(c *server.Config) { c.Resources = environments.Resources{GPU: "H100:1"} })
		// This process's node has no H100; the second agent's has one.
		s := heldStack(t, "A100:1", env)
		gpus, err := discovery.ParseDeclaredGPUs("H100:1")
		require.NoError(t, err)
		agent, err := dispatch.New(dispatch.Config{
			Store: s.Svc.Store, Registry: s.Svc.App.Registry, Role: dispatch.RoleAgent,
			Node: dispatch.NodeConfig{ID: "agent-b", GPUs: gpus}, DrainTimeout: -1,
		})
		require.NoError(t, err)
		require.NoError(t, agent.Start(t.Context()))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, env.Stop(ctx))
			require.NoError(t, agent.Close(ctx))
		})

		r := eventually(t, s, "/gpu/env", http.StatusOK, "")
		reps := replicas(t, s, "remote")
		require.Len(t, reps, 1)
		require.Equal(t, "agent-b", reps[0].Node)
		require.Equal(t, reps[0].Devices[0], strings.Split(r.Raw, "\n")[0])
	})
}
