package framework

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

// TestHoldStatusIgnoresAnEarlierAttemptsAddress crashes the process whose
// replica answered at an address (its store closed under it), then starts
// another on the same database and node: the replica's run is retried,
// and while its new attempt has not reported an address, Status gives
// none, not the address of the attempt before, where another process may
// listen by now.
func TestHoldStatusIgnoresAnEarlierAttemptsAddress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	process := func(serve func(ctx context.Context, r environments.Replica) error) (*sqlite.Store, environments.Holds) {
		st, err := sqlite.OpenDir(context.Background(), dir)
		require.NoError(t, err)
		reg := tasks.NewRegistry()
		d, err := dispatch.New(dispatch.Config{
			Store: st, Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Node:              dispatch.NodeConfig{ID: "node-1", MilliCPU: 64000, MemoryBytes: 64 << 30},
			HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 3 * time.Second,
			LeaseTTL: 600 * time.Millisecond, AbortGrace: 200 * time.Millisecond,
		})
		require.NoError(t, err)
		h := &holder{reg: reg, d: d, managed: true}
		hs, err := h.Define(environments.HoldSpec{Environment: "srv", Serve: serve})
		require.NoError(t, err)
		require.NoError(t, d.Start(context.Background()))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = d.Close(ctx)
		})
		return st, hs
	}
	status := func(hs environments.Holds, name string) environments.HoldStatus {
		s, err := hs.Status(context.Background(), name)
		require.NoError(t, err)
		return s
	}

	st, first := process(func(ctx context.Context, r environments.Replica) error {
		r.Report("127.0.0.1:1111")
		<-ctx.Done()
		return nil
	})
	name, err := first.Start(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return status(first, name).Addr == "127.0.0.1:1111" },
		10*time.Second, 10*time.Millisecond, "the first attempt's address")
	require.NoError(t, st.Close()) // the crash

	started := make(chan int, 1)
	answer := make(chan struct{})
	st, second := process(func(ctx context.Context, r environments.Replica) error {
		ri, _ := tasks.RunInfoFromContext(ctx)
		started <- ri.Attempt
		select { // starting; no address yet
		case <-answer:
			r.Report("127.0.0.1:2222")
		case <-ctx.Done():
		}
		<-ctx.Done()
		return nil
	})
	t.Cleanup(func() { _ = st.Close() })
	select {
	case attempt := <-started:
		require.Equal(t, 2, attempt)
	case <-time.After(10 * time.Second):
		t.Fatal("the replica's run was not retried")
	}
	require.Eventually(t, func() bool { return status(second, name).Phase == tasks.PhaseRunning },
		10*time.Second, 10*time.Millisecond)
	s := status(second, name)
	require.Empty(t, s.Addr, "the address of attempt 1, while attempt 2 reported none")
	close(answer)
	require.Eventually(t, func() bool { return status(second, name).Addr == "127.0.0.1:2222" },
		10*time.Second, 10*time.Millisecond, "the second attempt's address")
}
