package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks/store"
)

func testNodes(t *testing.T, s store.Store) {
	ctx := context.Background()
	require.ErrorIs(t, s.Heartbeat(ctx, "n1", t0), store.ErrNotFound)
	n := store.Node{ID: "n1", Inventory: json.RawMessage(`{"gpus":4}`), Heartbeat: t0, StartedAt: t0}
	require.NoError(t, s.UpsertNode(ctx, n))
	require.NoError(t, s.Heartbeat(ctx, "n1", t0.Add(time.Second)))
	nodes, err := s.Nodes(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	require.Equal(t, t0.Add(time.Second), nodes[0].Heartbeat)
	require.JSONEq(t, `{"gpus":4}`, string(nodes[0].Inventory))
	require.NoError(t, s.DeleteNode(ctx, "n1"))
	nodes, err = s.Nodes(ctx)
	require.NoError(t, err)
	require.Empty(t, nodes)
}

func testLease(t *testing.T, s store.Store) {
	ctx := context.Background()
	ok, err := s.AcquireLease(ctx, "scheduler", "a", 300*time.Millisecond)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.AcquireLease(ctx, "scheduler", "b", time.Second)
	require.NoError(t, err)
	require.False(t, ok, "held by a")
	ok, err = s.AcquireLease(ctx, "scheduler", "a", 300*time.Millisecond)
	require.NoError(t, err)
	require.True(t, ok, "a renews")
	ok, err = s.AcquireLease(ctx, "other", "b", time.Second)
	require.NoError(t, err)
	require.True(t, ok, "leases are independent")

	require.Eventually(t, func() bool {
		ok, err := s.AcquireLease(ctx, "scheduler", "b", time.Second)
		return err == nil && ok
	}, 3*time.Second, 50*time.Millisecond, "b takes over once a's lease expires")

	require.NoError(t, s.ReleaseLease(ctx, "scheduler", "a"), "releasing a lease one does not hold is a no-op")
	ok, err = s.AcquireLease(ctx, "scheduler", "a", time.Second)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, s.ReleaseLease(ctx, "scheduler", "b"))
	ok, err = s.AcquireLease(ctx, "scheduler", "a", time.Second)
	require.NoError(t, err)
	require.True(t, ok)
}
