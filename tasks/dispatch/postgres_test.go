package dispatch_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store/postgres"
	"github.com/taskgate/taskgate/tasks/store/postgres/pgtest"
)

// pgProcesses skips t without TASKGATE_TEST_POSTGRES_URL; else it returns
// a func that opens a store on a fresh schema (dropped when t ends) with its
// own connection pool, as a separate process would.
func pgProcesses(t *testing.T) func() *postgres.Store {
	t.Helper()
	cfg := pgtest.Config(t, "dispatch", "the multi-process test")
	cfg.MaxConns = 4
	return func() *postgres.Store {
		st, err := postgres.Open(context.Background(), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
}

// TestPostgresProcesses plays a deployment on one PostgreSQL: two API
// processes (scheduler candidates) and two node agents, each with its own
// connection pool as separate processes would have. Runs submitted on one
// API finish and are seen finishing on the other; when the scheduling
// process dies the other takes over; when a node agent dies its run
// finishes on the other node.
func TestPostgresProcesses(t *testing.T) {
	process := pgProcesses(t)
	t.Parallel()
	ctx := context.Background()

	f := newFixture(t)
	gate := make(chan struct{})
	t.Cleanup(func() { close(gate) })
	hold := tasks.MustDefine("demo", "development", "hold", func(ctx context.Context, in struct{}) (map[string]any, error) {
		ri, _ := tasks.RunInfoFromContext(ctx)
		if ri.Attempt == 1 {
			<-gate // the first attempt never ends: its node is about to die
		}
		return map[string]any{"node": ri.Node, "attempt": ri.Attempt}, nil
	}, &tasks.Options{Retry: fastRetry})
	f.reg.MustRegister(hold)

	const timeout = time.Second
	cfg := func(role dispatch.Role, id string) func(*dispatch.Config) {
		return func(c *dispatch.Config) {
			c.Role, c.Node.ID, c.HeartbeatTimeout, c.LeaseTTL = role, id, timeout, 600*time.Millisecond
		}
	}
	apiStores := map[string]*postgres.Store{"api-1": process(), "api-2": process()}
	apis := map[string]*dispatch.Dispatcher{}
	for id, st := range apiStores {
		apis[id] = start(t, st, f, cfg(dispatch.RoleAPI, id))
	}
	agentStores := map[string]*postgres.Store{"node-a": process(), "node-b": process()}
	for id, st := range agentStores {
		start(t, st, f, cfg(dispatch.RoleAgent, id))
	}

	// Submitted on one process, awaited on the other.
	for range 3 {
		run := submit(t, apis["api-1"], f.echo, `{"message":"across"}`)
		done := wait(t, apis["api-2"], run.Name)
		require.Equal(t, tasks.PhaseSucceeded, done.Phase, done.Error)
		require.Contains(t, []string{"node-a", "node-b"}, done.Node)
	}

	// Kill the scheduling process: the other takes the lease.
	leader := ""
	require.Eventually(t, func() bool {
		for id, d := range apis {
			if q, err := d.Queue(ctx); err == nil && q.Leader {
				leader = id
				return true
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond)
	require.NoError(t, apiStores[leader].Close())
	survivor := apis["api-1"]
	if leader == "api-1" {
		survivor = apis["api-2"]
	}
	run := submit(t, survivor, f.echo, `{"message":"after the leader died"}`)
	require.Equal(t, tasks.PhaseSucceeded, wait(t, survivor, run.Name).Phase)
	q, err := survivor.Queue(ctx)
	require.NoError(t, err)
	require.True(t, q.Leader)

	// Kill the node agent running a run: it finishes on the other node.
	run = submit(t, survivor, hold.Definition(), `{}`)
	waitPhase(t, survivor, run.Name, tasks.PhaseRunning)
	got, err := survivor.Get(ctx, run.Name)
	require.NoError(t, err)
	first := got.Node
	require.NoError(t, agentStores[first].Close())
	done := wait(t, survivor, run.Name)
	require.Equal(t, tasks.PhaseSucceeded, done.Phase, done.Error)
	require.Len(t, done.Attempts, 2)
	require.Equal(t, first, done.Attempts[0].Node)
	require.NotEqual(t, first, done.Attempts[1].Node)
	require.Contains(t, done.Attempts[0].Error, "stopped heartbeating")
}

// TestOnDeliveryAcrossProcesses: a change that enqueues a webhook delivery
// wakes OnDelivery in the process that committed it and in another process
// sharing the PostgreSQL store (whose webhook worker may claim it), and a
// change that enqueues none wakes neither.
func TestOnDeliveryAcrossProcesses(t *testing.T) {
	process := pgProcesses(t)
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	worker := start(t, process(), f, func(c *dispatch.Config) { c.Node.ID = "node-a" })
	api := start(t, process(), f, func(c *dispatch.Config) { c.Role = dispatch.RoleAPI; c.Node.ID = "api-b" })
	var local, remote atomic.Int64
	defer worker.OnDelivery(func() { local.Add(1) })()
	defer api.OnDelivery(func() { remote.Add(1) })()

	plain := submit(t, worker, f.echo, `{"message":"hi"}`)
	require.Equal(t, tasks.PhaseSucceeded, wait(t, worker, plain.Name).Phase)
	hooked, _, err := worker.Submit(ctx, dispatch.SubmitRequest{Task: f.echo, Inputs: []byte(`{"message":"hi"}`), Caller: alice,
		Webhook: "https://example.com/hook"})
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseSucceeded, wait(t, worker, hooked.Name).Phase)

	require.Eventually(t, func() bool { return local.Load() == 1 && remote.Load() == 1 }, 5*time.Second, 10*time.Millisecond,
		"local %d, remote %d", local.Load(), remote.Load())
	// The run without a callback URL, and every other change, woke nobody.
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, int64(1), local.Load())
	require.Equal(t, int64(1), remote.Load())
}

// TestSubscribeLocalSeesThisProcessOnly: on a shared store, Subscribe gets
// other processes' changes and SubscribeLocal does not, so a process whose
// subscribers are all local reads none of them.
func TestSubscribeLocalSeesThisProcessOnly(t *testing.T) {
	process := pgProcesses(t)
	t.Parallel()
	f := newFixture(t)
	worker := start(t, process(), f, func(c *dispatch.Config) { c.Node.ID = "node-a" })
	api := start(t, process(), f, func(c *dispatch.Config) { c.Role = dispatch.RoleAPI; c.Node.ID = "api-b" })
	var mu sync.Mutex
	seen := map[string][]tasks.Phase{}
	record := func(who string) func(tasks.Run, tasks.Event) {
		return func(_ tasks.Run, ev tasks.Event) {
			mu.Lock()
			seen[who] = append(seen[who], ev.Phase)
			mu.Unlock()
		}
	}
	defer api.Subscribe(record("api-all"))()
	defer api.SubscribeLocal(record("api-local"))()
	defer worker.SubscribeLocal(record("worker-local"))()

	run := submit(t, worker, f.echo, `{"message":"hi"}`)
	require.Equal(t, tasks.PhaseSucceeded, wait(t, worker, run.Name).Phase)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		all, local := seen["api-all"], seen["worker-local"]
		return len(all) > 0 && all[len(all)-1] == tasks.PhaseSucceeded &&
			len(local) > 0 && local[len(local)-1] == tasks.PhaseSucceeded
	}, 5*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, seen["api-local"], "another process's changes reached a local subscriber")
}
