package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

func testPurge(t *testing.T, s store.Store) {
	ctx := context.Background()
	old, recent, active := newRun(nil), newRun(nil), newRun(nil)
	create(t, s, old, recent, active)
	apply(t, s, store.Transition{Run: old.Name, To: tasks.PhaseSucceeded, At: t0, Outputs: json.RawMessage(`{"x":1}`)})
	apply(t, s, store.Transition{Run: recent.Name, To: tasks.PhaseSucceeded, At: t0.Add(time.Hour), Outputs: json.RawMessage(`{"x":2}`)})
	require.NoError(t, s.AppendLogs(ctx, []store.LogLine{{Run: old.Name, At: t0, Level: "INFO", Message: "m"}}))

	n, err := s.PurgeRuns(ctx, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got := get(t, s, old.Name)
	require.True(t, got.Purged)
	require.Nil(t, got.Inputs)
	require.Nil(t, got.Outputs)
	require.Equal(t, tasks.PhaseSucceeded, got.Phase, "the record stays")
	logs, err := s.Logs(ctx, old.Name)
	require.NoError(t, err)
	require.Empty(t, logs)
	require.NotNil(t, get(t, s, recent.Name).Outputs)
	require.NotNil(t, get(t, s, active.Name).Inputs)

	n, err = s.PurgeRuns(ctx, t0.Add(time.Minute))
	require.NoError(t, err)
	require.Zero(t, n)
}

// testDeleteRuns deletes old terminal runs whole, oldest first and no more
// than asked, and leaves newer and unfinished runs as they were.
func testDeleteRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	finish := func(r store.NewRun, at time.Time) {
		apply(t, s, store.Transition{Run: r.Name, To: tasks.PhaseInitializing, At: at, Bind: &store.Binding{Node: "n1"}})
		apply(t, s, store.Transition{Run: r.Name, Attempt: 1, To: tasks.PhaseSucceeded, At: at, Outputs: json.RawMessage(`{}`)})
	}
	keyed := func(key string) store.NewRun {
		return newRun(func(r *store.NewRun) {
			r.IdempotencyKey, r.RequestHash = key, "h"
			r.Webhook = "https://example.com/hook"
		})
	}
	oldest, old, recent, queued := keyed("del-1"), keyed("del-2"), keyed("del-3"), newRun(nil)
	create(t, s, oldest, old, recent, queued)
	finish(oldest, t0)
	finish(old, t0.Add(time.Minute))
	finish(recent, t0.Add(time.Hour))
	require.NoError(t, s.AppendLogs(ctx, []store.LogLine{{Run: oldest.Name, Attempt: 1, At: t0, Level: "INFO", Message: "x"}}))
	ds, err := s.ListDeliveries(ctx, oldest.Name)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.NoError(t, s.RecordDeliveryAttempt(ctx, ds[0].ID, store.DeliveryAttempt{At: t0, StatusCode: 500, Error: "boom", NextAttemptAt: t0.Add(time.Minute)}))

	cut := t0.Add(30 * time.Minute)
	n, err := s.DeleteRuns(ctx, cut, 1)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the limit")
	_, err = s.GetRun(ctx, oldest.Name)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.GetRun(ctx, old.Name)
	require.NoError(t, err, "the newer of the two old runs goes second")
	evs, err := s.Events(ctx, oldest.Name, 0)
	require.NoError(t, err)
	require.Empty(t, evs)
	logs, err := s.Logs(ctx, oldest.Name)
	require.NoError(t, err)
	require.Empty(t, logs)
	ds, err = s.ListDeliveries(ctx, oldest.Name)
	require.NoError(t, err)
	require.Empty(t, ds)

	n, err = s.DeleteRuns(ctx, cut, 100)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = s.DeleteRuns(ctx, cut, 100)
	require.NoError(t, err)
	require.Zero(t, n)
	for _, r := range []store.NewRun{recent, queued} {
		_, err := s.GetRun(ctx, r.Name)
		require.NoError(t, err, r.Name)
		evs, err := s.Events(ctx, r.Name, 0)
		require.NoError(t, err)
		require.NotEmpty(t, evs, r.Name)
	}
	ds, err = s.ListDeliveries(ctx, recent.Name)
	require.NoError(t, err)
	require.Len(t, ds, 1, "a newer run keeps its delivery")
	// A retried request with a deleted run's key starts a new run; a
	// living run's key still finds it.
	res := create(t, s, keyed("del-1"), keyed("del-3"))
	require.True(t, res[0].Created)
	require.NotEqual(t, oldest.Name, res[0].Name)
	require.Equal(t, store.CreateResult{Name: recent.Name}, res[1])
}
