package dispatch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

// waitAttemptRunning waits until run name's attempt number attempt runs.
func waitAttemptRunning(t *testing.T, st store.Store, name string, attempt int) {
	t.Helper()
	require.Eventually(t, func() bool {
		r, err := st.GetRun(context.Background(), name)
		return err == nil && r.Phase == tasks.PhaseRunning && r.Attempt == attempt
	}, 10*time.Second, 5*time.Millisecond, "attempt %d of run %s never ran", attempt, name)
}

// TestRestartsSpendInterruptionsNotRetries crashes the process running two
// runs five times (its store closed under it, then a new process on the
// same database and node ID). A task without retries must survive the
// restarts: they are the platform's interruptions, not its failures. A
// task allowed two interruptions fails at the third, saying so.
func TestRestartsSpendInterruptionsNotRetries(t *testing.T) {
	t.Parallel()
	const restarts = 5
	f := newFixture(t)
	// Attempts up to restarts run until cancelled: each is interrupted.
	holdFn := func(ctx context.Context, in struct{}) (map[string]int, error) {
		ri, _ := tasks.RunInfoFromContext(ctx)
		if ri.Attempt <= restarts {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return map[string]int{"attempt": ri.Attempt}, nil
	}
	hold := tasks.MustDefine("demo", "development", "hold", holdFn, &tasks.Options{Retry: &tasks.NoRetry})
	fragile := tasks.MustDefine("demo", "development", "fragile", holdFn, &tasks.Options{Retry: &tasks.NoRetry, MaxInterruptions: 2})
	f.reg.MustRegister(hold, fragile)

	dir := t.TempDir()
	open := func() *sqlite.Store {
		st, err := sqlite.OpenDir(context.Background(), dir)
		require.NoError(t, err)
		return st
	}
	st := open()
	d := start(t, st, f, nil)
	run := submit(t, d, hold.Definition(), `{}`)
	weak := submit(t, d, fragile.Definition(), `{}`)
	for i := 1; i <= restarts; i++ {
		waitAttemptRunning(t, st, run.Name, i)
		if i <= 3 {
			waitAttemptRunning(t, st, weak.Name, i)
		}
		require.NoError(t, st.Close()) // the crash: nothing more reaches the database
		st = open()
		d = start(t, st, f, nil)
	}
	t.Cleanup(func() { _ = st.Close() })

	done := wait(t, d, run.Name)
	require.Equal(t, tasks.PhaseSucceeded, done.Phase, done.Error)
	require.JSONEq(t, fmt.Sprintf(`{"attempt":%d}`, restarts+1), string(done.Outputs))
	require.Len(t, done.Attempts, restarts+1)
	for i, a := range done.Attempts[:restarts] {
		require.True(t, a.Interrupted, "attempt %d", i+1)
		require.Equal(t, tasks.PhaseFailed, a.Phase)
		require.Contains(t, a.Error, fmt.Sprintf("node-1 restarted during attempt %d", i+1))
	}
	require.False(t, done.Attempts[restarts].Interrupted)
	sr, err := st.GetRun(context.Background(), run.Name)
	require.NoError(t, err)
	require.Equal(t, restarts, sr.Interruptions)
	require.Zero(t, sr.Failures, "restarts are not the task's failures")

	failed := wait(t, d, weak.Name)
	require.Equal(t, tasks.PhaseFailed, failed.Phase)
	require.Equal(t, "node node-1 restarted during attempt 3; interrupted 3 times (node restarts, losses or drains); MaxInterruptions is 2",
		failed.Error)
	require.Len(t, failed.Attempts, 3)
	require.True(t, failed.Attempts[2].Interrupted)
}

// TestDrainLetsRunsFinishThenRequeues drains a node running a short and a
// long run: the short one finishes within DrainTimeout and succeeds; the
// long one is cancelled after it and goes back to the queue as an
// interruption. While draining, the dispatcher refuses submits and says
// it is not ready; reads still work.
func TestDrainLetsRunsFinishThenRequeues(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := openStore(t, t.TempDir())
	d, err := dispatch.New(dispatch.Config{Store: st, Registry: f.reg, Logger: quietLogger(), Node: dispatch.NodeConfig{ID: "n"},
		DrainTimeout: 2 * time.Second, AbortGrace: 200 * time.Millisecond})
	require.NoError(t, err)
	ctx := context.Background()
	require.ErrorIs(t, d.Ready(ctx), dispatch.ErrNotStarted)
	require.NoError(t, d.Start(ctx))
	t.Cleanup(func() { _ = d.Close(ctx) })
	require.NoError(t, d.Ready(ctx))

	short := submit(t, d, f.sleep, `{"seconds":0.5}`)
	long := submit(t, d, f.sleep, `{"seconds":60}`)
	waitPhase(t, d, short.Name, tasks.PhaseRunning)
	waitPhase(t, d, long.Name, tasks.PhaseRunning)

	drained := make(chan struct{})
	go func() {
		defer close(drained)
		d.Drain(ctx)
	}()
	require.Eventually(t, d.Draining, 5*time.Second, time.Millisecond)
	require.ErrorIs(t, d.Ready(ctx), dispatch.ErrDraining)
	_, _, err = d.Submit(ctx, dispatch.SubmitRequest{Task: f.echo, Caller: alice})
	require.ErrorIs(t, err, dispatch.ErrClosed)
	_, err = d.Get(ctx, long.Name)
	require.NoError(t, err, "reads work while draining")

	select {
	case <-drained:
	case <-time.After(20 * time.Second):
		t.Fatal("Drain did not return")
	}
	got, err := d.Get(ctx, short.Name)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseSucceeded, got.Phase, "a run that ends within DrainTimeout finishes: %s", got.Error)

	sr, err := st.GetRun(ctx, long.Name)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseQueued, sr.Phase)
	require.Zero(t, sr.Failures)
	require.Equal(t, 1, sr.Interruptions)
	require.True(t, sr.Attempts[0].Interrupted)
	require.Equal(t, tasks.PhaseAborted, sr.Attempts[0].Phase)
	require.Contains(t, sr.Attempts[0].Error, "node n shut down during attempt 1")
	require.NoError(t, d.Close(ctx))
}

// TestReadyNeedsTheStore: a dispatcher whose store does not answer is not
// ready, and says why.
func TestReadyNeedsTheStore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st := openStore(t, t.TempDir())
	d := start(t, st, f, nil)
	require.NoError(t, d.Ready(context.Background()))
	require.NoError(t, st.Close())
	err := d.Ready(context.Background())
	require.ErrorIs(t, err, dispatch.ErrStoreUnreachable)
	require.ErrorIs(t, err, store.ErrClosed)
}
